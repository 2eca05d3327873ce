"""DeviceArray: a cuda tensor's storage -- a flat, C-contiguous numba device array and a shape.

A cuda `Tensor` keeps a DeviceArray where a CPU tensor keeps a numpy array. The data stays in
device memory; only `copy_to_host()` (reached from .numpy(), .item(), .tolist(), .cpu() and
printing) copies it to the host. Every storage is contiguous: generated kernels index flat
1-D arrays, so `reshape` is an alias (the same flat buffer, another shape) and every other
movement op is a copy made by a kernel.

Anything numpy-only (arithmetic, indexing) is not provided here: a cuda tensor's data is
reached through graphc ops, never by treating the storage as a numpy array. `__array__`
raises so that a stray `np.asarray(t._data)` cannot silently copy or misbehave.
"""
from __future__ import annotations

import numpy as np

from ...device import device_mode
from . import _numba


class _Flags:
    """The two numpy flags graphc's generic code reads (a DeviceArray is always both)."""
    writeable = True
    c_contiguous = True


class DeviceArray:
    __slots__ = ("flat", "shape", "dtype", "copied_view", "__weakref__")
    flags = _Flags()

    def __init__(self, flat, shape, copied_view=False):
        self.flat = flat                      # numba 1-D device array, numel elements (>= 1 for 0-d)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = flat.dtype
        # True for the result of a movement op that is a view on the CPU (permute, slice,
        # broadcast_to): here it is a copy, so writing into it must not pretend to reach its base
        self.copied_view = copied_view

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def empty(cls, shape, dtype):
        n = 1
        for s in shape:
            n *= int(s)
        return cls(_numba.cuda().device_array(n, dtype=np.dtype(dtype)), shape)

    @classmethod
    def from_host(cls, arr):
        """Copy a numpy array to the device (host -> device)."""
        arr = np.asarray(arr, order="C")          # (ascontiguousarray would make 0-d arrays 1-d)
        flat = arr.reshape(-1)
        if flat.size == 0:
            return cls.empty(arr.shape, arr.dtype)
        return cls(_numba.cuda().to_device(flat), arr.shape)

    # ---- metadata -----------------------------------------------------------------------------
    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(self.flat.shape[0])

    @property
    def nbytes(self):
        return self.size * self.dtype.itemsize

    def __repr__(self):
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype})"

    # ---- aliasing and copies ------------------------------------------------------------------
    def reshape(self, shape):
        """The same device memory seen with another shape (no copy)."""
        return DeviceArray(self.flat, shape)

    def copy(self):
        """A device -> device copy."""
        out = DeviceArray.empty(self.shape, self.dtype)
        if self.size:
            out.flat.copy_to_device(self.flat)
        return out

    def copy_to_host(self):
        """Device -> host: a new numpy array of this shape."""
        if self.size == 0:
            return np.empty(self.shape, self.dtype)
        return self.flat.copy_to_host().reshape(self.shape)

    def shares_memory(self, other):
        return isinstance(other, DeviceArray) and other.flat is self.flat

    def __setitem__(self, index, value):
        """`storage[...] = other`: a device -> device copy of a DeviceArray of the same size, a
        host -> device copy of a numpy array (nn.init's writes), or a fill with a Python number
        (one generated kernel). Nothing else is supported."""
        if index is not Ellipsis:
            raise NotImplementedError("indexed assignment into a cuda tensor is unsupported on cuda")
        if isinstance(value, DeviceArray):
            if value.size != self.size or value.dtype != self.dtype:
                raise RuntimeError(f"device copy of {value.dtype}{list(value.shape)} into "
                                   f"{self.dtype}{list(self.shape)}")
            if self.size and value.flat is not self.flat:
                self.flat.copy_to_device(value.flat)
            return
        if isinstance(value, (bool, int, float, np.generic)):
            device_mode("cuda").fill(self, value)      # eager's `full` kernel
            return
        if isinstance(value, np.ndarray):
            host = np.ascontiguousarray(np.broadcast_to(value, self.shape), dtype=self.dtype).reshape(-1)
            if self.size:
                self.flat.copy_to_device(host)
            return
        raise TypeError(f"can't assign {type(value).__name__} into a cuda tensor's storage; move it "
                        "with .to('cuda') first")

    def __getitem__(self, index):
        raise NotImplementedError("indexing a cuda tensor's storage (indexed assignment, boolean masks, "
                                  "...) is unsupported on cuda; use graphc ops (where, gather, ...)")

    def __array__(self, dtype=None, copy=None):
        raise TypeError("a cuda tensor's data is in device memory: use .cpu() or .numpy() to copy it "
                        "to the host")


def is_device_array(x) -> bool:
    return type(x) is DeviceArray
