"""nn.RNN, nn.LSTM, nn.GRU: multi-layer, optionally bidirectional recurrent layers as torch's.

Per layer and direction the input projection x @ W_ih^T + b_ih is one GEMM over every timestep;
then each step runs one h @ W_hh^T GEMM and the gate math (rnn_steps.py). Inputs are [T, B, I]
([B, T, I] with batch_first, [T, I] unbatched) or a PackedSequence, whose output is packed too,
with h_n taken at each sequence's true last step. Parameters are torch's (`weight_ih_l0`,
`bias_hh_l1_reverse`, `weight_hr_l0`, ...), registered in torch's order, so state_dicts load
either way. graphc keeps no fused weight buffer: flatten_parameters() does nothing.
"""
from __future__ import annotations

import numbers
import warnings
from functools import partial

from ..ops import functional as F
from ..ops.composites import linear
from ..ops.functional import empty
from ..ops.layer_composites import dropout
from .module import Module, _check_device, _place
from .parameter import Parameter
from .rnn_cells import GRUCell, LSTMCell, RNNCell, RNNCellBase, reset_uniform  # noqa: F401
from .rnn_steps import STEPS, run_direction
from .utils.rnn import PackedSequence, _ints

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


class RNNBase(Module):
    """The parameters, checks and layer/direction loop shared by RNN, LSTM and GRU."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        _check_device(device)
        if not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}")
        if not isinstance(hidden_size, int) or isinstance(hidden_size, bool):
            raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if mode not in _GATES:
            raise ValueError(f"Unrecognized RNN mode: {mode}")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        gates, dirs = _GATES[mode] * hidden_size, 2 if bidirectional else 1
        real_hidden = proj_size or hidden_size
        self._flat_weights_names = []
        for layer in range(num_layers):
            for direction in range(dirs):
                width = input_size if layer == 0 else real_hidden * dirs
                shapes = [("weight_ih", (gates, width)), ("weight_hh", (gates, real_hidden))]
                if bias:
                    shapes += [("bias_ih", (gates,)), ("bias_hh", (gates,))]
                if proj_size:
                    shapes.append(("weight_hr", (proj_size, hidden_size)))
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                for name, shape in shapes:
                    setattr(self, name + suffix, Parameter(empty(*shape, dtype=dtype)))
                    self._flat_weights_names.append(name + suffix)
        self.reset_parameters()
        _place(self, device)

    def reset_parameters(self):
        reset_uniform(self)

    def flatten_parameters(self):
        """Does nothing: torch packs the weights into one cuDNN buffer here; graphc keeps none and
        reads the parameters themselves at every call."""

    @property
    def _flat_weights(self):
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self):
        """The parameters per layer and direction, as torch's all_weights."""
        per = len(self._flat_weights_names) // (self.num_layers * (2 if self.bidirectional else 1))
        w = self._flat_weights
        return [w[i:i + per] for i in range(0, len(w), per)]

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # ---- forward ------------------------------------------------------------------------------------
    def _weights(self, layer, direction):
        suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        get = (lambda n: getattr(self, n + suffix) if n + suffix in self._parameters else None)
        return get("weight_ih"), get("bias_ih"), get("weight_hh"), get("bias_hh"), get("weight_hr")

    def _state_sizes(self, batch):
        """The expected shape of each initial state: [(L*D, B, H_out)] (+ [(L*D, B, H)] for LSTM)."""
        lead = self.num_layers * (2 if self.bidirectional else 1)
        h = (lead, batch, self.proj_size or self.hidden_size)
        return [h, (lead, batch, self.hidden_size)] if self.mode == "LSTM" else [h]

    def _check_states(self, states, batch):
        for k, (s, want) in enumerate(zip(states, self._state_sizes(batch))):
            if tuple(s.shape) != want:
                which = f"hidden[{k}]" if self.mode == "LSTM" else "hidden"
                raise RuntimeError(f"Expected {which} size {want}, got {list(s.shape)}")

    def _split_input(self, input, hx):
        """(rows [N, I], batch sizes, states as [L*D, B, *] or None, how to give the output back)."""
        name = type(self).__name__
        hs = None if hx is None else (list(hx) if self.mode == "LSTM" else [hx])
        if self.mode == "LSTM" and hs is not None and len(hs) != 2:
            raise RuntimeError(f"{name}: expected hx to be a tuple (h_0, c_0), got {len(hs)} tensors")
        if isinstance(input, PackedSequence):
            data, sizes = input.data, _ints(input.batch_sizes, "batch_sizes")
            if data.ndim != 2:
                raise RuntimeError(f"input must have 2 dimensions, got {data.ndim}")
            if hs is not None and input.sorted_indices is not None:
                hs = [F.index_select(s, 1, input.sorted_indices) for s in hs]
            return data, sizes, hs, ("packed", input)
        if input.ndim not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D instead")
        batched = input.ndim == 3
        if hs is not None:
            dims = [s.ndim for s in hs]
            want = 3 if batched else 2
            if any(d != want for d in dims):
                kind = "batched 3-D" if batched else "unbatched 2-D"
                if self.mode == "LSTM":
                    raise RuntimeError(f"For {kind} input, hx and cx should also be {want}-D but got "
                                       f"({dims[0]}-D, {dims[1]}-D) tensors")
                raise RuntimeError(f"For {kind} input, hx should also be {want}-D but got {dims[0]}-D tensor")
            if not batched:
                hs = [F.unsqueeze(s, 1) for s in hs]
        x = F.unsqueeze(input, 1) if not batched else (F.transpose(input, 0, 1) if self.batch_first else input)
        steps, batch = x.shape[0], x.shape[1]
        if steps == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
        return F.reshape(x, (steps * batch,) + tuple(x.shape[2:])), [batch] * steps, hs, ("padded", batched, steps)

    def forward(self, input, hx=None):
        x, sizes, hs, how = self._split_input(input, hx)
        w = self._weights(0, 0)[0]
        if x.dtype is not w.dtype:
            raise ValueError(f"input must have the type {w.dtype}, got type {x.dtype}")
        if x.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {x.shape[-1]}")
        batch = sizes[0] if sizes else 0
        if hs is not None:
            self._check_states(hs, batch)
        step, dirs = STEPS[self.mode], 2 if self.bidirectional else 1
        finals = []
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                w_ih, b_ih, w_hh, b_hh, w_hr = self._weights(layer, d)
                i = layer * dirs + d
                if hs is None:
                    state = tuple(F.zeros(*shape[1:], dtype=x.dtype, device=F._device_of(x, None))
                                  for shape in self._state_sizes(batch))
                else:
                    state = tuple(s[i] for s in hs)
                gi = linear(x, w_ih, b_ih)
                out, state = run_direction(partial(step, w_hh=w_hh, b_hh=b_hh, w_hr=w_hr), gi, sizes, state, d == 1)
                outs.append(out)
                finals.append(state)
            x = F.cat(outs, 1) if dirs == 2 else outs[0]
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = dropout(x, self.dropout, True)
        states = [F.stack([f[k] for f in finals], 0) for k in range(len(finals[0]))]
        return self._give_back(x, states, how)

    def _give_back(self, x, states, how):
        if how[0] == "packed":
            packed = how[1]
            if packed.unsorted_indices is not None:
                states = [F.index_select(s, 1, packed.unsorted_indices) for s in states]
            out = PackedSequence(x, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        else:
            _, batched, steps = how
            out = F.reshape(x, (steps, x.shape[0] // steps if steps else 0, x.shape[-1]))
            if not batched:
                out, states = F.squeeze(out, 1), [F.squeeze(s, 1) for s in states]
            elif self.batch_first:
                out = F.transpose(out, 0, 1)
        return out, (tuple(states) if self.mode == "LSTM" else states[0])


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (nonlinearity='relu': relu)."""

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if len(args) > 3:
            nonlinearity = args[3]
            args = args[:3] + args[4:]
        else:
            nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__(mode, *args, **kwargs)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory: gates i, f, g, o; proj_size > 0 projects h by weight_hr."""

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)


class GRU(RNNBase):
    """Gated recurrent unit: gates r, z, n, with n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."""

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)
