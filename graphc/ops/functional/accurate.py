"""log1p and expm1 accurate near 0, as composites of log/exp (Kahan's tricks).

The functional forms (`log(1 + x)`, `exp(x) - 1`) lose every digit of a tiny result in float32
(softplus(-20) would be 0, not 2.06e-9), and there is no log1p/expm1 primitive (integer inputs become the default float dtype, as torch's). Dividing by the
rounded argument cancels the rounding error of `1 + x` (or of `exp(x)`): Goldberg, "What every
computer scientist should know about floating-point arithmetic", theorem 4. The special cases go
through `where` with safe operands, so their unselected branches carry no NaN gradient."""
from __future__ import annotations

import math

from ... import dtypes as _dt
from .filled import full_like, ones_like
from .pointwise import eq, exp, log, logical_or
from .promotion import _as
from .select import where


def _floating(x):
    return _as(x, x.dtype if x.dtype.is_floating_point else _dt.get_default_dtype())


def log1p(x):
    """log(1 + x), correct to a few ulps for tiny |x|; inf at inf, -inf at -1, nan below."""
    x = _floating(x)
    u = 1 + x
    keep_x = eq(u, 1)                                      # log1p(x) = x to the last bit
    big = eq(u, math.inf)
    safe = logical_or(keep_x, big)
    one = ones_like(u)
    d = where(safe, one, u - 1)
    lu = log(where(keep_x, one, u))                      # inf at inf, with gradient 1/u = 0
    return where(keep_x, x, where(big, lu, lu * (where(safe, one, x) / d)))


def expm1(x):
    """exp(x) - 1, correct to a few ulps for tiny |x|; -1 below about -17 (float32), inf above."""
    x = _floating(x)
    u = exp(x)
    um1 = u - 1
    tiny = eq(u, 1)
    plain = logical_or(eq(um1, -1), eq(u, math.inf))   # exp(x) - 1 is exact there
    safe = logical_or(tiny, plain)
    lu = log(where(safe, full_like(u, math.e), u))
    xs = where(safe, ones_like(x), x)
    general = where(safe, ones_like(u), um1) * (xs / lu)
    return where(tiny, x, where(plain, um1, general))
