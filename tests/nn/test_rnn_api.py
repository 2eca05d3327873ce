"""The recurrent layers' API as torch's: parameter names, shapes, order and init range, repr,
all_weights, flatten_parameters, dropout between layers (eval equals torch; training drops),
and torch's errors for bad arguments, inputs and states."""
import math

import numpy as np
import pytest

import graphc as gc
import graphc.nn as nn

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning")


def npy(t):
    return np.array(t.detach().numpy(), copy=True)


@pytest.mark.parametrize("cls,kwargs", [
    ("LSTM", {"num_layers": 2, "bidirectional": True, "proj_size": 2}),
    ("GRU", {"num_layers": 3, "bias": False}),
    ("RNN", {"num_layers": 2, "bidirectional": True, "nonlinearity": "relu"}),
    ("LSTMCell", {}), ("GRUCell", {"bias": False}), ("RNNCell", {"nonlinearity": "relu"}),
])
def test_parameters_names_shapes_order_and_repr_as_torch(cls, kwargs):
    t = getattr(torch.nn, cls)(3, 5, **kwargs)
    g = getattr(nn, cls)(3, 5, **kwargs)
    assert [(k, tuple(v.shape)) for k, v in g.named_parameters()] == \
        [(k, tuple(v.shape)) for k, v in t.named_parameters()]
    assert repr(g) == repr(t)
    bound = 1 / math.sqrt(5)
    for k, p in g.named_parameters():
        a = npy(p)
        assert a.dtype == np.float32 and np.all(np.abs(a) <= bound), k
    every = np.concatenate([npy(p).reshape(-1) for p in g.parameters()])
    assert abs(every.std() - bound / math.sqrt(3)) < 0.2 * bound      # uniform over the whole range


def test_torch_names_exist_and_all_weights():
    m = nn.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2)
    assert tuple(m.weight_ih_l0.shape) == (20, 3)
    assert tuple(m.weight_hh_l0_reverse.shape) == (20, 2)
    assert tuple(m.weight_ih_l1.shape) == (20, 4)
    assert tuple(m.weight_hr_l0.shape) == (2, 5)
    t = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2)
    assert [[tuple(w.shape) for w in ws] for ws in m.all_weights] == \
        [[tuple(w.shape) for w in ws] for ws in t.all_weights]
    assert m.flatten_parameters() is None
    assert nn.GRU(2, 3, dtype=gc.float64).weight_hh_l0.dtype is gc.float64


def test_double_module_runs_in_float64():
    m = nn.GRU(2, 3, num_layers=2).double()
    out, h = m(gc.randn(4, 2, 2, dtype=gc.float64))
    assert out.dtype is gc.float64 and h.dtype is gc.float64
    with pytest.raises(ValueError, match="input must have the type"):
        m(gc.randn(4, 2, 2))


def _pair(cls, *args, **kwargs):
    t = getattr(torch.nn, cls)(*args, **kwargs)
    g = getattr(nn, cls)(*args, **kwargs)
    g.load_state_dict({k: gc.tensor(v.numpy()) for k, v in t.state_dict().items()})
    return t, g


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_dropout_eval_equals_torch_and_training_drops(cls):
    t, g = _pair(cls, 3, 6, num_layers=3, dropout=0.5)
    x = np.random.default_rng(0).standard_normal((5, 4, 3)).astype(np.float32)
    t.eval(), g.eval()
    want = t(torch.tensor(x))[0].detach().numpy()
    np.testing.assert_allclose(npy(g(gc.tensor(x))[0]), want, rtol=1e-5, atol=1e-6)
    g.train()
    a, b = npy(g(gc.tensor(x))[0]), npy(g(gc.tensor(x))[0])
    assert not np.allclose(a, want) and not np.allclose(a, b)      # random, and not eval's


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_dropout_one_zeroes_the_input_of_the_next_layer(cls):
    """p=1 in training: layer 2 sees zeros (so it equals a 1-layer net with layer 2's weights on
    zeros); layer 1's final state is unaffected: dropout is between layers only."""
    gc.manual_seed(0)
    m = getattr(nn, cls)(3, 4, num_layers=2, dropout=1.0)
    top = getattr(nn, cls)(4, 4)
    first = getattr(nn, cls)(3, 4)
    top.load_state_dict({k.replace("_l1", "_l0"): v for k, v in m.state_dict().items() if "_l1" in k})
    first.load_state_dict({k: v for k, v in m.state_dict().items() if "_l0" in k})
    x = gc.randn(5, 2, 3)
    out, h = m(x)
    want_out, want_h = top(gc.zeros(5, 2, 4))
    np.testing.assert_allclose(npy(out), npy(want_out), rtol=1e-6, atol=1e-7)
    h0 = h[0][0] if cls == "LSTM" else h[0]
    first_h = first(x)[1]
    np.testing.assert_allclose(npy(h0), npy(first_h[0][0] if cls == "LSTM" else first_h[0]), rtol=1e-6)


def test_dropout_mask_statistics():
    """p=0.3 between two RNN layers: the second layer's input projection sees ~30% zeros, the
    rest scaled by 1/0.7 (checked through a layer-2 identity: W_ih = I, W_hh = 0, no bias, relu)."""
    m = nn.RNN(4, 4, num_layers=2, dropout=0.3, bias=False, nonlinearity="relu")
    with gc.no_grad():
        m.weight_ih_l0.copy_(gc.eye(4))
        m.weight_hh_l0.zero_()
        m.weight_ih_l1.copy_(gc.eye(4))
        m.weight_hh_l1.zero_()
    x = gc.rand(500, 8, 4) + 1.0
    out = npy(m(x)[0])
    zero = np.mean(out == 0)
    assert 0.27 < zero < 0.33, zero
    kept = out != 0
    np.testing.assert_allclose(out[kept], (npy(x) / 0.7)[kept], rtol=1e-5)


def test_dropout_warning_and_range():
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.LSTM(2, 3, dropout=0.2)
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.GRU(2, 3, num_layers=2, dropout=1.5)


@pytest.mark.parametrize("make,exc,match", [
    (lambda: nn.GRU(2, 3, proj_size=1), ValueError, "proj_size argument is only supported for LSTM"),
    (lambda: nn.LSTM(2, 3, proj_size=3), ValueError, "proj_size has to be smaller than hidden_size"),
    (lambda: nn.LSTM(2, 3, proj_size=-1), ValueError, "proj_size should be a positive integer"),
    (lambda: nn.RNN(2, 3, nonlinearity="gelu"), ValueError, "Unknown nonlinearity 'gelu'"),
    (lambda: nn.RNNCell(2, 3, nonlinearity="gelu"), ValueError, "Unknown nonlinearity"),
    (lambda: nn.LSTM(2, 0), ValueError, "hidden_size must be greater than zero"),
    (lambda: nn.LSTM(2, 3, num_layers=0), ValueError, "num_layers must be greater than zero"),
    (lambda: nn.LSTM(2, 3.0), TypeError, "hidden_size should be of type int"),
])
def test_bad_arguments_raise_as_torch(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("call,exc,match", [
    (lambda: nn.LSTM(2, 3)(gc.randn(2, 3, 4, 2)), ValueError, "LSTM: Expected input to be 2D or 3D, got 4D"),
    (lambda: nn.GRU(2, 3)(gc.randn(4, 3, 5)), RuntimeError, "input.size\\(-1\\) must be equal to input_size. "
                                                           "Expected 2, got 5"),
    (lambda: nn.GRU(2, 3)(gc.randn(4, 3, 2), gc.randn(1, 2, 3)), RuntimeError,
     "Expected hidden size \\(1, 3, 3\\), got \\[1, 2, 3\\]"),
    (lambda: nn.LSTM(2, 3)(gc.randn(4, 3, 2), (gc.randn(1, 3, 3), gc.randn(1, 3, 2))), RuntimeError,
     "Expected hidden\\[1\\] size \\(1, 3, 3\\), got \\[1, 3, 2\\]"),
    (lambda: nn.RNN(2, 3)(gc.randn(4, 2), gc.randn(1, 1, 3)), RuntimeError,
     "For unbatched 2-D input, hx should also be 2-D but got 3-D tensor"),
    (lambda: nn.LSTM(2, 3)(gc.randn(4, 1, 2), (gc.randn(1, 3), gc.randn(1, 3))), RuntimeError,
     "For batched 3-D input, hx and cx should also be 3-D but got \\(2-D, 2-D\\) tensors"),
    (lambda: nn.LSTMCell(2, 3)(gc.randn(2, 2, 2)), ValueError, "LSTMCell: Expected input to be 1D or 2D, got 3D"),
    (lambda: nn.GRUCell(2, 3)(gc.randn(4, 2), gc.randn(5, 3)), RuntimeError,
     "Input batch size 4 doesn't match hidden0 batch size 5"),
    (lambda: nn.RNNCell(2, 3)(gc.randn(4, 3)), RuntimeError, "input has inconsistent input_size: got 3 expected 2"),
    (lambda: nn.LSTMCell(2, 3)(gc.randn(4, 2), (gc.randn(4, 3), gc.randn(4, 2))), RuntimeError,
     "hidden1 has inconsistent hidden_size: got 2, expected 3"),
    (lambda: nn.GRUCell(2, 3)(gc.randn(4, 2), gc.randn(4)), RuntimeError, "Expected hidden0 to be 2D as the input"),
    (lambda: nn.LSTM(2, 3)(gc.randn(0, 2, 2)), RuntimeError, "Expected sequence length to be larger than 0"),
])
def test_bad_inputs_raise_as_torch(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_import_paths_as_torch():
    import graphc as torchlike
    from graphc.nn.utils.rnn import pack_padded_sequence, PackedSequence   # noqa: F401
    assert torchlike.nn.utils.rnn.pad_sequence is gc.nn.utils.rnn.pad_sequence
    assert callable(torchlike.nn.utils.clip_grad_norm_) and callable(torchlike.nn.utils.clip_grad_value_)
    for name in ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"):
        assert issubclass(getattr(torchlike.nn, name), nn.Module)
