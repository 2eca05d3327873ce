"""Composites behind the nn layers: convolution, pooling, batch norm, dropout, embedding.

Each is written once over primitives: conv2d is unfold + one GEMM, pooling is unfold + a
reduction, so eager, traced and differentiated forms all come from the same code."""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes as _dt
from ..autograd import no_grad
from . import functional as F
from .creation import rand, tensor
from .composites import _inplace
from .conv import out_size


def _pair(v):
    return F._pair(v)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv2d for [N, C, H, W] inputs (or unbatched [C, H, W])."""
    if x.ndim == 3:
        return F.squeeze(conv2d(F.unsqueeze(x, 0), weight, bias, stride, padding, dilation, groups), 0)
    if x.ndim != 4 or weight.ndim != 4:
        raise RuntimeError(f"conv2d: expected a 4-D input [N, C, H, W] and 4-D weight, got input "
                           f"{list(x.shape)} and weight {list(weight.shape)}")
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    if isinstance(padding, str):
        (hl, hr), (wl, wr) = _same_padding(padding, (kh, kw), _pair(dilation), _pair(stride))
        if hl != hr or wl != wr:     # an even effective kernel: torch pads the extra row/col at the end
            x = F.pad(x, (wl, wr, hl, hr))
            n, c, h, w = x.shape
            padding = (0, 0)
        else:
            padding = (hl, wl)
    if c != cg * groups or o % groups:
        raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, expected input"
                           f"{list(x.shape)} to have {cg * groups} channels, but got {c} channels instead")
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    oh = out_size(h, kh, stride[0], padding[0], dilation[0])
    ow = out_size(w, kw, stride[1], padding[1], dilation[1])
    outs = []
    og, ck = o // groups, cg * kh * kw
    for gi in range(groups):
        xg = F.narrow(x, 1, gi * cg, cg) if groups > 1 else x
        wg = F.narrow(weight, 0, gi * og, og) if groups > 1 else weight
        cols = F.unfold(xg, (kh, kw), stride, padding, dilation)          # [N, cg*k, L]
        # a GEMM per image, W [O, cg*k] @ cols[n] [cg*k, L] -> [O, L]: the result is already
        # channels-first (no transpose of cols or of the output); the weight's gradient is the
        # sum over images of g[n] @ cols[n]^T (the broadcast's VJP)
        wb = F.broadcast_to(F.reshape(wg, (1, og, ck)), (n, og, ck))
        outs.append(F.matmul(wb, cols))                                  # [N, O/groups, L]
    y = F.cat(outs, 1) if groups > 1 else outs[0]
    if bias is not None:          # added to the GEMM's [N, O, L] result: fusion makes it its epilogue
        y = y + F.reshape(bias, (1, o, 1))
    return F.reshape(y, (n, o, oh, ow))


def _same_padding(mode, kernel, dilation, stride):
    """((top, bottom), (left, right)) padding for padding='valid' / 'same' (torch's split: the
    extra row or column of an even effective kernel goes at the end)."""
    if mode == "valid":
        return ((0, 0), (0, 0))
    if mode != "same":
        raise ValueError(f"Invalid padding string {mode!r}, should be one of ('valid', 'same')")
    if stride != (1, 1):
        raise ValueError("padding='same' is not supported for strided convolutions")
    pads = []
    for k, d in zip(kernel, dilation):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def _pool_args(kernel_size, stride, padding, dilation, ceil_mode):
    if ceil_mode:
        raise NotImplementedError("pooling with ceil_mode=True is not supported by graphc")
    k = _pair(kernel_size)
    s = _pair(stride) if stride is not None and stride != () else k
    p = _pair(padding)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:   # torch's limit: half the (undilated) kernel
        raise RuntimeError(f"pad should be at most half of kernel size, but got pad={p}, kernel_size={k}")
    return k, s, p, _pair(dilation)


def _windows(x, k, s, p, d, value):
    """[N, C, H, W] -> ([N, C, k, L] windows, OH, OW)."""
    n, c, h, w = x.shape
    oh, ow = out_size(h, k[0], s[0], p[0], d[0]), out_size(w, k[1], s[1], p[1], d[1])
    cols = F.unfold(x, k, s, p, d, value=value)
    return F.reshape(cols, (n, c, k[0] * k[1], oh * ow)), oh, ow


def _batched(fn, x, *a):
    if x.ndim == 3:
        out = fn(F.unsqueeze(x, 0), *a)
        return tuple(F.squeeze(o, 0) for o in out) if isinstance(out, tuple) else F.squeeze(out, 0)
    if x.ndim != 4:
        raise RuntimeError(f"expected a 3-D or 4-D input to a 2-D pooling, got {list(x.shape)}")
    return fn(x, *a)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    k, s, p, d = _pool_args(kernel_size, stride, padding, dilation, ceil_mode)

    def pool(x):
        n, c, h, w = x.shape
        low = -math.inf if x.dtype.is_floating_point else int(np.iinfo(np.int64).min)
        win, oh, ow = _windows(x, k, s, p, d, low)
        # the value at the (first) argmax, so the gradient goes to one element, as in torch
        idx = F.argmax(win, 2, keepdim=True)
        out = F.reshape(F.take_along_axis(win, idx, 2), (n, c, oh, ow))
        if not return_indices:
            return out
        # torch's indices are flat positions h*W + w in the unpadded input: window slot kk at
        # output position l reads row (l // OW)*sh - ph + (kk // kw)*dh, likewise for columns
        kk, ll = np.arange(k[0] * k[1]), np.arange(oh * ow)
        row = tensor(((ll // ow) * s[0] - p[0])[None, :] + ((kk // k[1]) * d[0])[:, None])
        col = tensor(((ll % ow) * s[1] - p[1])[None, :] + ((kk % k[1]) * d[1])[:, None])
        flat = F.reshape(row * w + col, (1, 1, k[0] * k[1], oh * ow))
        pos = F.take_along_axis(F.broadcast_to(flat, tuple(win.shape)), idx, 2)
        return out, F.reshape(pos, (n, c, oh, ow))
    return _batched(pool, x)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    k, s, p, d = _pool_args(kernel_size, stride, padding, 1, ceil_mode)

    def pool(x):
        n, c, h, w = x.shape
        win, oh, ow = _windows(x, k, s, p, d, 0)
        total = F.sum(win, 2)
        if divisor_override:
            out = total / divisor_override
        elif count_include_pad or (p == (0, 0)):
            out = total / (k[0] * k[1])
        else:
            ones = F.ones((1, 1, h, w), dtype=x.dtype)
            count = F.sum(_windows(ones, k, s, p, d, 0)[0], 2)
            out = total / count
        return F.reshape(out, (n, c, oh, ow))
    return _batched(pool, x)


def _adaptive_matrix(n_in, n_out, dtype):
    """Row i averages input positions [floor(i*n/o), ceil((i+1)*n/o)) -- torch's windows."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        a, b = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
        m[i, a:b] = 1.0 / (b - a)
    return tensor(m, dtype=dtype)


def adaptive_avg_pool2d(x, output_size):
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size

    def pool(x):
        h, w = x.shape[2:]
        o_h, o_w = oh or h, ow or w
        if h % o_h == 0 and w % o_w == 0:
            return avg_pool2d(x, (h // o_h, w // o_w))
        ph, pw = _adaptive_matrix(h, o_h, x.dtype), _adaptive_matrix(w, o_w, x.dtype)
        return F.matmul(ph, F.matmul(x, F.t(pw)))
    return _batched(pool, x)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5, num_batches_tracked=None):
    """Normalise over every dim but the channels (dim 1); in training, update the running
    statistics in place (write-backs when compiled)."""
    if x.ndim < 2:
        raise ValueError(f"expected 2D or more input (got {x.ndim}D input)")
    c = x.shape[1]
    dims = (0,) + tuple(range(2, x.ndim))
    shape = (1, c) + (1,) * (x.ndim - 2)
    if training:
        count = x.numel() // c
        if count <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(x.shape)}")
        mean = F.mean(x, dims)
        var = F.var(x, dims, correction=0)
        if running_mean is not None:
            with no_grad():
                if momentum is None:   # cumulative moving average
                    num_batches_tracked.add_(1)
                    factor = 1.0 / F.cast(num_batches_tracked, x.dtype)
                else:
                    if num_batches_tracked is not None:
                        num_batches_tracked.add_(1)
                    factor = momentum
                running_mean.mul_(1 - factor).add_(mean.detach() * factor)
                running_var.mul_(1 - factor).add_(var.detach() * (factor * count / (count - 1)))
    else:
        if running_mean is None:
            mean, var = F.mean(x, dims), F.var(x, dims, correction=0)
        else:
            mean, var = running_mean, running_var
    y = (x - F.reshape(mean, shape)) * F.rsqrt(F.reshape(var, shape) + eps)
    if weight is not None:
        y = y * F.reshape(weight, shape)
    if bias is not None:
        y = y + F.reshape(bias, shape)
    return y


def dropout(x, p=0.5, training=True, inplace=False, generator=None):
    """Zero each element with probability p and scale the rest by 1/(1-p), in training only.
    The mask comes from graphc's counter-based generator, so it traces."""
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return x
    return _inplace(_dropout, x, inplace, p, generator)


def _dropout(x, p, generator):
    if p == 1:
        return x * 0
    keep = F.ge(rand(tuple(x.shape), dtype=x.dtype if x.dtype.is_floating_point else None,
                     generator=generator, device=F._device_of(x, None)), p)
    return F.where(keep, x * (1.0 / (1 - p)), F.zeros_like(x))


def embedding(idx, weight, padding_idx=None, max_norm=None):
    if max_norm is not None:
        raise NotImplementedError("embedding(max_norm=...) is not supported by graphc")
    if idx.dtype is not _dt.int64:
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have scalar type Long; "
                           f"but got {idx.dtype.name}")
    out = weight[idx]
    if padding_idx is not None:
        pad = padding_idx % weight.shape[0]
        # torch reads the padding row like any other; it only gets no gradient
        out = F.where(F.broadcast_to(F.unsqueeze(F.eq(idx, pad), -1), tuple(out.shape)), F.detach(out), out)
    return out
