"""Adam and AdamW (torch.optim.Adam / AdamW), step for step with torch's single-tensor path."""
from __future__ import annotations

from .. import dtypes as _dt
from ..autograd import no_grad
from ..ops import functional as F
from .optimizer import Optimizer, _eager, _like, _scalar_dtype, check_nonnegative


class Adam(Optimizer):
    """torch.optim.Adam:

        t += 1
        g = grad (negated if maximize);  g += weight_decay * p   (or, decoupled: p *= 1 - lr * wd)
        m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g * g
        v_hat = max(v_hat, v) if amsgrad
        p -= lr / (1 - beta1^t) * m / (sqrt(v or v_hat) / sqrt(1 - beta2^t) + eps)

    State (torch's layout): 'step' (a 0-d float tensor), 'exp_avg', 'exp_avg_sq' and, with
    amsgrad, 'max_exp_avg_sq'. The bias corrections are computed from the step tensor with tensor
    ops in float64 (as torch does in Python doubles), so a compiled step stays correct on every call.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        check_nonnegative(lr=lr, eps=eps)
        betas = tuple(betas)
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair, got {betas!r}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        check_nonnegative(weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def _init_state(self, p, group, st):
        st["step"] = F.zeros((), dtype=_scalar_dtype())
        st["exp_avg"] = F.zeros_like(p)
        st["exp_avg_sq"] = F.zeros_like(p)
        if group["amsgrad"]:
            st["max_exp_avg_sq"] = F.zeros_like(p)

    @no_grad()
    def step(self, closure=None):
        loss = self._closure(closure)
        for g in self.param_groups:
            lr = g.hyper("lr")
            beta1, beta2 = g.hyper("betas")
            eps = g.hyper("eps")
            wd_on = g["weight_decay"] != 0
            wd = g.hyper("weight_decay") if wd_on else 0
            for p in g["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if g["maximize"]:
                    grad = -grad
                st = self._state(p, g)
                if g["amsgrad"] and "max_exp_avg_sq" not in st:
                    st["max_exp_avg_sq"] = _eager(F.zeros_like, p)
                step_t, exp_avg, exp_avg_sq = st["step"], st["exp_avg"], st["exp_avg_sq"]
                step_t.add_(1)
                if wd_on:
                    if g["decoupled_weight_decay"]:
                        p.mul_(_like(1 - lr * wd, p))
                    else:
                        grad = grad + p * _like(wd, p)
                exp_avg.lerp_(grad, _like(1 - beta1, p))
                exp_avg_sq.mul_(_like(beta2, p)).addcmul_(grad, grad, value=_like(1 - beta2, p))
                step = F.cast(step_t, _dt.float64)
                bias_correction1 = 1 - beta1 ** step
                bias_correction2 = 1 - beta2 ** step
                step_size = lr / bias_correction1
                bias_correction2_sqrt = F.sqrt(bias_correction2)
                if g["amsgrad"]:
                    mx = st["max_exp_avg_sq"]
                    mx.copy_(F.maximum(mx, exp_avg_sq))
                    denom = F.sqrt(mx) / _like(bias_correction2_sqrt, p) + _like(eps, p)
                else:
                    denom = F.sqrt(exp_avg_sq) / _like(bias_correction2_sqrt, p) + _like(eps, p)
                p.addcdiv_(exp_avg, denom, value=_like(-step_size, p))
        return loss


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay (p *= 1 - lr * weight_decay), default 1e-2."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize, decoupled_weight_decay=True)

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for g in self.param_groups:
            g["decoupled_weight_decay"] = True
