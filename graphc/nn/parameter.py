"""Parameter: a leaf tensor that a Module registers and an optimizer updates."""
from __future__ import annotations

from ..tensor import Tensor


class Parameter(Tensor):
    __slots__ = ()

    def __new__(cls, data=None, requires_grad=True):
        from ..ops.creation import tensor
        if data is None:
            data = tensor([])
        if data._value is not None:
            raise RuntimeError("nn.Parameter cannot be created from a traced tensor")
        p = Tensor._wrap.__func__(cls, data._data, requires_grad=False, dtype=data.dtype)
        if requires_grad:
            p.requires_grad_(True)
        return p

    def __init__(self, data=None, requires_grad=True):
        pass

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
