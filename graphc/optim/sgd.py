"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (torch.optim.SGD)."""
from __future__ import annotations

from ..autograd import no_grad
from ..ops import functional as F
from .optimizer import Optimizer, _eager, _like, _new_scalar


class SGD(Optimizer):
    """torch.optim.SGD, step for step:

        g = grad (negated if maximize) + weight_decay * p
        buf = g on the first step, else momentum * buf + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf          (when momentum != 0)
        p -= lr * g

    State (torch's layout): 'momentum_buffer' per parameter when momentum != 0.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        # parameters whose momentum buffer has not taken its first step yet -> a 0-d tensor flag
        # (1 before the first step, 0 after), only where dampening != 0 needs it; see step()
        self._first = {}
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    @no_grad()
    def step(self, closure=None):
        loss = self._closure(closure)
        for g in self.param_groups:
            lr = g.hyper("lr")
            mom_on, wd_on, damp_on = g["momentum"] != 0, g["weight_decay"] != 0, g["dampening"] != 0
            for p in g["params"]:
                d_p = p.grad
                if d_p is None:
                    continue
                if g["maximize"]:
                    d_p = -d_p
                if wd_on:
                    d_p = d_p + p * _like(g.hyper("weight_decay"), p)
                if mom_on:
                    mom = _like(g.hyper("momentum"), p)
                    st = self.state[p]
                    buf = st.get("momentum_buffer")
                    if buf is None:
                        # created eagerly (also mid-trace) so the state outlives the call. torch
                        # starts the buffer at the first gradient; a zero buffer gives exactly that
                        # (0 * momentum + g), except for the (1 - dampening) factor: a flag tensor
                        # makes that factor 1 on the first step without baking "first" into a trace.
                        buf = st["momentum_buffer"] = _eager(F.zeros_like, p)
                        if damp_on:
                            self._first[p] = _new_scalar(1.0)
                    if damp_on:
                        flag = self._first.get(p)
                    else:                               # dampening switched off: the flag is moot
                        self._first.pop(p, None)
                        flag = None
                    if damp_on:
                        coef = 1 - g.hyper("dampening")
                        if flag is not None:            # coef = 1 on the first step, 1 - dampening after
                            coef = flag + (1 - flag) * coef
                        buf.mul_(mom).add_(d_p * _like(coef, p))
                    else:
                        buf.mul_(mom).add_(d_p)
                    if flag is not None:
                        flag.zero_()
                    d_p = d_p + buf * mom if g["nesterov"] else buf
                p.sub_(d_p * _like(lr, p))
        return loss

    def _after_load(self):
        # a loaded momentum buffer has taken its first step; a missing one starts afresh
        for p in list(self._first):
            if "momentum_buffer" in self.state.get(p, {}):
                _eager(self._first[p].zero_)
            else:
                del self._first[p]
