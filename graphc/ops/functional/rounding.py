"""Rounding, special-value tests and tolerance comparisons, as compositions of floor, where
and comparisons: round (half to even, decimals=), trunc, frac, fmod (the dividend's sign),
isnan/isinf/isfinite, nan_to_num, isclose/allclose, lerp."""
from __future__ import annotations

import builtins

import numpy as np

from ... import dtypes as _dt
from ...tensor import Tensor
from .filled import full_like, zeros_like
from .pointwise import (abs, add, eq, floor, gt, le, logical_and, logical_or, lt, mul, ne, remainder,
                        sign, sub)
from .promotion import _as, _prep
from .reductions import all as _all
from .select import where


def _round_even(x):
    """Round half to even (nearbyint): floor, then up past .5 and at .5 to the even neighbour."""
    f = floor(x)
    d = sub(x, f)
    r = where(gt(d, 0.5), add(f, 1), f)
    return where(eq(d, 0.5), add(f, remainder(f, 2)), r)


def round(x, decimals=0):
    """torch.round: half to even; with decimals, x * 10**d rounded and divided back (as torch)."""
    if not x.dtype.is_floating_point:
        return x
    if decimals == 0:
        return _round_even(x)
    if decimals > 0:
        p = 10.0 ** decimals
        return _round_even(x * p) / p
    p = 10.0 ** -decimals
    return _round_even(x / p) * p


def trunc(x):
    if not x.dtype.is_floating_point:
        return x
    return where(lt(x, 0), -floor(-x), floor(x))


fix = trunc


def frac(x):
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"\"frac_cpu\" not implemented for '{_dt.scalar_type_name(x.dtype)}'")
    return sub(x, trunc(x))


def fmod(a, b):
    """C's fmod: the remainder with the dividend's sign, sign(a) * remainder(|a|, |b|) -- exact,
    as both operands of the remainder are non-negative (torch.remainder takes the divisor's)."""
    mag = remainder(abs(a), abs(b) if isinstance(b, Tensor) else builtins.abs(b))   # a Python b stays one
    return mul(sign(a), mag)


def isnan(x):
    return ne(x, x) if x.dtype.is_floating_point else _as(zeros_like(x), _dt.bool_)


def isinf(x):
    return eq(abs(x), float("inf")) if x.dtype.is_floating_point else _as(zeros_like(x), _dt.bool_)


def isfinite(x):
    return lt(abs(x), float("inf")) if x.dtype.is_floating_point else _as(full_like(x, 1), _dt.bool_)


def isposinf(x):
    return eq(x, float("inf")) if x.dtype.is_floating_point else _as(zeros_like(x), _dt.bool_)


def isneginf(x):
    return eq(x, float("-inf")) if x.dtype.is_floating_point else _as(zeros_like(x), _dt.bool_)


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """NaN to `nan`, +-inf to posinf/neginf (default: the dtype's largest finite values)."""
    if not x.dtype.is_floating_point:
        return x
    fi = np.finfo(x.dtype.np)
    posinf = float(fi.max) if posinf is None else posinf
    neginf = float(fi.min) if neginf is None else neginf
    x = where(isnan(x), full_like(x, nan), x)
    x = where(eq(x, float("inf")), full_like(x, posinf), x)
    return where(eq(x, float("-inf")), full_like(x, neginf), x)


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|a - b| <= atol + rtol * |b| where finite, equal values (infinities) always close."""
    if isinstance(a, Tensor) and isinstance(b, Tensor) and a.dtype is not b.dtype:
        raise RuntimeError(f"{a.dtype.name} did not match {b.dtype.name}")
    a, b = _prep(a, b)
    close = eq(a, b)
    if equal_nan and a.dtype.is_floating_point:
        close = logical_or(close, logical_and(isnan(a), isnan(b)))
    if not a.dtype.is_floating_point:
        a, b = _as(a, _dt.get_default_dtype()), _as(b, _dt.get_default_dtype())
    err = abs(sub(a, b))
    ok = logical_and(isfinite(err), le(err, add(mul(abs(b), rtol), atol)))
    return logical_or(close, ok)


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """A Python bool, as torch's (so eager only: under tracing bool() of a value raises)."""
    return bool(_all(isclose(a, b, rtol, atol, equal_nan)).item())


def lerp(start, end, weight):
    """start + weight * (end - start), computed from the nearer end as torch does (exact at
    weight 0 and 1)."""
    if not isinstance(weight, Tensor):
        if -0.5 < weight < 0.5:
            return add(start, mul(sub(end, start), weight))
        return sub(end, mul(sub(end, start), 1 - weight))
    diff = sub(end, start)
    return where(lt(abs(weight), 0.5), add(start, mul(diff, weight)), sub(end, mul(diff, sub(1, weight))))


__all__ = ["round", "trunc", "fix", "frac", "fmod", "isnan", "isinf", "isfinite", "isposinf",
           "isneginf", "nan_to_num", "isclose", "allclose", "lerp", "logical_not"]
