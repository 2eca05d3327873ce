"""nn.RNNCell, LSTMCell, GRUCell: one timestep, with torch's parameters and checks.

Parameter names, shapes, gate order and initialisation (uniform(-1/sqrt(hidden), 1/sqrt(hidden))
for every parameter) are torch's, so a torch state_dict loads as it is. The math is the same
step functions the multi-layer RNN/LSTM/GRU run (rnn_steps.py)."""
from __future__ import annotations

import math

from ..ops import functional as F
from ..ops.composites import linear
from ..ops.functional import empty
from . import init
from .module import Module, _check_device, _place
from .parameter import Parameter
from .rnn_steps import gru_step, lstm_step, rnn_relu_step, rnn_tanh_step


def reset_uniform(module):
    """torch's RNN init: every parameter uniform in +-1/sqrt(hidden_size)."""
    stdv = 1.0 / math.sqrt(module.hidden_size) if module.hidden_size > 0 else 0
    for p in module.parameters():
        init.uniform_(p, -stdv, stdv)


def check_cell_input(name, input, input_size):
    if input.shape[-1] != input_size:
        raise RuntimeError(f"{name}: input has inconsistent input_size: got {input.shape[-1]} expected {input_size}")


def check_cell_hidden(name, input, hx, hidden_size, which="hidden0"):
    if input.shape[0] != hx.shape[0]:
        raise RuntimeError(f"{name}: Input batch size {input.shape[0]} doesn't match {which} batch size {hx.shape[0]}")
    if hx.shape[1] != hidden_size:
        raise RuntimeError(f"{name}: {which} has inconsistent hidden_size: got {hx.shape[1]}, expected {hidden_size}")


class RNNCellBase(Module):
    """weight_ih [chunks*H, I], weight_hh [chunks*H, H], bias_ih and bias_hh [chunks*H]."""

    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        _check_device(device)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = Parameter(empty(num_chunks * hidden_size, input_size, dtype=dtype))
        self.weight_hh = Parameter(empty(num_chunks * hidden_size, hidden_size, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(empty(num_chunks * hidden_size, dtype=dtype))
            self.bias_hh = Parameter(empty(num_chunks * hidden_size, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()
        _place(self, device)

    def reset_parameters(self):
        reset_uniform(self)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _batched(self, input, states):
        """input as [B, I] and the states as [B, *] (zeros when None); and whether input was."""
        name = type(self).__name__
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        for k, s in enumerate(states):
            if s is not None and s.ndim not in (1, 2):
                which = f"hx[{k}]" if len(states) > 1 else "hidden"
                raise ValueError(f"{name}: Expected {which} to be 1D or 2D, got {s.ndim}D instead")
        batched = input.ndim == 2
        if not batched:
            input = F.unsqueeze(input, 0)
        check_cell_input(name, input, self.input_size)
        out = []
        for k, s in enumerate(states):
            if s is not None and s.ndim != (2 if batched else 1):
                raise RuntimeError(f"{name}: Expected hidden{k} to be {2 if batched else 1}D as the input is, "
                                   f"got {s.ndim}D")
            if s is None:
                s = F.zeros(input.shape[0], self.hidden_size, dtype=input.dtype, device=F._device_of(input, None))
            elif not batched:
                s = F.unsqueeze(s, 0)
            check_cell_hidden(name, input, s, self.hidden_size, f"hidden{k}")
            out.append(s)
        return input, tuple(out), batched

    def _step(self, step, input, states):
        x, state, batched = self._batched(input, states)
        gi = linear(x, self.weight_ih, self.bias_ih)
        state, _ = step(gi, state, self.weight_hh, self.bias_hh)
        return state if batched else tuple(F.squeeze(s, 0) for s in state)


class RNNCell(RNNCellBase):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu)."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity!r} (RNNCell takes 'tanh' or 'relu')")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        step = rnn_tanh_step if self.nonlinearity == "tanh" else rnn_relu_step
        return self._step(step, input, (hx,))[0]


class LSTMCell(RNNCellBase):
    """(h', c') from (h, c): gates i, f, g, o in that order in weight_ih / weight_hh's rows."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input, hx=None):
        if hx is not None and len(hx) != 2:
            raise ValueError(f"LSTMCell: expected hx to be a tuple (h_0, c_0), got {len(hx)} tensors")
        return self._step(lstm_step, input, (None, None) if hx is None else tuple(hx))


class GRUCell(RNNCellBase):
    """h' from h: gates r, z, n in that order, n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input, hx=None):
        return self._step(gru_step, input, (hx,))[0]
