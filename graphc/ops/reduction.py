"""Reduction primitives: sum and max over a set of axes, argmax over one axis."""
from __future__ import annotations

import numpy as np

from . import _infer as I
from . import functional as F
from .registry import Primitive, register


def _reduced_shape(shape, axes, keepdim):
    if keepdim:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def _sum_infer(x, *, axes, keepdim):
    axes = I.check_axes("sum", axes, x.ndim)
    if x.dtype is I.BOOL:
        raise TypeError("sum: bool operands must be cast first (sum of bool is int64)")
    return I.tt(_reduced_shape(x.shape, axes, keepdim), x.dtype)


def _expand_back(g, in_shape, axes, keepdim):
    """Broadcast a reduced gradient back over the reduced axes."""
    if not keepdim:
        g = F.reshape(g, _reduced_shape(in_shape, axes, True))
    return F.broadcast_to(g, in_shape)


def _sum_vjp(c, g):
    return (_expand_back(g, c.in_types[0].shape, c.attrs["axes"], c.attrs["keepdim"]),)


register(Primitive("sum", "reduction", _sum_infer,
                   lambda x, *, axes, keepdim: np.sum(x, axis=tuple(axes), keepdims=keepdim, dtype=x.dtype),
                   _sum_vjp, arity=1, attrs=("axes", "keepdim"), saves=()))


def _max_infer(x, *, axes, keepdim):
    axes = I.check_axes("max", axes, x.ndim)
    for a in axes:
        if x.shape[a] == 0:
            raise ValueError(f"max(): cannot reduce over axis {a} of size 0 ({x}): the result has no identity")
    return I.tt(_reduced_shape(x.shape, axes, keepdim), x.dtype)


def _max_vjp(c, g):
    x, out = c.inputs[0], c.out
    axes, keepdim = c.attrs["axes"], c.attrs["keepdim"]
    # the gradient is shared equally between tied maxima (torch's amax rule, g / count * mask:
    # where the max is NaN no element equals it, and 0 / 0 * 0 makes the row's gradient NaN, as torch's)
    mask = F.cast(F.eq(x, _expand_back(out, x.shape, axes, keepdim)), g.dtype)
    count = F.sum(mask, axes, keepdim=True)
    share = _expand_back(g, x.shape, axes, keepdim) / F.broadcast_to(count, x.shape)
    return (share * mask,)


register(Primitive("max", "reduction", _max_infer,
                   lambda x, *, axes, keepdim: np.max(x, axis=tuple(axes), keepdims=keepdim),
                   _max_vjp, arity=1, attrs=("axes", "keepdim"), saves=("inputs", "out")))


def _argmax_infer(x, *, axis, keepdim):
    I.check_axes("argmax", (axis,), x.ndim)
    if x.shape[axis] == 0:
        raise ValueError(f"argmax(): cannot reduce over axis {axis} of size 0 ({x})")
    return I.tt(_reduced_shape(x.shape, (axis,), keepdim), I.INT)


register(Primitive("argmax", "reduction", _argmax_infer,
                   lambda x, *, axis, keepdim: np.argmax(x, axis=axis, keepdims=keepdim).astype(np.int64),
                   None, arity=1, attrs=("axis", "keepdim"), saves=(), differentiable=False,
                   doc="index of the first maximum along axis"))
