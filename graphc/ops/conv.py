"""Sliding-window primitives: unfold (im2col) and its adjoint fold (col2im).

conv2d is unfold + one matmul, pooling is unfold + a reduction (graphc/ops/conv_composites.py),
so the compiler sees a gather and a GEMM it already knows how to make fast, and every
gradient of a convolution is again an unfold, a fold or a matmul.
"""
from __future__ import annotations

import numpy as np

from . import _infer as I
from . import functional as F
from .registry import Primitive, register


def out_size(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _geometry(op, h, w, kernel, stride, padding, dilation):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    if min(kh, kw, sh, sw, dh, dw) <= 0 or min(ph, pw) < 0:
        raise ValueError(f"{op}: kernel, stride and dilation must be positive and padding non-negative")
    oh, ow = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
    if oh <= 0 or ow <= 0:
        raise RuntimeError(f"{op}: the input ({h}x{w}, padded by {ph},{pw}) is smaller than the "
                           f"dilated kernel ({dh * (kh - 1) + 1}x{dw * (kw - 1) + 1}); output would be {oh}x{ow}")
    return oh, ow


def _unfold_infer(x, *, kernel, stride, padding, dilation, value):
    if x.ndim != 4:
        raise RuntimeError(f"unfold: expected a 4-D input [N, C, H, W], got {x}")
    n, c, h, w = x.shape
    oh, ow = _geometry("unfold", h, w, kernel, stride, padding, dilation)
    return I.tt((n, c * kernel[0] * kernel[1], oh * ow), x.dtype)


def _windows(xp, kernel, stride, dilation, oh, ow):
    """[N, C, Hp, Wp] -> a strided view [N, C, kh, kw, OH, OW] of the windows."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    n, c = xp.shape[:2]
    s = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp, (n, c, kh, kw, oh, ow), (s[0], s[1], s[2] * dh, s[3] * dw, s[2] * sh, s[3] * sw),
        writeable=False)


def _unfold_impl(x, *, kernel, stride, padding, dilation, value):
    n, c, h, w = x.shape
    oh, ow = _geometry("unfold", h, w, kernel, stride, padding, dilation)
    ph, pw = padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value) if ph or pw else x
    cols = _windows(np.ascontiguousarray(xp), kernel, stride, dilation, oh, ow)
    return cols.reshape(n, c * kernel[0] * kernel[1], oh * ow)


def _unfold_vjp(c, g):
    a = c.attrs
    h, w = c.in_types[0].shape[2:]
    return (F.fold(g, (h, w), a["kernel"], a["stride"], a["padding"], a["dilation"]),)


register(Primitive("unfold", "movement", _unfold_infer, _unfold_impl, _unfold_vjp, arity=1,
                   attrs=("kernel", "stride", "padding", "dilation", "value"), saves=(),
                   doc="im2col: [N,C,H,W] -> [N, C*kh*kw, OH*OW], padding filled with value "
                       "(torch.nn.functional.unfold's layout)"))


def _fold_infer(cols, *, output_size, kernel, stride, padding, dilation):
    if cols.ndim != 3:
        raise RuntimeError(f"fold: expected a 3-D input [N, C*kh*kw, L], got {cols}")
    h, w = output_size
    oh, ow = _geometry("fold", h, w, kernel, stride, padding, dilation)
    k = kernel[0] * kernel[1]
    if cols.shape[1] % k or cols.shape[2] != oh * ow:
        raise RuntimeError(f"fold: input {cols} does not match kernel {kernel} and output {h}x{w} "
                           f"(expected [N, C*{k}, {oh * ow}])")
    return I.tt((cols.shape[0], cols.shape[1] // k, h, w), cols.dtype)


def _fold_impl(cols, *, output_size, kernel, stride, padding, dilation):
    (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = output_size, kernel, stride, padding, dilation
    oh, ow = _geometry("fold", h, w, kernel, stride, padding, dilation)
    n, ck, _ = cols.shape
    c = ck // (kh * kw)
    cols = cols.reshape(n, c, kh, kw, oh, ow)
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh,
                j * dw: j * dw + sw * (ow - 1) + 1: sw] += cols[:, :, i, j]
    return out[:, :, ph: ph + h, pw: pw + w]


def _fold_vjp(c, g):
    a = c.attrs
    return (F.unfold(g, a["kernel"], a["stride"], a["padding"], a["dilation"]),)


register(Primitive("fold", "index", _fold_infer, _fold_impl, _fold_vjp, arity=1,
                   attrs=("output_size", "kernel", "stride", "padding", "dilation"), saves=(),
                   doc="col2im: sums each column entry back into its window position "
                       "(the adjoint of unfold)"))
