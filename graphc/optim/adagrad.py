"""Adagrad (torch.optim.Adagrad), step for step with torch's single-tensor path."""
from __future__ import annotations

from .. import dtypes as _dt
from ..autograd import no_grad
from ..ops import functional as F
from .optimizer import Optimizer, _like, _scalar_dtype, check_nonnegative


class Adagrad(Optimizer):
    """torch.optim.Adagrad:

        t += 1
        g = grad (negated if maximize) + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s += g * g
        p -= clr * g / (sqrt(s) + eps)

    State (torch's layout, created in the constructor as torch does): 'step', 'sum' (starting
    at initial_accumulator_value).
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, *,
                 maximize=False):
        check_nonnegative(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                          initial_accumulator_value=initial_accumulator_value, eps=eps)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      maximize=maximize))
        for g in self.param_groups:
            for p in g["params"]:
                self._state(p, g)

    def _init_state(self, p, group, st):
        st["step"] = F.zeros((), dtype=_scalar_dtype())
        st["sum"] = F.full_like(p, float(group["initial_accumulator_value"]))

    @no_grad()
    def step(self, closure=None):
        loss = self._closure(closure)
        for g in self.param_groups:
            lr = g.hyper("lr")
            eps = g.hyper("eps")
            wd_on, decay_on = g["weight_decay"] != 0, g["lr_decay"] != 0
            for p in g["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if g["maximize"]:
                    grad = -grad
                st = self._state(p, g)
                step_t = st["step"]
                step_t.add_(1)
                if wd_on:
                    grad = grad + p * _like(g.hyper("weight_decay"), p)
                if decay_on:
                    clr = lr / (1 + (F.cast(step_t, _dt.float64) - 1) * g.hyper("lr_decay"))
                else:
                    clr = lr
                s = st["sum"]
                s.addcmul_(grad, grad, value=1)
                std = F.sqrt(s) + _like(eps, p)
                p.addcdiv_(grad, std, value=_like(-clr, p))
        return loss
