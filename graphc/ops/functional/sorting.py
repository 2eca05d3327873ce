"""sort / argsort / topk / msort, and the ops whose output shape depends on the data (unique,
nonzero, argwhere, masked_select).

The sorted values are take_along_axis(x, perm), so they differentiate as torch's. Eagerly the
permutation comes from numpy's stable argsort (NaN largest, as torch). While tracing it is
computed in the graph by ranking: rank_i = #{j: x_j before x_i} + #{j < i: x_j ties x_i}, a
dense [..., n, n] comparison (so a traced sort is refused past _TRACED_SORT_LIMIT elements of
it, naming the line); the permutation is then a scatter of iota to the ranks. Data-dependent
shapes work eagerly and raise a TraceError naming the user's line under compile."""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ... import dtypes as _dt
from ... import mode as _tracing
from ...tensor import Tensor, _dim
from .arrange import movedim
from .filled import iota, zeros_like
from .gather import scatter_add, take_along_axis
from .indexing import getitem
from .pointwise import eq, gt, logical_and, logical_not, logical_or, lt, ne
from .promotion import broadcast_shapes, broadcast_to, cast
from .reductions import sum
from .joining import narrow
from .shapes import unsqueeze

SortResult = namedtuple("sort", ["values", "indices"])
TopkResult = namedtuple("topk", ["values", "indices"])
_TRACED_SORT_LIMIT = 1 << 24


def _traced(x):
    return x._value is not None


def _host_perm(x, d, descending):
    a = np.moveaxis(np.asarray(x.detach()._host()), d, -1)
    if a.dtype.kind == "f":
        nan = np.isnan(a)
        filled = np.where(nan, 0, a)
        # lexsort: the last key is primary; NaN is the largest value, as torch's
        keys = (-filled, ~nan) if descending else (filled, nan)
        flat = [k.reshape(-1, a.shape[-1]) for k in keys]
        p = np.stack([np.lexsort((f1, f2)) for f1, f2 in zip(*flat)]) if flat[0].size else \
            np.zeros(flat[0].shape, np.int64)
        p = p.reshape(a.shape)
    elif a.dtype == np.bool_:
        p = np.argsort(~a if descending else a, axis=-1, kind="stable")
    else:
        p = np.argsort(-a if descending else a, axis=-1, kind="stable")
    perm = Tensor._wrap(np.ascontiguousarray(np.moveaxis(p.astype(np.int64), -1, d)))
    return perm if x.device.type == "cpu" else perm.to(x.device)


def _before(a, b, descending):
    """a sorts strictly before b (NaN largest)."""
    if not a.dtype.is_floating_point:
        return gt(a, b) if descending else lt(a, b)
    an, bn = ne(a, a), ne(b, b)
    if descending:
        return logical_or(logical_and(an, logical_not(bn)), gt(a, b))
    return logical_or(logical_and(bn, logical_not(an)), lt(a, b))


def _ties(a, b):
    return logical_or(eq(a, b), logical_and(ne(a, a), ne(b, b))) if a.dtype.is_floating_point else eq(a, b)


def _traced_perm(x, d, descending, op):
    n = x.shape[d]
    if x.numel() * n > _TRACED_SORT_LIMIT:
        raise _tracing.TraceError(
            f"{op} along a dim of size {n} (input {list(x.shape)}) under compile needs a dense "
            f"{n}x{n} comparison per row, more than graphc traces ({_TRACED_SORT_LIMIT} elements), at "
            f"{_tracing.user_location()}; sort outside the compiled function")
    xm = movedim(x, d, -1)
    xi, xj = unsqueeze(xm, -1), unsqueeze(xm, -2)            # [..., i, 1], [..., 1, j]
    shape = (n, n)
    earlier = lt(iota(shape, 1), iota(shape, 0))             # j < i
    rank = sum(cast(_before(xj, xi, descending), _dt.int64), -1) + \
        sum(cast(logical_and(_ties(xj, xi), earlier), _dt.int64), -1)
    perm = scatter_add(zeros_like(rank), rank, iota(tuple(rank.shape), rank.ndim - 1), rank.ndim - 1)
    return movedim(perm, -1, d)


def _perm(x, d, descending, op):
    if x.ndim == 0 or x.shape[d] <= 1:
        return zeros_like(x, dtype=_dt.int64)
    return _traced_perm(x, d, descending, op) if _traced(x) else _host_perm(x, d, descending)


def sort(x, dim=-1, descending=False, stable=False):
    """torch.sort: (values, indices); ties keep their order (always stable), NaN sorts last
    (first when descending)."""
    d = _dim(dim, x.ndim) if x.ndim else 0
    perm = _perm(x, d, descending, "sort")
    return SortResult(take_along_axis(x, perm, d) if x.ndim else x, perm)


def argsort(x, dim=-1, descending=False, stable=False):
    return sort(x, dim, descending, stable).indices


def msort(x):
    return sort(x, 0).values


def topk(x, k, dim=-1, largest=True, sorted=True):
    """The k largest (smallest) along dim, in sorted order (also for sorted=False)."""
    d = _dim(dim, x.ndim) if x.ndim else 0
    n = x.shape[d] if x.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError(f"selected index k out of range (k={k}, size {n} along dim {d})")
    values, perm = sort(x, d, descending=largest)
    if x.ndim == 0:
        return TopkResult(values, perm)
    return TopkResult(narrow(values, d, 0, k), narrow(perm, d, 0, k))


def _eager_only(x, op):
    if _traced(x):
        _tracing.data_dependent(x, f"{op} (its output shape depends on the data)",
                                hint="it works eagerly; compute it outside the compiled function, or "
                                     "use a fixed-shape form (gc.where, masked_fill, topk)")


def nonzero(x, *, as_tuple=False, _op="nonzero"):
    _eager_only(x, _op)
    a = np.asarray(x.detach()._host())
    idx = np.nonzero(a) if a.ndim else np.nonzero(a.reshape(1))
    if as_tuple:
        return tuple(_wrap_like(np.ascontiguousarray(i.astype(np.int64)), x) for i in idx)
    if not a.ndim:
        return _wrap_like(np.zeros((len(idx[0]), 0), np.int64), x)
    return _wrap_like(np.ascontiguousarray(np.stack(idx, axis=-1).astype(np.int64).reshape(-1, a.ndim)), x)


def argwhere(x):
    return nonzero(x, _op="argwhere")


def _wrap_like(a, x):
    t = Tensor._wrap(a)
    return t if x.device.type == "cpu" else t.to(x.device)


def masked_select(x, mask):
    """x's elements where mask (broadcast together) is True, as a 1-D tensor (eager only)."""
    _eager_only(mask, "masked_select")
    _eager_only(x, "masked_select")
    shape = broadcast_shapes(tuple(x.shape), tuple(mask.shape))
    return getitem(broadcast_to(x, shape), broadcast_to(mask, shape))


def unique(x, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """torch.unique (always sorted), eager only; dim= uniques whole slices."""
    _eager_only(x, "unique")
    a = np.asarray(x.detach()._host())
    if dim is None:
        vals, inv, cnt = np.unique(a.reshape(-1), return_inverse=True, return_counts=True)
        inv = inv.reshape(a.shape)
    else:
        vals, inv, cnt = np.unique(a, return_inverse=True, return_counts=True, axis=_dim(dim, a.ndim))
        inv = inv.reshape(-1)
    out = [_wrap_like(np.ascontiguousarray(vals), x)]
    if return_inverse:
        out.append(_wrap_like(inv.astype(np.int64), x))
    if return_counts:
        out.append(_wrap_like(cnt.astype(np.int64), x))
    return out[0] if len(out) == 1 else tuple(out)


def unique_consecutive(x, return_inverse=False, return_counts=False, dim=None):
    _eager_only(x, "unique_consecutive")
    if dim is not None:
        raise NotImplementedError("unique_consecutive(dim=...) is not supported by graphc")
    a = np.asarray(x.detach()._host()).reshape(-1)
    start = np.ones(a.shape, bool)
    start[1:] = a[1:] != a[:-1]
    vals = a[start]
    out = [_wrap_like(np.ascontiguousarray(vals), x)]
    if return_inverse:
        out.append(_wrap_like((np.cumsum(start) - 1).astype(np.int64).reshape(x.shape), x))
    if return_counts:
        out.append(_wrap_like(np.diff(np.append(np.flatnonzero(start), a.size)).astype(np.int64), x))
    return out[0] if len(out) == 1 else tuple(out)


def count_nonzero(x, dim=None):
    return sum(cast(ne(x, 0), _dt.int64), dim)
