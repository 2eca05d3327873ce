"""Conv2d: unfold + one GEMM (graphc/ops/layer_composites.py); padding_mode 'reflect',
'replicate' and 'circular' pad with F.pad first, as torch does."""
from __future__ import annotations

from ..ops.functional import _pair, empty
from . import functional as F
from . import init
from .module import Module, _check_device, _place
from .parameter import Parameter
from ..ops.layer_composites import _same_padding

_PADDING_MODES = {"zeros", "reflect", "replicate", "circular"}


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        _check_device(device)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, but got padding_mode='{padding_mode}'")
        self.padding_mode = padding_mode
        if in_channels % groups or out_channels % groups:
            raise ValueError("in_channels and out_channels must be divisible by groups")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.dilation, self.groups = _pair(dilation), groups
        self.weight = Parameter(empty(out_channels, in_channels // groups, *self.kernel_size, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        _place(self, device)

    def reset_parameters(self):
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, x):
        if x.ndim not in (3, 4) or x.shape[-3] != self.in_channels:
            raise RuntimeError(f"{self._describe()}: expected input [N, {self.in_channels}, H, W], "
                               f"got {list(x.shape)}")
        if self.padding_mode != "zeros":     # torch's: pad with the mode, then an unpadded convolution
            if isinstance(self.padding, str):
                (hl, hr), (wl, wr) = _same_padding(self.padding, self.kernel_size, self.dilation, self.stride)
            else:
                (hl, hr), (wl, wr) = ((p, p) for p in self.padding)
            x = F.pad(x, (wl, wr, hl, hr), self.padding_mode)
            return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s
