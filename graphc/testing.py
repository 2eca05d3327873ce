"""Test helpers: gradient checking against central finite differences."""
from __future__ import annotations

import numpy as np

from . import autograd as _ag
from .tensor import Tensor


def numerical_jacobian_vjp(fn, inputs, cotangent, eps=1e-6):
    """d<cotangent, fn(*inputs)>/d input, by central differences, for each float input."""
    grads = []
    for k, x in enumerate(inputs):
        if not (isinstance(x, Tensor) and x.is_floating_point()):
            grads.append(None)
            continue
        base = x._data
        g = np.zeros(base.shape, dtype=np.float64)
        for j in np.ndindex(*base.shape):   # element writes reach the data even through a strided view
            old = base[j]
            base[j] = old + eps
            fp = _dot(fn(*inputs), cotangent)
            base[j] = old - eps
            fm = _dot(fn(*inputs), cotangent)
            base[j] = old
            g[j] = (fp - fm) / (2 * eps)
        grads.append(g)
    return grads


def _dot(out, cot):
    return float(np.sum(np.asarray(out._data, dtype=np.float64) * cot))


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0, raise_exception=True):
    """Compare fn's autograd VJP with finite differences (inputs should be float64 leaves).

    A random cotangent checks the whole Jacobian in one backward pass; returns True or raises
    AssertionError naming the input and the worst element."""
    inputs = list(inputs)
    out = fn(*inputs)   # (not under no_grad: fn may itself differentiate, e.g. for a second derivative)
    rng = np.random.default_rng(seed)
    cot = rng.standard_normal(tuple(out.shape))
    num = numerical_jacobian_vjp(fn, inputs, cot, eps)
    leaves = [x.detach().requires_grad_(True) if isinstance(x, Tensor) and x.is_floating_point() else x
              for x in inputs]
    y = fn(*leaves)
    from .ops.creation import tensor
    want = [x for x in leaves if isinstance(x, Tensor) and x.requires_grad]
    got = _ag.grad(y, want, grad_outputs=tensor(cot, dtype=y.dtype), allow_unused=True)
    it = iter(got)
    for k, (x, n) in enumerate(zip(leaves, num)):
        if n is None:
            continue
        a = next(it)
        a = np.zeros_like(n) if a is None else a._data.astype(np.float64)
        if not np.allclose(a, n, atol=atol, rtol=rtol):
            i = np.unravel_index(np.argmax(np.abs(a - n)), n.shape) if n.size else ()
            msg = (f"gradcheck: input {k}: analytical and numerical gradients differ; worst at {i}: "
                   f"analytical {a[i] if n.size else a}, numerical {n[i] if n.size else n}")
            if raise_exception:
                raise AssertionError(msg)
            return False
    return True
