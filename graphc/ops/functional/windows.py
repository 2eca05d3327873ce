"""Sliding windows: unfold (im2col) and fold (col2im), the primitives in graphc/ops/conv.py."""
from __future__ import annotations

from ...tensor import apply
from .promotion import _pyval


# ---- sliding windows (primitives in graphc/ops/conv.py) ---------------------------------------------
def _pair(v):
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(e) for e in v)


def unfold(x, kernel_size, stride=1, padding=0, dilation=1, value=0):
    """im2col, as torch.nn.functional.unfold: [N,C,H,W] -> [N, C*kh*kw, L]."""
    return apply("unfold", x, kernel=_pair(kernel_size), stride=_pair(stride), padding=_pair(padding),
                 dilation=_pair(dilation), value=_pyval(value, x.dtype))


def fold(cols, output_size, kernel_size, stride=1, padding=0, dilation=1):
    """col2im, as torch.nn.functional.fold: [N, C*kh*kw, L] -> [N, C, H, W] (sums overlaps)."""
    return apply("fold", cols, output_size=_pair(output_size), kernel=_pair(kernel_size),
                 stride=_pair(stride), padding=_pair(padding), dilation=_pair(dilation))
