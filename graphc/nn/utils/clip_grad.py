"""graphc.nn.utils.clip_grad: gradient clipping (torch.nn.utils.clip_grad)."""
from __future__ import annotations

import math

from ...autograd import no_grad
from ...ops import functional as F
from ...tensor import Tensor


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


@no_grad()
def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale the gradients in place so that their total norm is at most max_norm; return the
    total norm (a tensor, so this traces without a data-dependent branch)."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = _grads(params)
    if not grads:
        return F.zeros(())
    if norm_type == math.inf:
        total = F.amax(F.stack([F.amax(F.abs(g)) for g in grads]))
    else:
        total = F.norm(F.stack([F.norm(g, norm_type) for g in grads]), norm_type)
    if error_if_nonfinite and total._value is None and not math.isfinite(float(total.item())):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite")
    coef = F.clamp(max_norm / (total + 1e-6), max=1.0)
    for p in params:
        if p.grad is not None:
            p.grad = p.grad * F.cast(coef, p.grad.dtype)
    return total


@no_grad()
def clip_grad_value_(parameters, clip_value, foreach=None):
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for p in params:
        if p.grad is not None:
            p.grad = F.clamp(p.grad, -clip_value, clip_value)
