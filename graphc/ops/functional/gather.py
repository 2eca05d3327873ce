"""Gather and scatter along one dim: take_along_axis, scatter_add, torch.gather."""
from __future__ import annotations

from ...tensor import _dim, apply
from .joining import slice_prim
from .promotion import _py_any


# ---- gather / scatter ------------------------------------------------------------------------------
def take_along_axis(x, idx, dim):
    return apply("take_along_axis", x, idx, axis=_dim(dim, x.ndim))


def scatter_add(x, idx, src, dim):
    return apply("scatter_add", x, idx, src, axis=_dim(dim, x.ndim))


def gather(x, dim, index):
    """torch.gather: index may be smaller than x in the non-gathered dims."""
    d = _dim(dim, x.ndim)
    if index.ndim != x.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    stops = [x.shape[i] if i == d else index.shape[i] for i in range(x.ndim)]
    if _py_any(s > n for s, n in zip(stops, x.shape)):
        raise RuntimeError(f"Size does not match at dimension: index {list(index.shape)} vs input {list(x.shape)}")
    return take_along_axis(slice_prim(x, [0] * x.ndim, stops, [1] * x.ndim), index, d)
