"""The losses of torch.nn.functional beyond the basic ones in composites.py (smooth L1 / Huber,
KL divergence, the margin and embedding losses, Poisson and Gaussian NLL), each in torch's
formula, so values, NaNs and gradients at the kinks are torch's. `size_average` / `reduce`
(torch's deprecated pair) map to a reduction as torch maps them, with its warning."""
from __future__ import annotations

import math
import warnings

from ..tensor import Tensor
from . import functional as F
from .activations import logsigmoid
from .composites import _reduce, _same_shape
from .distances import pairwise_distance
from .functional import log1p


def legacy_reduction(size_average, reduce, reduction):
    """torch's _Reduction.legacy_get_string: the old flags, when given, win over reduction."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    ret = "mean" if size_average and reduce else "sum" if reduce else "none"
    warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{ret}' instead.",
                  stacklevel=3)
    return ret


def _check_reduction(reduction):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _broadcast(name, input, target):
    _same_shape(name, input, target)
    shape = F.broadcast_shapes(tuple(input.shape), tuple(target.shape))
    return F.broadcast_to(input, shape), F.broadcast_to(target, shape)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    input, target = _broadcast("smooth_l1_loss", input, target)
    d = input - target
    z = F.abs(d)
    quad = d * 0.5 * d / beta if beta > 0 else F.zeros_like(d)
    return _reduce(F.where(F.lt(z, beta), quad, z - 0.5 * beta), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    _check_reduction(reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    input, target = _broadcast("huber_loss", input, target)
    d = input - target
    z = F.abs(d)
    loss = F.where(F.lt(z, delta), d * 0.5 * d, (z - 0.5 * delta) * delta)
    if weight is not None:
        if tuple(weight.shape) != tuple(input.shape):
            raise ValueError("Weights and input must have the same size.")
        loss = loss * weight
    return _reduce(loss, reduction)


def _xlogy_self(t):
    """t log t, 0 where t == 0 (torch's xlogy(t, t); its gradient there is NaN, as torch's)."""
    return F.where(F.eq(t, 0), F.zeros_like(t), t * F.log(t))


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Pointwise target * (log target - input), input being log-probabilities."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    if reduction not in ("none", "mean", "sum", "batchmean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
    input, target = _broadcast("kl_div", input, target)
    if log_target:
        loss = F.exp(target) * (target - input)
    else:
        loss = _xlogy_self(target) - target * input
    if reduction == "batchmean":
        total = F.sum(loss)
        return total / input.shape[0] if input.ndim else total
    return _reduce(loss, reduction)


def cosine_embedding_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    """1 - cos(x1, x2) where target is 1, max(0, cos - margin) where it is -1."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    dim = target.ndim
    if dim > 1:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if input1.ndim != dim + 1 or input2.ndim != dim + 1:
        raise RuntimeError(f"cosine_embedding_loss: expected {dim + 1}D inputs for a {dim}D target, got input1 "
                           f"{list(input1.shape)}, input2 {list(input2.shape)}, target {list(target.shape)}")
    eps = 1e-12       # torch's EPSILON: added to the squared norms
    prod = F.sum(input1 * input2, dim)
    mag1 = F.sum(input1 * input1, dim) + eps
    mag2 = F.sum(input2 * input2, dim) + eps
    cos = prod / F.sqrt(mag1 * mag2)
    zeros = F.zeros_like(cos)
    pos = F.where(F.eq(target, 1), 1 - cos, zeros)
    neg = F.where(F.eq(target, -1), F.clamp(cos - margin, min=0), zeros)
    return _reduce(pos + neg, reduction)


def margin_ranking_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if not (input1.ndim == input2.ndim == target.ndim):
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same dimension but got sizes: "
                           f"input1: {list(input1.shape)}, input2: {list(input2.shape)}, target: {list(target.shape)} ")
    return _reduce(F.clamp(-target * (input1 - input2) + margin, min=0), reduction)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, size_average=None,
                        reduce=None, reduction="mean"):
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    if not (anchor.ndim == positive.ndim == negative.ndim):
        raise RuntimeError(f"The anchor, positive, and negative tensors are expected to have the same number of "
                           f"dimensions, but got: anchor {anchor.ndim}D, positive {positive.ndim}D, and negative "
                           f"{negative.ndim}D inputs")
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = F.minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    return _reduce(F.clamp(margin + d_pos - d_neg, min=0), reduction)


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                     reduction="mean"):
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if log_input:
        loss = F.exp(input) - target * input
    else:
        loss = input - target * F.log(input + eps)
    if full:
        # Stirling's term, 0 where target <= 1 (torch's masked_fill: NaN-free values there)
        st = target * F.log(target) - target + 0.5 * F.log(2 * math.pi * target)
        loss = loss + F.where(F.le(target, 1), F.zeros_like(st), st)
    return _reduce(loss, reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    class_dim = input.ndim - 1
    loss = F.sum(loss, class_dim) / input.shape[class_dim]
    return _reduce(loss, reduction)


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """log(1 + exp(-y x)), torch's formula (inf where -y x overflows exp, as torch)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    input, target = _broadcast("soft_margin_loss", input, target)
    return _reduce(log1p(F.exp(-input * target)), reduction)


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean"):
    """x where target is not -1, plus max(0, margin - x) where target is not 1 (torch's sum of both)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    zeros = F.zeros_like(input)
    margin_part = F.where(F.ne(target, 1), F.clamp(margin - input, min=0), zeros)
    self_part = F.where(F.ne(target, -1), input, zeros)
    return _reduce(margin_part + self_part, reduction)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """0.5 (log var + (input - target)^2 / var) with var clamped at eps for the value only
    (torch clamps a clone under no_grad: the gradient w.r.t. var is the unclamped one's)."""
    if isinstance(var, (int, float)) and not isinstance(var, bool):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = F.full_like(input, float(var))
    elif not isinstance(var, Tensor):
        raise TypeError(f"gaussian_nll_loss: var must be a Tensor or a float, got {type(var).__name__}")
    elif var._value is None and var.numel() and bool((var._data < 0).any()):
        raise ValueError("var has negative entry/entries")
    if tuple(var.shape) != tuple(input.shape):
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = F.unsqueeze(var, -1)
        elif input.ndim == var.ndim and sum(b for a, b in zip(input.shape, var.shape) if a != b) == 1:
            pass      # heteroscedastic, one dim of var of size 1: broadcasts
        else:
            raise ValueError("var is of incorrect size")
    _check_reduction(reduction)
    held = F.detach(var)
    var = var - held + F.clamp(held, min=eps)      # the clamped value, the identity's gradient
    d = input - target
    loss = 0.5 * (F.log(var) + d * d / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)
