"""A small model zoo run both ways: the compiled training step (interpreter backend) must give
the eager results, step after step -- losses and parameters equal to 1e-5 relative in float32,
tighter in float64. Where torch is installed, the MLP step is also checked against torch."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc

F = gc.nn.functional

DTYPES = [pytest.param(gc.float32, 1e-5, id="f32"), pytest.param(gc.float64, 1e-11, id="f64")]


def arr(t):
    return np.array(t.detach().numpy(), copy=True)


def assert_close(a, b, rtol, what=""):
    a = arr(a) if isinstance(a, gc.Tensor) else np.asarray(a)
    b = arr(b) if isinstance(b, gc.Tensor) else np.asarray(b)
    scale = max(float(np.abs(b).max()) if b.size else 0.0, 1e-3)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg=what)


def run_both(build, steps, rtol):
    """build(compiled) -> (step function, data args, parameters). Run `steps` steps each way
    from identical starting points; compare losses and parameters after every step."""
    gc.manual_seed(0)
    step_e, args_e, params_e = build(False)
    gc.manual_seed(0)
    step_c, args_c, params_c = build(True)
    for p, q in zip(params_e, params_c):
        assert_close(q, p, 0.0, "identical start")
    compiled = gc.compile(step_c)
    for k in range(steps):
        le, lc = step_e(*args_e), compiled(*args_c)
        assert_close(lc, le, rtol, f"loss at step {k}")
        for i, (p, q) in enumerate(zip(params_e, params_c)):
            assert_close(q, p, rtol, f"parameter {i} after step {k}")
    compiled.args = args_c
    return compiled


# ---- linear regression: MSE, manual SGD ----------------------------------------------------------

@pytest.mark.parametrize("dtype,rtol", DTYPES)
def test_linear_regression_manual_sgd(dtype, rtol):
    def build(compiled):
        w = gc.zeros(5, 1, dtype=dtype, requires_grad=True)
        b = gc.zeros(1, dtype=dtype, requires_grad=True)
        x = gc.randn(64, 5, dtype=dtype)
        y = x @ gc.tensor([[1.0], [-2.0], [0.5], [3.0], [0.0]], dtype=dtype) + 0.7

        def step(x, y, lr):
            loss = F.mse_loss(x @ w + b, y)
            loss.backward()
            with gc.no_grad():
                w.sub_(lr * w.grad)
                b.sub_(lr * b.grad)
            w.grad = None
            b.grad = None
            return loss
        return step, (x, y, 0.1), [w, b]

    c = run_both(build, 6, rtol)
    assert len(c.traces) == 1
    ir = c.ir(*c.args)
    assert "update w <- %" in ir and "update b <- %" in ir


# ---- the MLP classifier: Linear, relu, cross_entropy, SGD with momentum --------------------------

class MLP(gc.nn.Module):
    def __init__(self, dtype=None):
        super().__init__()
        self.fc1 = gc.nn.Linear(784, 128, dtype=dtype)
        self.fc2 = gc.nn.Linear(128, 10, dtype=dtype)

    def forward(self, x):
        return self.fc2(gc.relu(self.fc1(x)))


@pytest.mark.slow
@pytest.mark.parametrize("dtype,rtol", DTYPES)
def test_mlp_classifier_sgd_momentum(dtype, rtol):
    def build(compiled):
        model = MLP(dtype)
        opt = gc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        x = gc.randn(16, 784, dtype=dtype)
        y = gc.randint(0, 10, (16,))

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        return step, (x, y), list(model.parameters())

    c = run_both(build, 4, rtol)
    # first call: momentum buffers are created; then one more trace with them present, reused
    assert len(c.traces) <= 2
    ir = c.ir(*c.args)
    assert "momentum_buffer" in ir and "update model.fc1.weight <- %" in ir


def test_mlp_compiled_step_matches_torch():
    torch = pytest.importorskip("torch")
    gc.manual_seed(0)
    model = MLP(gc.float64)
    opt = gc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = gc.randn(16, 784, dtype=gc.float64)
    y = gc.randint(0, 10, (16,))
    tm = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)).double()
    with torch.no_grad():
        for tp, p in zip(tm.parameters(), model.parameters()):
            tp.copy_(torch.from_numpy(arr(p)))
    topt = torch.optim.SGD(tm.parameters(), lr=0.05, momentum=0.9)
    tx, ty = torch.from_numpy(arr(x)), torch.from_numpy(arr(y))

    @gc.compile
    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):
        loss = step(x, y)
        topt.zero_grad()
        tl = torch.nn.functional.cross_entropy(tm(tx), ty)
        tl.backward()
        topt.step()
        assert_close(loss, tl.detach().numpy(), 1e-10)
    for tp, p in zip(tm.parameters(), model.parameters()):
        assert_close(p, tp.detach().numpy(), 1e-10)


# ---- a tanh net trained with a gradient penalty (higher-order gradients) -------------------------

class TanhNet(gc.nn.Module):
    def __init__(self, dtype):
        super().__init__()
        self.l1 = gc.nn.Linear(3, 16, dtype=dtype)
        self.l2 = gc.nn.Linear(16, 1, dtype=dtype)

    def forward(self, x):
        return self.l2(gc.tanh(self.l1(x)))


@pytest.mark.parametrize("dtype,rtol", DTYPES)
def test_tanh_net_with_input_gradient_penalty(dtype, rtol):
    def build(compiled):
        net = TanhNet(dtype)
        opt = gc.optim.SGD(net.parameters(), lr=0.05)
        x = gc.randn(8, 3, dtype=dtype)
        y = gc.randn(8, 1, dtype=dtype)

        def step(x, y):
            x = x.detach().requires_grad_()
            out = net(x)
            dx, = gc.autograd.grad(out.sum(), x, create_graph=True)
            loss = F.mse_loss(out, y) + 0.1 * (dx * dx).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss
        return step, (x, y), list(net.parameters())

    c = run_both(build, 4, rtol)
    assert len(c.traces) == 2       # .grad None at the first call, a tensor after it


@pytest.mark.slow
@pytest.mark.parametrize("dtype,rtol", DTYPES)
def test_tanh_net_with_functional_second_derivative(dtype, rtol):
    """gc.grad nested inside the compiled step: the loss penalises d2(out)/dx2."""
    def build(compiled):
        w1 = gc.randn(1, 8, dtype=dtype, requires_grad=True)
        w2 = gc.randn(8, 1, dtype=dtype, requires_grad=True)
        x = gc.randn(10, 1, dtype=dtype)

        def u(x):
            return (gc.tanh(x @ w1) @ w2).sum()

        def step(x):
            d2 = gc.grad(lambda a: gc.grad(u)(a).sum())(x)
            loss = (d2 * d2).mean() + 0.01 * u(x) ** 2
            loss.backward()
            with gc.no_grad():
                w1.sub_(0.01 * w1.grad)
                w2.sub_(0.01 * w2.grad)
            w1.grad = None
            w2.grad = None
            return loss
        return step, (x,), [w1, w2]

    run_both(build, 3, rtol)


# ---- compiled module forward, eager backward -----------------------------------------------------

@pytest.mark.parametrize("dtype,rtol", DTYPES)
def test_compiled_module_forward_and_eager_training(dtype, rtol):
    gc.manual_seed(0)
    model = TanhNet(dtype)
    gc.manual_seed(0)
    twin = TanhNet(dtype)
    cmodel = gc.compile(model)
    assert cmodel.l1 is model.l1 and "TanhNet" in repr(cmodel)
    opt, opt2 = gc.optim.SGD(model.parameters(), lr=0.1), gc.optim.SGD(twin.parameters(), lr=0.1)
    x, y = gc.randn(8, 3, dtype=dtype), gc.randn(8, 1, dtype=dtype)
    for _ in range(3):
        out = cmodel(x)
        assert out.grad_fn is not None
        loss = F.mse_loss(out, y)
        opt.zero_grad()
        loss.backward()                         # eager backward through the compiled forward
        opt.step()
        loss2 = F.mse_loss(twin(x), y)
        opt2.zero_grad()
        loss2.backward()
        opt2.step()
        assert_close(loss, loss2, rtol)
        for p, q in zip(model.parameters(), twin.parameters()):
            assert_close(p, q, rtol)
    assert len(cmodel._compiled.traces) == 1
    with gc.no_grad():
        assert_close(cmodel(x), twin(x), rtol)
    assert "tanh" in cmodel.ir(x)


# ---- several outputs, dicts, Python values -------------------------------------------------------

def test_multiple_outputs_dicts_and_python_scalars():
    gc.manual_seed(0)
    model = MLP()
    x, y = gc.randn(4, 784), gc.randint(0, 10, (4,))

    def evaluate(x, y, tag):
        with gc.no_grad():
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            pred = logits.argmax(1)
            correct = (pred == y).sum()
        return {"loss": loss, "pred": pred, "correct": correct, "tag": tag, "n": x.shape[0]}, logits

    c = gc.compile(evaluate)
    for tag in ("a", "a", "b"):
        (got, logits), (want, wlogits) = c(x, y, tag), evaluate(x, y, tag)
        assert got.keys() == want.keys()
        assert got["tag"] == tag and got["n"] == 4
        assert got["pred"].dtype == gc.int64 and got["correct"].dtype == gc.int64
        assert np.array_equal(arr(got["pred"]), arr(want["pred"]))
        assert int(got["correct"].item()) == int(want["correct"].item())
        assert_close(got["loss"], want["loss"], 1e-6)
        assert_close(logits, wlogits, 1e-6)
        assert not logits.requires_grad
    assert len(c.traces) == 2                   # a new Python string retraces
