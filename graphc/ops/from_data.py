"""Tensors from data: graphc.tensor, as_tensor, from_numpy, scalar_tensor.

Inside a compiled function, tensor(data) becomes a `constant` node.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import dtypes as _dt
from .. import mode as _tracing
from ..device import device as _device, move
from ..tensor import Tensor, apply


def _np_from_data(data, dtype):
    if isinstance(data, Tensor):
        if data._value is not None:
            raise _tracing.TraceError("graphc.tensor(t) of a traced tensor: use t.clone() or t.detach()")
        arr = data._data
    elif isinstance(data, (np.ndarray, np.generic)):   # numpy keeps its dtype, as in torch
        arr = np.asarray(data)
    else:
        if isinstance(data, (list, tuple)) and any(isinstance(e, Tensor) for e in _flat(data)):
            data = _nested_tensors_to_lists(data)
        arr = np.asarray(data)
        if dtype is None:
            if arr.dtype.kind == "f":
                arr = arr.astype(_dt.get_default_dtype().np)
            elif arr.dtype.kind in "iu":
                arr = arr.astype(np.int64)
    if dtype is not None:
        return arr.astype(_dt.as_dtype(dtype).np)
    kind = arr.dtype.kind
    if kind in "iu" and arr.dtype != np.int64:
        return arr.astype(np.int64)
    if kind == "f" and arr.dtype not in (np.float32, np.float64):
        return arr.astype(np.float32)
    if kind not in "iufb":
        raise TypeError(f"can't convert data of type {arr.dtype} to a tensor; graphc supports "
                        "float32, float64, int64 and bool")
    return arr


def _flat(xs):
    for x in xs:
        if isinstance(x, (list, tuple)):
            yield from _flat(x)
        else:
            yield x


def _nested_tensors_to_lists(x):
    if isinstance(x, Tensor):
        return x.tolist()
    if isinstance(x, (list, tuple)):
        return [_nested_tensors_to_lists(e) for e in x]
    return x


def tensor(data, dtype=None, requires_grad=False, device=None):
    """A new tensor holding a copy of data (nested lists, numbers, a numpy array or a tensor)."""
    dev = _check_device(device)
    arr = np.array(_np_from_data(data, dtype), copy=True)
    if _tracing.active() is not None:
        d = _dt.from_numpy(arr.dtype)
        t = apply("constant", shape=arr.shape, dtype=d, data=tuple(arr.reshape(-1).tolist()))
        if requires_grad:
            raise _tracing.TraceError("creating a tensor with requires_grad=True inside a compiled "
                                      "function is not supported; create it outside and capture it")
        return t
    if dev is not None and dev.type == "cuda":
        t = Tensor._wrap(move(arr, dev), dtype=_dt.from_numpy(arr.dtype))
    else:
        t = Tensor._wrap(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def as_tensor(data, dtype=None, device=None):
    if isinstance(data, Tensor) and data._value is None and device is not None:
        return data.to(device) if dtype is None else data.to(device).to(dtype)
    if isinstance(data, Tensor) and (dtype is None or _dt.as_dtype(dtype) is data.dtype):
        return data
    if isinstance(data, np.ndarray) and _tracing.active() is None and device is None:
        return Tensor._wrap(_np_from_data(data, dtype))
    return tensor(data, dtype=dtype, device=device)


def from_numpy(arr: np.ndarray):
    """A tensor sharing memory with arr (as torch.from_numpy)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(arr).__name__})")
    _dt.from_numpy(arr.dtype)
    if _tracing.active() is not None:
        return tensor(arr)
    return Tensor._wrap(arr)


def scalar_tensor(v, dtype=None):
    return tensor(v, dtype=dtype or _dt.scalar_dtype(v))


def _check_device(device):
    """The graphc.device for device= (None stays None); RuntimeError if it is unusable."""
    if device is not None:
        return _device(device).check_available()
    return None


def is_number(x):
    return isinstance(x, numbers.Number)
