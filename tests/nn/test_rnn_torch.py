"""nn.RNN / LSTM / GRU and the cells against torch 2.13 with the same weights (torch's state_dict
loaded into the graphc module, keys matching): outputs, final states, and the gradients of a
weighted loss w.r.t. the input, the initial states and every parameter, over layers, batch_first,
bidirectional, proj_size, unbatched input, length-1 sequences, batch 1, bias=False, and packed
sequences of unequal lengths (sorted and not); dropout between layers; torch's errors; and
float64 gradchecks of the cells' math."""
import numpy as np
import pytest

import graphc as gc
import graphc.nn as nn
from graphc.nn.rnn_steps import STEPS
from graphc.testing import gradcheck

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning")

I, H = 3, 4


def npy(t):
    return np.array(t.detach().numpy(), copy=True)


def close(a, b, what, rtol=1e-5, atol=1e-6):
    a, b = npy(a), npy(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)


def pair(cls, *args, **kwargs):
    """A torch module and a graphc one holding torch's weights (loaded by its state_dict)."""
    t = getattr(torch.nn, cls)(*args, **kwargs)
    g = getattr(nn, cls)(*args, **kwargs)
    sd = t.state_dict()
    assert list(sd) == list(g.state_dict())
    g.load_state_dict({k: gc.tensor(v.numpy()) for k, v in sd.items()})
    return t, g


def leaves(arrays):
    """The same float32 arrays as torch and graphc leaves that require grad."""
    ts = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    gs = [None if a is None else gc.tensor(a, requires_grad=True) for a in arrays]
    return ts, gs


def flat(result):
    """(output, h_n) / (output, (h_n, c_n)) / a cell's h' or (h', c') as a list of tensors."""
    out = []
    for r in (result if isinstance(result, tuple) else (result,)):
        if isinstance(r, tuple) and not hasattr(r, "batch_sizes"):
            out.extend(r)
        else:
            out.append(r.data if hasattr(r, "batch_sizes") else r)
    return out


def check_against_torch(t, g, run_t, run_g, arrays, seed=1):
    """Run both, compare every result, then the gradients of sum(result_k * R_k) w.r.t. the
    input leaves and every parameter."""
    ts, gs = leaves(arrays)
    rt, rg = flat(run_t(*ts)), flat(run_g(*gs))
    assert len(rt) == len(rg)
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(tuple(r.shape)).astype(np.float32) for r in rt]
    for k, (a, b) in enumerate(zip(rg, rt)):
        close(a, b, f"result {k}")
    sum(torch.sum(r * torch.tensor(w)) for r, w in zip(rt, weights)).backward()
    sum((r * gc.tensor(w)).sum() for r, w in zip(rg, weights)).backward()
    for k, (a, b) in enumerate(zip(gs, ts)):
        if a is not None:
            close(a.grad, b.grad, f"grad of input {k}", atol=1e-5)
    gp = dict(g.named_parameters())
    for name, p in t.named_parameters():
        close(gp[name].grad, p.grad, f"grad of {name}", atol=1e-5)


def caller(module):
    """module(x), or module(x, hx) with hx the given states (a tuple of two for LSTM/LSTMCell)."""
    def go(x, *states):
        if not states:
            return module(x)
        return module(x, tuple(states) if len(states) == 2 else states[0])
    return go


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _states(cls, lead, batch, hidden, proj=0):
    h = _rand(*((lead,) if batch is None else (lead, batch)), proj or hidden, seed=5)
    if cls == "LSTM":
        return [h, _rand(*((lead,) if batch is None else (lead, batch)), hidden, seed=6)]
    return [h]


# (id, kwargs, seq len, batch (None: unbatched), pass initial states)
CONFIGS = [
    ("base", {}, 5, 3, False),
    ("hx", {}, 5, 3, True),
    ("two_layers", {"num_layers": 2}, 4, 3, True),
    ("batch_first", {"batch_first": True}, 4, 2, True),
    ("bidirectional", {"bidirectional": True}, 4, 3, True),
    ("two_layers_bidirectional", {"num_layers": 2, "bidirectional": True}, 4, 2, False),
    ("no_bias", {"bias": False, "num_layers": 2}, 3, 2, True),
    ("unbatched", {"num_layers": 2, "bidirectional": True}, 4, None, True),
    ("unbatched_zeros", {}, 4, None, False),
    ("seq_len_1", {"bidirectional": True}, 1, 3, True),
    ("batch_1", {"num_layers": 2, "batch_first": True}, 4, 1, True),
]
MODES = [("LSTM", {}), ("GRU", {}), ("RNN", {}), ("RNN", {"nonlinearity": "relu"})]


def _layer_case(cls, extra, kwargs, steps, batch, with_hx):
    t, g = pair(cls, I, H, **extra, **kwargs)
    dirs = 2 if kwargs.get("bidirectional") else 1
    lead = kwargs.get("num_layers", 1) * dirs
    if batch is None:
        x = _rand(steps, I)
    else:
        x = _rand(batch, steps, I) if kwargs.get("batch_first") else _rand(steps, batch, I)
    states = _states(cls, lead, batch, H, kwargs.get("proj_size", 0)) if with_hx else []
    check_against_torch(t, g, caller(t), caller(g), [x] + states)


@pytest.mark.parametrize("name,kwargs,steps,batch,with_hx", CONFIGS, ids=[c[0] for c in CONFIGS])
@pytest.mark.parametrize("cls,extra", MODES, ids=["LSTM", "GRU", "RNN_tanh", "RNN_relu"])
def test_layer_matches_torch(cls, extra, name, kwargs, steps, batch, with_hx):
    _layer_case(cls, extra, kwargs, steps, batch, with_hx)


@pytest.mark.parametrize("kwargs,batch,with_hx", [
    ({"proj_size": 2}, 3, True),
    ({"proj_size": 2, "num_layers": 2, "bidirectional": True}, 2, True),
    ({"proj_size": 3, "batch_first": True}, 2, False),
    ({"proj_size": 2, "bidirectional": True}, None, True),
], ids=["proj", "proj_two_layers_bidirectional", "proj_batch_first_zeros", "proj_unbatched"])
def test_lstm_proj_size_matches_torch(kwargs, batch, with_hx):
    _layer_case("LSTM", {}, kwargs, 4, batch, with_hx)


@pytest.mark.parametrize("enforce_sorted", [True, False], ids=["sorted", "unsorted"])
@pytest.mark.parametrize("cls,kwargs", [
    ("LSTM", {"num_layers": 2, "bidirectional": True}),
    ("LSTM", {"proj_size": 2, "bidirectional": True}),
    ("GRU", {"num_layers": 2, "bidirectional": True}),
    ("RNN", {"bidirectional": True, "batch_first": True}),
], ids=["LSTM", "LSTM_proj", "GRU", "RNN_batch_first"])
def test_packed_sequence_matches_torch(cls, kwargs, enforce_sorted):
    """Unequal lengths: the packed output, h_n at each sequence's own last step (both
    directions), the re-padded output, and gradients through packing into the padded input."""
    t, g = pair(cls, I, H, **kwargs)
    bf = kwargs.get("batch_first", False)
    lengths = [5, 3, 2, 1] if enforce_sorted else [2, 5, 1, 3]
    x = _rand(4, 5, I) if bf else _rand(5, 4, I)
    lead = kwargs.get("num_layers", 1) * 2
    states = _states(cls, lead, 4, H, kwargs.get("proj_size", 0))

    def run(lib, module):
        rnn = lib.nn.utils.rnn

        def go(x, *s):
            packed = rnn.pack_padded_sequence(x, lengths, batch_first=bf, enforce_sorted=enforce_sorted)
            out, hn = module(packed, tuple(s) if cls == "LSTM" else s[0])
            padded, lens = rnn.pad_packed_sequence(out, batch_first=bf, total_length=6)
            assert lens.tolist() == lengths
            return (padded, out.data) + (hn if cls == "LSTM" else (hn,))
        return go
    check_against_torch(t, g, run(torch, t), run(gc, g), [x] + states)


def test_packed_output_fields_match_torch():
    t, g = pair("GRU", I, H)
    x, lengths = _rand(4, 3, I), [2, 4, 1]
    tp = t(torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), lengths, enforce_sorted=False))[0]
    gp = g(gc.nn.utils.rnn.pack_padded_sequence(gc.tensor(x), lengths, enforce_sorted=False))[0]
    assert isinstance(gp, gc.nn.utils.rnn.PackedSequence)
    assert gp.batch_sizes.tolist() == tp.batch_sizes.tolist() == [3, 2, 1, 1]
    assert gp.sorted_indices.tolist() == tp.sorted_indices.tolist()
    assert gp.unsorted_indices.tolist() == tp.unsorted_indices.tolist()


# ---- cells ---------------------------------------------------------------------------------------
CELLS = [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}), ("LSTMCell", {}), ("GRUCell", {}),
         ("GRUCell", {"bias": False}), ("LSTMCell", {"bias": False})]


@pytest.mark.parametrize("batch,with_hx", [(3, True), (3, False), (None, True), (None, False), (1, True)],
                         ids=["batched", "batched_zeros", "unbatched", "unbatched_zeros", "batch_1"])
@pytest.mark.parametrize("cls,kwargs", CELLS, ids=["RNNCell", "RNNCell_relu", "LSTMCell", "GRUCell",
                                                   "GRUCell_no_bias", "LSTMCell_no_bias"])
def test_cell_matches_torch(cls, kwargs, batch, with_hx):
    t, g = pair(cls, I, H, **kwargs)
    lead = () if batch is None else (batch,)
    x = _rand(*lead, I)
    states = ([_rand(*lead, H, seed=2)] + ([_rand(*lead, H, seed=3)] if cls == "LSTMCell" else [])) if with_hx else []
    check_against_torch(t, g, caller(t), caller(g), [x] + states)


def test_cell_unrolled_over_time_matches_torch():
    """The time_sequence_prediction pattern: two LSTMCells stepped in a Python loop."""
    (t1, g1), (t2, g2) = pair("LSTMCell", 1, 5), pair("LSTMCell", 5, 5)
    x = _rand(2, 6)

    def run(lib, c1, c2):
        def go(x):
            h1 = c1_ = lib.zeros(2, 5)
            h2 = c2_ = lib.zeros(2, 5)
            outs = []
            for xt in x.split(1, dim=1):
                h1, c1_ = c1(xt, (h1, c1_))
                h2, c2_ = c2(h1, (h2, c2_))
                outs.append(h2)
            return lib.stack(outs, 1)
        return go
    ts, gs = leaves([x])
    close(run(gc, g1, g2)(*gs), run(torch, t1, t2)(*ts), "unrolled cells")


def _cell_fn(mode):
    """(x, h[, c], w_ih, w_hh, b_ih, b_hh) -> the new h (LSTM: h' + 2 c', so both are checked)."""
    step = STEPS[mode]

    def fn(x, h, *rest):
        state = (h, rest[0]) if mode == "LSTM" else (h,)
        w_ih, w_hh, b_ih, b_hh = rest[-4:]
        new, _ = step(gc.nn.functional.linear(x, w_ih, b_ih), state, w_hh, b_hh)
        return new[0] + 2 * new[1] if mode == "LSTM" else new[0]
    return fn


@pytest.mark.parametrize("mode", ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"])
def test_cell_math_gradcheck_float64(mode):
    """The step math's gradients w.r.t. input, state(s) and all four parameters, in float64,
    against central finite differences."""
    rng = np.random.default_rng(0)
    gates = {"LSTM": 4, "GRU": 3}.get(mode, 1) * 3
    shapes = [(2, 2), (2, 3)] + ([(2, 3)] if mode == "LSTM" else []) + [(gates, 2), (gates, 3), (gates,), (gates,)]
    inputs = [gc.tensor(rng.standard_normal(s) * 0.7, dtype=gc.float64) for s in shapes]
    assert gradcheck(_cell_fn(mode), inputs)


@pytest.mark.parametrize("cls", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cell_module_gradcheck_float64(cls):
    cell = getattr(nn, cls)(2, 3).double()
    x = gc.tensor(np.random.default_rng(1).standard_normal((2, 2)), dtype=gc.float64)
    h = gc.tensor(np.random.default_rng(2).standard_normal((2, 3)), dtype=gc.float64)
    if cls == "LSTMCell":
        assert gradcheck(lambda x, h, c: cell(x, (h, c))[1], [x, h, h * 0.5])
    else:
        assert gradcheck(lambda x, h: cell(x, h), [x, h])
