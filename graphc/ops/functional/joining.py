"""Cutting and joining: slices and padding (narrow, pad), cat/stack, split/chunk/unbind."""
from __future__ import annotations

from ... import dtypes as _dt
from ...tensor import _dim, apply
from .promotion import _py_all, _py_any, _py_max, _py_sum, _pyval, cast
from .shapes import squeeze, unsqueeze


def slice_prim(x, starts, stops, steps):
    if _py_all(a == 0 for a in starts) and tuple(stops) == tuple(x.shape) and _py_all(s == 1 for s in steps):
        return x
    return apply("slice", x, starts=tuple(starts), stops=tuple(stops), steps=tuple(steps))


def pad_prim(x, lo, hi, interior, value):
    if not _py_any(lo) and not _py_any(hi) and not _py_any(interior):
        return x
    return apply("pad", x, lo=tuple(lo), hi=tuple(hi), interior=tuple(interior),
                 value=_pyval(value, x.dtype))


def narrow(x, dim, start, length):
    d = _dim(dim, x.ndim)
    start = start + x.shape[d] if start < 0 else start
    if not (0 <= start and start + length <= x.shape[d]):
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({x.shape[d]}).")
    starts, stops = [0] * x.ndim, list(x.shape)
    starts[d], stops[d] = start, start + length
    return slice_prim(x, starts, stops, [1] * x.ndim)


def pad(x, pad, mode="constant", value=0.0):
    """torch.nn.functional.pad: (left, right) pairs from the last dim backwards."""
    if mode != "constant":
        raise NotImplementedError(f"pad(mode={mode!r}) is not supported; only 'constant'")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise RuntimeError("Padding length must be divisible by 2 and at most twice the number of dims")
    lo, hi = [0] * x.ndim, [0] * x.ndim
    for i in range(len(pad) // 2):
        lo[x.ndim - 1 - i], hi[x.ndim - 1 - i] = pad[2 * i], pad[2 * i + 1]
    # negative padding crops
    starts = [-a if a < 0 else 0 for a in lo]
    stops = [n + b if b < 0 else n for n, b in zip(x.shape, hi)]
    x = slice_prim(x, starts, stops, [1] * x.ndim)
    return pad_prim(x, [_py_max(a, 0) for a in lo], [_py_max(b, 0) for b in hi], [0] * x.ndim, value)


def cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    dtype = _dt.result_type(*tensors)
    # torch (legacy) skips 1-d empty tensors when concatenating higher-rank ones
    kept = [t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)]
    tensors = [cast(t, dtype) for t in (kept if kept and kept[0].ndim > 1 else tensors)]
    d = _dim(dim, tensors[0].ndim)
    for k, t in enumerate(tensors[1:], 1):
        if t.ndim != tensors[0].ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {tensors[0].ndim} and {t.ndim}")
        for i in range(t.ndim):
            if i != d and t.shape[i] != tensors[0].shape[i]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected size "
                                   f"{tensors[0].shape[i]} but got size {t.shape[i]} for tensor number {k} "
                                   "in the list.")
    if len(tensors) == 1:
        return tensors[0]
    return apply("concat", *tensors, axis=d)


concat = concatenate = cat


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for k, t in enumerate(tensors[1:], 1):
        if tuple(t.shape) != tuple(tensors[0].shape):
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(tensors[0].shape)} "
                               f"at entry 0 and {list(t.shape)} at entry {k}")
    d = _dim(dim, tensors[0].ndim + 1)
    return cat([unsqueeze(t, d) for t in tensors], d)


def split(x, split_size_or_sections, dim=0):
    d = _dim(dim, x.ndim)
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    else:
        sizes = list(split_size_or_sections)
        if _py_sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                               f"(input tensor's size at dimension {d}), but got split_sizes={sizes}")
    out, at = [], 0
    for s in sizes:
        out.append(narrow(x, d, at, s))
        at += s
    return tuple(out)


def chunk(x, chunks, dim=0):
    n = x.shape[_dim(dim, x.ndim)]
    return split(x, _py_max(1, -(-n // chunks)), dim)


def unbind(x, dim=0):
    d = _dim(dim, x.ndim)
    return tuple(squeeze(narrow(x, d, i, 1), d) for i in range(x.shape[d]))
