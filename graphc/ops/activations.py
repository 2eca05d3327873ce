"""Activation functions as composites (torch.nn.functional's), each in torch's numerically
stable form and with torch's gradient at the kinks (where a boundary belongs to the flat side,
the `where` below picks the constant there, so the gradient is 0 as in torch's backward).

`inplace=True` writes the result into the input (`copy_`) and returns it, as torch does."""
from __future__ import annotations

from ..tensor import Tensor
from . import functional as F
from .composites import _inplace, leaky_relu, relu, softmax, softplus
from .creation import rand
from .functional import expm1, log1p

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _float(name, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}(): argument 'input' must be Tensor, not {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise NotImplementedError(f"{name}: not implemented for {x.dtype.name} input (floating point only)")


def _elu(x, alpha, scale=1.0, input_scale=1.0):
    """torch's elu kernel: scale * x above 0, scale * alpha * expm1(input_scale * x) below. The
    exp only sees the negative side (a large x would give inf there, and 0 * inf = NaN in the
    unselected branch's gradient)."""
    pos = F.gt(x, 0)
    neg = F.where(pos, F.zeros_like(x), x)
    lo = expm1(neg * input_scale if input_scale != 1.0 else neg) * (alpha * scale)
    return F.where(pos, x * scale if scale != 1.0 else x, lo)


def elu(input, alpha=1.0, inplace=False):
    _float("elu", input)
    return _inplace(_elu, input, inplace, alpha)


def selu(input, inplace=False):
    _float("selu", input)
    return _inplace(_elu, input, inplace, _SELU_ALPHA, _SELU_SCALE)


def celu(input, alpha=1.0, inplace=False):
    _float("celu", input)
    if alpha == 0:
        raise ValueError("ZeroDivisionError: celu with alpha=0 divides by zero")
    return _inplace(_elu, input, inplace, alpha, 1.0, 1.0 / alpha)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _inplace(_hardtanh, input, inplace, min_val, max_val)


def _hardtanh(x, lo, hi):
    # torch's gradient is 0 at both bounds (x <= min or x >= max); NaN passes through
    return F.where(F.le(x, lo), F.full_like(x, lo), F.where(F.ge(x, hi), F.full_like(x, hi), x))


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0, inplace)


def prelu(input, weight):
    """max(0, x) + weight * min(0, x), one weight per channel (dim 1) or one shared."""
    n = weight.numel()
    if n != 1:
        channels = input.shape[1] if input.ndim >= 2 else 1
        if input.ndim == 0 or n != channels:
            raise RuntimeError(f"prelu: mismatch of parameter numbers and input channel size. Found "
                               f"parameter numbers = {n} and channel size = {channels}.")
        w = F.reshape(weight, (1, n) + (1,) * (input.ndim - 2))
    else:
        w = F.reshape(weight, ())
    return F.where(F.gt(input, 0), input, w * input)


def mish(input, inplace=False):
    _float("mish", input)
    return _inplace(lambda x: x * F.tanh(softplus(x)), input, inplace)


def softsign(input):
    return input / (F.abs(input) + 1)


def _hardswish(x):
    # torch's backward: 0 up to -3, x/3 + 1/2 on (-3, 3), 1 from 3
    return F.where(F.le(x, -3), F.zeros_like(x), F.where(F.lt(x, 3), x * (x + 3) / 6, x))


def hardswish(input, inplace=False):
    return _inplace(_hardswish, input, inplace)


def _hardsigmoid(x):
    # torch's backward: 1/6 strictly inside (-3, 3), 0 elsewhere
    return F.where(F.le(x, -3), F.zeros_like(x), F.where(F.ge(x, 3), F.ones_like(x), (x + 3) / 6))


def hardsigmoid(input, inplace=False):
    return _inplace(_hardsigmoid, input, inplace)


def logsigmoid(input):
    """min(x, 0) - log1p(exp(-|x|)): -softplus(-x) with no overflow and no cancellation."""
    _float("logsigmoid", input)
    return F.minimum(input, 0.0) - log1p(F.exp(-F.abs(input)))


def glu(input, dim=-1):
    if input.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    d = dim % input.ndim
    size = input.shape[d]
    if size % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {d} is size {size}")
    a, b = F.narrow(input, d, 0, size // 2), F.narrow(input, d, size // 2, size // 2)
    return a * F.sigmoid(b)


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):
    """Randomized leaky ReLU: in training each x <= 0 is scaled by its own slope drawn from
    U(lower, upper) (graphc's counter-based generator, so it traces; not torch's numbers); in
    eval the slope is their mean, as torch's leaky_relu."""
    if lower > upper:
        raise RuntimeError("Lower bound should be less than or equal to the upper bound")
    _float("rrelu", input)
    if not training:
        return leaky_relu(input, (lower + upper) / 2, inplace)

    def fn(x):
        slope = rand(tuple(x.shape), dtype=x.dtype, device=F._device_of(x, None)) * (upper - lower) + lower
        return F.where(F.le(x, 0), x * slope, x)
    return _inplace(fn, input, inplace)


def rrelu_(input, lower=1.0 / 8, upper=1.0 / 3, training=False):
    return rrelu(input, lower, upper, training, True)


def threshold(input, threshold, value, inplace=False):
    # x <= threshold picks the value, so NaN passes through (torch's)
    return _inplace(lambda x: F.where(F.le(x, threshold), F.full_like(x, value), x), input, inplace)


def tanhshrink(input):
    return input - F.tanh(input)


def _check_lambd(lambd):
    if lambd < 0:
        raise RuntimeError(f"lambda must be greater or equal to 0, but found to be {lambd}.")


def softshrink(input, lambd=0.5):
    _check_lambd(lambd)
    # x * 0 in the dead zone keeps NaN (torch's), with gradient 0 on [-lambd, lambd]
    return F.where(F.gt(input, lambd), input - lambd, F.where(F.lt(input, -lambd), input + lambd, input * 0))


def hardshrink(input, lambd=0.5):
    _check_lambd(lambd)
    dead = F.logical_and(F.ge(input, -lambd), F.le(input, lambd))
    return F.where(dead, F.zeros_like(input), input)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None:
        import warnings
        warnings.warn("Implicit dimension choice for softmin has been deprecated. Change the call to include "
                      "dim=X as an argument.", stacklevel=_stacklevel)
        dim = 0 if input.ndim in (0, 1, 3) else 1     # torch's legacy implicit dim
    if dtype is not None:
        input = F.cast(input, dtype)
    return softmax(-input, dim)


# torch's in-place spellings: the function with inplace=True
def elu_(input, alpha=1.0):
    return elu(input, alpha, True)


def selu_(input):
    return selu(input, True)


def celu_(input, alpha=1.0):
    return celu(input, alpha, True)


def hardtanh_(input, min_val=-1.0, max_val=1.0):
    return hardtanh(input, min_val, max_val, True)


def threshold_(input, threshold_, value):
    return threshold(input, threshold_, value, True)


def relu_(input):
    return relu(input, True)


def leaky_relu_(input, negative_slope=0.01):
    return leaky_relu(input, negative_slope, True)
