"""log1p and expm1 accurate near 0, as composites of log/exp (Kahan's tricks).

The functional forms (`log(1 + x)`, `exp(x) - 1`) lose every digit of a tiny result in float32
(softplus(-20) would be 0, not 2.06e-9), and there is no log1p/expm1 primitive. Dividing by the
rounded argument cancels the rounding error of `1 + x` (or of `exp(x)`): Goldberg, "What every
computer scientist should know about floating-point arithmetic", theorem 4. The special cases go
through `where` with safe operands, so their unselected branches carry no NaN gradient."""
from __future__ import annotations

import math

from . import functional as F


def log1p(x):
    """log(1 + x), correct to a few ulps for tiny |x|; inf at inf, -inf at -1, nan below."""
    u = 1 + x
    keep_x = F.eq(u, 1)                                      # log1p(x) = x to the last bit
    big = F.eq(u, math.inf)
    safe = F.logical_or(keep_x, big)
    one = F.ones_like(u)
    d = F.where(safe, one, u - 1)
    lu = F.log(F.where(keep_x, one, u))                      # inf at inf, with gradient 1/u = 0
    return F.where(keep_x, x, F.where(big, lu, lu * (F.where(safe, one, x) / d)))


def expm1(x):
    """exp(x) - 1, correct to a few ulps for tiny |x|; -1 below about -17 (float32), inf above."""
    u = F.exp(x)
    um1 = u - 1
    tiny = F.eq(u, 1)
    plain = F.logical_or(F.eq(um1, -1), F.eq(u, math.inf))   # exp(x) - 1 is exact there
    safe = F.logical_or(tiny, plain)
    lu = F.log(F.where(safe, F.full_like(u, math.e), u))
    xs = F.where(safe, F.ones_like(x), x)
    general = F.where(safe, F.ones_like(u), um1) * (xs / lu)
    return F.where(tiny, x, F.where(plain, um1, general))
