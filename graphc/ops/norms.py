"""Normalisation and channel-wise dropout composites: group_norm, instance_norm, rms_norm,
dropout1d/2d/3d, alpha_dropout and feature_alpha_dropout (torch.nn.functional's), written with
means, rsqrt and where so eager, traced and differentiated forms come from the same code."""
from __future__ import annotations

import math

import numpy as np

from ..autograd import no_grad
from . import functional as F
from .composites import _inplace
from .creation import rand


def _affine(y, weight, bias, shape):
    if weight is not None:
        y = y * F.reshape(weight, shape)
    if bias is not None:
        y = y + F.reshape(bias, shape)
    return y


def _normalize(x, dims, eps):
    """(x - mean) * rsqrt(biased var + eps) over dims, and the statistics."""
    mu = F.mean(x, dims, keepdim=True)
    d = x - mu
    var = F.mean(d * d, dims, keepdim=True)
    return d * F.rsqrt(var + eps), mu, var


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise each of num_groups groups of channels of each sample, then a per-channel affine."""
    if input.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {input.ndim}")
    n, c = input.shape[0], input.shape[1]
    if num_groups <= 0 or c % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input "
                           f"of shape {list(input.shape)} and num_groups={num_groups}")
    rest = tuple(input.shape[2:])
    x = F.reshape(input, (n, num_groups, (c // num_groups) * int(np.prod(rest, dtype=np.int64))))
    y, _, _ = _normalize(x, (2,), eps)
    return _affine(F.reshape(y, tuple(input.shape)), weight, bias, (1, c) + (1,) * len(rest))


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Normalise each channel of each sample over its spatial dims. With use_input_stats and
    running statistics, they are updated in place with the batch mean of the per-instance
    statistics (the variance unbiased), as torch's batch_norm over [1, N*C, ...] does."""
    if input.ndim < 2:
        raise ValueError(f"instance_norm: expected an input of at least 2 dims [N, C, ...], got {list(input.shape)}")
    if momentum is None:
        raise ValueError("instance_norm: momentum=None (a cumulative average) is not supported, as in torch")
    n, c = input.shape[0], input.shape[1]
    shape = (1, c) + (1,) * (input.ndim - 2)
    dims = tuple(range(2, input.ndim))
    if use_input_stats:
        count = int(np.prod(input.shape[2:], dtype=np.int64))
        if count <= 1:
            raise ValueError(f"Expected more than 1 spatial element when training, got input size {list(input.shape)}")
        y, mu, var = _normalize(input, dims, eps)
        if running_mean is not None or running_var is not None:
            with no_grad():
                if running_mean is not None:
                    batch_mean = F.mean(F.reshape(mu, (n, c)).detach(), 0)
                    running_mean.mul_(1 - momentum).add_(batch_mean * momentum)
                if running_var is not None:
                    batch_var = F.mean(F.reshape(var, (n, c)).detach(), 0) * (count / (count - 1))
                    running_var.mul_(1 - momentum).add_(batch_var * momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("Expected running_mean and running_var to be defined when use_input_stats is false")
        y = (input - F.reshape(running_mean, shape)) * F.rsqrt(F.reshape(running_var, shape) + eps)
    return _affine(y, weight, bias, shape)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """x * rsqrt(mean(x^2) + eps) over the trailing normalized_shape dims, then * weight;
    eps None is the dtype's machine epsilon, as torch's."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(normalized_shape)
    if input.ndim < k or tuple(input.shape[input.ndim - k:]) != normalized_shape:
        raise RuntimeError(f"Given normalized_shape={list(normalized_shape)}, expected input with shape "
                           f"[*, {', '.join(str(s) for s in normalized_shape)}], but got input of size {list(input.shape)}")
    if eps is None:
        eps = float(np.finfo(input.dtype.np).eps)
    dims = tuple(range(input.ndim - k, input.ndim))
    y = input * F.rsqrt(F.mean(input * input, dims, keepdim=True) + eps)
    return y * weight if weight is not None else y


def _check_p(p):
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _identity(p, training):
    """Validate p; True where dropout is the identity (eval, p = 0): the input itself is returned."""
    _check_p(p)
    return not training or p == 0


def _noise_keep(x, p, feature, generator=None):
    """A boolean keep-mask, P(keep) = 1 - p: one per element, or per (sample, channel) of a
    batched [N, C, ...] input for the feature (channel-wise) forms."""
    shape = tuple(x.shape[:2]) + (1,) * (x.ndim - 2) if feature else tuple(x.shape)
    u = rand(shape, dtype=x.dtype if x.dtype.is_floating_point else None, generator=generator,
             device=F._device_of(x, None))
    return F.ge(u, p)


def _drop(x, p, training, feature, alpha):
    _check_p(p)
    if not training or p == 0 or x.numel() == 0:
        return x
    if p == 1:
        return x * 0
    keep = F.cast(_noise_keep(x, p, feature), x.dtype)
    if not alpha:
        return x * (keep * (1.0 / (1 - p)))
    # torch's alpha dropout: dropped values go to the SELU's negative saturation, then an affine
    # map keeps mean 0 and variance 1: x * (keep a) + ((keep - 1) alpha a + alpha a p)
    sat = 1.7580993408473766
    a = 1.0 / math.sqrt((sat * sat * p + 1) * (1 - p))
    return x * (keep * a) + ((keep - 1) * (sat * a) + sat * a * p)


def _feature(name, x, batched_ndim, p, training, inplace):
    """The channel-wise dropouts: a batched [N, C, *] input of batched_ndim dims, or one
    unbatched sample of one dim less (the dims are checked in eval mode too, as torch)."""
    if x.ndim not in (batched_ndim - 1, batched_ndim):
        raise RuntimeError(f"{name}: Expected {batched_ndim - 1}D or {batched_ndim}D input, but received a "
                           f"{x.ndim}D input. Note that dropout1d exists to provide channel-wise dropout on inputs "
                           "with 1 spatial dimension, a channel dimension, and an optional batch dimension "
                           f"(i.e. {batched_ndim - 1}D or {batched_ndim}D inputs)." if name == "dropout1d" else
                           f"{name}: Expected {batched_ndim - 1}D or {batched_ndim}D input, but received a "
                           f"{x.ndim}D input")
    if _identity(p, training):
        return x
    if x.ndim == batched_ndim - 1:
        return _inplace(lambda x: F.squeeze(_drop(F.unsqueeze(x, 0), p, training, True, False), 0), x, inplace)
    return _inplace(_drop, x, inplace, p, training, True, False)


def dropout1d(input, p=0.5, training=True, inplace=False):
    return _feature("dropout1d", input, 3, p, training, inplace)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Channel-wise dropout of [N, C, H, W] (or [C, H, W]: torch 2's reading of a 3D input is
    (N, C, L), with its warning; graphc does the same)."""
    if _identity(p, training) and input.ndim in (3, 4):
        return input
    if input.ndim == 3:
        import warnings
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel dim. "
                      "This behavior will change in a future release to interpret the input as one without a "
                      "batch dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise dropout behavior, "
                      "please switch to using dropout1d instead.", stacklevel=2)
    elif input.ndim != 4:
        raise RuntimeError(f"dropout2d: Expected 3D or 4D input, but received a {input.ndim}D input")
    return _inplace(_drop, input, inplace, p, training, True, False)


def dropout3d(input, p=0.5, training=True, inplace=False):
    return _feature("dropout3d", input, 5, p, training, inplace)


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    if _identity(p, training):
        return input
    return _inplace(_drop, input, inplace, p, training, False, True)


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False):
    if _identity(p, training):
        return input
    if input.ndim < 2:
        raise RuntimeError(f"feature_alpha_dropout: Expected an input of at least 2 dims [N, C, ...], "
                           f"got {input.ndim}D")
    return _inplace(_drop, input, inplace, p, training, True, True)

