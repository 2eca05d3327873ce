"""Products and prefix scans along one dim with existing primitives: prod is a pairwise tree of
strided-slice multiplies (log2(n) steps), cumsum/cumprod a Hillis-Steele scan (y op= y shifted
by 1, 2, 4, ... with pad), so ints stay exact and every backend lowers them as pointwise."""
from __future__ import annotations

from ... import dtypes as _dt
from ...tensor import _dim
from .filled import ones
from .joining import pad_prim, slice_prim
from .pointwise import add, mul
from .promotion import cast
from .shapes import flatten, squeeze


def _acc_dtype(x, dtype):
    if dtype is not None:
        return cast(x, dtype)
    return x if x.dtype.is_floating_point else cast(x, _dt.int64)


def _half(x, d, start):
    starts, stops, steps = [0] * x.ndim, list(x.shape), [1] * x.ndim
    starts[d], steps[d] = start, 2
    return slice_prim(x, starts, stops, steps)


def prod(x, dim=None, keepdim=False, dtype=None):
    """The product along dim (all elements when dim is None), as torch.prod."""
    x = _acc_dtype(x, dtype)
    if dim is None:
        y = prod(flatten(x), 0, False)
        return y
    d = _dim(dim, x.ndim)
    if x.ndim == 0:
        return x
    n = x.shape[d]
    if n == 0:
        shape = list(x.shape)
        shape[d] = 1
        y = ones(*shape, dtype=x.dtype)
        return y if keepdim else squeeze(y, d)
    while n > 1:
        if n % 2:
            hi = [0] * x.ndim
            hi[d] = 1
            x = pad_prim(x, [0] * x.ndim, hi, [0] * x.ndim, 1)
        x = mul(_half(x, d, 0), _half(x, d, 1))
        n = x.shape[d]
    return x if keepdim else squeeze(x, d)


def _scan(x, dim, op, identity):
    if x.ndim == 0:
        return x
    d = _dim(dim, x.ndim)
    n = x.shape[d]
    k = 1
    while k < n:
        stops = list(x.shape)
        stops[d] = n - k
        lo = [0] * x.ndim
        lo[d] = k
        shifted = pad_prim(slice_prim(x, [0] * x.ndim, stops, [1] * x.ndim), lo, [0] * x.ndim,
                           [0] * x.ndim, identity)
        x = op(x, shifted)
        k *= 2
    return x


def cumsum(x, dim, dtype=None):
    return _scan(_acc_dtype(x, dtype), dim, add, 0)


def cumprod(x, dim, dtype=None):
    return _scan(_acc_dtype(x, dtype), dim, mul, 1)
