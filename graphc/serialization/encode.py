"""save's first half: the object tree to JSON nodes and tensor entries (`_encode`), then the
container written to a file object (`_emit`)."""
from __future__ import annotations

import hashlib
import json
from collections import OrderedDict

import numpy as np

from .. import dtypes as _dt
from ..tensor import Tensor
from .format import _FORMAT, _PREAMBLE, MAGIC, VERSION, _align


class _Encoder:
    """Object tree -> JSON-able nodes, collecting tensor data along the way."""

    def __init__(self):
        self.entries, self.arrays = [], []
        self._memo = {}      # id(tensor or array) -> index in entries
        self._stack = set()  # ids of containers being encoded, to reject cycles
        self._size = 0

    def encode(self, obj, where="obj"):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return {"$": "float", "v": float(obj).hex()}
        if isinstance(obj, (Tensor, np.ndarray)):
            return {"$": "tensor", "id": self._tensor(obj, where)}
        if isinstance(obj, _dt.DType):
            return {"$": "dtype", "name": obj.name}
        if isinstance(obj, np.generic) and obj.dtype.kind in "biuf":
            return self.encode(obj.item(), where)
        if isinstance(obj, (list, tuple, dict)):
            if id(obj) in self._stack:
                raise ValueError(f"graphc.save: {where} contains itself (a reference cycle)")
            self._stack.add(id(obj))
            try:
                if isinstance(obj, dict):
                    tag = "odict" if isinstance(obj, OrderedDict) else "dict"
                    items = [[self.encode(k, f"{where} key {k!r}"), self.encode(v, f"{where}[{k!r}]")]
                             for k, v in obj.items()]
                    return {"$": tag, "items": items}
                tag = "list" if isinstance(obj, list) else "tuple"  # namedtuples and Size save as tuples
                return {"$": tag, "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
            finally:
                self._stack.discard(id(obj))
        raise TypeError(f"graphc.save can't store {where} of type {type(obj).__qualname__}: checkpoints "
                        "hold tensors, numpy arrays, dicts, lists, tuples, str, int, float, bool and None")

    def _tensor(self, obj, where):
        key = id(obj)
        if key in self._memo:
            return self._memo[key]
        if isinstance(obj, Tensor):
            if obj._data is None:
                raise TypeError(f"graphc.save: {where} is a tensor being traced by graphc.compile; "
                                "save real tensors outside the compiled function")
            arr, dtype = obj._host(), obj.dtype       # a cuda tensor's data is copied to the host
            kind = "parameter" if _is_parameter(obj) else "tensor"
            rg = bool(obj.requires_grad)
        else:
            try:
                dtype = _dt.from_numpy(obj.dtype)
            except TypeError as e:
                raise TypeError(f"graphc.save: {where}: {e}") from None
            arr, kind, rg = obj, "ndarray", False
        le = np.ascontiguousarray(arr, dtype=dtype.np.newbyteorder("<"))
        offset = _align(self._size)
        self._size = offset + le.nbytes
        self.entries.append({"dtype": dtype.name, "shape": list(arr.shape), "offset": offset,
                             "nbytes": le.nbytes, "kind": kind, "requires_grad": rg})
        self.arrays.append((offset, le))
        self._memo[key] = len(self.entries) - 1
        return self._memo[key]


def _is_parameter(t) -> bool:
    try:
        from ..nn.parameter import Parameter
    except Exception:
        return False
    return isinstance(t, Parameter)


def _encode(obj):
    enc = _Encoder()
    root = enc.encode(obj)
    header = json.dumps({"format": _FORMAT, "tensors": enc.entries, "root": root},
                        separators=(",", ":"), allow_nan=False).encode("utf-8")
    return header, enc


def _emit(header, enc, f) -> None:
    digest = hashlib.sha256()

    def put(b):
        digest.update(b)
        f.write(b)

    data_len = enc._size
    put(_PREAMBLE.pack(MAGIC, VERSION, 0, len(header), data_len))
    put(header)
    put(bytes(_align(_PREAMBLE.size + len(header)) - _PREAMBLE.size - len(header)))
    pos = 0
    for offset, arr in enc.arrays:
        put(bytes(offset - pos))
        put(arr.reshape(-1).view(np.uint8))
        pos = offset + arr.nbytes
    f.write(digest.digest())
