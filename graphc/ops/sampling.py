"""multinomial and bernoulli from graphc's counter-based generator (so they trace and draw the
same numbers eagerly and compiled). The numbers differ from torch's generator; the
distributions are torch's.

multinomial with replacement inverts the CDF (index = #{j: cdf_j <= u * total}, a dense
[rows, samples, n] comparison); without replacement it is the exponential-race trick torch
uses: the top num_samples of p / E, E ~ Exp(1)."""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..tensor import Tensor
from .creation import rand
from .functional import cast, clamp, cumsum, log, lt, le, narrow, sum, topk, unsqueeze


def _check_weights(input, num_samples, replacement):
    if input.ndim not in (1, 2):
        raise RuntimeError("multinomial: prob_dist must be 1 or 2 dim")
    if not input.dtype.is_floating_point:
        raise RuntimeError("multinomial only supports floating-point dtypes for input")
    n = input.shape[-1]
    if num_samples <= 0:
        raise RuntimeError("multinomial: cannot sample num_samples <= 0 samples")
    if not replacement and num_samples > n:
        raise RuntimeError("multinomial: cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    if input._value is None:                 # eager: torch's checks on the values
        a = np.asarray(input.detach()._host())
        if not np.isfinite(a).all() or (a < 0).any():
            raise RuntimeError("multinomial: probability tensor contains either `inf`, `nan` or element < 0")
        if (a.reshape(-1, n).sum(-1) <= 0).any():
            raise RuntimeError("multinomial: invalid multinomial distribution (sum of probabilities <= 0)")


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """num_samples category indices per row, drawn with probabilities proportional to input."""
    _check_weights(input, num_samples, replacement)
    p = input if input.ndim == 2 else unsqueeze(input, 0)
    rows, n = p.shape
    if replacement:
        cdf = cumsum(p, -1)
        u = rand(rows, num_samples, dtype=p.dtype, generator=generator, device=input.device)
        target = u * narrow(cdf, 1, n - 1, 1)
        idx = sum(cast(le(unsqueeze(cdf, 1), unsqueeze(target, 2)), _dt.int64), -1)
        out = clamp(idx, max=n - 1)
    else:
        u = rand(rows, n, dtype=p.dtype, generator=generator, device=input.device)
        keys = p / -log(u)
        out = topk(keys, num_samples, -1).indices
    return out if input.ndim == 2 else out.reshape(num_samples)


def bernoulli(input, p=None, *, generator=None):
    """1 with probability input (or p), else 0, in input's dtype."""
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"bernoulli: expected a floating point tensor, got {input.dtype.name}")
    u = rand(tuple(input.shape), dtype=input.dtype, generator=generator, device=input.device)
    return cast(lt(u, input if p is None else p), input.dtype)


def _bernoulli_(self, p=0.5, *, generator=None):
    return self._inplace(lambda s: bernoulli(s, p, generator=generator))


def _install():
    Tensor.multinomial = multinomial
    Tensor.bernoulli = bernoulli
    Tensor.bernoulli_ = _bernoulli_


_install()
__all__ = ["multinomial", "bernoulli"]
