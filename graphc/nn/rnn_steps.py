"""One recurrent timestep (RNN tanh/relu, LSTM, GRU) and the time loop over packed rows.

The math is torch's (aten/src/ATen/native/RNN.cpp): the input projection `gi = x @ W_ih^T + b_ih`
comes precomputed (one GEMM per layer and direction for all timesteps); a step adds one
`h @ W_hh^T + b_hh` GEMM and the gates' elementwise math, in torch's order:

    RNN   h' = tanh(gh + gi)                                   (or relu)
    LSTM  i, f, g, o = chunk(gh + gi, 4); c' = f*c + i*g; h' = o*tanh(c')  (then h' @ W_hr^T)
    GRU   r = sigmoid(gi_r + gh_r); z = sigmoid(gi_z + gh_z); n = tanh(gi_n + r*gh_n);
          h' = (h - n)*z + n

A state is a tuple: (h,) for RNN and GRU, (h, c) for LSTM. A step returns (new state, output).
"""
from __future__ import annotations

from ..ops import functional as F
from ..ops.composites import linear, relu


def rnn_tanh_step(gi, state, w_hh, b_hh=None, w_hr=None):
    h = F.tanh(linear(state[0], w_hh, b_hh) + gi)
    return (h,), h


def rnn_relu_step(gi, state, w_hh, b_hh=None, w_hr=None):
    h = relu(linear(state[0], w_hh, b_hh) + gi)
    return (h,), h


def lstm_step(gi, state, w_hh, b_hh=None, w_hr=None):
    h, c = state
    i, f, g, o = F.chunk(linear(h, w_hh, b_hh) + gi, 4, 1)
    c = F.sigmoid(f) * c + F.sigmoid(i) * F.tanh(g)
    h = F.sigmoid(o) * F.tanh(c)
    if w_hr is not None:
        h = linear(h, w_hr)
    return (h, c), h


def gru_step(gi, state, w_hh, b_hh=None, w_hr=None):
    h = state[0]
    i_r, i_z, i_n = F.chunk(gi, 3, 1)
    h_r, h_z, h_n = F.chunk(linear(h, w_hh, b_hh), 3, 1)
    r = F.sigmoid(i_r + h_r)
    z = F.sigmoid(i_z + h_z)
    n = F.tanh(i_n + h_n * r)
    h = (h - n) * z + n
    return (h,), h


STEPS = {"RNN_TANH": rnn_tanh_step, "RNN_RELU": rnn_relu_step, "LSTM": lstm_step, "GRU": gru_step}


def _rows(state, lo, hi):
    return tuple(s[lo:hi] for s in state)


def run_direction(step, gi, batch_sizes, state, reverse=False):
    """Run `step` over the timesteps of gi, packed rows [sum(batch_sizes), G] (step t's rows are
    the sequences still running at t, longest first; a padded batch is batch_sizes = [B] * T).

    Forward, the state shrinks as sequences end and the rows of an ended sequence are kept as
    its final state; reversed, each sequence starts from its initial state at its own last step
    and the state grows. Returns (outputs [sum(batch_sizes), H_out], final state rows [B, *])."""
    outs = []
    if not reverse:
        ended, offset, live = [], 0, batch_sizes[0]
        for b in batch_sizes:
            if b < live:
                ended.append(_rows(state, b, live))
                state, live = _rows(state, 0, b), b
            state, h = step(gi[offset:offset + b], state)
            outs.append(h)
            offset += b
        if ended:
            parts = [state] + ended[::-1]
            state = tuple(F.cat([p[k] for p in parts], 0) for k in range(len(state)))
    else:
        first, offset, live = state, gi.shape[0], batch_sizes[-1]
        if live < batch_sizes[0]:
            state = _rows(first, 0, live)
        for b in reversed(batch_sizes):
            if b > live:
                state = tuple(F.cat([s, f[live:b]], 0) for s, f in zip(state, first))
                live = b
            offset -= b
            state, h = step(gi[offset:offset + b], state)
            outs.append(h)
        outs.reverse()
    return (F.cat(outs, 0) if len(outs) > 1 else outs[0]), state
