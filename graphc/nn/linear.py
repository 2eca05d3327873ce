"""Linear and Identity layers."""
from __future__ import annotations

from .. import ops  # noqa: F401
from ..ops.creation import tensor  # noqa: F401
from . import functional as F
from . import init
from .module import Module, _check_device, _place
from .parameter import Parameter


class Identity(Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Linear(Module):
    """y = x @ W.T + b, initialised as torch does (kaiming_uniform(a=sqrt(5)) and a uniform bias)."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        _check_device(device)
        from ..ops.functional import empty
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(empty(out_features, in_features, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        _place(self, device)

    def reset_parameters(self):
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, x):
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            rows = x.numel() // max(x.shape[-1], 1) if x.ndim else 1
            got = x.shape[-1] if x.ndim else 1
            raise RuntimeError(
                f"{self._describe()} got an input of shape {list(x.shape)}: its last dim has {got} "
                f"features, the layer expects {self.in_features} (mat1 and mat2 shapes cannot be "
                f"multiplied ({rows}x{got} and {self.in_features}x{self.out_features}))")
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
