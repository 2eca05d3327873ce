"""RMSprop (torch.optim.RMSprop), step for step with torch's single-tensor path."""
from __future__ import annotations

from ..autograd import no_grad
from ..ops import functional as F
from .optimizer import Optimizer, _eager, _like, _scalar_dtype, check_nonnegative


class RMSprop(Optimizer):
    """torch.optim.RMSprop:

        g = grad (negated if maximize) + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        avg = sqrt(v - ga * ga) + eps, with ga = lerp(ga, g, 1 - alpha), if centered, else sqrt(v) + eps
        buf = momentum * buf + g / avg;  p -= lr * buf         (momentum > 0)
        p -= lr * g / avg                                      (otherwise)

    State (torch's layout): 'step', 'square_avg', 'momentum_buffer' (momentum > 0), 'grad_avg' (centered).
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
                 maximize=False):
        check_nonnegative(lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def _init_state(self, p, group, st):
        st["step"] = F.zeros((), dtype=_scalar_dtype())
        st["square_avg"] = F.zeros_like(p)
        if group["momentum"] > 0:
            st["momentum_buffer"] = F.zeros_like(p)
        if group["centered"]:
            st["grad_avg"] = F.zeros_like(p)

    @no_grad()
    def step(self, closure=None):
        loss = self._closure(closure)
        for g in self.param_groups:
            lr = g.hyper("lr")
            alpha = g.hyper("alpha")
            eps = g.hyper("eps")
            wd_on, mom_on = g["weight_decay"] != 0, g["momentum"] > 0
            for p in g["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if g["maximize"]:
                    grad = -grad
                st = self._state(p, g)
                # options switched on after the state was created
                if mom_on and "momentum_buffer" not in st:
                    st["momentum_buffer"] = _eager(F.zeros_like, p)
                if g["centered"] and "grad_avg" not in st:
                    st["grad_avg"] = _eager(F.zeros_like, p)
                st["step"].add_(1)
                if wd_on:
                    grad = grad + p * _like(g.hyper("weight_decay"), p)
                square_avg = st["square_avg"]
                square_avg.mul_(_like(alpha, p)).addcmul_(grad, grad, value=_like(1 - alpha, p))
                if g["centered"]:
                    grad_avg = st["grad_avg"]
                    grad_avg.lerp_(grad, _like(1 - alpha, p))
                    avg = F.sqrt(square_avg - grad_avg * grad_avg)
                else:
                    avg = F.sqrt(square_avg)
                avg = avg + _like(eps, p)
                if mom_on:
                    buf = st["momentum_buffer"]
                    buf.mul_(_like(g.hyper("momentum"), p)).addcdiv_(grad, avg)
                    p.sub_(buf * _like(lr, p))
                else:
                    p.addcdiv_(grad, avg, value=_like(-lr, p))
        return loss
