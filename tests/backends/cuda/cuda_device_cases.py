"""cuda tensors in numba's CUDA simulator: devices, eager GPU ops, compiled calls, modules.

Not collected by the main test run (the simulator must be chosen before numba is first
imported): tests/backends/cuda/test_cuda_devices.py runs this module in a subprocess with
NUMBA_ENABLE_CUDASIM=1. Alone: NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/backends/cuda/cuda_device_cases.py
Shapes are tiny: the simulator runs every CUDA thread as a Python thread.
"""
import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip("run with NUMBA_ENABLE_CUDASIM=1 (tests/backends/cuda/test_cuda_devices.py does)", allow_module_level=True)
pytest.importorskip("numba_cuda", reason="numba-cuda is not installed")

import graphc as gc                                       # noqa: E402
import graphc.nn as nn                                    # noqa: E402
import graphc.nn.functional as F                          # noqa: E402
from graphc.backends.cuda import eager                    # noqa: E402
from graphc.backends.cuda.device_array import DeviceArray  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
MIX = "Expected all tensors to be on the same device, but found at least two devices, {} and {}!"


def on_device(t):
    """t's storage is a device array (numba's, or the simulator's stand-in), not host memory."""
    d = t._data
    return (type(d) is DeviceArray and not isinstance(d.flat, np.ndarray)
            and hasattr(d.flat, "copy_to_host") and t.device == gc.device("cuda:0") and t.is_cuda)


def same(a, b, rtol=1e-5, atol=1e-6):
    assert a.dtype == b.dtype and tuple(a.shape) == tuple(b.shape), (a.dtype, b.dtype, a.shape, b.shape)
    x, y = a.detach().cpu().numpy(), b.detach().cpu().numpy()
    if x.dtype.kind == "f":
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, equal_nan=True)
    else:
        np.testing.assert_array_equal(x, y)


# ---- devices ------------------------------------------------------------------------------------------
def test_cuda_module():
    assert gc.cuda.is_available() and gc.cuda.device_count() == 1 and gc.cuda.current_device() == 0
    gc.cuda.synchronize()
    r = gc.cuda.launch_overhead_us(n=3)
    assert r["correct"] and r["numba_dispatch_us"] > 0 and r["graphc_prepared_us"] > 0
    assert r["eager_path"] == r["prepared_path"] == "numba dispatch"      # the simulator has no kernels


@pytest.mark.parametrize("dt", [gc.float32, gc.float64, gc.int64, gc.bool])
def test_round_trip(dt):
    x = gc.tensor(np.arange(-3, 3).reshape(2, 3), dtype=dt)
    c = x.to("cuda")
    assert on_device(c) and str(c.device) == "cuda:0" and c.dtype is dt and not x.is_cuda
    assert c.to("cuda") is c and c.cuda() is c and x.cpu() is x and x.to("cpu") is x
    back = c.cpu()
    assert type(back._data) is np.ndarray and back.device == gc.device("cpu")
    np.testing.assert_array_equal(back.numpy(), x.numpy())
    np.testing.assert_array_equal(c.numpy(), x.numpy())               # numpy() copies to the host
    assert c.tolist() == x.tolist() and "device='cuda:0'" in repr(c)
    assert gc.tensor(2.5, device="cuda").item() == 2.5 and gc.tensor(2.5, device="cuda").shape == ()
    assert on_device(x.to("cuda", gc.float64)) and x.to("cuda", gc.float64).dtype is gc.float64
    assert on_device(x.to(c)) and c.to(x).device == gc.device("cpu")


def test_creation_on_device():
    for t in (gc.zeros(2, 3, device="cuda"), gc.ones(3, device="cuda"), gc.full((2,), 7.0, device="cuda"),
              gc.arange(5, device="cuda"), gc.eye(3, device="cuda"), gc.tensor([1, 2], device="cuda"),
              gc.zeros_like(gc.ones(2, device="cuda")), gc.empty(2, device="cuda")):
        assert on_device(t), t
    np.testing.assert_array_equal(gc.full((2,), 7.0, device="cuda").numpy(), [7.0, 7.0])
    np.testing.assert_array_equal(gc.eye(3, device="cuda").numpy(), np.eye(3, dtype=np.float32))
    for fn in (lambda d: gc.randn(3, 4, device=d), lambda d: gc.rand(5, device=d),
               lambda d: gc.randint(0, 9, (6,), device=d)):
        gc.manual_seed(3)
        a = fn("cuda")
        gc.manual_seed(3)
        b = fn(None)
        assert on_device(a)
        same(a, b)            # the same numbers as on the CPU: counter-based, bit-exact uniform


def test_mixing_devices_raises_torch_error():
    a, b = gc.randn(3, device="cuda"), gc.randn(3)
    with pytest.raises(RuntimeError, match=MIX.format("cuda:0", "cpu")):
        a + b
    with pytest.raises(RuntimeError, match=MIX.format("cpu", "cuda:0")):
        b * a
    with pytest.raises(RuntimeError, match="same device"):
        gc.randn(2, 3, device="cuda") @ gc.randn(3, 2)
    with pytest.raises(RuntimeError, match="same device"):
        b.add_(a)
    # Python scalars and 0-d CPU tensors mix freely (as in torch)
    same(a * 2 + 1, (a.cpu() * 2 + 1))
    same(a * gc.tensor(3.0), a.cpu() * 3.0)
    assert on_device(a * gc.tensor(3.0))


def test_views_and_in_place():
    x = gc.arange(6, dtype=gc.float32, device="cuda")
    r = x.reshape(2, 3)
    assert r._data.flat is x._data.flat and r._base is x              # reshape aliases
    r.add_(1)
    np.testing.assert_array_equal(x.numpy(), np.arange(6) + 1)
    with pytest.raises(NotImplementedError, match="unsupported on cuda"):
        r.t().mul_(2)                   # a permute is a copy on cuda: writing into it is refused
    with pytest.raises(NotImplementedError, match="unsupported on cuda"):
        x[0] = 5.0
    y = gc.zeros(6)
    y.copy_(x)                          # copy_ moves across devices, as in torch
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    x.zero_()
    assert on_device(x) and not x.numpy().any()


def test_unsupported_op_raises_naming_it(monkeypatch):
    from graphc.backends.cuda import codegen
    from graphc.ops.registry import PRIMITIVES

    def refuse(k):
        raise NotImplementedError("no sin today")
    monkeypatch.setattr(codegen, "check_kernel", refuse)
    monkeypatch.setattr(eager, "_KERNELS", {})
    with pytest.raises(NotImplementedError, match="'sin' is unsupported on cuda"):
        eager.run(PRIMITIVES["sin"], [DeviceArray.from_host(np.ones(2, np.float32))], {})


# ---- eager ops: cuda == cpu -----------------------------------------------------------------------------
def _pair(*shapes, dtype=gc.float32, positive=False, seed=0):
    rng = np.random.default_rng(seed)
    cpu = []
    for s in shapes:
        a = rng.standard_normal(s)
        a = np.abs(a) + 0.1 if positive else a
        cpu.append(gc.tensor(a, dtype=dtype))
    return cpu, [t.cuda() for t in cpu]


def check_op(fn, cpu, dev, rtol=1e-5, atol=1e-6):
    want, got = fn(*cpu), fn(*dev)
    for w, g in zip(want if isinstance(want, tuple) else (want,), got if isinstance(got, tuple) else (got,)):
        assert on_device(g), fn
        same(g, w, rtol, atol)


def test_elementwise():
    cpu, dev = _pair((2, 3), (2, 3), positive=True)
    for fn in (lambda a, b: a + b, lambda a, b: a - 2 * b, lambda a, b: a * b, lambda a, b: a / b,
               lambda a, b: a ** b, lambda a, b: gc.maximum(a, b), lambda a, b: gc.minimum(a, b),
               lambda a, b: a // b, lambda a, b: a % b, lambda a, b: gc.where(a > b, a, b),
               lambda a, b: (a < b) | (a >= b * 2), lambda a, b: (a == b) & (a != 1)):
        check_op(fn, cpu, dev)
    for fn in (gc.exp, gc.log, gc.sqrt, gc.rsqrt, gc.tanh, gc.sigmoid, gc.sin, gc.cos, gc.erf, gc.floor,
               gc.abs, gc.neg, gc.sign, F.relu, F.gelu, lambda a: a.clamp(0.5, 1.0)):
        check_op(fn, cpu[:1], dev[:1])
    ci, di = _pair((5,), dtype=gc.int64)
    check_op(lambda a: (a * 3 - 1, a.abs(), a.to(gc.float32), a > 0), ci, di)
    cd, dd = _pair((4,), dtype=gc.float64)
    check_op(lambda a: (a.exp(), a.to(gc.float32), a.to(gc.int64)), cd, dd, rtol=1e-13, atol=1e-13)


def test_reductions():
    cpu, dev = _pair((3, 4))
    for fn in (lambda a: a.sum(), lambda a: a.sum(1), lambda a: a.mean(0, keepdim=True), lambda a: a.amax(1),
               lambda a: a.argmax(1), lambda a: a.max(0), lambda a: a.var(1), lambda a: a.logsumexp(1),
               lambda a: F.softmax(a, -1), lambda a: F.log_softmax(a, 0), lambda a: F.layer_norm(a, (4,))):
        check_op(fn, cpu, dev)


def test_movement_and_indexing():
    cpu, dev = _pair((2, 3, 4))
    for fn in (lambda a: a.permute(2, 0, 1), lambda a: a.transpose(0, 1), lambda a: a[:, 1:, ::2],
               lambda a: a.reshape(6, 4), lambda a: a[0].t(), lambda a: gc.cat([a, a * 2], 1),
               lambda a: gc.stack([a, a], 0), lambda a: F.pad(a, (1, 2)), lambda a: a[:, :1].expand(2, 3, 4),
               lambda a: a.unsqueeze(0).squeeze(0), lambda a: a.flatten(1)):
        check_op(fn, cpu, dev)
    check_op(lambda a: (a[[1, 0]], a[a > 0], a[:, gc.tensor([2, 0], device=a.device)], a[1, ..., 2]), cpu, dev)
    with pytest.raises(IndexError, match="index 5 is out of bounds"):
        dev[0][gc.tensor([0, 5], device="cuda")]
    idx = gc.tensor([[0, 2, 1], [1, 1, 0]])
    check_op(lambda a, i: gc.gather(a[:, 0, :3], 1, i), [cpu[0], idx], [dev[0], idx.cuda()])


def test_matmul():
    for (sa, sb) in (((3, 4), (4, 2)), ((2, 3, 4), (2, 4, 5)), ((4,), (4, 3))):
        cpu, dev = _pair(sa, sb)
        check_op(lambda a, b: a @ b, cpu, dev, rtol=1e-5, atol=1e-5)
    cpu, dev = _pair((4, 3), (2, 3))
    check_op(lambda a, b: a @ b.t(), cpu, dev, atol=1e-5)
    check_op(lambda a, b: F.linear(a, b), cpu, dev, atol=1e-5)


def test_autograd_on_device():
    cpu, dev = _pair((3, 4), (4,), dtype=gc.float64)
    for group in (cpu, dev):
        for t in group:
            t.requires_grad_(True)
        (F.gelu(group[0] * group[1]).sum(1).tanh() * F.softmax(group[0], 1)[:, 0]).sum().backward()
    for c, d in zip(cpu, dev):
        assert on_device(d.grad)
        same(d.grad, c.grad, 1e-12, 1e-12)
    x = gc.randn(3, requires_grad=True)
    y = x.to("cuda")                       # the device move is differentiable
    assert y.grad_fn is not None
    (y * 2).sum().backward()
    assert x.grad.device == gc.device("cpu") and np.allclose(x.grad.numpy(), 2)


def test_pow_with_a_python_exponent_backward_on_device():
    """x ** 3 takes a host scalar exponent; its gradient (y * x ** (y - 1)) and a p-norm's
    stay on the device instead of raising the mixed-device error."""
    cpu, dev = _pair((3, 4), dtype=gc.float64)
    for t in (cpu[0], dev[0]):
        t.requires_grad_(True)
        ((t ** 3).sum() + t.norm(p=3) + (t.abs() ** 0.5).sum()).backward()
    assert on_device(dev[0].grad)
    same(dev[0].grad, cpu[0].grad, 1e-12, 1e-12)


def test_dropout_on_device():
    x = gc.ones(2, 4, device="cuda")
    gc.manual_seed(0)
    a = F.dropout(x, 0.5)
    gc.manual_seed(0)
    b = F.dropout(x.cpu(), 0.5)
    assert on_device(a)
    same(a, b)
    # compiled: the generator's CPU state (i64[2]) is copied in and its advance copied back, so
    # a compiled cuda step draws the same stream as eager and CPU code
    f = gc.compile(lambda x: F.dropout(x, 0.5))
    gc.manual_seed(0)
    c = [f(x) for _ in range(2)]
    gc.manual_seed(0)
    e = [F.dropout(x.cpu(), 0.5) for _ in range(2)]
    for got, want in zip(c, e):
        assert on_device(got)
        same(got, want)
    with pytest.raises(RuntimeError, match="argument 'w' is on cpu"):    # other CPU state still may not mix
        w = gc.ones(2, 4)
        gc.compile(lambda x: x * w)(x)


def test_kernels_are_cached():
    a = gc.randn(2, 2, device="cuda")
    a + a
    n = eager.cache_info()["kernels"]
    for _ in range(3):
        a + a
    assert eager.cache_info()["kernels"] == n


# ---- training: eager and compiled --------------------------------------------------------------------------
def _train(dev, opt_name, dtype=gc.float32, compiled=False, steps=2, move_after_optimizer=False):
    gc.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3)).to(dtype)
    if not move_after_optimizer:
        model.to(dev)
    opt = (gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if opt_name == "sgd"
           else gc.optim.Adam(model.parameters(), lr=0.05))
    if move_after_optimizer:
        model.to(dev)                      # the optimizer holds the same parameter objects
    gc.manual_seed(1)
    x, y = gc.randn(4, 5, dtype=dtype, device=dev), gc.randint(0, 3, (4,), device=dev)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    f = gc.compile(step) if compiled else step
    losses = []
    for _ in range(steps):
        loss = f(x, y)
        assert loss.device == gc.device(dev)
        losses.append(loss.item())
    for p in model.parameters():
        assert p.device == gc.device(dev) and p.grad.device == gc.device(dev)
    for st in opt.state.values():
        for k, v in st.items():
            if k != "step":
                assert v.device == gc.device(dev), k
    return losses, {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("opt_name,dtype", [("sgd", gc.float32), ("adam", gc.float32), ("sgd", gc.float64)])
def test_mlp_training_step_eager(opt_name, dtype):
    tol = 1e-5 if dtype is gc.float32 else 1e-12
    la, sa = _train("cuda", opt_name, dtype, move_after_optimizer=opt_name == "sgd")
    lb, sb = _train("cpu", opt_name, dtype)
    np.testing.assert_allclose(la, lb, rtol=tol)
    assert la[0] != la[1]
    for k in sb:
        np.testing.assert_allclose(sa[k], sb[k], rtol=tol, atol=tol, err_msg=k)


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_mlp_training_step_compiled(opt_name):
    la, sa = _train("cuda", opt_name, compiled=True, steps=3)
    lb, sb = _train("cpu", opt_name, compiled=True, steps=3)      # the interpreter
    np.testing.assert_allclose(la, lb, rtol=1e-5)
    for k in sb:
        np.testing.assert_allclose(sa[k], sb[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_compiled_outputs_stay_on_device_and_backward():
    x = gc.randn(2, 3, device="cuda", requires_grad=True)
    w = gc.randn(3, device="cuda")
    f = gc.compile(lambda x: (F.gelu(x * w), (x.exp() * w).sum()))
    a, s = f(x)
    assert on_device(a) and on_device(s)
    s.backward()
    assert on_device(x.grad)
    xc = x.detach().cpu().requires_grad_(True)
    (xc.exp() * w.cpu()).sum().backward()
    same(x.grad, xc.grad)
    same(a, F.gelu(xc * w.cpu()).detach())
    g = gc.compile(lambda x, v: x * v)
    with pytest.raises(RuntimeError, match=r"same device.*argument 'v'"):
        g(gc.randn(3, device="cuda"), gc.randn(3))
    assert on_device(g(gc.randn(3, device="cuda"), gc.randn(3, device="cuda")))
    same(g(gc.ones(3), gc.ones(3)), gc.ones(3))          # the same function still runs on the CPU


def test_compiled_state_bound_in_place_and_aliased_inputs():
    def make(dev):
        w = gc.arange(4, dtype=gc.float32, device=dev)

        def f(v):
            w.add_(v.sum())
            return w * 2
        return w, gc.compile(f)
    wc, fc = make("cuda")
    w0, f0 = make("cpu")
    storage = wc._data.flat
    for v_c, v_0 in ((gc.ones(4, device="cuda"), gc.ones(4)), (gc.full((4,), 2.0, device="cuda"), gc.full((4,), 2.0))):
        same(fc(v_c), f0(v_0))
        same(wc, w0)
    assert wc._data.flat is storage                  # updated in its own device memory (bound)
    # an argument sharing storage with the captured state: every input copied, state copied back
    same(fc(wc.reshape(2, 2).reshape(4)), f0(w0.reshape(2, 2).reshape(4)))
    same(wc, w0)
    same(fc(gc.ones(4, device="cuda")), f0(gc.ones(4)))   # and bound again
    same(wc, w0)


def test_compiled_with_cuda_backend_options():
    f = gc.compile(lambda x: (x * 2).sum(0), backend="cuda", block=3, red_block=2)
    x = gc.randn(4, 3)
    same(f(x.cuda()), (x * 2).sum(0))
    same(f(x), (x * 2).sum(0))


# ---- modules and checkpoints ------------------------------------------------------------------------------
def test_module_to_and_back():
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    params = list(m.parameters())
    m.cuda()
    assert [id(p) for p in m.parameters()] == [id(p) for p in params]
    assert all(on_device(t) for t in list(m.parameters()) + list(m.buffers()))
    out = m(gc.randn(5, 3, device="cuda"))
    assert on_device(out)
    out.sum().backward()
    m.cpu()
    assert all(t.device == gc.device("cpu") for t in list(m.parameters()) + list(m.buffers()))
    assert all(p.grad.device == gc.device("cpu") for p in m.parameters())


def test_layers_built_on_device():
    for make in (lambda d: nn.Linear(3, 2, device=d), lambda d: nn.LayerNorm(4, device=d),
                 lambda d: nn.BatchNorm1d(2, device=d), lambda d: nn.Embedding(5, 2, device=d),
                 lambda d: nn.Conv2d(1, 2, 2, device=d)):
        gc.manual_seed(4)
        a = make("cuda")
        gc.manual_seed(4)
        b = make(None)
        for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert on_device(x), k
            same(x, y)
    m = nn.Linear(3, 2, device="cuda")
    gc.manual_seed(5)
    m.reset_parameters()                     # nn.init writes the CPU's numbers into device memory
    gc.manual_seed(5)
    c = nn.Linear(3, 2)
    gc.manual_seed(5)
    c.reset_parameters()
    same(m.weight, c.weight)
    assert on_device(m.weight)


def test_state_dict_save_load(tmp_path):
    gc.manual_seed(0)
    m = nn.Linear(3, 2).cuda()
    path = tmp_path / "m.gc"
    gc.save(m.state_dict(), path)
    sd = gc.load(path)
    assert all(t.device == gc.device("cpu") for t in sd.values())
    np.testing.assert_array_equal(sd["weight"].numpy(), m.weight.detach().cpu().numpy())
    m2 = nn.Linear(3, 2).cuda()
    m2.load_state_dict(sd)
    assert on_device(m2.weight)
    np.testing.assert_array_equal(m2.weight.detach().numpy(), sd["weight"].numpy())
    m3 = nn.Linear(3, 2)
    m3.load_state_dict(m.state_dict())          # cuda tensors into a CPU model
    np.testing.assert_array_equal(m3.bias.detach().numpy(), m.bias.detach().cpu().numpy())
