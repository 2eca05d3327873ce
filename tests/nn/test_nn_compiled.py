"""graphc.nn under gc.compile: every layer compiled == eager (outputs, and gradients through a
compiled forward+backward), dropout's counter-based RNG giving the same masks both ways, a conv
net training step compiled == eager over several steps (BatchNorm running stats written back,
Dropout masks, SGD), shape errors reported at trace time naming the layer, and train()/eval()
switches of a compiled module."""
import numpy as np
import pytest

import graphc as gc
import graphc.nn as nn
import graphc.nn.functional as F


def npy(t):
    return np.array(t.detach().numpy(), copy=True)


def close(a, b, rtol=1e-5, atol=1e-6, what=""):
    a = npy(a) if isinstance(a, gc.Tensor) else np.asarray(a)
    b = npy(b) if isinstance(b, gc.Tensor) else np.asarray(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)


def state(m):
    return {k: npy(v) for k, v in m.state_dict().items()}


def clone_module(make, seed=0):
    """Two identically initialised modules."""
    gc.manual_seed(seed)
    a = make()
    gc.manual_seed(seed)
    b = make()
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(npy(va), npy(vb), err_msg=k)
    return a, b


# (name, constructor, input shape or int-input maker)
LAYERS = [
    ("Linear", lambda: nn.Linear(5, 3), (4, 5)),
    ("Linear_nobias_3d", lambda: nn.Linear(5, 3, bias=False), (2, 4, 5)),
    ("Conv2d", lambda: nn.Conv2d(2, 3, 3), (2, 2, 6, 5)),
    ("Conv2d_stride_pad_dil", lambda: nn.Conv2d(2, 4, (3, 2), stride=2, padding=1, dilation=(2, 1)), (2, 2, 7, 6)),
    ("Conv2d_same_groups", lambda: nn.Conv2d(4, 4, 3, padding="same", groups=2, bias=False), (1, 4, 5, 5)),
    ("Conv2d_same_even", lambda: nn.Conv2d(2, 3, (2, 4), padding="same"), (1, 2, 5, 6)),
    ("MaxPool2d", lambda: nn.MaxPool2d(2), (2, 3, 6, 4)),
    ("MaxPool2d_pad", lambda: nn.MaxPool2d(3, stride=2, padding=1), (2, 3, 7, 6)),
    ("AvgPool2d", lambda: nn.AvgPool2d(3, 1, 1), (2, 3, 5, 4)),
    ("AvgPool2d_no_pad_count", lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 3, 5, 4)),
    ("AdaptiveAvgPool2d", lambda: nn.AdaptiveAvgPool2d((2, 3)), (2, 3, 6, 6)),
    ("AdaptiveAvgPool2d_nondiv", lambda: nn.AdaptiveAvgPool2d((3, 4)), (2, 3, 7, 5)),
    ("BatchNorm1d", lambda: nn.BatchNorm1d(3), (5, 3)),
    ("BatchNorm2d", lambda: nn.BatchNorm2d(3), (2, 3, 3, 2)),
    ("BatchNorm2d_cma", lambda: nn.BatchNorm2d(3, momentum=None), (2, 3, 3, 2)),
    ("LayerNorm", lambda: nn.LayerNorm((2, 4)), (3, 2, 4)),
    ("Flatten", lambda: nn.Flatten(), (2, 3, 2, 2)),
    ("Identity", lambda: nn.Identity(), (2, 3)),
    ("ReLU", lambda: nn.ReLU(), (3, 4)),
    ("LeakyReLU", lambda: nn.LeakyReLU(0.2), (3, 4)),
    ("GELU", lambda: nn.GELU(), (3, 4)),
    ("GELU_tanh", lambda: nn.GELU("tanh"), (3, 4)),
    ("Sigmoid", lambda: nn.Sigmoid(), (3, 4)),
    ("Tanh", lambda: nn.Tanh(), (3, 4)),
    ("Softmax", lambda: nn.Softmax(dim=1), (3, 4)),
    ("LogSoftmax", lambda: nn.LogSoftmax(dim=-1), (3, 4)),
    ("Embedding", lambda: nn.Embedding(7, 3, padding_idx=2), "idx"),
    ("Dropout", lambda: nn.Dropout(0.4), (6, 5)),
    ("Sequential", lambda: nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.LayerNorm(6), nn.Linear(6, 2)), (3, 4)),
]


def _input(spec, seed=0):
    if spec == "idx":
        return gc.tensor([[0, 2, 6], [2, 1, 1]])
    return gc.tensor(np.random.default_rng(seed).standard_normal(spec).astype(np.float32))


@pytest.mark.parametrize("name,make,spec", LAYERS, ids=[l[0] for l in LAYERS])
def test_layer_compiled_forward_matches_eager(name, make, spec):
    eager, comp = clone_module(make)
    for mode in ("train", "eval"):
        getattr(eager, mode)()
        getattr(comp, mode)()
        cm = gc.compile(comp)                 # switching modes under one compile: tests below
        for call in range(2):                 # the second call runs the cached executable
            x = _input(spec, seed=call)
            gc.manual_seed(10 + call)
            ye = eager(x)
            gc.manual_seed(10 + call)
            yc = cm(x)
            close(yc, ye, what=f"{name} {mode} call {call}")
            se, sc = state(eager), state(comp)   # buffers (running stats) written back
            for k in se:
                close(sc[k], se[k], what=f"{name} {mode} {k}")


@pytest.mark.parametrize("name,make,spec", LAYERS, ids=[l[0] for l in LAYERS])
def test_layer_compiled_gradients_match_eager(name, make, spec):
    """A compiled forward + backward (the autodiff pass) gives eager's parameter and input grads."""
    eager, comp = clone_module(make)
    x = _input(spec)
    floating = x.dtype.is_floating_point
    out_shape = tuple(eager(x).shape)
    cot = gc.tensor(np.random.default_rng(5).standard_normal(out_shape).astype(np.float32))
    eager, comp = clone_module(make)           # fresh running stats for both

    def step(module):
        def f(x):
            y = module(x)
            loss = (y * cot).sum()
            loss.backward()
            return loss
        return f

    results = []
    for module, fn in ((eager, step(eager)), (comp, gc.compile(step(comp)))):
        xi = x.detach().requires_grad_(True) if floating else x
        gc.manual_seed(3)
        loss = fn(xi)
        results.append((loss, {k: p.grad for k, p in module.named_parameters()}, xi.grad if floating else None))
    (le, ge, xe), (lc, gcomp, xc) = results
    close(lc, le, what=f"{name} loss")
    for k in ge:
        assert (ge[k] is None) == (gcomp[k] is None), k
        if ge[k] is not None:
            close(gcomp[k], ge[k], rtol=1e-5, atol=1e-5, what=f"{name} grad {k}")
    if floating:
        close(xc, xe, rtol=1e-5, atol=1e-5, what=f"{name} input grad")


# =================================================================================================
# dropout: the counter-based RNG draws the same masks eagerly and compiled
# =================================================================================================
def test_dropout_compiled_equals_eager_with_same_seed():
    x = gc.ones(40, 30)

    def f(x):
        return F.dropout(x, 0.3, True) + F.dropout(x * 2, 0.6, True)

    c = gc.compile(f)
    gc.manual_seed(42)
    eager = [npy(f(x)) for _ in range(3)]
    gc.manual_seed(42)
    comp = [npy(c(x)) for _ in range(3)]
    for e, k in zip(eager, comp):
        np.testing.assert_array_equal(k, e)
    assert not np.array_equal(comp[0], comp[1])        # the generator state is written back
    assert len(c.traces) == 1                          # ... without a retrace
    # and the state ends where eager's does
    gc.manual_seed(42)
    for _ in range(3):
        c(x)
    after_compiled = npy(gc.default_generator.state)
    gc.manual_seed(42)
    for _ in range(3):
        f(x)
    np.testing.assert_array_equal(after_compiled, npy(gc.default_generator.state))


def test_dropout_compiled_statistics_and_eval_identity():
    d = nn.Dropout(0.25)
    cd = gc.compile(d)
    gc.manual_seed(0)
    y = npy(cd(gc.ones(200, 200)))
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    d.eval()
    x = gc.randn(5, 5)
    np.testing.assert_array_equal(npy(cd(x)), npy(x))


def test_dropout_with_own_generator_compiled():
    g_e, g_c = gc.Generator().manual_seed(9), gc.Generator().manual_seed(9)
    x = gc.ones(8, 8)
    fc = gc.compile(lambda x: F.dropout(x, 0.5, True, generator=g_c))
    for _ in range(2):
        np.testing.assert_array_equal(npy(fc(x)), npy(F.dropout(x, 0.5, True, generator=g_e)))


# =================================================================================================
# a conv net training step: compiled == eager over several steps
# =================================================================================================
class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.25)
        self.fc = nn.Linear(6 * 2 * 2, 3)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))      # 8x8 -> 4x4
        x = self.pool(F.relu(self.conv2(x)))               # 4x4 -> 2x2
        return self.fc(self.drop(x.flatten(1)))


@pytest.mark.slow
def test_conv_net_training_step_compiled_equals_eager():
    def run(compiled):
        gc.manual_seed(0)
        model = ConvNet()
        opt = gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        gc.manual_seed(1)
        xs = [gc.randn(4, 1, 8, 8) for _ in range(2)]
        ys = [gc.randint(0, 3, (4,)) for _ in range(2)]

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        fn = gc.compile(step) if compiled else step
        gc.manual_seed(123)                                  # the dropout masks
        losses, stats = [], []
        for i in range(4):
            losses.append(float(fn(xs[i % 2], ys[i % 2]).item()))
            stats.append(state(model))
        return losses, stats, model, fn

    le, se, me, _ = run(False)
    lc, sc, mc, fn = run(True)
    np.testing.assert_allclose(lc, le, rtol=1e-5)
    assert len(set(np.round(le, 6))) == 4                   # the model really changes between steps
    for step_i, (a, b) in enumerate(zip(sc, se)):
        for k in b:
            close(a[k], b[k], rtol=1e-4, atol=1e-5, what=f"step {step_i}: {k}")
    # BatchNorm's running stats were written back by the compiled step
    assert int(mc.bn1.num_batches_tracked.item()) == 4
    assert np.abs(npy(mc.bn1.running_mean)).max() > 0
    assert not np.allclose(npy(mc.bn1.running_var), 1)
    text = fn.ir(gc.randn(4, 1, 8, 8), gc.randint(0, 3, (4,)))
    assert "bn1.running_mean" in text and "bn1.num_batches_tracked" in text and "update" in text
    assert "unfold" in text and "uniform" in text
    # eval mode afterwards: same predictions from both
    me.eval()
    mc.eval()
    x = gc.randn(3, 1, 8, 8)
    close(gc.compile(mc)(x), me(x), rtol=1e-5, atol=1e-5)


# =================================================================================================
# errors at trace time
# =================================================================================================
class BadNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3)                      # 16 -> 14
        self.conv2 = nn.Conv2d(8, 64, 3, padding=1)          # 14 -> 14
        self.pool = nn.MaxPool2d(2)                          # 14 -> 7
        self.fc = nn.Linear(64 * 8 * 8, 10)                  # expects 8x8 maps

    def forward(self, x):
        x = self.pool(F.relu(self.conv2(F.relu(self.conv1(x)))))
        return self.fc(x.flatten(1))


def test_shape_mismatch_fails_at_trace_time_naming_layer_and_shapes():
    model = BadNet()
    cm = gc.compile(model)
    with pytest.raises(Exception) as e:
        cm(gc.randn(2, 1, 16, 16))
    msg = str(e.value)
    assert "Linear" in msg and "'fc'" in msg, msg
    assert str(64 * 8 * 8) in msg, msg                      # what the layer expects
    assert str(64 * 7 * 7) in msg, msg                      # what it got
    assert "[2, 3136]" in msg, msg
    assert "3136 features" in msg and "expects 4096" in msg, msg


def test_shape_mismatch_error_is_the_same_eagerly():
    with pytest.raises(RuntimeError) as e:
        BadNet()(gc.randn(2, 1, 16, 16))
    msg = str(e.value)
    assert "Linear 'fc'" in msg and "4096" in msg and "3136" in msg


def test_conv_channel_mismatch_at_trace_time():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(5, 2, 3))
    with pytest.raises(Exception) as e:
        gc.compile(m)(gc.randn(1, 3, 8, 8))
    msg = str(e.value)
    assert "Conv2d" in msg and "'1'" in msg and "[1, 4, 6, 6]" in msg, msg


def test_norm_layer_mismatch_at_trace_time_names_layer():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(5))
    with pytest.raises(RuntimeError) as e:
        gc.compile(m)(gc.randn(2, 3, 8, 8))
    assert "BatchNorm2d '1'" in str(e.value) and "[2, 4, 6, 6]" in str(e.value)
    m = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(5))
    with pytest.raises(RuntimeError) as e:
        gc.compile(m)(gc.randn(2, 3))
    assert "LayerNorm '1'" in str(e.value) and "[2, 4]" in str(e.value)


# =================================================================================================
# train() / eval() on a compiled module
# =================================================================================================
def test_train_eval_switch_retraces_compiled_module():
    gc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2))
    cm = gc.compile(model)
    x = gc.randn(6, 4)
    cm(x)                                          # traced in training mode
    model.eval()
    rm = npy(model[1].running_mean)
    y_eval = cm(x)                                 # must not reuse the training-mode trace
    close(y_eval, model(x))                        # eval: no dropout, running stats
    np.testing.assert_array_equal(npy(model[1].running_mean), rm)   # not updated in eval
    np.testing.assert_array_equal(npy(cm(x)), npy(y_eval))          # deterministic in eval
    model.train()
    gc.manual_seed(5)
    y_train = cm(x)
    assert not np.array_equal(npy(y_train), npy(y_eval))
    assert len(cm._compiled.traces) >= 2


def test_train_eval_switch_of_a_submodule_retraces():
    gc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.9))
    cm = gc.compile(model)
    x = gc.randn(3, 4)
    cm(x)
    model[1].eval()                               # only the submodule
    close(cm(x), model(x))


def test_train_eval_switch_of_parameterless_module_retraces():
    model = nn.Sequential(nn.ReLU(), nn.Dropout(0.5))
    cm = gc.compile(model)
    x = gc.randn(6, 5)
    gc.manual_seed(0)
    y_train = cm(x)
    assert (npy(y_train) == 0).any()
    model.eval()
    close(cm(x), F.relu(x))                        # eval: dropout is the identity
    model.train()
    gc.manual_seed(0)
    np.testing.assert_array_equal(npy(cm(x)), npy(y_train))


@pytest.mark.slow
@pytest.mark.parametrize("p", [0.0, 0.25])
def test_compiled_model_with_eager_backward_and_optimizer(p):
    """model = gc.compile(model); loss.backward() and opt.step() eagerly: the same trajectory as
    the eager model (BatchNorm stats written back by the compiled forward, dropout masks equal)."""
    def run(compiled):
        gc.manual_seed(0)
        model = ConvNet()
        model.drop.p = p
        opt = gc.optim.SGD(model.parameters(), lr=0.05)
        fwd = gc.compile(model) if compiled else model
        gc.manual_seed(1)
        x, y = gc.randn(4, 1, 8, 8), gc.randint(0, 3, (4,))
        gc.manual_seed(7)
        losses = []
        for _ in range(3):
            opt.zero_grad()
            loss = F.cross_entropy(fwd(x), y)
            loss.backward()
            opt.step()
            losses.append(float(loss.item()))
        return losses, state(model)

    (le, se), (lc, sc) = run(False), run(True)
    np.testing.assert_allclose(lc, le, rtol=1e-5)
    for k in se:
        close(sc[k], se[k], rtol=1e-4, atol=1e-5, what=k)


def test_load_state_dict_and_dtype_change_after_compiling():
    gc.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).eval()
    cm = gc.compile(m)
    x = gc.randn(2, 1, 6, 6)
    cm(x)
    other = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    with gc.no_grad():
        other[1].running_mean.add_(0.5)
    m.load_state_dict(other.state_dict())      # in place: the compiled graph reads the new values
    close(cm(x), m(x))
    assert len(cm._compiled.traces) == 1
    m.double()                                 # new dtypes: a retrace
    y = cm(x.double())
    assert y.dtype is gc.float64
    close(y, m(x.double()))
    assert len(cm._compiled.traces) == 2


@pytest.mark.slow
@pytest.mark.parametrize("norm_type", [2.0, float("inf")])
def test_clip_grad_norm_inside_compiled_step(norm_type):
    def run(compiled):
        gc.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
        opt = gc.optim.SGD(model.parameters(), lr=0.5)
        x, y = gc.randn(6, 4) * 5, gc.randn(6, 2) * 5

        def step(x, y):
            opt.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            norm = nn.utils.clip_grad_norm_(model.parameters(), 0.5, norm_type)
            opt.step()
            return loss, norm
        fn = gc.compile(step) if compiled else step
        out = [tuple(float(v.item()) for v in fn(x, y)) for _ in range(3)]
        return out, state(model)

    (oe, se), (oc, sc) = run(False), run(True)
    np.testing.assert_allclose(oc, oe, rtol=1e-5)
    assert oe[0][1] > 0.5                                   # clipping really happened
    for k in se:
        close(sc[k], se[k], rtol=1e-5, atol=1e-6, what=k)


@pytest.mark.parametrize("backend", ["interp", "llvm"])
def test_grad_identity_follows_eager_semantics(backend):
    """zero_grad() (set_to_none) then backward: .grad is a new tensor after every step, eagerly
    and compiled (the compiled call hands over its fresh result, no copy). Accumulating into an
    existing .grad (no zero_grad) keeps the tensor and updates it in place, as torch does."""
    def make():
        gc.manual_seed(0)
        lin = gc.nn.Linear(6, 3)
        return lin, gc.optim.SGD(lin.parameters(), lr=0.1)
    x = gc.randn(4, 6)
    for compiled in (False, True):
        lin, opt = make()

        def step(x):
            opt.zero_grad()
            loss = lin(x).square().mean()
            loss.backward()
            opt.step()
            return loss
        f = gc.compile(step, backend=backend) if compiled else step
        f(x)
        seen = []
        for _ in range(3):
            f(x)
            seen.append(lin.weight.grad)
        assert len({id(g) for g in seen}) == 3, compiled          # a new tensor each step
        assert not np.shares_memory(seen[0].numpy(), seen[1].numpy())
        first = seen[0].numpy().copy()
        f(x)
        np.testing.assert_array_equal(seen[0].numpy(), first)      # old .grad tensors are left alone

        lin, _ = make()

        def accumulate(x):
            lin(x).square().mean().backward()
        g = gc.compile(accumulate, backend=backend) if compiled else accumulate
        g(x)
        kept = lin.weight.grad
        once = kept.numpy().copy()
        g(x)
        g(x)
        assert lin.weight.grad is kept, compiled                   # accumulated in place
        np.testing.assert_allclose(kept.numpy(), 3 * once, rtol=1e-5)
