"""Index primitives: take_along_axis (gather) and its adjoint scatter_add."""
from __future__ import annotations

import numpy as np

from . import _infer as I
from . import functional as F
from .registry import Primitive, register


def _check_index(op, x, idx, axis):
    I.check_axes(op, (axis,), x.ndim)
    I.need_dtype(op, idx, I.INT)
    if idx.ndim != x.ndim or any(a != b for d, (a, b) in enumerate(zip(idx.shape, x.shape)) if d != axis):
        raise RuntimeError(f"{op}: index {idx} must match {x} in every dim but {axis}")


def _bounds(idx, n, axis):
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)].flat[0]
        raise IndexError(f"index {bad} is out of bounds for dimension {axis} with size {n}")


def _take_infer(x, idx, *, axis):
    _check_index("take_along_axis", x, idx, axis)
    return I.tt(idx.shape, x.dtype)


def _take_impl(x, idx, *, axis):
    _bounds(idx, x.shape[axis], axis)
    return np.take_along_axis(x, idx, axis=axis)


def _take_vjp(c, g):
    x_t = c.in_types[0]
    zeros = F.full(x_t.shape, 0, dtype=g.dtype, device=F._device_of(g, None))
    return (F.scatter_add(zeros, c.inputs[1], g, c.attrs["axis"]), None)


register(Primitive("take_along_axis", "index", _take_infer, _take_impl, _take_vjp,
                   arity=2, attrs=("axis",), saves=("inputs",),
                   doc="out[i][j] = x[idx[i][j]][j] for axis 0 (numpy.take_along_axis, torch.gather)"))


def _scatter_infer(x, idx, src, *, axis):
    _check_index("scatter_add", x, idx, axis)
    if idx.shape != src.shape or src.dtype is not x.dtype:
        raise RuntimeError(f"scatter_add: src {src} must have the index's shape {idx.shape} and dtype {x.dtype.name}")
    return x


def _scatter_impl(x, idx, src, *, axis):
    _bounds(idx, x.shape[axis], axis)
    out = x.copy()
    where = list(np.indices(idx.shape, sparse=True))
    where[axis] = idx
    np.add.at(out, tuple(where), src)
    return out


def _scatter_vjp(c, g):
    return (g, None, F.take_along_axis(g, c.inputs[1], c.attrs["axis"]) if c.needs[2] else None)


register(Primitive("scatter_add", "index", _scatter_infer, _scatter_impl, _scatter_vjp,
                   arity=3, attrs=("axis",), saves=("inputs",),
                   doc="x with src added at idx along axis (the adjoint of take_along_axis)"))
