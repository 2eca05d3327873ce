"""default_collate / default_convert: turn a list of samples into one batch, as torch does.

Rules (torch's, restricted to graphc's four dtypes): tensors are stacked on a new first
dimension; numpy arrays and numpy scalars become tensors and are stacked; Python floats become
float64, ints int64 and bools bool; strings stay a list; dicts, namedtuples, tuples and lists
are collated field by field (a tuple batch comes back as a list, as in torch). numpy dtypes
graphc lacks are converted the way graphc.as_tensor converts them (int32/uint8 -> int64,
float16 -> float32), where torch would keep them.
"""
from __future__ import annotations

import collections.abc
import copy

import numpy as np

from ...ops import creation as _creation
from ...ops.functional import stack as _stack
from ...tensor import Tensor

_ERR = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
        "found {}")


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _np_ok(a) -> bool:
    return a.dtype.kind in "biuf"


def default_collate(batch):
    """Collate a list of samples into a batch (see the module docstring for the rules)."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack(batch, 0)
    if isinstance(elem, np.ndarray) or (isinstance(elem, np.generic) and not isinstance(elem, (np.str_, np.bytes_))):
        arr = np.asarray(elem)
        if not _np_ok(arr):
            raise TypeError(_ERR.format(arr.dtype))
        if arr.ndim == 0:
            return _creation.as_tensor(np.asarray(batch))
        return default_collate([_creation.as_tensor(b) for b in batch])
    if isinstance(elem, bool):
        return _creation.tensor(batch)
    if isinstance(elem, float):
        return _creation.tensor(batch, dtype="float64")
    if isinstance(elem, int):
        return _creation.tensor(batch, dtype="int64")
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        fields = {k: default_collate([d[k] for d in batch]) for k in elem}
        if isinstance(elem, collections.abc.MutableMapping):
            clone = copy.copy(elem)
            clone.update(fields)
            return clone
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    if _is_namedtuple(elem):
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        n = len(elem)
        if any(len(e) != n for e in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        columns = [default_collate(list(s)) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return columns  # torch returns a list here too (backwards compatibility)
        try:
            clone = copy.copy(elem)
            for i, c in enumerate(columns):
                clone[i] = c
            return clone
        except TypeError:
            return columns
    raise TypeError(_ERR.format(type(elem)))


def default_convert(data):
    """What the DataLoader applies to each sample when batch_size=None: numpy arrays become
    tensors, containers are converted element-wise, everything else is left as it is."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray):
        return _creation.as_tensor(data) if _np_ok(data) else data
    if isinstance(data, np.generic) and _np_ok(np.asarray(data)):
        return _creation.as_tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        fields = {k: default_convert(v) for k, v in data.items()}
        if isinstance(data, collections.abc.MutableMapping):
            clone = copy.copy(data)
            clone.update(fields)
            return clone
        return fields
    if _is_namedtuple(data):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            clone = copy.copy(data)
            for i, d in enumerate(data):
                clone[i] = default_convert(d)
            return clone
        except TypeError:
            return [default_convert(d) for d in data]
    return data
