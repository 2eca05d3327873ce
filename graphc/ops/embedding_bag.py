"""torch.nn.functional.embedding_bag as a composite with no data-dependent shapes: each looked-up
row's bag is the number of offsets at or before its position, minus one, and a bag's sum is a
[bags, n] membership matrix (weighted, padding entries 0) times the [n, dim] looked-up rows; mean
divides by the bag's count, max takes the largest member (the gradient goes to that one row, as
torch's). Empty bags give zeros, as torch."""
from __future__ import annotations

import math

from .. import dtypes as _dt
from . import functional as F
from .layer_composites import embedding


def _concrete_host(t):
    """t's values can be checked now: a concrete CPU tensor (not a tracer, not device memory)."""
    return t._value is None and t.device.type == "cpu" and t.numel()


def _bags(input, offsets, include_last_offset):
    """(flat indices [n], bag of each [n], number of bags)."""
    dev = F._device_of(input, None)
    if input.ndim == 2:
        if offsets is not None:
            raise ValueError("if input is 2D, then offsets has to be None, as input is treated is a mini-batch of "
                             "fixed length sequences. However, found offsets of type Tensor")
        b, length = input.shape
        flat = F.reshape(input, (b * length,))
        return flat, F.floor_divide(F.arange(b * length, device=dev), max(length, 1)), b
    if input.ndim != 1:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {input.ndim}")
    if offsets is None:
        raise ValueError("offsets has to be a 1D Tensor but got None")
    if offsets.ndim != 1:
        raise ValueError("offsets has to be a 1D Tensor")
    if offsets.dtype is not _dt.int64:
        raise ValueError(f"embedding_bag: offsets must be int64, got {offsets.dtype.name}")
    if _concrete_host(offsets) and int(offsets._data[0]) != 0:
        raise RuntimeError(f"offsets[0] has to be 0, i.e., the first sequence in the mini-batch has to start from "
                           f"position 0. However, got {int(offsets._data[0])}")
    n = input.shape[0]
    if include_last_offset and _concrete_host(offsets) and int(offsets._data[-1]) != n:
        raise ValueError(f"embedding_bag(include_last_offset=True): the last offset must be the number of "
                         f"indices ({n}), got {int(offsets._data[-1])}")
    starts = offsets[:-1] if include_last_offset else offsets
    pos = F.arange(n, device=dev)
    bag = F.sum(F.cast(F.ge(F.unsqueeze(pos, 1), F.unsqueeze(starts, 0)), _dt.int64), 1) - 1
    if include_last_offset:     # positions at or past the last offset belong to no bag
        bag = F.where(F.ge(pos, offsets[-1]), F.full_like(bag, -1), bag)
    return input, bag, starts.shape[0]


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False, mode="mean",
                  sparse=False, per_sample_weights=None, include_last_offset=False, padding_idx=None):
    """Sums, means or maxes of bags of embedding rows: [bags, embedding_dim]."""
    if max_norm is not None:
        raise NotImplementedError("embedding_bag(max_norm=...) is not supported by graphc")
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding_bag(scale_grad_by_freq=True / sparse=True) is not supported by graphc")
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"mode has to be one of sum, mean or max, got {mode!r}")
    if per_sample_weights is not None:
        if mode != "sum":
            raise NotImplementedError(f"embedding_bag: per_sample_weights was not None. per_sample_weights is only "
                                      f"supported for mode='sum' (got mode='{mode}'). Please open a feature request "
                                      "on GitHub.")
        if tuple(per_sample_weights.shape) != tuple(input.shape):
            raise ValueError(f"embedding_bag: If per_sample_weights ({list(per_sample_weights.shape)}) is not None, "
                             f"then it must have the same shape as the input ({list(input.shape)})")
    if input.dtype is not _dt.int64:
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have scalar type Long; "
                           f"but got {input.dtype.name}")
    flat, bag, nbags = _bags(input, offsets, include_last_offset)
    rows = embedding(flat, weight)                                         # [n, dim]
    member = F.eq(F.unsqueeze(F.arange(nbags, device=F._device_of(input, None)), 1), F.unsqueeze(bag, 0))
    if padding_idx is not None:
        pad = padding_idx % weight.shape[0]
        member = F.logical_and(member, F.unsqueeze(F.ne(flat, pad), 0))
    if mode == "max":
        low = F.full_like(rows, -math.inf)
        picked = F.where(F.unsqueeze(member, 2), F.unsqueeze(rows, 0), F.unsqueeze(low, 0))   # [bags, n, dim]
        best = F.max(picked, 1).values if rows.shape[0] else \
            F.zeros((nbags, weight.shape[1]), dtype=weight.dtype, device=F._device_of(weight, None))
        empty = F.logical_not(F.any(member, 1, keepdim=True))
        return F.where(empty, F.zeros_like(best), best)
    m = F.cast(member, weight.dtype)
    if per_sample_weights is not None:
        m = m * F.unsqueeze(F.reshape(per_sample_weights, (-1,)), 0)
    out = F.matmul(m, rows)
    if mode == "mean":
        count = F.sum(F.cast(member, weight.dtype), 1, keepdim=True)
        out = out / F.where(F.eq(count, 0), F.ones_like(count), count)
    return out
