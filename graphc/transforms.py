"""Functional transforms in the style of jax/torch.func: grad and value_and_grad.

They work eagerly (through the tape) and inside a compiled function (through the autodiff
pass), and nest for higher-order derivatives.
"""
from __future__ import annotations

import functools

from . import autograd as _ag
from . import tracing as _tr
from .tensor import Tensor


def value_and_grad(fn, argnums=0, has_aux=False):
    """Return f(*args) -> (value, gradient of value with respect to args[argnums])."""
    many = isinstance(argnums, (tuple, list))
    nums = tuple(argnums) if many else (argnums,)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        args = list(args)
        for i in nums:
            if not isinstance(args[i], Tensor) or not args[i].is_floating_point():
                raise TypeError(f"grad: argument {i} must be a floating-point tensor, got {type(args[i]).__name__}")
        outer = any(args[i].requires_grad for i in nums) and _ag.is_grad_enabled()
        wrt = []
        for i in nums:
            a = args[i]
            if _tr.active() is not None:
                a = Tensor._tracer(a._trace, a._value, True) if a._value is not None else a
                if a._value is None:
                    a = _tr.active().tracer(_tr.active().value_of(a), True)
            else:
                a = a.detach().requires_grad_(True) if not outer else _alias_requiring_grad(a)
            args[i] = a
            wrt.append(a)
        with _ag.enable_grad():
            out = fn(*args, **kwargs)
            value, aux = (out if has_aux else (out, None))
            if not isinstance(value, Tensor) or value.numel() != 1:
                raise RuntimeError("grad: the function must return a scalar tensor "
                                   f"(got {type(value).__name__}{'' if not isinstance(value, Tensor) else list(value.shape)})")
            grads = _ag.grad(value, wrt, create_graph=outer or _tr.active() is not None, allow_unused=True)
        grads = tuple(g if g is not None else a.detach() * 0 for g, a in zip(grads, wrt))
        g = grads if many else grads[0]
        if not outer and _tr.active() is None:
            value = value.detach()
        return ((value, aux), g) if has_aux else (value, g)
    return wrapper


def _alias_requiring_grad(a):
    # keep a's history (for an outer derivative) through an identity op
    return a * 1 if not a.is_leaf else a


def grad(fn, argnums=0, has_aux=False):
    """Return f(*args) -> gradient of the scalar f(*args) with respect to args[argnums]."""
    vg = value_and_grad(fn, argnums, has_aux)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        out = vg(*args, **kwargs)
        if has_aux:
            (_, aux), g = out
            return g, aux
        return out[1]
    return wrapper
