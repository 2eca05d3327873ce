"""Devices as torch spells them. Only the CPU exists until the CUDA backend lands."""
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
        if self.type == "cuda":
            raise RuntimeError("graphc: CUDA device requested but graphc's CUDA backend is not available "
                               "in this build (graphc.cuda.is_available() is False); use device='cpu'")
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
