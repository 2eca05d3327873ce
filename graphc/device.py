"""Devices as torch spells them: `cpu` and `cuda:0` (graphc drives one CUDA device).

A tensor is on the device its storage lives on: a numpy array (cpu) or a
`graphc.backends.cuda.device_array.DeviceArray` (cuda:0). `move` copies storage between them;
`mismatch` is torch's error for an op whose tensors are on different devices.
"""
from __future__ import annotations


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
            from . import cuda
            if not cuda.is_available():
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
    import numpy as np
    if dev.type == "cpu":
        return data if type(data) is np.ndarray else data.copy_to_host()
    from .backends.cuda.device_array import DeviceArray
    if type(data) is DeviceArray:
        return data
    return DeviceArray.from_host(data)
