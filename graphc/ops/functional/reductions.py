"""Reductions: sum, mean, var/std, amax/amin, argmax/argmin, max/min with indices, any/all,
logsumexp, norm."""
from __future__ import annotations

from collections import namedtuple

from ... import dtypes as _dt
from ...tensor import Tensor, _dim, apply
from .filled import detach, ones_like, zeros, zeros_like
from .gather import take_along_axis
from .pointwise import _to_bool, abs, eq, exp, gt, log, logical_not, maximum, minimum, neg, pow, sqrt
from .promotion import _py_max, cast
from .select import where
from .shapes import reshape, squeeze


# ---- reductions ------------------------------------------------------------------------------------
def _axes(x, dim):
    if dim is None or (isinstance(dim, (tuple, list)) and not dim):   # torch: dim=() reduces all dims
        return tuple(range(x.ndim))
    if isinstance(dim, int):
        dim = (dim,)
    axes = [_dim(d, x.ndim) for d in dim]
    if len(set(axes)) != len(axes):
        raise RuntimeError(f"dim {next(a for a in axes if axes.count(a) > 1)} appears multiple times "
                           "in the list of dims")
    return tuple(sorted(axes)) if x.ndim else ()


def sum(x, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        x = cast(x, dtype)
    elif not x.dtype.is_floating_point:
        x = cast(x, _dt.int64)
    axes = _axes(x, dim)
    if not axes and x.ndim:
        return x
    return apply("sum", x, axes=axes, keepdim=bool(keepdim))


def mean(x, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        x = cast(x, dtype)
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be either a "
                           f"floating point or complex dtype. Got: {_dt.scalar_type_name(x.dtype)}")
    axes = _axes(x, dim)
    n = 1
    for a in axes:
        n *= x.shape[a]
    return sum(x, axes, keepdim) / n if n else sum(x, axes, keepdim) * float("nan")


def var(x, dim=None, unbiased=None, keepdim=False, correction=None):
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    axes = _axes(x, dim)
    n = 1
    for a in axes:
        n *= x.shape[a]
    d = x - mean(x, axes, keepdim=True)
    return sum(d * d, axes, keepdim) / _py_max(n - correction, 0)


def std(x, dim=None, unbiased=None, keepdim=False, correction=None):
    return _root0(var(x, dim, unbiased=unbiased, keepdim=keepdim, correction=correction), 2)


def _root0(s, p):
    """s ** (1/p) for s >= 0, with torch's gradient 0 (not nan) where s == 0 (norm, std of a
    constant): the root only sees s where it is positive."""
    zero = eq(s, 0)
    safe = where(zero, ones_like(s), s)
    r = sqrt(safe) if p == 2 else pow(safe, 1.0 / p)
    return where(zero, zeros_like(r), r)


def amax(x, dim=None, keepdim=False):
    axes = _axes(x, dim)
    if x.dtype is _dt.bool_:
        return cast(amax(cast(x, _dt.int64), dim, keepdim), _dt.bool_)
    return apply("max", x, axes=axes, keepdim=bool(keepdim)) if axes or not x.ndim else x


def amin(x, dim=None, keepdim=False):
    if x.dtype is _dt.bool_:
        return logical_not(amax(logical_not(x), dim, keepdim))
    return neg(amax(neg(x), dim, keepdim))


MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])


def argmax(x, dim=None, keepdim=False):
    if x.dtype is _dt.bool_:
        x = cast(x, _dt.int64)
    if dim is None:
        r = apply("argmax", reshape(x, (-1,)), axis=0, keepdim=False)
        return reshape(r, (1,) * x.ndim) if keepdim else r
    if x.ndim == 0:
        return zeros((), dtype=_dt.int64)
    return apply("argmax", x, axis=_dim(dim, x.ndim), keepdim=bool(keepdim))


def argmin(x, dim=None, keepdim=False):
    if x.dtype is _dt.bool_:
        x = cast(x, _dt.int64)
    return argmax(neg(x), dim, keepdim)


def _extreme(x, dim, keepdim, elementwise, full, arg, result):
    """torch.max / torch.min: of two tensors elementwise, of all elements, or (values, indices)
    along dim."""
    if isinstance(dim, Tensor):           # torch.max(a, b) is maximum
        return elementwise(x, dim)
    if dim is None:
        return full(x)
    idx = arg(x, dim, keepdim=True)
    d = _dim(dim, x.ndim) if x.ndim else 0
    vals = take_along_axis(x, idx, d) if x.ndim else x
    if not keepdim and x.ndim:
        vals, idx = squeeze(vals, d), squeeze(idx, d)
    return result(vals, idx)


def max(x, dim=None, keepdim=False):
    return _extreme(x, dim, keepdim, maximum, amax, argmax, MaxResult)


def min(x, dim=None, keepdim=False):
    return _extreme(x, dim, keepdim, minimum, amin, argmin, MinResult)


def any(x, dim=None, keepdim=False):
    return gt(sum(cast(_to_bool(x), _dt.int64), dim, keepdim), 0)


def all(x, dim=None, keepdim=False):
    return eq(sum(cast(logical_not(x), _dt.int64), dim, keepdim), 0)


def logsumexp(x, dim, keepdim=False):
    if not x.dtype.is_floating_point:       # int and bool inputs give a float result, as torch
        x = cast(x, _dt.get_default_dtype())
    if 0 in [x.shape[a] for a in _axes(x, dim)]:   # no max to shift by: log(0) = -inf, as torch
        out = log(sum(exp(x), dim, keepdim=True))
        return out if keepdim else squeeze(out, _axes(x, dim))
    m = detach(amax(x, dim, keepdim=True))
    m = where(eq(abs(m), float("inf")), zeros_like(m), m)
    out = log(sum(exp(x - m), dim, keepdim=True)) + m
    return out if keepdim else squeeze(out, _axes(x, dim))


def norm(x, p=2, dim=None, keepdim=False, dtype=None):
    """torch.norm / Tensor.norm: the vector p-norm over dim ('fro' is 2; inf, -inf, 0 as torch)."""
    if dtype is not None:
        x = cast(x, dtype)
    if p is None or p == 2 or p == "fro":
        return _root0(sum(x * x, dim, keepdim), 2)
    if isinstance(p, str):
        raise NotImplementedError(f"norm(p={p!r}) is not supported by graphc (it needs singular values); "
                                  "use 'fro' or a number")
    if p == 1:
        return sum(abs(x), dim, keepdim)
    if p == float("inf"):
        return amax(abs(x), dim, keepdim)
    if p == float("-inf"):
        return amin(abs(x), dim, keepdim)
    if p == 0:
        return sum(cast(_to_bool(x), x.dtype), dim, keepdim)
    if p < 0:
        return pow(sum(pow(abs(x), p), dim, keepdim), 1.0 / p)
    return _root0(sum(pow(abs(x), p), dim, keepdim), p)
