"""torch's scatter family over the scatter_add primitive: scatter (src or value), scatter_add,
scatter_reduce (sum, prod, mean, amax, amin; include_self), index_add, index_copy, index_fill.

An index smaller than the input in the other dims writes only that corner (the primitive needs
full extents, so the corner is sliced out, scattered and padded back). sum and mean are
scatter_adds; prod, amax and amin compare each index with every target position (a dense
[..., N, K] mask, O(N*K) work along the dim), so they stay pointwise-and-reduce for every
backend."""
from __future__ import annotations

from ... import dtypes as _dt
from ...tensor import Tensor, _dim
from .filled import full_like, zeros_like
from .gather import scatter_add as _scatter_add_prim
from .joining import pad_prim, slice_prim
from .pointwise import add, eq, floor_divide, maximum, minimum, mul, ne
from .promotion import _pyval, broadcast_to, cast
from .reductions import amax, amin, any
from .scans import prod
from .select import where
from .shapes import reshape, unsqueeze
from .arrange import iota_on, movedim

_REDUCE = ("sum", "prod", "mean", "amax", "amin")


def _check(op, x, dim, index, src):
    d = _dim(dim, x.ndim)
    if index.dtype is not _dt.int64:
        raise RuntimeError(f"{op}(): Expected dtype int64 for index")
    if index.ndim != x.ndim and not (index.ndim <= 1 and x.ndim <= 1):
        raise RuntimeError(f"{op}(): Index tensor must have the same number of dimensions as self tensor")
    for i, n in enumerate(index.shape):
        if (i != d and n > x.shape[i]) or (src is not None and n > src.shape[i]):
            raise RuntimeError(f"{op}(): Expected index {list(index.shape)} to be smaller than self "
                               f"{list(x.shape)} apart from dimension {d} and to be smaller size than src "
                               f"{list(src.shape) if src is not None else None}")
    return d


def _corner(x, index, d):
    """The part of x the index reaches (every dim but d cut to the index's extent)."""
    stops = [x.shape[i] if i == d else index.shape[i] for i in range(x.ndim)]
    return slice_prim(x, [0] * x.ndim, stops, [1] * x.ndim), stops


def _uncorner(part, x, stops):
    """part (x's corner, updated) placed back into x."""
    if list(stops) == list(x.shape):
        return part
    hi = [n - s for n, s in zip(x.shape, stops)]
    inside = pad_prim(full_like(part, 1).bool(), [0] * x.ndim, hi, [0] * x.ndim, False)
    return where(inside, pad_prim(part, [0] * x.ndim, hi, [0] * x.ndim, 0), x)


def _src_like(src, index, dtype):
    src = cast(src, dtype) if src.dtype is not dtype else src
    if tuple(src.shape) != tuple(index.shape):
        src = slice_prim(src, [0] * src.ndim, list(index.shape), [1] * src.ndim)
    return src


def _hits(part, index, d):
    """How many times each position of part is indexed (int64)."""
    ones = full_like(index, 1)
    return _scatter_add_prim(zeros_like(part, dtype=_dt.int64), index, ones, d)


def _dense(part, index, src, d, fill, reduce):
    """reduce over the index positions k with index[k] == n, per target n; `fill` where none."""
    n = part.shape[d]
    pm, im, sm = movedim(part, d, -1), movedim(index, d, -1), movedim(src, d, -1)
    mask = eq(unsqueeze(im, -2), iota_on(part, (n, 1), 0))                      # [..., N, K]
    vals = where(mask, broadcast_to(unsqueeze(sm, -2), tuple(mask.shape)), fill)
    out = reduce(vals)
    return movedim(out, -1, d), movedim(any(mask, -1), -1, d), pm


def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):
    if reduce not in _REDUCE:
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
    d = _check("scatter_reduce", input, dim, index, src)
    if index.numel() == 0:
        return input
    part, stops = _corner(input, index, d)
    src = _src_like(src, index, input.dtype)
    if reduce in ("sum", "mean"):
        base = part if include_self else zeros_like(part)
        out = _scatter_add_prim(base, index, src, d)
        count = _hits(part, index, d)
        if reduce == "mean":
            count = add(count, 1) if include_self else count
            safe = cast(maximum(count, 1), part.dtype)
            out = floor_divide(out, safe) if not part.dtype.is_floating_point else out / safe
        hit = ne(count, 0)
    else:
        if part.dtype.is_floating_point:
            lo, hi = float("-inf"), float("inf")
        else:
            lo, hi = -(1 << 63), (1 << 63) - 1
        fill = {"prod": 1, "amax": lo, "amin": hi}[reduce]
        red = {"prod": lambda v: prod(v, -1), "amax": lambda v: amax(v, -1), "amin": lambda v: amin(v, -1)}
        out, hit, _ = _dense(part, index, src, d, fill, red[reduce])
        if include_self:
            comb = {"prod": mul, "amax": maximum, "amin": minimum}[reduce]
            out = comb(part, out)
    out = where(hit, out, part)
    return _uncorner(out, input, stops)


def scatter_add(input, dim, index, src):
    """torch.scatter_add(input, dim, index, src) (the argument order of torch, not of the
    primitive's helper F.scatter_add(x, idx, src, dim))."""
    d = _check("scatter_add", input, dim, index, src)
    part, stops = _corner(input, index, d)
    return _uncorner(_scatter_add_prim(part, index, _src_like(src, index, input.dtype), d), input, stops)


def scatter(input, dim, index, src=None, value=None, *, reduce=None):
    """torch.scatter: src (a tensor) or value (a number; a Python number passed as src is one) at
    the indexed positions. Where an index repeats, torch keeps an unspecified one of the values;
    graphc keeps their sum (deterministic, and each is the same value for scalar value=)."""
    if not isinstance(src, Tensor) and src is not None:
        src, value = None, src
    if reduce is not None:
        if reduce not in ("add", "multiply"):
            raise RuntimeError(f"reduce argument must be either add or multiply, got {reduce}")
        if src is None:
            src = full_like(index, value, dtype=input.dtype)
        return scatter_reduce(input, dim, index, src, "sum" if reduce == "add" else "prod")
    if src is None and value is None:
        raise TypeError("scatter(): expected a src tensor or a value")
    d = _check("scatter", input, dim, index, src)
    part, stops = _corner(input, index, d)
    hit = ne(_hits(part, index, d), 0)
    if src is None:
        out = where(hit, full_like(part, _pyval(value, part.dtype)), part)
    else:
        out = where(hit, _scatter_add_prim(zeros_like(part), index, _src_like(src, index, part.dtype), d), part)
    return _uncorner(out, input, stops)


def _along(index, shape, d, op):
    """A 1-D index along dim d, as a full index of `shape` (index_add/index_copy/index_fill)."""
    if index.ndim > 1:
        raise IndexError(f"{op}(): Index is supposed to be a vector")
    if index.dtype is not _dt.int64:
        raise RuntimeError(f"{op}(): Expected dtype int64 for index")
    n = index.shape[0] if index.ndim else 1
    if shape and shape[d] != n:
        raise RuntimeError(f"{op}(): Number of indices ({n}) should be equal to source.size(dim) ({shape[d]})")
    view = [1] * len(shape)
    if shape:
        view[d] = n
    return broadcast_to(reshape(index, tuple(view)), tuple(shape))


def index_add(input, dim, index, source, *, alpha=1):
    d = _dim(dim, input.ndim)
    if alpha != 1:
        source = mul(source, alpha)
    idx = _along(index, tuple(source.shape), d, "index_add")
    return _scatter_add_prim(input, idx, cast(source, input.dtype), d)


def index_copy(input, dim, index, source):
    d = _dim(dim, input.ndim)
    return scatter(input, d, _along(index, tuple(source.shape), d, "index_copy"), source)


def index_fill(input, dim, index, value):
    d = _dim(dim, input.ndim)
    shape = list(input.shape)
    if shape:
        shape[d] = index.shape[0] if index.ndim else 1
    return scatter(input, d, _along(index, tuple(shape), d, "index_fill"), value=value)
