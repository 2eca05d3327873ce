"""Promotion and broadcasting: Python values and operands brought to one dtype (torch's
result_type) and one shape before a primitive is applied; the helpers every family shares."""
from __future__ import annotations

import builtins

import numpy as np

from ... import dtypes as _dt
from ...tensor import Tensor, apply
from ..from_data import tensor

_py_max, _py_min, _py_sum, _py_abs = builtins.max, builtins.min, builtins.sum, builtins.abs
_py_any, _py_all = builtins.any, builtins.all


def _pyval(v, dtype):
    if dtype.is_floating_point:
        return float(v)
    if dtype is _dt.bool_:
        return bool(v)
    return int(v)


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _to_tensor(v, dtype):
    """A Python scalar as a 0-d tensor of dtype (a `full` node while tracing)."""
    return apply("full", shape=(), value=_pyval(v, dtype), dtype=dtype)


def _as(x, dtype):
    if not isinstance(x, Tensor):
        if isinstance(x, (list, tuple, np.ndarray)):
            x = tensor(x)
        else:
            return _to_tensor(x, dtype)
    return x if x._dtype is dtype else cast(x, dtype)


def cast(x, dtype):
    dtype = _dt.as_dtype(dtype)
    return x if x._dtype is dtype else apply("cast", x, dtype=dtype)


def broadcast_shapes(*shapes):
    n = _py_max(len(s) for s in shapes)
    out = []
    for i in reversed(range(n)):   # from the last dim, as torch's infer_size (so errors name the same dim)
        size = 1
        for k, s in enumerate(shapes):
            d = s[i - n + len(s)] if i - n + len(s) >= 0 else 1
            if d != 1:
                if size != 1 and d != size:
                    raise RuntimeError(f"The size of tensor a ({size}) must match the size of tensor "
                                       f"b ({d}) at non-singleton dimension {i}")
                size = d
        out.append(size)
    return tuple(reversed(out))


def broadcast_to(x, shape):
    shape = tuple(shape)
    return x if tuple(x.shape) == shape else apply("broadcast_to", x, shape=shape)


def _prep(*operands, dtype=None, floating=False):
    """Promote operands to one dtype (torch.result_type) and broadcast them to one shape."""
    if dtype is None:
        dtype = _dt.result_type(*operands)
    if floating and not dtype.is_floating_point:
        dtype = _dt.get_default_dtype()
    ts = [_as(o, dtype) for o in operands]
    shape = broadcast_shapes(*[tuple(t.shape) for t in ts])
    return [broadcast_to(t, shape) for t in ts]


def _is_bool(v):
    return v.dtype is _dt.bool_ if isinstance(v, Tensor) else isinstance(v, (bool, np.bool_))
