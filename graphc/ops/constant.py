"""Constant primitives: full, iota, and small literal arrays. They take no inputs."""
from __future__ import annotations

import numpy as np

from . import _infer as I
from .registry import Primitive, register


def _full_infer(*, shape, value, dtype):
    return I.tt(I.check_shape("full", shape), dtype)


register(Primitive("full", "constant", _full_infer,
                   lambda *, shape, value, dtype: np.full(shape, value, dtype=dtype.np),
                   None, arity=0, attrs=("shape", "value", "dtype"), saves=()))


def _iota_infer(*, shape, axis, dtype):
    shape = I.check_shape("iota", shape)
    I.check_axes("iota", (axis,), len(shape))
    if dtype is I.BOOL:
        raise TypeError("iota: 0, 1, 2, ... does not fit a bool tensor; use int64 or a float dtype")
    return I.tt(shape, dtype)


def _iota_impl(*, shape, axis, dtype):
    r = np.arange(shape[axis], dtype=dtype.np).reshape([-1 if d == axis else 1 for d in range(len(shape))])
    return np.ascontiguousarray(np.broadcast_to(r, shape))


register(Primitive("iota", "constant", _iota_infer, _iota_impl, None,
                   arity=0, attrs=("shape", "axis", "dtype"), saves=(),
                   doc="0, 1, 2, ... along axis, broadcast over the other dims"))


def _constant_infer(*, shape, dtype, data):
    shape = I.check_shape("constant", shape)
    if len(data) != int(np.prod(shape)):
        raise ValueError(f"constant: {len(data)} values do not fill shape {shape}")
    return I.tt(shape, dtype)


register(Primitive("constant", "constant", _constant_infer,
                   lambda *, shape, dtype, data: np.array(data, dtype=dtype.np).reshape(shape),
                   None, arity=0, attrs=("shape", "dtype", "data"), saves=(),
                   doc="a literal tensor written into the graph (data is flat, row-major)"))
