"""The torch.nn surface of issue 15 under gc.compile: a representative set of every family
compiled on the interpreter and llvm (and, in a subprocess, numba's CUDA simulator:
tests/nn/test_nn_surface_cuda_cases.py) equal to eager, values and input/parameter gradients of
a compiled forward+backward; and a compiled training step of a small model using several of
them (GroupNorm, PReLU, SmoothL1Loss) matching eager step for step."""
import numpy as np
import pytest

import graphc as gc
import graphc.nn as nn
import graphc.nn.functional as F

BACKENDS = ["interp", "llvm"]


def npy(t):
    return np.array(t.detach().numpy(), copy=True)


def _x(*shape, seed=0, scale=2.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


EDGE = np.array([0.0, -0.0, 1e-8, -1e-7, 0.3, -0.5, 1.0, -1.0, 3.0, -3.0, 6.0, 20.0, -20.0, 30.0, -30.0, 100.0])

# (name, make: () -> (function of tensors, list of numpy inputs; float ones are differentiated))
CASES = [
    ("elu_selu_celu", lambda: (lambda x: F.elu(x) + F.selu(x) * 2 + F.celu(x, 0.7), [EDGE])),
    ("hardtanh_relu6_threshold", lambda: (lambda x: F.hardtanh(x, -2, 3) * F.relu6(x) + F.threshold(x, 0.5, -1.0),
                                          [EDGE])),
    ("softplus_logsigmoid_mish", lambda: (lambda x: F.softplus(x) - F.logsigmoid(x) + F.mish(x)
                                          + F.softplus(x, 2.0, 5.0), [EDGE])),
    ("hard_shrinks_softsign", lambda: (lambda x: F.hardswish(x) + F.hardsigmoid(x) + F.softshrink(x)
                                       + F.hardshrink(x, 0.2) + F.softsign(x) + F.tanhshrink(x), [EDGE])),
    ("glu_softmin", lambda: (lambda x: F.softmin(F.glu(x, 1), dim=-1), [_x(3, 6, 2)])),
    ("prelu_module", lambda: (nn.PReLU(3, init=-0.3), [_x(2, 3, 4)])),
    ("inplace_activations", lambda: (_inplace_chain, [EDGE])),
    ("smooth_l1_huber_kl", lambda: (lambda x, y: F.smooth_l1_loss(x, y, beta=0.5) + F.huber_loss(x, y, "sum", 0.7)
                                    + F.kl_div(x, F.softmax(y, 1), reduction="batchmean")
                                    + F.kl_div(x, y, reduction="sum", log_target=True), [_x(4, 5), _x(4, 5, seed=1)])),
    ("margin_losses", lambda: (lambda a, b, c, y: F.cosine_embedding_loss(a, b, y, 0.1)
                               + F.margin_ranking_loss(a[:, 0], b[:, 0], y, 0.2, reduction="sum")
                               + F.triplet_margin_loss(a, b, c, swap=True)
                               + F.hinge_embedding_loss(a, y[:, None] * gc.ones(4, 3)),
                               [_x(4, 3), _x(4, 3, seed=1), _x(4, 3, seed=2), np.array([1.0, -1.0, -1.0, 1.0])])),
    ("nll_style_losses", lambda: (lambda x, t, v: F.poisson_nll_loss(x, t, full=True)
                                  + F.multilabel_soft_margin_loss(x, F.sigmoid(t))
                                  + F.soft_margin_loss(x * 10, t, reduction="sum") + F.gaussian_nll_loss(x, t, v),
                                  [_x(3, 4), np.abs(_x(3, 4, seed=1)), np.abs(_x(3, 4, seed=2)) + 0.01])),
    ("distances", lambda: (lambda a, b: F.cosine_similarity(a, b, dim=-1)[:, None] * F.normalize(a, p=1)
                           + F.pairwise_distance(a, b, keepdim=True) + F.pairwise_distance(a, b, 3.0, keepdim=True),
                           [_x(4, 5), _x(4, 5, seed=1)])),
    ("group_norm", lambda: (nn.GroupNorm(2, 4), [_x(3, 4, 5)])),
    ("instance_norm_running", lambda: (nn.InstanceNorm2d(3, affine=True, track_running_stats=True), [_x(2, 3, 2, 3)])),
    ("rms_layer_norm", lambda: (nn.Sequential(nn.RMSNorm(6), nn.LayerNorm(6, bias=False), nn.RMSNorm((2, 6), 1e-3)),
                                [_x(4, 2, 6)])),
    ("dropouts", lambda: (lambda x: F.dropout1d(x, 0.3) + F.alpha_dropout(x, 0.2, True)
                          + F.feature_alpha_dropout(x, 0.4, True) + F.dropout2d(x[..., None], 0.5)[..., 0]
                          + F.rrelu(x, training=True),
                          [_x(4, 6, 5)])),
    ("pads", lambda: (lambda x: F.pad(x, (2, 1, 1, 2), "reflect") + F.pad(x, (2, 1, 1, 2), "replicate")
                      + F.pad(x, (2, 1, 1, 2), "circular") + F.pad(x, (2, 1, 1, 2), value=0.5),
                      [_x(2, 3, 4, 5)])),
    ("pad_layers_crop", lambda: (nn.Sequential(nn.ReflectionPad1d((2, -1)), nn.CircularPad1d(1), nn.ZeroPad1d(1),
                                               nn.ReplicationPad1d((0, 3))), [_x(2, 3, 5)])),
    ("conv_padding_modes", lambda: (nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"),
                                                  nn.Conv2d(3, 2, 3, padding="same", padding_mode="circular")),
                                    [_x(1, 2, 5, 4)])),
    ("embedding_bag_modes", lambda: (_Bags(), [np.array([1, 4, 4, 0, 7, 2, 9, 2, 5]), np.array([0, 3, 3, 6]),
                                               _x(9)])),
]


class _Bags(nn.Module):
    """EmbeddingBag in every mode, with an empty bag, padding and per-sample weights; a
    ParameterList/ParameterDict scale."""

    def __init__(self):
        super().__init__()
        gc.manual_seed(0)
        self.mean = nn.EmbeddingBag(10, 3)
        self.max = nn.EmbeddingBag(10, 3, mode="max", padding_idx=2)
        self.sum = nn.EmbeddingBag(10, 3, mode="sum")
        self.scales = nn.ParameterList([gc.full((3,), 0.5), gc.full((3,), 2.0)])
        self.shift = nn.ParameterDict({"b": gc.full((3,), 0.1)})

    def forward(self, idx, offsets, psw):
        y = self.mean(idx, offsets) * self.scales[0] + self.max(idx, offsets) * self.scales[1]
        return y + self.sum(idx, offsets, per_sample_weights=psw) + self.shift["b"]


def _inplace_chain(x):
    """inplace=True inside a compiled function: the writes into an intermediate trace."""
    h = x * 1.5
    F.elu(h, inplace=True)
    F.hardtanh(h, -0.5, 2.0, inplace=True)
    nn.Mish(inplace=True)(h)
    return h * 2 + F.relu(x, inplace=False)


def _run(fn, arrays, backend=None, dtype=np.float32):
    xs = [gc.tensor(a.astype(dtype), requires_grad=True) if a.dtype.kind == "f" else gc.tensor(a) for a in arrays]
    params = list(fn.parameters()) if isinstance(fn, nn.Module) else []
    for p in params:
        p.grad = None

    def step(*xs):
        y = fn(*xs)
        cot = gc.tensor(np.random.default_rng(1).standard_normal(tuple(y.shape)).astype(dtype))
        (y * cot).sum().backward()
        return y
    gc.manual_seed(0)                 # the dropouts draw the same masks eagerly and compiled
    y = (gc.compile(step, backend=backend) if backend else step)(*xs)
    grads = [x.grad for x in xs if x.requires_grad] + [p.grad for p in params]
    return [npy(y)] + [None if g is None else npy(g) for g in grads]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_compiled_equals_eager(name, make, backend):
    fn, arrays = make()
    want = _run(fn, arrays)
    got = _run(fn, arrays, backend)
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"{name} on {backend}: output {i}")


# =================================================================================================
# a compiled training step of a small model built from the new layers == eager, step for step
# =================================================================================================
def _act_model():
    return nn.Sequential(nn.Linear(4, 6), nn.PReLU(6), nn.Linear(6, 6), nn.ELU(0.5), nn.Hardswish(),
                         nn.Linear(6, 2), nn.LogSigmoid()), nn.MSELoss(), (5, 4), (5, 2)


def _groupnorm_prelu_smoothl1():
    return (nn.Sequential(nn.Linear(4, 8), nn.GroupNorm(2, 8), nn.PReLU(8), nn.Linear(8, 2)),
            nn.SmoothL1Loss(beta=0.5), (5, 4), (5, 2))


def _instancenorm_dropout_huber():
    return (nn.Sequential(nn.Unflatten(1, (4, 3)), nn.InstanceNorm1d(4, affine=True, track_running_stats=True),
                          nn.Dropout1d(0.25), nn.Flatten(), nn.Linear(12, 2), nn.Softplus()),
            nn.HuberLoss(delta=0.5), (6, 12), (6, 2))


TRAIN_CASES = {"activations": _act_model, "groupnorm_prelu_smoothl1": _groupnorm_prelu_smoothl1,
               "instancenorm_dropout_huber": _instancenorm_dropout_huber}


def _train(name, backend, steps=3):
    gc.manual_seed(0)
    model, loss_fn, xs, ys = TRAIN_CASES[name]()
    opt = gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = gc.tensor(_x(*xs, seed=1).astype(np.float32))
    y = gc.tensor(_x(*ys, seed=2).astype(np.float32))

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss
    f = gc.compile(step, backend=backend) if backend else step
    out = {f"loss{i}": npy(f(x, y)) for i in range(steps)}
    out.update({k: npy(v) for k, v in model.state_dict().items()})
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(TRAIN_CASES))
def test_compiled_training_step_equals_eager(name, backend):
    want, got = _train(name, None), _train(name, backend)
    assert len({float(want[f"loss{i}"]) for i in range(3)}) == 3        # it trains
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=f"{k} on {backend}")


@pytest.mark.slow
def test_cuda_simulator():
    """Every case above, and the training steps, on the cuda backend in numba's CUDA simulator."""
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install numba-cuda)")
    from cuda_subprocess import assert_simulator_run_passes
    assert_simulator_run_passes("test_nn_surface_cuda_cases.py")


@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_compiled_float64_equals_eager(name, make):
    fn, arrays = make()
    if isinstance(fn, nn.Module):
        fn.double()
    want = _run(fn, arrays, dtype=np.float64)
    got = _run(fn, arrays, "llvm", dtype=np.float64)
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13, err_msg=f"{name} float64 on llvm: output {i}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make", [lambda: nn.InstanceNorm1d(3, affine=True, track_running_stats=True),
                                  lambda: nn.Sequential(nn.Dropout1d(0.3), nn.RReLU(), nn.AlphaDropout(0.2)),
                                  lambda: nn.Sequential(nn.GroupNorm(3, 3), nn.FeatureAlphaDropout(0.4))],
                         ids=["instance_norm_stats", "dropout1d_rrelu_alpha", "groupnorm_feature_alpha"])
def test_compiled_module_train_eval_switch(make, backend):
    """gc.compile(module): train() then eval() retraces (the guard on the training flag); each
    call equals eager, and the running statistics are written back as eagerly."""
    gc.manual_seed(0)
    eager = make()
    gc.manual_seed(0)
    comp = make()
    cm = gc.compile(comp, backend=backend)
    for mode in ("train", "eval", "train"):
        getattr(eager, mode)(), getattr(comp, mode)()
        for call in range(2):
            x = gc.tensor(_x(4, 3, 5, seed=call).astype(np.float32))
            gc.manual_seed(10 + call)
            want = npy(eager(x))
            gc.manual_seed(10 + call)
            np.testing.assert_allclose(npy(cm(x)), want, rtol=1e-5, atol=1e-6, err_msg=f"{mode} call {call}")
            for k, v in eager.state_dict().items():
                np.testing.assert_allclose(npy(comp.state_dict()[k]), npy(v), rtol=1e-6, atol=1e-7, err_msg=k)
