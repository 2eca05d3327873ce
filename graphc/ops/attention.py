"""scaled_dot_product_attention as a composite (matmul, where, a masked softmax, matmul), with
torch's semantics, so it traces, differentiates and lowers on every backend as it is.

Masks: a bool attn_mask keeps the positions that are True; a float one is added to the scores;
either broadcasts over the batch and head dims. is_causal keeps key j for query i where j <= i
(torch's top-left aligned tril for L != S); with an attn_mask too it raises, as torch does when
a gradient is wanted (its no-grad CPU kernel applies both; the reference's answer is the error). A query row with every key masked gives zeros (and zero gradients), as torch's."""
from __future__ import annotations

import math

from .. import dtypes as _dt
from . import functional as F
from .layer_composites import dropout


def _check(query, key, value, enable_gqa):
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise RuntimeError("scaled_dot_product_attention: expected query, key, and value to all be at least "
                           f"2 dimensional, but got query.dim: {query.ndim} key.dim: {key.ndim} and "
                           f"value.dim: {value.ndim} instead.")
    if not (query.dtype is key.dtype is value.dtype) or not query.dtype.is_floating_point:
        raise RuntimeError("scaled_dot_product_attention: expected query, key, and value to have the same "
                           f"floating dtype, but got query.dtype: {query.dtype.name}, key.dtype: "
                           f"{key.dtype.name} and value.dtype: {value.dtype.name} instead.")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise RuntimeError(f"scaled_dot_product_attention: query {list(query.shape)}, key {list(key.shape)} "
                           f"and value {list(value.shape)} disagree (query and key need the same last dim, "
                           "key and value the same sequence length)")
    if enable_gqa:
        if query.ndim < 3 or key.ndim < 3 or value.ndim < 3:
            raise RuntimeError("scaled_dot_product_attention(enable_gqa=True): query, key and value need a "
                               "head dim (-3)")
        hq = query.shape[-3]
        for name, t in (("key", key), ("value", value)):
            if t.shape[-3] == 0 or hq % t.shape[-3]:
                raise RuntimeError(f"scaled_dot_product_attention(enable_gqa=True): the {hq} query heads are "
                                   f"not a multiple of the {t.shape[-3]} {name} heads")
            if t.shape[-3] != hq:
                t = F.repeat_interleave(t, hq // t.shape[-3], -3)
            key, value = (t, value) if name == "key" else (key, t)
    return key, value


def _masked_softmax(scores, keep):
    """softmax over the last dim of scores, where keep (bool or None) says which entries count.
    A row with nothing to attend to (all masked, or all -inf) is 0 rather than 0/0, as torch's
    _safe_softmax. The max only keeps exp() in range, so it carries no gradient."""
    if keep is not None:
        scores = F.where(keep, scores, F.full_like(scores, -math.inf))
    if scores.shape[-1] == 0:
        return scores
    m = F.amax(scores, -1, keepdim=True).detach()
    empty = F.eq(m, -math.inf)
    e = F.exp(scores - F.where(empty, F.zeros_like(m), m))
    s = F.sum(e, -1, keepdim=True)
    return e / F.where(empty, F.ones_like(s), s)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None, enable_gqa=False):
    """softmax(query @ key^T * scale + mask) @ value, over [..., L, E] queries, [..., S, E] keys and
    [..., S, Ev] values (batch dims broadcast); dropout on the weights when dropout_p > 0."""
    key, value = _check(query, key, value, enable_gqa)
    L, S = query.shape[-2], key.shape[-2]
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    scores = F.matmul(query, F.transpose(key, -2, -1)) * scale
    if is_causal and attn_mask is not None:
        raise RuntimeError("scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
    keep = None
    if attn_mask is not None:
        if attn_mask.dtype is _dt.bool_:
            keep = attn_mask
        elif attn_mask.dtype.is_floating_point:
            scores = scores + attn_mask
        else:
            raise RuntimeError(f"scaled_dot_product_attention: attn_mask must be bool or floating, got "
                               f"{attn_mask.dtype.name}")
    if is_causal:
        causal = F.le(F.iota((L, S), 1), F.iota((L, S), 0))       # key j <= query i
        keep = causal
    if keep is not None:
        keep = F.broadcast_to(keep, F.broadcast_shapes(tuple(keep.shape), tuple(scores.shape)))
        if tuple(keep.shape) != tuple(scores.shape):
            scores = F.broadcast_to(scores, tuple(keep.shape))
    weights = _masked_softmax(scores, keep)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, True)
    return F.matmul(weights, value)
