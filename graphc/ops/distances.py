"""Distances and normalisation along a dim: cosine_similarity, pairwise_distance, normalize
(torch.nn.functional's), as composites of sums, norms and clamps."""
from __future__ import annotations

import math

from . import functional as F


def _norm(x, p, dim, keepdim=False):
    """torch's vector norm for any p >= 0 (p = 0 counts the nonzeros, with no gradient)."""
    if p == 0:
        return F.sum(F.cast(F.ne(x, 0), x.dtype), dim, keepdim)
    if p == -math.inf:
        return F.amin(F.abs(x), dim, keepdim)
    if p < 0:
        raise NotImplementedError(f"vector norm with p={p} < 0 is not supported by graphc (besides -inf)")
    return F.norm(x, p, dim, keepdim)


def _check_float(name, *ts):
    for t in ts:
        if not t.dtype.is_floating_point:
            raise NotImplementedError(f"{name}: not implemented for {t.dtype.name} inputs (floating point only)")


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum(x1/|x1| * x2/|x2|) over dim, each norm clamped at eps (torch 2's form)."""
    _check_float("cosine_similarity", x1, x2)
    shape = F.broadcast_shapes(tuple(x1.shape), tuple(x2.shape))
    x1, x2 = F.broadcast_to(x1, shape), F.broadcast_to(x2, shape)
    n1 = F.clamp(F.norm(x1, 2, dim, keepdim=True), min=eps)
    n2 = F.clamp(F.norm(x2, 2, dim, keepdim=True), min=eps)
    return F.sum((x1 / n1) * (x2 / n2), dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """The p-norm of x1 - x2 + eps over the last dim (of the broadcast shape)."""
    _check_float("pairwise_distance", x1, x2)
    d = x1 - x2 + eps
    if d.ndim == 0:
        d = F.reshape(d, (1,))
        return F.reshape(_norm(d, p, 0, keepdim), ()) if not keepdim else _norm(d, p, 0, keepdim)
    return _norm(d, p, d.ndim - 1, keepdim)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input / max(||input||_p over dim, eps)."""
    if out is not None:
        raise NotImplementedError("normalize(out=...) is not supported by graphc; use the returned tensor")
    _check_float("normalize", input)
    return input / F.clamp(_norm(input, p, dim, keepdim=True), min=eps)
