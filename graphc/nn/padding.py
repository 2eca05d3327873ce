"""The padding layers (ZeroPad, ConstantPad, ReflectionPad, ReplicationPad, CircularPad in
1d/2d/3d), each F.pad with its mode; padding an int or a (left, right, top, bottom, ...) tuple."""
from __future__ import annotations

from . import functional as F
from .module import Module


class _PadNd(Module):
    _mode = "constant"
    _dims = 1

    def __init__(self, padding):
        super().__init__()
        n = 2 * self._dims
        self.padding = (padding,) * n if isinstance(padding, int) else tuple(padding)
        if len(self.padding) != n:
            raise ValueError(f"{type(self).__name__}: expected an int or a tuple of {n} ints as padding, "
                             f"got {padding!r}")

    def forward(self, x):
        return F.pad(x, self.padding, self._mode)

    def extra_repr(self):
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding, value):
        super().__init__(padding)
        self.value = value

    def forward(self, x):
        return F.pad(x, self.padding, "constant", self.value)

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class _ZeroPadNd(_ConstantPadNd):
    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self):
        return f"{self.padding}"


def _layers(base, mode, name):
    return [type(f"{name}{d}d", (base,), {"_mode": mode, "_dims": d, "__module__": __name__}) for d in (1, 2, 3)]


ConstantPad1d, ConstantPad2d, ConstantPad3d = _layers(_ConstantPadNd, "constant", "ConstantPad")
ZeroPad1d, ZeroPad2d, ZeroPad3d = _layers(_ZeroPadNd, "constant", "ZeroPad")
ReflectionPad1d, ReflectionPad2d, ReflectionPad3d = _layers(_PadNd, "reflect", "ReflectionPad")
ReplicationPad1d, ReplicationPad2d, ReplicationPad3d = _layers(_PadNd, "replicate", "ReplicationPad")
CircularPad1d, CircularPad2d, CircularPad3d = _layers(_PadNd, "circular", "CircularPad")
