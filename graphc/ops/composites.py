"""Composite operations, each written once over primitives (as Inductor's decompositions or
jax.nn), so the compiler sees their elementwise and reduction structure."""
from __future__ import annotations

import math

from .. import dtypes as _dt
from ..tensor import Tensor, _dim
from . import functional as F
from .functional import log1p


def _inplace(fn, x, inplace, *args):
    """fn(x, *args), or for torch's inplace=True the result written into x, which is returned.
    fn reads a copy of x then, so the values its backward saved are not the ones overwritten
    (torch's in-place kernels keep what their backward needs in the same way)."""
    if not inplace:
        return fn(x, *args)
    return x.copy_(fn(F.clone(x), *args))


def _relu(x):
    # x <= 0 rather than x > 0 picks the zeros, so NaN (false in every comparison) passes through
    # as torch's relu(nan) = nan, with torch's gradient there (1: torch masks where out <= 0)
    return F.where(F.le(x, 0), F.zeros_like(x), x)


def relu(x, inplace=False):
    return _inplace(_relu, x, inplace)


def leaky_relu(x, negative_slope=0.01, inplace=False):
    return _inplace(lambda x: F.where(F.gt(x, 0), x, x * negative_slope), x, inplace)


def gelu(x, approximate="none"):
    if approximate == "tanh":
        # 0.5 * x * (1 + tanh(u)) computed as x * sigmoid(2u) (1 + tanh(u) = 2 sigmoid(2u)):
        # the same function with one exp and one division per element instead of tanh's;
        # 2u = x (c2 + c2 0.044715 x^2): three multiplies (one an FMA) instead of five
        c2 = 2.0 * math.sqrt(2.0 / math.pi)
        return x * F.sigmoid(x * (c2 + (c2 * 0.044715) * (x * x)))
    if approximate != "none":
        raise ValueError(f"approximate argument must be either none or tanh, got {approximate!r}")
    return 0.5 * x * (1 + F.erf(x * (1 / math.sqrt(2.0))))


def silu(x, inplace=False):
    return _inplace(lambda x: x * F.sigmoid(x), x, inplace)


def softplus(x, beta=1.0, threshold=20.0):
    """x where beta x > threshold, else log1p(exp(beta x)) / beta (torch's; the exp never
    sees the large side, and log1p keeps the tiny values of a very negative x)."""
    bx = x * beta
    big = F.gt(bx, threshold)
    return F.where(big, x, log1p(F.exp(F.where(big, F.zeros_like(bx), bx))) / beta)


def _shifted(x, dim):
    """x minus its max over dim. The max only keeps exp() in range; it cancels in the result, so
    it carries no gradient. Over a size-0 dim there is no max (amax raises, as in torch), and
    nothing to shift: the result is empty, as torch's, and so is its gradient."""
    if x.ndim and x.shape[_dim(dim, x.ndim)] == 0:
        return x
    return x - F.amax(x, dim, keepdim=True).detach()


def softmax(x, dim=-1, dtype=None):
    if dtype is not None:
        x = F.cast(x, dtype)
    e = F.exp(_shifted(x, dim))
    return e / F.sum(e, dim, keepdim=True)


def log_softmax(x, dim=-1, dtype=None):
    if dtype is not None:
        x = F.cast(x, dtype)
    shifted = _shifted(x, dim)
    return shifted - F.log(F.sum(F.exp(shifted), dim, keepdim=True))


def linear(x, weight, bias=None):
    if x.shape[-1] != weight.shape[-1]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied "
                           f"({F._py_max(1, x.numel() // F._py_max(1, x.shape[-1]))}x{x.shape[-1]} and "
                           f"{weight.shape[-1]}x{weight.shape[0]})")
    out = F.matmul(x, F.t(weight))
    return out + bias if bias is not None else out


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(normalized_shape)
    if tuple(x.shape[x.ndim - k:]) != normalized_shape:
        raise RuntimeError(f"Given normalized_shape={list(normalized_shape)}, expected input with shape "
                           f"[*, {', '.join(str(s) for s in normalized_shape)}], but got input of size {list(x.shape)}")
    dims = tuple(range(x.ndim - k, x.ndim))
    mu = F.mean(x, dims, keepdim=True)
    d = x - mu
    var = F.mean(d * d, dims, keepdim=True)
    y = d * F.rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def _reduce(loss, reduction, denom=None):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return F.sum(loss)
    if reduction == "mean":
        if denom is None:
            return F.mean(loss)
        # a zero total weight (every target ignored) gives nan, as in torch, but gradient 0, not nan
        zero = F.eq(denom, 0)
        out = F.sum(loss) / F.where(zero, F.ones_like(denom), denom)
        return F.where(zero, F.full_like(out, float("nan")), out)
    raise ValueError(f"{reduction} is not a valid value for reduction")


def mse_loss(input, target, reduction="mean"):
    _same_shape("mse_loss", input, target)
    d = input - target
    return _reduce(d * d, reduction)


def l1_loss(input, target, reduction="mean"):
    _same_shape("l1_loss", input, target)
    return _reduce(F.abs(input - target), reduction)


def _same_shape(name, a, b):
    if tuple(a.shape) != tuple(b.shape):
        import warnings
        warnings.warn(f"{name}: Using a target size ({list(b.shape)}) that is different to the input "
                      f"size ({list(a.shape)}). This will likely lead to incorrect results due to "
                      "broadcasting. Please ensure they have the same size.", stacklevel=3)


def _class_last(x):
    """[N, C, d1, ...] -> [N*d1*..., C] (the class dim last, everything else flattened)."""
    if x.ndim > 2:
        x = F.permute(x, (0,) + tuple(range(2, x.ndim)) + (1,))
    rows = 1
    for s in x.shape[:-1]:
        rows *= s
    return F.reshape(x, (rows, x.shape[-1]))     # not -1: that is ambiguous when C == 0


def nll_loss(logp, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Negative log-likelihood of integer class targets, with torch's weight / ignore_index /
    label_smoothing / reduction semantics."""
    if target.dtype is not _dt.int64:
        raise RuntimeError(f"expected scalar type Long but found {_dt.scalar_type_name(target.dtype)} "
                           "(class-index targets must be int64)")
    out_shape = tuple(target.shape)
    if logp.ndim == 1:
        logp, target = F.unsqueeze(logp, 0), F.unsqueeze(target, 0)
    n, c = logp.shape[0], logp.shape[1]
    if target.shape[0] != n or tuple(target.shape[1:]) != tuple(logp.shape[2:]):
        raise ValueError(f"Expected input batch_size ({n}) to match target batch_size ({target.shape[0]}).")
    lp = _class_last(logp)
    t = F.reshape(target, (-1,))
    valid = F.ne(t, ignore_index)
    safe = F.where(valid, t, F.zeros_like(t))
    picked = F.reshape(F.take_along_axis(lp, F.unsqueeze(safe, 1), 1), (-1,))
    w = F.cast(valid, logp.dtype)
    if weight is not None:
        w = w * F.take_along_axis(weight, safe, 0)
    loss = -picked * w
    if label_smoothing:
        row = lp if weight is None else lp * weight
        smooth = -F.sum(row, 1) * F.cast(valid, logp.dtype)
        loss = loss * (1 - label_smoothing) + smooth * (label_smoothing / c if c else 0.0)
    if reduction == "none":
        return F.reshape(loss, out_shape)
    return _reduce(loss, reduction, denom=F.sum(w))


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """log_softmax over the class dim (1, or 0 for an unbatched input), then NLL.
    Targets are int64 class indices, or float class probabilities of the input's shape."""
    class_dim = 0 if input.ndim == 1 else 1
    logp = log_softmax(input, class_dim)
    if target.dtype.is_floating_point:
        if tuple(target.shape) != tuple(input.shape):
            raise RuntimeError("cross_entropy: probability targets must have the input's shape")
        c = input.shape[class_dim]
        if label_smoothing and c:
            target = target * (1 - label_smoothing) + label_smoothing / c
        w = 1 if weight is None else F.reshape(weight, (c,) + (1,) * (input.ndim - class_dim - 1))
        loss = -F.sum(logp * target * w, class_dim)
        if reduction == "mean" and c == 0:
            # torch divides the sum by numel / C, 0 / 0 with no classes: nan, not the mean of zeros
            return F.sum(loss) * float("nan")
        return _reduce(loss, reduction)
    return nll_loss(logp, target, weight, ignore_index, reduction, label_smoothing)


def _log_clamped(p):
    """max(log(p), -100), with gradient 0 (not 0 * inf = nan) where p == 0."""
    pos = F.gt(p, 0)
    return F.maximum(F.where(pos, F.log(F.where(pos, p, F.ones_like(p))), F.full_like(p, -100.0)), -100.0)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"Using a target size ({list(target.shape)}) that is different to the input "
                         f"size ({list(input.shape)}) is deprecated. Please ensure they have the same size.")
    # torch clamps the logs at -100 so that 0 * log(0) stays finite
    lo = _log_clamped(input)
    l1 = _log_clamped(1 - input)
    loss = -(target * lo + (1 - target) * l1)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"Target size ({list(target.shape)}) must be the same as input size ({list(input.shape)})")
    # log(1 + exp(-|x|)) + max(-x, 0), the stable form of -log(sigmoid(x))
    log_sig_neg = log1p(F.exp(-F.abs(input))) + F.maximum(-input, 0.0)
    if pos_weight is not None:
        coef = 1 + (pos_weight - 1) * target
        loss = (1 - target) * input + coef * log_sig_neg
    else:
        loss = (1 - target) * input + log_sig_neg
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def one_hot(t, num_classes=-1):
    if num_classes < 0:
        if t._value is not None:
            raise RuntimeError("one_hot needs num_classes while tracing")
        num_classes = int(t._data.max()) + 1 if t.numel() else 0
    classes = F.iota(tuple(t.shape) + (num_classes,), t.ndim)
    return F.cast(F.eq(F.unsqueeze(t, -1), classes), _dt.int64)


def _isinstance_tensor(x):
    return isinstance(x, Tensor)


# Tensor methods for the composites torch also offers as methods (x.softmax(dim), x.relu())
Tensor.relu = relu
Tensor.softmax = softmax
Tensor.log_softmax = log_softmax
