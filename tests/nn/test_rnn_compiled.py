"""Recurrent layers under gc.compile == eager, on the interpreter and llvm here and on cuda in
numba's CUDA simulator (a subprocess: the simulator must be chosen before numba is first
imported): forwards (layers, bidirectional, packed), gradients through a compiled forward, and
word_language_model's training step (embedding -> LSTM/GRU -> linear -> cross_entropy, SGD or
Adam, clip_grad_norm_) with the hidden state carried between steps detached (repackage_hidden).
Also what fusion makes of a timestep: one GEMM kernel and one elementwise kernel."""
import os

import numpy as np
import pytest

import graphc as gc
import graphc.nn as nn
import graphc.nn.functional as F

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")   # the simulator's RNG hash
BACKENDS = ["cuda"] if SIM else ["interp", pytest.param("llvm", marks=pytest.mark.slow)]


def npy(t):
    return np.array(t.detach().numpy(), copy=True)


def close(a, b, what, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(npy(a), npy(b), rtol=rtol, atol=atol, err_msg=what)


def results(r):
    """(output, h_n) / (output, (h_n, c_n)), output maybe packed, as a flat list of tensors."""
    out, h = r
    out = out.data if isinstance(out, nn.utils.rnn.PackedSequence) else out
    return [out] + (list(h) if isinstance(h, tuple) else [h])


FORWARDS = [
    ("LSTM_2_layers_bidirectional", lambda: nn.LSTM(3, 4, num_layers=2, bidirectional=True), False),
    ("LSTM_proj_batch_first", lambda: nn.LSTM(3, 4, proj_size=2, batch_first=True), False),
    ("GRU_bidirectional", lambda: nn.GRU(3, 4, bidirectional=True), False),
    ("RNN_relu_2_layers", lambda: nn.RNN(3, 4, num_layers=2, nonlinearity="relu"), False),
    ("LSTM_packed_unsorted", lambda: nn.LSTM(3, 4, bidirectional=True), True),
    ("GRU_packed_unsorted", lambda: nn.GRU(3, 4, num_layers=2), True),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,make,packed", FORWARDS, ids=[f[0] for f in FORWARDS])
def test_forward_and_gradients_compiled_equal_eager(name, make, packed, backend):
    """Outputs and final states; then the gradients of a weighted sum through the compiled
    forward (eager backward through the compiled call) w.r.t. the input and the parameters."""
    gc.manual_seed(0)
    m = make()
    x = gc.tensor(np.random.default_rng(0).standard_normal((4, 3, 3)).astype(np.float32), requires_grad=True)
    lengths = [2, 4, 3]

    def f(x):
        if packed:
            p = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
            out, h = m(p)
            return tuple([nn.utils.rnn.pad_packed_sequence(out)[0]] + results((out, h))[1:])
        return tuple(results(m(x)))

    eager = f(x)
    compiled = gc.compile(f, backend=backend)(x)
    assert len(eager) == len(compiled)
    for k, (a, b) in enumerate(zip(compiled, eager)):
        close(a, b, f"result {k}")
    grads = []
    for outs in (eager, compiled):
        m.zero_grad()
        x.grad = None
        rng = np.random.default_rng(1)
        sum((o * gc.tensor(rng.standard_normal(tuple(o.shape)).astype(np.float32))).sum() for o in outs).backward()
        grads.append([npy(x.grad)] + [npy(p.grad) for p in m.parameters()])
        outs = None
    for k, (a, b) in enumerate(zip(grads[1], grads[0])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"gradient {k}")


@pytest.mark.skipif(SIM, reason="tracing only: the same on every backend")
def test_packed_lengths_must_be_known_while_tracing():
    """Lengths fix the packed shapes: a list or a tensor made outside the compiled function
    works (captured); a traced argument raises naming the argument and the user's line."""
    m = nn.GRU(3, 4)
    x = gc.randn(4, 2, 3)
    outside = gc.tensor([4, 2])

    def f(x, lengths):
        return m(nn.utils.rnn.pack_padded_sequence(x, lengths))[1]
    close(gc.compile(lambda x: f(x, outside), backend="interp")(x), f(x, outside), "captured lengths")
    with pytest.raises(RuntimeError, match="lengths must be known when the graph is traced"):
        gc.compile(f, backend="interp")(x, outside)


@pytest.mark.skipif(not SIM, reason="eager GPU mode: test_in_cuda_simulator runs it in the simulator")
def test_eager_on_cuda_tensors_equals_cpu():
    """A module moved to "cuda" and a packed cuda input: every op on the device (the sort
    permutation made on the input's device, as torch's), the same values as on the CPU."""
    gc.manual_seed(0)
    m = nn.LSTM(3, 4, bidirectional=True)
    x = gc.randn(4, 3, 3)

    def run(m, x):
        out, (h, c) = m(nn.utils.rnn.pack_padded_sequence(x, [2, 4, 3], enforce_sorted=False))
        return nn.utils.rnn.pad_packed_sequence(out)[0], h, c
    want = run(m, x)
    got = run(m.to("cuda"), x.to("cuda"))
    for a, b in zip(got, want):
        assert a.device.type == "cuda"
        close(a.cpu(), b, "cuda eager")


class WordModel(nn.Module):
    """word_language_model's RNNModel: encoder -> dropout -> rnn -> dropout -> decoder."""

    def __init__(self, rnn_type, ntoken=11, ninp=6, nhid=5, nlayers=2, dropout=0.2):
        super().__init__()
        self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output).view(-1, self.decoder.out_features)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        h = gc.zeros(self.nlayers, bsz, self.nhid)
        return (h, gc.zeros(self.nlayers, bsz, self.nhid)) if self.rnn_type == "LSTM" else h


def repackage_hidden(h):
    """Wraps hidden states in new Tensors, to detach them from their history."""
    if isinstance(h, gc.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def _train(rnn_type, optimizer, compiled, backend, steps=3, bptt=3, bsz=2):
    gc.manual_seed(0)
    model = WordModel(rnn_type)
    opt = optimizer(model.parameters())
    rng = np.random.default_rng(0)
    data = gc.tensor(rng.integers(0, 11, (steps * bptt + 1, bsz)))

    def step(inp, target, hidden):
        opt.zero_grad()
        output, hidden = model(inp, hidden)
        loss = F.nll_loss(output, target)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
        return loss, hidden

    fn = gc.compile(step, backend=backend) if compiled else step
    hidden, losses = model.init_hidden(bsz), []
    for i in range(0, steps * bptt, bptt):
        hidden = repackage_hidden(hidden)
        loss, hidden = fn(data[i:i + bptt], data[i + 1:i + 1 + bptt].reshape(-1), hidden)
        losses.append(float(loss.item()))
    if compiled:     # the carried hidden state is an argument: the graph is reused, not retraced
        assert len(fn.traces) <= 2, fn.explain()       # (Adam's state is created by the first)
    hidden = hidden if isinstance(hidden, tuple) else (hidden,)
    return losses, {k: npy(v) for k, v in model.state_dict().items()}, [npy(h) for h in hidden]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rnn_type,optimizer", [
    ("LSTM", lambda ps: gc.optim.SGD(ps, lr=20.0)),
    ("GRU", lambda ps: gc.optim.Adam(ps, lr=0.01)),
], ids=["LSTM_SGD", "GRU_Adam"])
def test_word_language_model_training_compiled_equals_eager(rnn_type, optimizer, backend):
    (le, se, he), (lc, sc, hc) = (_train(rnn_type, optimizer, c, backend) for c in (False, True))
    np.testing.assert_allclose(lc, le, rtol=1e-5)
    assert le[-1] != le[0]
    for k in se:
        np.testing.assert_allclose(sc[k], se[k], rtol=1e-4, atol=1e-5, err_msg=k)
    for a, b in zip(hc, he):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _kernels(graph):
    return [(n.attrs.get("kind"), {b.op for b in n.body.nodes}) for n in graph.nodes if n.body is not None]


@pytest.mark.skipif(SIM, reason="the fused graph is the same on every backend")
@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_each_timestep_fuses_into_one_gemm_and_one_elementwise_kernel(cls):
    """The input projection is one GEMM for all timesteps (bias as its epilogue); each step is
    then one h @ W_hh^T GEMM kernel and one pointwise kernel holding all the gate math."""
    steps = 5
    m = getattr(nn, cls)(3, 4)
    x = gc.randn(steps, 2, 3)
    f = gc.compile(lambda x: m(x)[0], backend="interp")
    kernels = _kernels(f.graph(x, stage="final"))
    gemms = [ops for kind, ops in kernels if kind == "matmul"]
    gates = [ops for kind, ops in kernels if kind == "pointwise" and "sigmoid" in ops]
    assert len(gemms) == steps + 1, kernels
    assert sum("add" in ops for ops in gemms) == 1           # x @ W_ih^T + b_ih
    assert len(gates) == steps and all("tanh" in ops for ops in gates), kernels
    assert all("matmul" not in ops for ops in gates)


@pytest.mark.slow
@pytest.mark.skipif(SIM, reason="the driver of the simulator run")
def test_in_cuda_simulator():
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install numba-cuda)")
    from cuda_subprocess import assert_simulator_run_passes
    assert_simulator_run_passes("test_rnn_compiled.py", "-k", "not simulator and not fuses and not lengths",
                                timeout=1200)
