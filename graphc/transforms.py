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
        tr = _tr.active()
        wrt = []
        for i in nums:
            a = args[i]
            if tr is not None:
                a = _traced_wrt(tr, a, outer)
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
            if not value.requires_grad:
                # the value does not depend on any differentiated argument: zero gradients (torch.func)
                grads = (None,) * len(wrt)
            elif tr is not None:
                grads = _tr.trace_grad((value,), tuple(wrt), None, True, create_graph=outer)
            else:
                grads = _ag.grad(value, wrt, create_graph=outer, allow_unused=True)
        grads = tuple(g if g is not None else _zeros_like(a) for g, a in zip(grads, wrt))
        g = grads if many else grads[0]
        if not outer:
            value = value.detach()
        return ((value, aux), g) if has_aux else (value, g)
    return wrapper


def _zeros_like(a):
    from .ops import functional as F
    with _ag.no_grad():
        return F.zeros_like(a)


def _traced_wrt(tr, a, outer):
    """The tensor to differentiate with respect to while tracing, mirroring the eager rule:
    without an outer derivative, a fresh leaf (a stop_gradient node marked as requiring grad,
    so values that merely share a's graph value are constants to this derivative); with one,
    a itself when it is a leaf of the trace, else a differentiable identity of it."""
    if a._value is None:                       # a captured concrete tensor
        a = tr.tracer(tr.value_of(a), a.requires_grad)
    if not outer:
        d = tr.detach(a)
        d.requires_grad = True
        return d
    v = a._value
    if v.producer is None or v.producer.op == "stop_gradient":
        return a
    with _ag.enable_grad():
        return a * 1


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
