"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (torch.optim.SGD)."""
from __future__ import annotations

from .. import tracing as _tr
from ..autograd import no_grad
from ..ops import functional as F
from .optimizer import Optimizer


class SGD(Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    @no_grad()
    def step(self):
        for g in self.param_groups:
            lr, mom, damp, wd = g["lr"], g["momentum"], g["dampening"], g["weight_decay"]
            for p in g["params"]:
                d_p = p.grad
                if d_p is None:
                    continue
                if g["maximize"]:
                    d_p = -d_p
                if wd:
                    d_p = d_p + p * wd
                if mom:
                    st = self.state.setdefault(p, {})
                    buf = st.get("momentum_buffer")
                    if buf is None:
                        # created eagerly (outside any trace) so the state outlives the call;
                        # torch starts the buffer at the first gradient
                        with _tr.suspended():
                            buf = st["momentum_buffer"] = F.zeros_like(p)
                        buf.copy_(d_p)
                    else:
                        buf.mul_(mom).add_(d_p, alpha=1 - damp)
                    d_p = d_p + buf * mom if g["nesterov"] else buf
                p.add_(d_p, alpha=-lr)
