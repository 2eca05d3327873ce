"""Adadelta (torch.optim.Adadelta), step for step with torch's single-tensor path."""
from __future__ import annotations

from ..autograd import no_grad
from ..ops import functional as F
from .optimizer import Optimizer, _like, _scalar_dtype, check_nonnegative


class Adadelta(Optimizer):
    """torch.optim.Adadelta:

        g = grad (negated if maximize) + weight_decay * p
        v = rho * v + (1 - rho) * g * g
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta * delta
        p -= lr * delta

    State (torch's layout): 'step', 'square_avg' (v), 'acc_delta' (u).
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False):
        check_nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def _init_state(self, p, group, st):
        st["step"] = F.zeros((), dtype=_scalar_dtype())
        st["square_avg"] = F.zeros_like(p)
        st["acc_delta"] = F.zeros_like(p)

    @no_grad()
    def step(self, closure=None):
        loss = self._closure(closure)
        for g in self.param_groups:
            lr, rho, eps = g.hyper("lr"), g.hyper("rho"), g.hyper("eps")
            for p in g["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if g["maximize"]:
                    grad = -grad
                st = self._state(p, g)
                st["step"].add_(1)
                if g["weight_decay"] != 0:
                    grad = grad + p * _like(g.hyper("weight_decay"), p)
                square_avg, acc_delta = st["square_avg"], st["acc_delta"]
                square_avg.mul_(_like(rho, p)).addcmul_(grad, grad, value=_like(1 - rho, p))
                std = F.sqrt(square_avg + _like(eps, p))
                delta = F.sqrt(acc_delta + _like(eps, p)) / std * grad
                acc_delta.mul_(_like(rho, p)).addcmul_(delta, delta, value=_like(1 - rho, p))
                p.sub_(delta * _like(lr, p))
        return loss
