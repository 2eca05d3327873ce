"""Devices as torch spells them: `cpu` and `cuda:0` (graphc drives one CUDA device).

A tensor is on the device its storage lives on: a numpy array (cpu) or a
`graphc.backends.cuda.device_array.DeviceArray` (cuda:0). `move` copies storage between them;
`mismatch` is torch's error for an op whose tensors are on different devices.

A leaf: it imports nothing from graphc. Backends register with it (`register`): graphc.cuda
registers cuda's availability check and how to load its backend; the cuda backend, once loaded,
registers its device mode (storage type, host<->device moves, eager single-op dispatch), which
graphc.tensor's `apply` consults for tensors whose storage is not a numpy array.
"""
from __future__ import annotations

import numpy as np


class DeviceMode:
    """What is registered for one device type. is_available() -> bool; load() imports the backend
    that registers the rest: storage (the array type), to_device(host array), to_host(data),
    run(prim, operands, attrs) (one primitive eagerly), HostScalar(value, shape, dtype) (a host
    value taking part in a device op) and fill(dst, value)."""

    def __init__(self, kind):
        self.kind = kind
        self.is_available = lambda: False
        self.load = None
        self.storage = None

    def loaded(self):
        """self, with its backend's operations registered (loading the backend on first use)."""
        if self.storage is None and self.load is not None:
            self.load()
        if self.storage is None:
            raise RuntimeError(f"graphc: no backend registered the {self.kind} device")
        return self


_MODES: dict = {}     # device type -> DeviceMode


def register(kind, *, is_available=None, load=None, storage=None, to_device=None, to_host=None,
             run=None, HostScalar=None, fill=None):  # noqa: N803 - HostScalar names the class
    """Register (part of) device type `kind`'s mode; the parts not given are left as they are."""
    m = _MODES.get(kind) or _MODES.setdefault(kind, DeviceMode(kind))
    for name, value in (("is_available", is_available), ("load", load), ("to_device", to_device),
                        ("to_host", to_host), ("run", run), ("HostScalar", HostScalar),
                        ("fill", fill), ("storage", storage)):
        if value is not None:
            setattr(m, name, value)
    return m


def device_mode(kind) -> DeviceMode:
    """The registered mode of device type `kind`, its backend loaded."""
    m = _MODES.get(kind)
    if m is None:
        raise RuntimeError(f"graphc: no backend registered the {kind} device")
    return m.loaded()


def _is_available(kind) -> bool:
    m = _MODES.get(kind)
    return m is not None and bool(m.is_available())


class device:
    __slots__ = ("type", "index")

    def __init__(self, spec="cpu", index=None):
        if isinstance(spec, device):
            self.type, self.index = spec.type, spec.index
            return
        spec = str(spec)
        kind, _, idx = spec.partition(":")
        if kind not in ("cpu", "cuda"):
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device string: {spec}")
        self.type = kind
        self.index = int(idx) if idx else index

    def check_available(self):
        """self, if graphc can put tensors there; RuntimeError otherwise."""
        if self.type == "cuda":
            if not _is_available("cuda"):
                raise RuntimeError("graphc: CUDA device requested but CUDA is not available "
                                   "(graphc.cuda.is_available() is False: no GPU/driver, or numba-cuda "
                                   "is not installed); use device='cpu'")
            if (self.index or 0) != 0:
                raise RuntimeError(f"graphc: CUDA error: invalid device ordinal {self.index} "
                                   "(graphc drives one CUDA device, cuda:0)")
        return self

    def __eq__(self, other):
        try:
            other = device(other)
        except RuntimeError:
            return False
        return self.type == other.type and (self.index or 0) == (other.index or 0)

    def __hash__(self):
        return hash((self.type, self.index or 0))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}'" + (f", index={self.index})" if self.index is not None else ")")


CPU = device("cpu")
CUDA0 = device("cuda", 0)


def cuda_device(spec=None) -> device:
    """The device of `.cuda(spec)`: None -> cuda:0, an int i -> cuda:i, else the device named."""
    if spec is None:
        return device("cuda", 0)
    if isinstance(spec, int):
        return device("cuda", spec)
    return device(spec)


def mismatch(a, b) -> RuntimeError:
    """torch's error for tensors on two devices in one operation."""
    return RuntimeError(f"Expected all tensors to be on the same device, but found at least two "
                        f"devices, {a} and {b}!")


def move(data, dev):
    """A tensor's storage copied to device `dev` (numpy array <-> DeviceArray)."""
    if dev.type == "cpu":
        if type(data) is np.ndarray:
            return data
        for m in list(_MODES.values()):
            if m.load is not None and type(data) is m.loaded().storage:
                return m.to_host(data)
        raise TypeError(f"graphc: no registered device holds storage of type {type(data).__name__}")
    m = device_mode(dev.type)
    if type(data) is m.storage:
        return data
    return m.to_device(data)
