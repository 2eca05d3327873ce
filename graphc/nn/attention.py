"""nn.MultiheadAttention as torch's: the same parameters (in_proj_weight / in_proj_bias, or
q/k/v_proj_weight when kdim/vdim differ from embed_dim, and out_proj), init and forward, written
over linear, scaled_dot_product_attention and (for the returned weights) an explicit softmax, so
torch's state_dicts load and the values agree. Masks follow torch's MultiheadAttention
convention: a bool attn_mask or key_padding_mask is True where attention is NOT allowed; float
masks are added to the scores."""
from __future__ import annotations

import math
import warnings

from .. import dtypes as _dt
from ..ops import functional as F
from ..ops.attention import scaled_dot_product_attention
from ..ops.composites import linear, softmax
from ..ops.functional import empty
from ..ops.layer_composites import dropout
from . import init
from .linear import Linear
from .module import Module, _check_device, _place
from .parameter import Parameter


class NonDynamicallyQuantizableLinear(Linear):
    """torch's out_proj class (a plain Linear; the name only matters to torch's quantization)."""


def _float_mask(mask, name, dtype):
    """torch's _canonical_mask: a bool mask becomes 0 / -inf (True = masked), a float one stays."""
    if mask is None:
        return None
    if mask.dtype is _dt.bool_:
        return F.where(mask, F.full_like(mask, -math.inf, dtype=dtype), F.zeros_like(mask, dtype=dtype))
    if not mask.dtype.is_floating_point:
        raise AssertionError(f"only bool and floating types of {name} are supported")
    return mask


def _project(query, key, value, m):
    """q, k, v = the three input projections (one GEMM when query, key and value are one tensor)."""
    b = m.in_proj_bias
    bq, bk, bv = (None, None, None) if b is None else F.chunk(b, 3)
    if m._qkv_same_embed_dim:
        if query is key and key is value:
            return F.chunk(linear(query, m.in_proj_weight, b), 3, -1)
        wq, wk, wv = F.chunk(m.in_proj_weight, 3)
    else:
        wq, wk, wv = m.q_proj_weight, m.k_proj_weight, m.v_proj_weight
    return linear(query, wq, bq), linear(key, wk, bk), linear(value, wv, bv)


def _check_attn_mask(mask, bsz, heads, L, S):
    if mask is None:
        return None
    if mask.ndim == 2:
        if tuple(mask.shape) != (L, S):
            raise RuntimeError(f"The shape of the 2D attn_mask is {list(mask.shape)}, but should be {[L, S]}.")
        return F.unsqueeze(mask, 0)
    if mask.ndim == 3:
        if tuple(mask.shape) != (bsz * heads, L, S):
            raise RuntimeError(f"The shape of the 3D attn_mask is {list(mask.shape)}, but should be "
                               f"{[bsz * heads, L, S]}.")
        return mask
    raise RuntimeError(f"attn_mask's dimension {mask.ndim} is not supported")


def multi_head_attention(m, query, key, value, key_padding_mask, need_weights, attn_mask,
                         average_attn_weights, is_causal):
    """torch's F.multi_head_attention_forward on sequence-first [L, N, E] (or unbatched [L, E])
    inputs, with module m's parameters."""
    batched = query.ndim == 3
    if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
        raise AssertionError(f"MultiheadAttention: query, key and value must all be 2-D (unbatched) or 3-D "
                             f"(batched), got {query.ndim}-D, {key.ndim}-D and {value.ndim}-D")
    if not batched:
        query, key, value = (F.unsqueeze(t, 1) for t in (query, key, value))
        if key_padding_mask is not None:
            key_padding_mask = F.unsqueeze(key_padding_mask, 0)
    L, bsz, E = query.shape
    S, heads = key.shape[0], m.num_heads
    if E != m.embed_dim:
        raise AssertionError(f"was expecting embedding dimension of {m.embed_dim}, but got {E}")
    if tuple(key.shape[:2]) != tuple(value.shape[:2]):
        raise AssertionError(f"key shape {list(key.shape)} does not match value shape {list(value.shape)}")
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer "
                           "module method `generate_square_subsequent_mask` to create this mask.")
    dtype = query.dtype
    if key_padding_mask is not None and attn_mask is not None and key_padding_mask.dtype is not attn_mask.dtype:
        warnings.warn("Support for mismatched key_padding_mask and attn_mask is deprecated. Use same type for "
                      "both instead.")
    key_padding_mask = _float_mask(key_padding_mask, "key_padding_mask", dtype)
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None          # the hint: SDPA's own causal mask stands for attn_mask
    else:
        attn_mask = _float_mask(attn_mask, "attn_mask", dtype)
        is_causal = False if key_padding_mask is not None else is_causal
    q, k, v = _project(query, key, value, m)
    hd = m.head_dim
    attn_mask = _check_attn_mask(attn_mask, bsz, heads, L, S)
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (bsz, S):
            raise AssertionError(f"expecting key_padding_mask shape of {(bsz, S)}, but got "
                                 f"{tuple(key_padding_mask.shape)}")
        kpm = F.reshape(F.broadcast_to(F.reshape(key_padding_mask, (bsz, 1, 1, S)), (bsz, heads, 1, S)),
                        (bsz * heads, 1, S))
        attn_mask = kpm if attn_mask is None else attn_mask + kpm
    # [L, N, E] -> [N*H, L, hd], torch's head layout
    q, k, v = (F.transpose(F.reshape(t, (t.shape[0], bsz * heads, hd)), 0, 1) for t in (q, k, v))
    p = m.dropout if m.training else 0.0
    if need_weights:
        scores = F.matmul(q * math.sqrt(1.0 / hd), F.transpose(k, -2, -1))
        if attn_mask is not None:
            scores = scores + attn_mask
        w = softmax(scores, -1)
        if p > 0.0:
            w = dropout(w, p, True)
        out = F.matmul(w, v)                                            # [N*H, L, hd]
        out = F.reshape(F.transpose(out, 0, 1), (L * bsz, E))
        w = F.reshape(w, (bsz, heads, L, S))
        if average_attn_weights:
            w = F.mean(w, 1)
    else:
        if attn_mask is not None:
            attn_mask = F.unsqueeze(attn_mask, 0) if attn_mask.shape[0] == 1 else \
                F.reshape(attn_mask, (bsz, heads, -1, S))
        q, k, v = (F.reshape(t, (bsz, heads, t.shape[1], hd)) for t in (q, k, v))
        out = scaled_dot_product_attention(q, k, v, attn_mask, p, is_causal)  # [N, H, L, hd]
        out = F.reshape(F.permute(out, (2, 0, 1, 3)), (L * bsz, E))
        w = None
    out = F.reshape(linear(out, m.out_proj.weight, m.out_proj.bias), (L, bsz, E))
    if not batched:
        out = F.squeeze(out, 1)
        w = None if w is None else F.squeeze(w, 0)
    return out, w


def _seq_first(query, key, value):
    """[N, L, E] -> [L, N, E] for each, transposing a tensor passed twice only once, so that
    self-attention keeps its one-GEMM projection."""
    done = {}
    for t in (query, key, value):
        if id(t) not in done:
            done[id(t)] = F.transpose(t, 0, 1)
    return done[id(query)], done[id(key)], done[id(value)]


class MultiheadAttention(Module):
    """Attention over num_heads heads of embed_dim // num_heads each (torch.nn.MultiheadAttention)."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        _check_device(device)
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} and "
                             f"num_heads={num_heads} instead")
        if add_bias_kv:
            raise NotImplementedError("MultiheadAttention(add_bias_kv=True) is not supported by graphc")
        if add_zero_attn:
            raise NotImplementedError("MultiheadAttention(add_zero_attn=True) is not supported by graphc")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise AssertionError("embed_dim must be divisible by num_heads")
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, dtype=dtype))
            for n in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(n, None)
        else:
            self.q_proj_weight = Parameter(empty(embed_dim, embed_dim, dtype=dtype))
            self.k_proj_weight = Parameter(empty(embed_dim, self.kdim, dtype=dtype))
            self.v_proj_weight = Parameter(empty(embed_dim, self.vdim, dtype=dtype))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        self.bias_k = self.bias_v = None
        self.add_zero_attn = False
        self._reset_parameters()
        _place(self, device)

    def _reset_parameters(self):
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        batched = query.ndim == 3
        if self.batch_first and batched:
            query, key, value = _seq_first(query, key, value)
        out, w = multi_head_attention(self, query, key, value, key_padding_mask, need_weights, attn_mask,
                                      average_attn_weights, is_causal)
        if self.batch_first and batched:
            out = F.transpose(out, 0, 1)
        return out, w
