"""graphc.nn, eagerly: the Module API, every layer and loss against torch (forward, input and
parameter gradients), default initialisation statistics, nn.init, gradient clipping, dropout
statistics and finite-difference gradchecks of the layer composites.

Tests that compare with torch call `_torch()` (pytest.importorskip) first, so the rest of the
module runs and passes where torch is not installed."""
import math
import warnings
from collections import OrderedDict

import numpy as np
import pytest

import graphc as gc
import graphc.nn as nn
import graphc.nn.functional as F
from graphc.testing import gradcheck

F32 = dict(rtol=1e-5, atol=1e-5)


def _torch():
    return pytest.importorskip("torch")


def rng(seed=0):
    return np.random.default_rng(seed)


def arr(*shape, seed=0, dtype=np.float32):
    return rng(seed).standard_normal(shape).astype(dtype)


def close(g, t, rtol=1e-5, atol=1e-5, what=""):
    """A graphc tensor (or ndarray) equals a torch tensor (or ndarray) in shape and values."""
    gv = g.detach().numpy() if isinstance(g, gc.Tensor) else np.asarray(g)
    tv = t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)
    assert gv.shape == tv.shape, (what, gv.shape, tv.shape)
    np.testing.assert_allclose(gv, tv, rtol=rtol, atol=atol, err_msg=what)


def copy_into_torch(gm, tm):
    """Load graphc module gm's parameters and buffers into torch module tm (same names)."""
    torch = _torch()
    sd = {k: torch.from_numpy(v.detach().numpy().copy()) for k, v in gm.state_dict().items()}
    tm.load_state_dict(sd, strict=True)


def compare_layer(gm, tm, *inputs, rtol=1e-5, atol=1e-5, grad_input=True, steps=1, seed=1):
    """Same weights; same inputs; compare outputs, the input gradient and every parameter gradient
    under a random cotangent, and the buffers afterwards. Repeats `steps` times (running stats)."""
    torch = _torch()
    copy_into_torch(gm, tm)
    for s in range(steps):
        gx, tx = [], []
        for a in inputs:
            a = a if isinstance(a, np.ndarray) else np.asarray(a)
            want = grad_input and a.dtype.kind == "f"
            g = gc.tensor(a.copy())
            t = torch.from_numpy(a.copy())
            if want:
                g.requires_grad_(True)
                t.requires_grad_(True)
            gx.append(g)
            tx.append(t)
        gm.zero_grad()
        tm.zero_grad()
        gy, ty = gm(*gx), tm(*tx)
        close(gy, ty, rtol, atol, f"{type(gm).__name__} output (step {s})")
        if gy.dtype.is_floating_point and (gy.requires_grad or ty.requires_grad):
            cot = rng(seed + s).standard_normal(tuple(gy.shape)).astype(gy.detach().numpy().dtype)
            gy.backward(gc.tensor(cot))
            ty.backward(torch.from_numpy(cot))
            for g, t in zip(gx, tx):
                if t.requires_grad:
                    close(g.grad, t.grad, rtol, atol, f"{type(gm).__name__} input grad")
            tparams = dict(tm.named_parameters())
            for name, p in gm.named_parameters():
                close(p.grad, tparams[name].grad, rtol, atol, f"{type(gm).__name__} grad of {name}")
        tbufs = dict(tm.named_buffers())
        for name, b in gm.named_buffers():
            close(b, tbufs[name], rtol, atol, f"{type(gm).__name__} buffer {name}")
    return gy, ty


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.bn = nn.BatchNorm1d(3)
        self.block = nn.Sequential(nn.ReLU(), nn.Linear(3, 2, bias=False))

    def forward(self, x):
        return self.block(self.bn(self.fc1(x)))


# =================================================================================================
# Module API
# =================================================================================================
def test_parameters_buffers_children_modules():
    m = Net()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "block.1.weight"]
    assert len(list(m.parameters())) == 5
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in m.parameters())
    assert [n for n, _ in m.named_buffers()] == ["bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert len(list(m.buffers())) == 3
    assert [n for n, _ in m.named_children()] == ["fc1", "bn", "block"]
    assert list(m.children()) == [m.fc1, m.bn, m.block]
    assert [n for n, _ in m.named_modules()] == ["", "fc1", "bn", "block", "block.0", "block.1"]
    assert len(list(m.modules())) == 6
    assert [n for n, _ in m.named_parameters(recurse=False)] == []
    assert [n for n, _ in m.fc1.named_parameters(prefix="x")] == ["x.weight", "x.bias"]


def test_shared_parameter_and_module_listed_once():
    a = nn.Linear(2, 2)
    m = nn.Sequential(a, a)
    assert len(list(m.parameters())) == 2
    assert [n for n, _ in m.named_modules()] == ["", "0"]     # as torch
    bn = nn.BatchNorm1d(2)
    assert len(list(nn.Sequential(bn, bn).buffers())) == 3


def test_attribute_reassignment_and_delete():
    m = nn.Module()
    m.w = nn.Parameter(gc.zeros(2))
    assert "w" in dict(m.named_parameters())
    with pytest.raises(TypeError):
        m.w = 3          # as torch: a registered parameter takes a Parameter or None
    del m.w
    m.w = 3              # after deleting it, a plain attribute
    assert m.w == 3 and "w" not in dict(m.named_parameters())
    m.sub = nn.Linear(1, 1)
    del m.sub
    assert list(m.children()) == []
    with pytest.raises(AttributeError):
        m.nothing


def test_parameter():
    p = nn.Parameter(gc.ones(2, 3))
    assert isinstance(p, gc.Tensor) and isinstance(p, nn.Parameter)
    assert p.requires_grad and p.is_leaf and p.grad is None
    assert p.shape == (2, 3) and p.dtype is gc.float32
    assert repr(p).startswith("Parameter containing:\n")
    q = nn.Parameter(gc.ones(2), requires_grad=False)
    assert not q.requires_grad
    (p * 2).sum().backward()
    np.testing.assert_array_equal(p.grad.detach().numpy(), np.full((2, 3), 2, np.float32))


def test_train_eval():
    m = Net()
    assert m.training and all(x.training for x in m.modules())
    assert m.eval() is m
    assert not m.training and not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    m.train(False)
    assert not m.block[0].training


def test_to_device(monkeypatch):
    monkeypatch.setattr(gc.cuda, "_AVAILABLE", False)      # as on a machine without CUDA
    m = Net()
    assert m.to("cpu") is m and m.cpu() is m
    assert m.to(gc.device("cpu")) is m
    with pytest.raises(Exception, match="(?i)cuda"):
        m.to("cuda")
    with pytest.raises(Exception, match="(?i)cuda"):
        m.to("cuda:0")
    with pytest.raises(Exception, match="(?i)cuda"):
        m.to("cuda", gc.float64)
    with pytest.raises(Exception, match="(?i)cuda"):
        m.to(gc.float64, device="cuda")
    assert m.fc1.weight.dtype is gc.float32               # a failed .to() changes nothing
    assert nn.Linear(2, 2, device="cpu").weight.shape == (2, 2)
    for make in (lambda d: nn.Linear(2, 2, device=d), lambda d: nn.Conv2d(1, 1, 1, device=d),
                 lambda d: nn.BatchNorm1d(2, device=d), lambda d: nn.LayerNorm(2, device=d),
                 lambda d: nn.Embedding(3, 2, device=d)):
        make("cpu")
        with pytest.raises(Exception, match="(?i)cuda"):
            make("cuda")


def test_to_dtype_double_float():
    m = Net()
    w = m.fc1.weight
    before = w.detach().numpy().copy()
    m(gc.randn(5, 4)).sum().backward()
    g_before = w.grad.detach().numpy().copy()
    m.to(gc.float64)
    assert w.grad.dtype is gc.float64                      # grads are cast too (as torch)
    np.testing.assert_allclose(w.grad.detach().numpy(), g_before)
    assert all(p.dtype is gc.float64 for p in m.parameters())
    assert m.bn.running_mean.dtype is gc.float64 and m.bn.running_var.dtype is gc.float64
    assert m.bn.num_batches_tracked.dtype is gc.int64     # integer buffers keep their dtype
    assert m.fc1.weight is w                               # in place: same Parameter object
    np.testing.assert_allclose(w.detach().numpy(), before)
    y = m(gc.randn(5, 4, dtype=gc.float64))
    assert y.dtype is gc.float64
    m.float()
    assert all(p.dtype is gc.float32 for p in m.parameters())
    m.double()
    assert all(p.dtype is gc.float64 for p in m.parameters())
    with pytest.raises(TypeError):
        m.to(gc.int64)


def test_zero_grad():
    m = Net()
    m(gc.randn(5, 4)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.detach().numpy().any() for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_requires_grad_and_apply():
    m = Net()
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen[-1] == "Net" and "Linear" in seen


STATE_KEYS = ["fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
              "bn.num_batches_tracked", "block.1.weight"]


def test_state_dict_roundtrip():
    gc.manual_seed(0)
    a, b = Net(), Net()
    a.bn.running_mean.add_(1.5)
    sd = a.state_dict()
    assert list(sd) == STATE_KEYS                          # torch's order: per module, params then buffers
    assert not any(t.requires_grad for t in sd.values())
    w = b.fc1.weight
    res = b.load_state_dict(sd)
    assert list(res.missing_keys) == [] and list(res.unexpected_keys) == []
    assert b.fc1.weight is w                               # copied in place
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v.detach().numpy(), sd[k].detach().numpy())
    # the loaded values are copies: changing the source afterwards does not change b
    with gc.no_grad():
        a.fc1.weight.add_(1.0)
    assert not np.array_equal(a.fc1.weight.detach().numpy(), b.fc1.weight.detach().numpy())
    # state_dict tensors share storage with the module (as torch's do)
    sd2 = b.state_dict()
    sd2["bn.running_var"].mul_(2)
    np.testing.assert_array_equal(b.bn.running_var.detach().numpy(), sd2["bn.running_var"].detach().numpy())
    x = gc.randn(3, 4)
    b.eval()
    a2 = Net()
    a2.load_state_dict(b.state_dict())
    a2.eval()
    np.testing.assert_allclose(a2(x).detach().numpy(), b(x).detach().numpy())


def test_state_dict_keys_match_torch():
    torch = _torch()

    class TNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(4, 3)
            self.bn = torch.nn.BatchNorm1d(3)
            self.block = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(3, 2, bias=False))
    assert list(Net().state_dict()) == list(TNet().state_dict())
    # and a graphc state dict loads into the torch model and back
    g, t = Net(), TNet()
    copy_into_torch(g, t)
    g2 = Net()
    g2.load_state_dict({k: gc.tensor(v.detach().numpy()) for k, v in t.state_dict().items()})
    for k, v in g2.state_dict().items():
        np.testing.assert_array_equal(v.detach().numpy(), g.state_dict()[k].detach().numpy())


def test_state_dict_shared_and_non_persistent():
    a = nn.Linear(2, 2)
    m = nn.Sequential(a, a)
    assert list(m.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]   # as torch
    m.load_state_dict(m.state_dict())
    mod = nn.Module()
    mod.register_buffer("keep", gc.zeros(2))
    mod.register_buffer("scratch", gc.zeros(2), persistent=False)
    assert [n for n, _ in mod.named_buffers()] == ["keep", "scratch"]
    assert list(mod.state_dict()) == ["keep"]


def test_setattr_keeps_registration():
    bn = nn.BatchNorm1d(3)
    bn.running_mean = gc.ones(3)                           # still a buffer
    assert "running_mean" in dict(bn.named_buffers())
    np.testing.assert_array_equal(bn.state_dict()["running_mean"].detach().numpy(), np.ones(3))
    fc = nn.Linear(2, 2)
    with pytest.raises(TypeError):
        fc.weight = gc.zeros(2, 2)                         # a plain tensor is not a Parameter
    fc.bias = None
    assert fc.bias is None and [n for n, _ in fc.named_parameters()] == ["weight"]
    assert fc(gc.randn(1, 2)).shape == (1, 2)
    with pytest.raises(TypeError):
        nn.Module().register_buffer("b", 3.0)


def _snapshot(m):
    return {k: v.detach().numpy().copy() for k, v in m.state_dict().items()}


def _unchanged(m, snap):
    now = _snapshot(m)
    assert set(now) == set(snap)
    for k in snap:
        np.testing.assert_array_equal(now[k], snap[k], err_msg=k)


def test_load_state_dict_missing_key_leaves_model_untouched():
    m, other = Net(), Net()
    snap = _snapshot(m)
    sd = other.state_dict()
    del sd["fc1.bias"]
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "fc1.bias"'):
        m.load_state_dict(sd)
    _unchanged(m, snap)
    res = m.load_state_dict(sd, strict=False)
    assert list(res.missing_keys) == ["fc1.bias"] and list(res.unexpected_keys) == []
    np.testing.assert_array_equal(m.fc1.weight.detach().numpy(), other.fc1.weight.detach().numpy())
    np.testing.assert_array_equal(m.fc1.bias.detach().numpy(), snap["fc1.bias"])


def test_load_state_dict_unexpected_key_leaves_model_untouched():
    m, other = Net(), Net()
    snap = _snapshot(m)
    sd = other.state_dict()
    sd["extra.weight"] = gc.zeros(2)
    with pytest.raises(RuntimeError, match='Unexpected key\\(s\\) in state_dict: "extra.weight"'):
        m.load_state_dict(sd)
    _unchanged(m, snap)
    res = m.load_state_dict(sd, strict=False)
    assert list(res.unexpected_keys) == ["extra.weight"] and list(res.missing_keys) == []


def test_load_state_dict_size_mismatch_leaves_model_untouched():
    m = Net()
    snap = _snapshot(m)
    sd = Net().state_dict()
    sd["fc1.weight"] = gc.zeros(3, 5)
    with pytest.raises(RuntimeError) as e:
        m.load_state_dict(sd)
    msg = str(e.value)
    assert "size mismatch for fc1.weight" in msg
    assert "[3, 5]" in msg or "(3, 5)" in msg
    assert "[3, 4]" in msg or "(3, 4)" in msg
    _unchanged(m, snap)
    # size mismatches are errors even when strict=False (as in torch)
    with pytest.raises(RuntimeError, match="size mismatch"):
        m.load_state_dict(sd, strict=False)
    _unchanged(m, snap)


def test_load_state_dict_reports_every_problem():
    m = Net()
    sd = Net().state_dict()
    del sd["bn.running_var"]
    sd["bogus"] = gc.zeros(1)
    sd["bn.weight"] = gc.zeros(7)
    with pytest.raises(RuntimeError) as e:
        m.load_state_dict(sd)
    msg = str(e.value)
    assert "Net" in msg and "bn.running_var" in msg and "bogus" in msg and "bn.weight" in msg


def test_repr_structure():
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 2, bias=False)))
    r = repr(m)
    assert r.splitlines()[0] == "Sequential("
    assert "(0): Linear(in_features=4, out_features=3, bias=True)" in r
    assert "(1): ReLU()" in r
    assert "    (0): Linear(in_features=3, out_features=2, bias=False)" in r
    assert r.endswith(")")


def _build_repr_models(lib):
    return [
        lib.Sequential(lib.Linear(4, 3), lib.ReLU(), lib.Sequential(lib.Linear(3, 2, bias=False), lib.Tanh())),
        lib.Sequential(lib.Conv2d(1, 4, 3, padding=1), lib.BatchNorm2d(4), lib.ReLU(), lib.MaxPool2d(2),
                       lib.Dropout(0.25), lib.Flatten(), lib.Linear(16, 10), lib.LogSoftmax(dim=1)),
        lib.ModuleDict({"emb": lib.Embedding(10, 3, padding_idx=0), "ln": lib.LayerNorm(3)}),
        lib.ModuleList([lib.LeakyReLU(0.2), lib.GELU(), lib.Sigmoid(), lib.Softmax(dim=-1), lib.Identity()]),
        lib.Sequential(lib.AvgPool2d(2), lib.AdaptiveAvgPool2d((1, 1)), lib.BatchNorm1d(3),
                       lib.Conv2d(2, 4, (3, 5), stride=2, dilation=(1, 2), groups=2, bias=False)),
        lib.Sequential(OrderedDict([("fc", lib.Linear(2, 2)), ("act", lib.ReLU())])),
        lib.ModuleList([lib.Linear(2, 2), lib.Linear(2, 2), lib.Linear(2, 2), lib.ReLU(inplace=True),
                        lib.Sequential(lib.Tanh()), lib.Sequential(lib.Tanh()), lib.Dropout(0.1, inplace=True)]),
        lib.Sequential(lib.Unflatten(1, (2, 3)), lib.LeakyReLU(0.1, inplace=True), lib.Softmax(), lib.SiLU(),
                       lib.Conv2d(2, 2, 3, padding="same"), lib.Conv2d(2, 2, 3, padding="valid"),
                       lib.BatchNorm2d(2, momentum=None, affine=False), lib.LayerNorm([2, 3], bias=False),
                       lib.Embedding(5, 2), lib.MaxPool2d((2, 1), stride=1, padding=(1, 0)),
                       lib.AdaptiveAvgPool2d((None, 3)), lib.Flatten(0, 2)),
        lib.ModuleList(),
        lib.Sequential(),
        lib.Sequential(lib.MSELoss(), lib.CrossEntropyLoss(label_smoothing=0.1), lib.BCEWithLogitsLoss(),
                       lib.NLLLoss(), lib.L1Loss(reduction="sum"), lib.BCELoss()),
    ]


def test_repr_matches_torch():
    torch = _torch()
    for g, t in zip(_build_repr_models(nn), _build_repr_models(torch.nn)):
        assert repr(g) == repr(t)


# =================================================================================================
# containers
# =================================================================================================
def test_sequential():
    torch = _torch()
    gm = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2))
    tm = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    compare_layer(gm, tm, arr(3, 4))
    assert len(gm) == 3 and isinstance(gm[1], nn.Tanh) and isinstance(gm[-1], nn.Linear)
    assert isinstance(gm[:2], nn.Sequential) and len(gm[:2]) == 2
    assert [type(x).__name__ for x in gm] == ["Linear", "Tanh", "Linear"]
    gm.append(nn.ReLU())
    assert len(gm) == 4 and "3" in dict(gm.named_children())


def test_sequential_ordered_dict_names():
    m = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 3)), ("act", nn.ReLU())]))
    assert [n for n, _ in m.named_parameters()] == ["fc.weight", "fc.bias"]
    assert m.fc is m[0]


def test_module_list():
    ml = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 3)])
    ml.append(nn.ReLU())
    ml.extend([nn.Tanh()])
    assert len(ml) == 4 and isinstance(ml[3], nn.Tanh)
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    ml[2] = nn.Sigmoid()
    assert isinstance(ml[2], nn.Sigmoid)
    assert len(ml[1:3]) == 2

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = ml

        def forward(self, x):
            for l in self.layers:
                x = l(x)
            return x
    assert len(list(M().parameters())) == 4
    assert M()(gc.randn(5, 2)).shape == (5, 3)


def test_module_list_insert_delete():
    a, b, c = nn.ReLU(), nn.Tanh(), nn.Sigmoid()
    ml = nn.ModuleList([a, c])
    ml.insert(1, b)
    assert list(ml) == [a, b, c] and [n for n, _ in ml.named_children()] == ["0", "1", "2"]
    del ml[0]
    assert list(ml) == [b, c] and [n for n, _ in ml.named_children()] == ["0", "1"]


def test_module_dict():
    md = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.ReLU()})
    md["c"] = nn.Linear(2, 1)
    assert "c" in md and len(md) == 3 and list(md.keys()) == ["a", "b", "c"]
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias", "c.weight", "c.bias"]
    del md["b"]
    assert list(md) == ["a", "c"]
    md.update({"d": nn.Tanh()})
    assert isinstance(md["d"], nn.Tanh) and [k for k, _ in md.items()] == ["a", "c", "d"]


# =================================================================================================
# layers against torch: outputs, input gradients, parameter gradients
# =================================================================================================
def test_linear():
    torch = _torch()
    compare_layer(nn.Linear(5, 3), torch.nn.Linear(5, 3), arr(4, 5))
    compare_layer(nn.Linear(5, 3, bias=False), torch.nn.Linear(5, 3, bias=False), arr(2, 4, 5))
    compare_layer(nn.Linear(5, 3), torch.nn.Linear(5, 3), arr(5))   # unbatched


def test_linear_wrong_features_message():
    fc = nn.Linear(8, 2)
    with pytest.raises(RuntimeError) as e:
        fc(gc.randn(3, 7))
    msg = str(e.value)
    assert "Linear" in msg and "8" in msg and "7" in msg and "[3, 7]" in msg


def test_identity_flatten_unflatten():
    torch = _torch()
    x = arr(2, 3, 4, 5)
    compare_layer(nn.Identity(3, foo=1), torch.nn.Identity(3, foo=1), x)
    compare_layer(nn.Flatten(), torch.nn.Flatten(), x)
    compare_layer(nn.Flatten(0, 2), torch.nn.Flatten(0, 2), x)
    compare_layer(nn.Flatten(2), torch.nn.Flatten(2), x)
    compare_layer(nn.Unflatten(1, (3, 1)), torch.nn.Unflatten(1, (3, 1)), x)
    compare_layer(nn.Unflatten(-1, (5, 1)), torch.nn.Unflatten(-1, (5, 1)), x)


CONV_CASES = [
    dict(cin=3, cout=4, k=3),
    dict(cin=2, cout=3, k=3, stride=2),
    dict(cin=2, cout=3, k=(2, 3), stride=(2, 1), padding=(1, 0)),
    dict(cin=2, cout=2, k=3, padding=1, dilation=2),
    dict(cin=2, cout=2, k=3, padding="same"),
    dict(cin=2, cout=2, k=(3, 5), padding="same", dilation=(2, 1)),
    dict(cin=2, cout=2, k=3, padding="valid"),
    dict(cin=2, cout=3, k=(2, 4), padding="same"),                # even kernels: asymmetric padding
    dict(cin=2, cout=2, k=2, padding="same", dilation=(1, 3)),
    dict(cin=4, cout=6, k=3, padding=1, groups=2),
    dict(cin=4, cout=4, k=3, padding=1, groups=4, bias=False),    # depthwise
    dict(cin=3, cout=2, k=1, bias=False),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_conv2d(case):
    torch = _torch()
    c = dict(case)
    cin, cout, k = c.pop("cin"), c.pop("cout"), c.pop("k")
    gm, tm = nn.Conv2d(cin, cout, k, **c), torch.nn.Conv2d(cin, cout, k, **c)
    compare_layer(gm, tm, arr(2, cin, 7, 6))


def test_conv2d_unbatched_and_errors():
    torch = _torch()
    compare_layer(nn.Conv2d(2, 3, 3, padding=1), torch.nn.Conv2d(2, 3, 3, padding=1), arr(2, 5, 5))
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(RuntimeError, match="Conv2d"):
        conv(gc.randn(1, 2, 5, 5))
    with pytest.raises(ValueError):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(Exception):
        conv(gc.randn(1, 3, 2, 2))           # input smaller than the kernel
    with pytest.raises(ValueError):
        nn.Conv2d(2, 2, 3, stride=2, padding="same")(gc.randn(1, 2, 5, 5))


def test_conv2d_functional():
    torch = _torch()
    x, w, b = arr(2, 4, 6, 6), arr(6, 2, 3, 3, seed=1), arr(6, seed=2)
    gx, gw, gb = (gc.tensor(a, requires_grad=True) for a in (x, w, b))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    gy = F.conv2d(gx, gw, gb, stride=2, padding=1, dilation=1, groups=2)
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride=2, padding=1, dilation=1, groups=2)
    close(gy, ty)
    gy.sum().backward()
    ty.sum().backward()
    for g, t in ((gx, tx), (gw, tw), (gb, tb)):
        close(g.grad, t.grad)


MAXPOOL_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2),
    dict(kernel_size=3, stride=1, padding=1),
    dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1)),
    dict(kernel_size=2, stride=1, dilation=2),
    dict(kernel_size=3, stride=2, dilation=2, padding=1),
]


@pytest.mark.parametrize("case", MAXPOOL_CASES, ids=str)
def test_maxpool2d(case):
    torch = _torch()
    compare_layer(nn.MaxPool2d(**case), torch.nn.MaxPool2d(**case), arr(2, 3, 7, 6))


def test_maxpool2d_ties_and_indices():
    torch = _torch()
    x = np.zeros((1, 1, 4, 4), np.float32)     # all ties: the gradient goes to one element per window
    compare_layer(nn.MaxPool2d(2), torch.nn.MaxPool2d(2), x)
    x = arr(2, 2, 6, 5)
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1)):
        go, gi = F.max_pool2d(gc.tensor(x), return_indices=True, **kw)
        to, ti = torch.nn.functional.max_pool2d(torch.tensor(x), return_indices=True, **kw)
        close(go, to)
        np.testing.assert_array_equal(gi.detach().numpy(), ti.detach().numpy())
    compare_layer(nn.MaxPool2d(2), torch.nn.MaxPool2d(2), arr(3, 4, 4))     # unbatched


def test_pool_errors():
    x = gc.randn(1, 1, 5, 5)
    with pytest.raises(RuntimeError, match="pad should be"):
        F.max_pool2d(x, 2, padding=2)                    # as torch: at most half the kernel
    with pytest.raises(RuntimeError, match="pad should be"):
        nn.AvgPool2d(3, padding=2)(x)
    with pytest.raises(Exception):
        nn.MaxPool2d(7)(x)                               # window larger than the input


AVGPOOL_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2),
    dict(kernel_size=3, stride=1, padding=1),
    dict(kernel_size=3, stride=1, padding=1, count_include_pad=False),
    dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 1), count_include_pad=False),
    dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 1), count_include_pad=True),
    dict(kernel_size=2, divisor_override=3),
]


@pytest.mark.parametrize("case", AVGPOOL_CASES, ids=str)
def test_avgpool2d(case):
    torch = _torch()
    compare_layer(nn.AvgPool2d(**case), torch.nn.AvgPool2d(**case), arr(2, 3, 7, 6))


@pytest.mark.parametrize("out", [1, 2, (3, 2), (4, 5), (5, 3), (None, 2), 7])
def test_adaptive_avgpool2d(out):
    torch = _torch()
    compare_layer(nn.AdaptiveAvgPool2d(out), torch.nn.AdaptiveAvgPool2d(out), arr(2, 3, 8, 6))
    compare_layer(nn.AdaptiveAvgPool2d(out), torch.nn.AdaptiveAvgPool2d(out), arr(3, 7, 5))


@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (6, 3)), ("BatchNorm1d", (4, 3, 5)),
                                       ("BatchNorm2d", (3, 3, 4, 2))])
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_batchnorm_train_then_eval(cls, shape, momentum):
    torch = _torch()
    gm = getattr(nn, cls)(3, momentum=momentum)
    tm = getattr(torch.nn, cls)(3, momentum=momentum)
    with gc.no_grad():
        gm.weight.copy_(gc.tensor([0.5, 1.5, -1.0]))
        gm.bias.copy_(gc.tensor([0.1, -0.2, 0.3]))
    x = arr(*shape) * 2 + 1
    compare_layer(gm, tm, x, steps=3)             # running stats after every step compared too
    assert int(gm.num_batches_tracked.item()) == 3
    gm.eval()
    tm.eval()
    compare_layer(gm, tm, arr(*shape, seed=5))
    assert int(gm.num_batches_tracked.item()) == 3   # eval does not count batches


def test_batchnorm_options():
    torch = _torch()
    x = arr(5, 3, 2, 2)
    for kw in (dict(affine=False), dict(track_running_stats=False), dict(eps=1e-2, momentum=0.5)):
        gm, tm = nn.BatchNorm2d(3, **kw), torch.nn.BatchNorm2d(3, **kw)
        compare_layer(gm, tm, x, steps=2)
        gm.eval()
        tm.eval()
        compare_layer(gm, tm, x)
    gm = nn.BatchNorm2d(3, track_running_stats=False)
    assert list(gm.named_buffers()) == []
    with pytest.raises(ValueError):
        nn.BatchNorm2d(3)(gc.randn(1, 3, 1, 1))     # one value per channel in training
    with pytest.raises(ValueError):
        nn.BatchNorm2d(3)(gc.randn(2, 3))
    with pytest.raises(RuntimeError):
        nn.BatchNorm1d(3)(gc.randn(2, 4))


def test_batchnorm_running_stats_not_differentiated():
    bn = nn.BatchNorm1d(2)
    x = gc.randn(4, 2, requires_grad=True)
    bn(x).sum().backward()
    assert not bn.running_mean.requires_grad and bn.running_mean.grad_fn is None
    assert not bn.running_var.requires_grad


def test_layernorm():
    torch = _torch()
    compare_layer(nn.LayerNorm(5), torch.nn.LayerNorm(5), arr(3, 5) * 3 + 1)
    compare_layer(nn.LayerNorm((2, 5)), torch.nn.LayerNorm((2, 5)), arr(3, 2, 5))
    compare_layer(nn.LayerNorm(5, elementwise_affine=False), torch.nn.LayerNorm(5, elementwise_affine=False),
                  arr(4, 5))
    compare_layer(nn.LayerNorm(5, bias=False), torch.nn.LayerNorm(5, bias=False), arr(4, 5))
    gm, tm = nn.LayerNorm(5, eps=1e-3), torch.nn.LayerNorm(5, eps=1e-3)
    with gc.no_grad():
        gm.weight.copy_(gc.tensor(arr(5, seed=3)))
        gm.bias.copy_(gc.tensor(arr(5, seed=4)))
    compare_layer(gm, tm, arr(2, 3, 5))
    with pytest.raises(RuntimeError, match="normalized_shape"):
        nn.LayerNorm(4)(gc.randn(2, 5))


ACTS = [("ReLU", (), {}), ("LeakyReLU", (), {}), ("LeakyReLU", (0.2,), {}), ("GELU", (), {}),
        ("GELU", (), {"approximate": "tanh"}), ("Sigmoid", (), {}), ("Tanh", (), {}),
        ("Softmax", (), {"dim": 1}), ("Softmax", (), {"dim": -1}), ("LogSoftmax", (), {"dim": 1}),
        ("LogSoftmax", (), {"dim": 0}), ("SiLU", (), {})]


@pytest.mark.parametrize("name,args,kw", ACTS, ids=lambda v: str(v))
def test_activations(name, args, kw):
    torch = _torch()
    x = arr(3, 4, 2) * 3
    compare_layer(getattr(nn, name)(*args, **kw), getattr(torch.nn, name)(*args, **kw), x)


def test_softmax_implicit_dim_like_torch():
    torch = _torch()
    for shape in ((4,), (2, 3), (2, 3, 4), (2, 3, 2, 2)):
        x = arr(*shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            close(nn.Softmax()(gc.tensor(x)), torch.nn.Softmax()(torch.tensor(x)))
            close(nn.LogSoftmax()(gc.tensor(x)), torch.nn.LogSoftmax()(torch.tensor(x)))


def test_relu_gradient_at_zero():
    torch = _torch()
    x = np.array([-1.0, 0.0, 2.0], np.float32)
    compare_layer(nn.ReLU(), torch.nn.ReLU(), x)
    compare_layer(nn.LeakyReLU(0.1), torch.nn.LeakyReLU(0.1), x)


def test_embedding():
    torch = _torch()
    idx = np.array([[1, 3, 0], [3, 3, 4]], np.int64)
    gm, tm = nn.Embedding(6, 3), torch.nn.Embedding(6, 3)
    compare_layer(gm, tm, idx)
    gm, tm = nn.Embedding(6, 3, padding_idx=3), torch.nn.Embedding(6, 3, padding_idx=3)
    assert not gm.weight.detach().numpy()[3].any()
    compare_layer(gm, tm, idx)
    np.testing.assert_array_equal(gm.weight.grad.detach().numpy()[3], 0)   # padding_idx gets no gradient
    assert gm.weight.grad.detach().numpy()[1].any()
    # a negative padding_idx counts from the end
    gm, tm = nn.Embedding(6, 3, padding_idx=-1), torch.nn.Embedding(6, 3, padding_idx=-1)
    assert gm.padding_idx == tm.padding_idx == 5
    compare_layer(gm, tm, np.array([5, 0, 5], np.int64))
    np.testing.assert_array_equal(gm.weight.grad.detach().numpy()[5], 0)
    with pytest.raises(Exception):
        gm(gc.tensor([0.0, 1.0]))             # float indices
    with pytest.raises(AssertionError):
        nn.Embedding(3, 2, padding_idx=3)


def test_embedding_functional_padding_idx_keeps_row_values():
    """F.embedding with padding_idx: a nonzero padding row is still *read* (torch only skips its
    gradient), and gets no gradient."""
    torch = _torch()
    w = arr(4, 2)
    idx = np.array([0, 2, 2, 1], np.int64)
    gw, tw = gc.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
    gy = F.embedding(gc.tensor(idx), gw, padding_idx=2)
    ty = torch.nn.functional.embedding(torch.tensor(idx), tw, padding_idx=2)
    close(gy, ty)
    gy.sum().backward()
    ty.sum().backward()
    close(gw.grad, tw.grad)


def test_dropout_module_vs_functional():
    d = nn.Dropout(0.3)
    x = gc.ones(1000)
    gc.manual_seed(7)
    a = d(x)
    gc.manual_seed(7)
    b = F.dropout(x, 0.3, True)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    with pytest.raises(ValueError):
        nn.Dropout(1.5)


# =================================================================================================
# dropout statistics
# =================================================================================================
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(p):
    gc.manual_seed(0)
    n = 200_000
    y = F.dropout(gc.ones(n), p, training=True).detach().numpy()
    kept = y != 0
    frac = kept.mean()
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(frac - (1 - p)) < 5 * sigma, (frac, 1 - p)
    np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-6)    # kept values scaled by 1/(1-p)
    assert abs(y.mean() - 1.0) < 5 * sigma / (1 - p)                # unbiased


def test_dropout_eval_and_edge_cases():
    x = gc.randn(4, 5)
    d = nn.Dropout(0.5).eval()
    np.testing.assert_array_equal(d(x).detach().numpy(), x.detach().numpy())
    np.testing.assert_array_equal(F.dropout(x, 0.5, training=False).detach().numpy(), x.detach().numpy())
    np.testing.assert_array_equal(F.dropout(x, 0.0, training=True).detach().numpy(), x.detach().numpy())
    assert not F.dropout(x, 1.0, training=True).detach().numpy().any()


def test_dropout_same_seed_same_mask_and_state_advances():
    x = gc.ones(50, 40)
    gc.manual_seed(123)
    a = F.dropout(x, 0.5).detach().numpy()
    b = F.dropout(x, 0.5).detach().numpy()
    gc.manual_seed(123)
    a2 = F.dropout(x, 0.5).detach().numpy()
    np.testing.assert_array_equal(a, a2)
    assert (a != b).any()                 # the generator advanced between the two draws
    g1, g2 = gc.Generator().manual_seed(5), gc.Generator().manual_seed(5)
    np.testing.assert_array_equal(F.dropout(x, 0.5, generator=g1).detach().numpy(),
                                  F.dropout(x, 0.5, generator=g2).detach().numpy())


def test_dropout_gradient_uses_mask():
    gc.manual_seed(1)
    x = gc.randn(30, 20, requires_grad=True)
    y = F.dropout(x, 0.4)
    y.sum().backward()
    mask = y.detach().numpy() != 0
    np.testing.assert_allclose(x.grad.detach().numpy(), mask / 0.6, rtol=1e-6)


# =================================================================================================
# losses
# =================================================================================================
def _loss_pair(gcls, tcls, **kw):
    torch = _torch()
    tkw = {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    gkw = {k: (gc.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    return gcls(**gkw), tcls(**tkw)


def check_loss(name, x, target, fname=None, **kw):
    torch = _torch()
    gm, tm = _loss_pair(getattr(nn, name), getattr(torch.nn, name), **kw)
    gx, tx = gc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    float_target = target.dtype.kind == "f"
    gt, tt = gc.tensor(target), torch.tensor(target)
    if float_target:
        gt.requires_grad_(True)
        tt.requires_grad_(True)
    gy, ty = gm(gx, gt), tm(tx, tt)
    close(gy, ty, what=f"{name} {kw}")
    cot = rng(3).standard_normal(tuple(gy.shape)).astype(np.float32)
    gy.backward(gc.tensor(cot))
    ty.backward(torch.from_numpy(cot))
    close(gx.grad, tx.grad, what=f"{name} {kw} input grad")
    if float_target and name != "BCELoss":     # torch does not differentiate BCE in its target
        close(gt.grad, tt.grad, what=f"{name} {kw} target grad")
    # and the functional form
    if fname is not None:
        gkw = {k: (gc.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        tkw = {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        close(getattr(F, fname)(gc.tensor(x), gc.tensor(target), **gkw),
              getattr(torch.nn.functional, fname)(torch.tensor(x), torch.tensor(target), **tkw),
              what=f"F.{fname} {kw}")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses(reduction):
    x, t = arr(4, 3), arr(4, 3, seed=1)
    check_loss("MSELoss", x, t, "mse_loss", reduction=reduction)
    check_loss("L1Loss", x, t, "l1_loss", reduction=reduction)


CE_CASES = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"ignore_index": 2},
    {"ignore_index": 2, "reduction": "sum"},
    {"label_smoothing": 0.1},
    {"label_smoothing": 0.2, "reduction": "none"},
    {"weight": np.array([0.2, 1.0, 2.0, 0.5, 1.5], np.float32)},
    {"weight": np.array([0.2, 1.0, 2.0, 0.5, 1.5], np.float32), "ignore_index": 1},
    {"weight": np.array([0.2, 1.0, 2.0, 0.5, 1.5], np.float32), "label_smoothing": 0.1},
    {"weight": np.array([0.2, 1.0, 2.0, 0.5, 1.5], np.float32), "label_smoothing": 0.1,
     "ignore_index": 2, "reduction": "sum"},
    {"weight": np.array([0.2, 1.0, 2.0, 0.5, 1.5], np.float32), "reduction": "none"},
]


def _ce_id(d):
    return ",".join(f"{k}={'w' if k == 'weight' else v}" for k, v in d.items()) or "default"


@pytest.mark.parametrize("kw", CE_CASES, ids=_ce_id)
def test_cross_entropy(kw):
    x = arr(6, 5) * 2
    y = np.array([0, 2, 4, 2, 1, 3], np.int64)
    check_loss("CrossEntropyLoss", x, y, "cross_entropy", **kw)
    # spatial targets [N, C, d] and [N, d]
    x3 = arr(2, 5, 3, seed=4)
    y3 = np.array([[0, 2, 1], [4, 2, 3]], np.int64)
    check_loss("CrossEntropyLoss", x3, y3, "cross_entropy", **kw)


def test_cross_entropy_unbatched_and_probability_targets():
    check_loss("CrossEntropyLoss", arr(5), np.array(3, np.int64), "cross_entropy")
    torch = _torch()
    x = arr(4, 3)
    p = np.abs(arr(4, 3, seed=2))
    p /= p.sum(1, keepdims=True)
    # class-probability targets (float, same shape as the input), value and input gradient
    check_loss("CrossEntropyLoss", x, p, "cross_entropy")
    gy = F.cross_entropy(gc.tensor(x), gc.tensor(p))
    close(gy, torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(p)))


@pytest.mark.parametrize("kw", [{}, {"reduction": "sum"}, {"reduction": "none"}, {"ignore_index": 0},
                                {"weight": np.array([1.0, 0.5, 2.0], np.float32)},
                                {"weight": np.array([1.0, 0.5, 2.0], np.float32), "ignore_index": 1}],
                         ids=str)
def test_nll_loss(kw):
    x = np.log(np.abs(arr(5, 3)) + 0.1).astype(np.float32)
    y = np.array([0, 1, 2, 1, 0], np.int64)
    check_loss("NLLLoss", x, y, "nll_loss", **kw)


def test_cross_entropy_all_ignored_is_nan_like_torch():
    torch = _torch()
    x = arr(2, 3)
    y = np.array([1, 1], np.int64)
    g = F.cross_entropy(gc.tensor(x), gc.tensor(y), ignore_index=1).item()
    t = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(y), ignore_index=1).item()
    assert math.isnan(g) and math.isnan(t)


@pytest.mark.parametrize("kw", [{}, {"reduction": "sum"}, {"reduction": "none"},
                                {"weight": np.array([[1.0, 0.5, 2.0]], np.float32)}], ids=str)
def test_bce_losses(kw):
    p = (1 / (1 + np.exp(-arr(4, 3)))).astype(np.float32)
    t = rng(5).uniform(size=(4, 3)).astype(np.float32)
    check_loss("BCELoss", p, t, "binary_cross_entropy", **kw)
    check_loss("BCEWithLogitsLoss", arr(4, 3) * 3, t, "binary_cross_entropy_with_logits", **kw)


def test_bce_with_logits_pos_weight_and_extremes():
    check_loss("BCEWithLogitsLoss", arr(4, 3) * 3, (arr(4, 3, seed=2) > 0).astype(np.float32),
               "binary_cross_entropy_with_logits", pos_weight=np.array([1.0, 2.0, 0.5], np.float32))
    # large logits stay finite
    check_loss("BCEWithLogitsLoss", np.array([[100.0, -100.0, 0.0]], np.float32),
               np.array([[0.0, 1.0, 1.0]], np.float32), "binary_cross_entropy_with_logits")
    # BCE clamps log at -100 as torch does (forward; the gradient is the xfail below)
    torch = _torch()
    p, t = np.array([0.0, 1.0, 0.5, 0.0], np.float32), np.array([1.0, 0.0, 1.0, 0.0], np.float32)
    close(F.binary_cross_entropy(gc.tensor(p), gc.tensor(t)),
          torch.nn.functional.binary_cross_entropy(torch.tensor(p), torch.tensor(t)))


@pytest.mark.xfail(reason="graphc/ops/composites.py binary_cross_entropy: the input gradient at p = 0 and "
                          "p = 1 is 0 where torch's is (p - t) / max(p * (1 - p), 1e-12) / N: for p = [0, 1, 0.5], "
                          "t = [1, 0, 1], mean, unit cotangent, torch gives [-3.3333e+11, 3.3333e+11, "
                          "-0.6667], graphc [0, 0, -0.6667] (the forward value matches); needs a fix in "
                          "graphc/ops", strict=True, raises=AssertionError)
def test_bce_gradient_at_probability_0_and_1():
    check_loss("BCELoss", np.array([0.0, 1.0, 0.5], np.float32), np.array([1.0, 0.0, 1.0], np.float32),
               "binary_cross_entropy")


def test_loss_weights_are_buffers_like_torch():
    torch = _torch()
    w = np.array([1.0, 2.0, 0.5], np.float32)
    pairs = [(nn.CrossEntropyLoss(weight=gc.tensor(w)), torch.nn.CrossEntropyLoss(weight=torch.tensor(w))),
             (nn.NLLLoss(weight=gc.tensor(w)), torch.nn.NLLLoss(weight=torch.tensor(w))),
             (nn.BCEWithLogitsLoss(weight=gc.tensor(w), pos_weight=gc.tensor(w)),
              torch.nn.BCEWithLogitsLoss(weight=torch.tensor(w), pos_weight=torch.tensor(w))),
             (nn.BCELoss(), torch.nn.BCELoss()), (nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss())]
    for g, t in pairs:
        assert list(g.state_dict()) == list(t.state_dict())
    g = pairs[0][0].double()
    assert g.weight.dtype is gc.float64


def test_loss_bad_reduction():
    with pytest.raises(ValueError):
        nn.MSELoss(reduction="avg")


# =================================================================================================
# functional equivalents
# =================================================================================================
def test_functional_matches_modules():
    gc.manual_seed(0)
    x = gc.randn(2, 3, 6, 6)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    np.testing.assert_allclose(conv(x).detach().numpy(), F.conv2d(x, conv.weight, conv.bias, padding=1).detach().numpy())
    np.testing.assert_allclose(nn.MaxPool2d(2)(x).detach().numpy(), F.max_pool2d(x, 2).detach().numpy())
    np.testing.assert_allclose(nn.AvgPool2d(3, 1, 1)(x).detach().numpy(), F.avg_pool2d(x, 3, 1, 1).detach().numpy())
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d(4)(x).detach().numpy(), F.adaptive_avg_pool2d(x, 4).detach().numpy())
    ln = nn.LayerNorm(6)
    np.testing.assert_allclose(ln(x).detach().numpy(), F.layer_norm(x, (6,), ln.weight, ln.bias).detach().numpy())
    fc = nn.Linear(6, 2)
    np.testing.assert_allclose(fc(x).detach().numpy(), F.linear(x, fc.weight, fc.bias).detach().numpy())
    bn = nn.BatchNorm2d(3).eval()
    np.testing.assert_allclose(bn(x).detach().numpy(), F.batch_norm(x, bn.running_mean, bn.running_var,
                                                           bn.weight, bn.bias, False).detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(nn.ReLU()(x).detach().numpy(), F.relu(x).detach().numpy())
    np.testing.assert_allclose(nn.Softmax(1)(x).detach().numpy(), F.softmax(x, 1).detach().numpy())


def test_functional_activations_vs_torch():
    torch = _torch()
    x = arr(3, 5) * 3
    gx, tx = gc.tensor(x), torch.tensor(x)
    T = torch.nn.functional
    for gf, tf in ((F.relu(gx), T.relu(tx)), (F.leaky_relu(gx, 0.3), T.leaky_relu(tx, 0.3)),
                   (F.gelu(gx), T.gelu(tx)), (F.gelu(gx, approximate="tanh"), T.gelu(tx, approximate="tanh")),
                   (F.sigmoid(gx), T.sigmoid(tx)), (F.tanh(gx), T.tanh(tx)), (F.silu(gx), T.silu(tx)),
                   (F.softplus(gx), T.softplus(tx)), (F.softmax(gx, 0), T.softmax(tx, 0)),
                   (F.log_softmax(gx, 1), T.log_softmax(tx, 1)),
                   (F.pad(gx, (1, 2)), T.pad(tx, (1, 2))), (F.flatten(gx), torch.flatten(tx))):
        close(gf, tf)
    xs = arr(2, 3, 5, 4)
    close(F.unfold(gc.tensor(xs), 3, padding=1, stride=2), T.unfold(torch.tensor(xs), 3, padding=1, stride=2))
    cols = arr(2, 12, 8)
    close(F.fold(gc.tensor(cols), (4, 5), 2, stride=(2, 1)), T.fold(torch.tensor(cols), (4, 5), 2, stride=(2, 1)))
    idx = np.array([0, 2, 1], np.int64)
    close(F.one_hot(gc.tensor(idx), 4), T.one_hot(torch.tensor(idx), 4))


# =================================================================================================
# initialisation
# =================================================================================================
def _uniform_ok(a, bound, n_sigma=6):
    a = np.asarray(a, np.float64).reshape(-1)
    assert np.abs(a).max() <= bound * (1 + 1e-6), (np.abs(a).max(), bound)
    assert np.abs(a).max() >= bound * 0.9            # the support is really [-bound, bound]
    sd = bound / math.sqrt(3)
    assert abs(a.mean()) < n_sigma * sd / math.sqrt(a.size)
    assert abs(a.std() / sd - 1) < 0.1


def _normal_ok(a, mean, std):
    a = np.asarray(a, np.float64).reshape(-1)
    assert abs(a.mean() - mean) < 6 * std / math.sqrt(a.size)
    assert abs(a.std() / std - 1) < 0.1


def test_init_functions():
    t = gc.empty(200, 300)
    nn.init.uniform_(t, -2.0, 3.0)
    v = t.detach().numpy()
    assert v.min() >= -2 and v.max() < 3 and abs(v.mean() - 0.5) < 0.05
    nn.init.normal_(t, 1.0, 0.5)
    _normal_ok(t.detach().numpy(), 1.0, 0.5)
    nn.init.zeros_(t)
    assert not t.detach().numpy().any()
    nn.init.kaiming_uniform_(t)                         # a=0, leaky_relu -> gain sqrt(2)
    _uniform_ok(t.detach().numpy(), math.sqrt(2) * math.sqrt(3 / 300))
    nn.init.kaiming_uniform_(t, a=math.sqrt(5))
    _uniform_ok(t.detach().numpy(), 1 / math.sqrt(300))
    nn.init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu")
    _uniform_ok(t.detach().numpy(), math.sqrt(2) * math.sqrt(3 / 200))
    nn.init.xavier_uniform_(t)
    _uniform_ok(t.detach().numpy(), math.sqrt(6 / 500))
    nn.init.xavier_uniform_(t, gain=2.0)
    _uniform_ok(t.detach().numpy(), 2 * math.sqrt(6 / 500))
    c = gc.empty(16, 8, 3, 3)
    nn.init.kaiming_uniform_(c, a=math.sqrt(5))
    _uniform_ok(c.detach().numpy(), 1 / math.sqrt(8 * 9))
    nn.init.xavier_uniform_(c)
    _uniform_ok(c.detach().numpy(), math.sqrt(6 / (8 * 9 + 16 * 9)))
    with pytest.raises(ValueError):
        nn.init.xavier_uniform_(gc.empty(5))


def test_init_in_place_no_grad_and_seeded():
    p = nn.Parameter(gc.empty(10, 10))
    out = nn.init.normal_(p)
    assert out is p and p.requires_grad and p.grad_fn is None and p.grad is None
    gc.manual_seed(3)
    a = nn.Linear(20, 10)
    gc.manual_seed(3)
    b = nn.Linear(20, 10)
    np.testing.assert_array_equal(a.weight.detach().numpy(), b.weight.detach().numpy())
    np.testing.assert_array_equal(a.bias.detach().numpy(), b.bias.detach().numpy())
    c = nn.Linear(20, 10)
    assert (a.weight.detach().numpy() != c.weight.detach().numpy()).any()


def test_init_calculate_gain_vs_torch():
    torch = _torch()
    for nl, param in (("linear", None), ("relu", None), ("tanh", None), ("sigmoid", None),
                      ("leaky_relu", None), ("leaky_relu", 0.2), ("conv2d", None), ("selu", None)):
        assert nn.init.calculate_gain(nl, param) == pytest.approx(torch.nn.init.calculate_gain(nl, param))


def _default_init_layers(lib):
    return {
        "Linear": lib.Linear(300, 200),
        "Conv2d": lib.Conv2d(12, 64, 3),
        "Conv2d_groups": lib.Conv2d(12, 48, (3, 5), groups=3),
        "Embedding": lib.Embedding(400, 50),
        "BatchNorm2d": lib.BatchNorm2d(7),
        "LayerNorm": lib.LayerNorm(7),
    }


def test_default_init_statistics_vs_torch():
    """Each layer's default initialisation has torch's distribution: same support (uniform
    bounds) or the same std, within sampling tolerance."""
    torch = _torch()
    gc.manual_seed(0)
    torch.manual_seed(0)
    gl, tl = _default_init_layers(nn), _default_init_layers(torch.nn)
    for name in gl:
        gp, tp = dict(gl[name].named_parameters()), dict(tl[name].named_parameters())
        assert list(gp) == list(tp), name
        for pn in gp:
            g, t = gp[pn].detach().numpy().astype(np.float64), tp[pn].detach().numpy().astype(np.float64)
            assert g.shape == t.shape and gp[pn].dtype is gc.float32
            if name in ("BatchNorm2d", "LayerNorm"):
                np.testing.assert_array_equal(g, t)
                continue
            if name == "Embedding":
                _normal_ok(g, 0.0, 1.0)
                _normal_ok(t, 0.0, 1.0)
                continue
            bound = np.abs(t).max()                # torch's sample gives the bound ...
            tol = 0.1 if t.size < 100 else 0.02
            assert np.abs(g).max() <= bound * (1 + tol) and np.abs(g).max() >= bound * (1 - tol), (name, pn)
            # the ratio of two sample stds of n uniforms has sd ~ sqrt(0.4 / n) (kurtosis 1.8):
            # 5 of those where the fixed tolerance is tighter (a 200-element bias: 0.06 was 1.3 sd,
            # failing for ~1 seed in 4 once manual_seed(0) stopped being the degenerate stream)
            std_tol = max(0.25 if t.size < 100 else 0.06, 5 * math.sqrt(0.4 / t.size))
            assert abs(g.std() / t.std() - 1) < std_tol, (name, pn)
            assert abs(g.mean()) < 6 * g.std() / math.sqrt(g.size)
    # exact bounds
    _uniform_ok(gl["Linear"].weight.detach().numpy(), 1 / math.sqrt(300))
    _uniform_ok(gl["Linear"].bias.detach().numpy(), 1 / math.sqrt(300))
    _uniform_ok(gl["Conv2d"].weight.detach().numpy(), 1 / math.sqrt(12 * 9))
    _uniform_ok(gl["Conv2d_groups"].weight.detach().numpy(), 1 / math.sqrt(4 * 15))
    _uniform_ok(gl["Conv2d_groups"].bias.detach().numpy(), 1 / math.sqrt(4 * 15), n_sigma=8)


def test_embedding_padding_row_initialised_to_zero():
    e = nn.Embedding(10, 4, padding_idx=2)
    assert not e.weight.detach().numpy()[2].any() and e.weight.detach().numpy()[3].any()


def test_layer_dtype_argument():
    assert nn.Linear(2, 3, dtype=gc.float64).weight.dtype is gc.float64
    assert nn.Conv2d(1, 2, 3, dtype=gc.float64).bias.dtype is gc.float64
    bn = nn.BatchNorm1d(3, dtype=gc.float64)
    assert bn.running_mean.dtype is gc.float64 and bn.num_batches_tracked.dtype is gc.int64


# =================================================================================================
# gradient clipping
# =================================================================================================
def _grads_pair(seed=0):
    torch = _torch()
    shapes = [(3, 4), (4,), (2, 2, 2)]
    gs = [nn.Parameter(gc.zeros(*s)) for s in shapes]
    ts = [torch.nn.Parameter(torch.zeros(*s)) for s in shapes]
    for i, (g, t) in enumerate(zip(gs, ts)):
        a = arr(*shapes[i], seed=seed + i) * 3
        g.grad = gc.tensor(a)
        t.grad = torch.tensor(a)
    return gs, ts


@pytest.mark.parametrize("max_norm,norm_type", [(1.0, 2.0), (100.0, 2.0), (0.5, 1.0), (0.5, math.inf),
                                                (2.0, 3.0)])
def test_clip_grad_norm_vs_torch(max_norm, norm_type):
    torch = _torch()
    gs, ts = _grads_pair()
    gn = nn.utils.clip_grad_norm_(gs, max_norm, norm_type)
    tn = torch.nn.utils.clip_grad_norm_(ts, max_norm, norm_type)
    close(gn, tn)
    for g, t in zip(gs, ts):
        close(g.grad, t.grad, rtol=1e-5, atol=1e-6)


def test_clip_grad_norm_single_tensor_and_none_grads():
    p = nn.Parameter(gc.zeros(4))
    p.grad = gc.tensor([3.0, 4.0, 0.0, 0.0])
    q = nn.Parameter(gc.zeros(2))        # no grad: skipped
    n = nn.utils.clip_grad_norm_([p, q], 1.0)
    assert n.item() == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad.detach().numpy(), [0.6, 0.8, 0, 0], rtol=1e-5)
    assert q.grad is None
    p.grad = gc.tensor([3.0, 4.0, 0.0, 0.0])
    assert nn.utils.clip_grad_norm_(p, 10.0).item() == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad.detach().numpy(), [3, 4, 0, 0])
    p.grad = gc.tensor([float("inf"), 0.0, 0.0, 0.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)


def test_clip_grad_value_vs_torch():
    torch = _torch()
    gs, ts = _grads_pair(seed=3)
    nn.utils.clip_grad_value_(gs, 0.7)
    torch.nn.utils.clip_grad_value_(ts, 0.7)
    for g, t in zip(gs, ts):
        close(g.grad, t.grad)


# =================================================================================================
# gradcheck (float64, finite differences) of the layer composites
# =================================================================================================
def _t64(*shape, seed=0):
    return gc.tensor(rng(seed).standard_normal(shape), dtype=gc.float64)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(padding=1, dilation=2),
                                dict(padding=1, groups=2), dict(padding="same"), dict(padding="same", dilation=(1, 2))],
                         ids=str)
def test_gradcheck_conv2d(kw):
    x, w, b = _t64(2, 4, 5, 5), _t64(2, 4 // kw.get("groups", 1), 3, 3, seed=1), _t64(2, seed=2)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, **kw), [x, w, b])


def test_gradcheck_conv2d_same_even_kernel():
    x, w = _t64(1, 2, 4, 5), _t64(3, 2, 2, 4, seed=1)
    assert gradcheck(lambda x, w: F.conv2d(x, w, padding="same"), [x, w])


def test_gradcheck_unfold_fold():
    x = _t64(1, 2, 5, 4)
    assert gradcheck(lambda x: F.unfold(x, (2, 3), stride=(2, 1), padding=1, dilation=(1, 2)), [x])
    c = _t64(1, 8, 12)
    assert gradcheck(lambda c: F.fold(c, (4, 5), 2, stride=(2, 1), padding=(1, 0)), [c])


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=2, stride=1, dilation=2)], ids=str)
def test_gradcheck_max_pool(kw):
    x = _t64(2, 2, 5, 5)      # continuous random data: no ties
    assert gradcheck(lambda x: F.max_pool2d(x, **kw), [x])


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=3, stride=1, padding=1, count_include_pad=False)], ids=str)
def test_gradcheck_avg_pool(kw):
    assert gradcheck(lambda x: F.avg_pool2d(x, **kw), [_t64(2, 2, 5, 5)])


@pytest.mark.parametrize("out", [2, (3, 2)])
def test_gradcheck_adaptive_avg_pool(out):
    assert gradcheck(lambda x: F.adaptive_avg_pool2d(x, out), [_t64(1, 2, 5, 4)])


def test_gradcheck_batch_norm():
    x, w, b = _t64(4, 3, 2, 2), _t64(3, seed=1), _t64(3, seed=2)
    rm, rv = gc.zeros(3, dtype=gc.float64), gc.ones(3, dtype=gc.float64)
    # training statistics (running stats are updated on every call, but do not affect the output)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=True), [x, w, b])
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x[:, :, 0, 0], w, b])
    rm2, rv2 = _t64(3, seed=3), gc.tensor([0.5, 1.0, 2.0], dtype=gc.float64)
    assert gradcheck(lambda x, w, b, m, v: F.batch_norm(x, m, v, w, b, training=False), [x, w, b, rm2, rv2])


def test_gradcheck_layer_norm():
    x, w, b = _t64(3, 2, 4), _t64(2, 4, seed=1), _t64(2, 4, seed=2)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, (2, 4), w, b), [x, w, b])
    assert gradcheck(lambda x: F.layer_norm(x, (4,)), [x])


def test_gradcheck_embedding():
    idx = gc.tensor([[0, 2, 2], [3, 1, 0]])
    w = _t64(4, 3)
    assert gradcheck(lambda w: F.embedding(idx, w), [w])
    # with padding_idx the padding row is read but gets no gradient (torch's semantics), so
    # finite differences disagree there by design: check the other rows' gradient instead
    w.requires_grad_(True)
    F.embedding(idx, w, padding_idx=2).sum().backward()
    g = w.grad.detach().numpy()
    np.testing.assert_array_equal(g[2], 0)
    np.testing.assert_array_equal(g[[0, 1, 3]], np.array([[2] * 3, [1] * 3, [1] * 3], np.float64))


def test_gradcheck_losses():
    x, t = _t64(4, 5), gc.tensor([0, 3, 1, 1])
    w = gc.tensor([0.5, 1.0, 2.0, 1.0, 0.3], dtype=gc.float64)
    assert gradcheck(lambda x: F.cross_entropy(x, t, weight=w, label_smoothing=0.1, ignore_index=3), [x])
    p = gc.tensor(rng(1).uniform(0.1, 0.9, (4, 5)))
    y = gc.tensor(rng(2).uniform(size=(4, 5)))
    assert gradcheck(lambda p: F.binary_cross_entropy(p, y), [p])
    assert gradcheck(lambda x: F.binary_cross_entropy_with_logits(x, y, pos_weight=w), [x])


def test_no_warnings_from_layers():
    """A forward/backward pass through the common layers raises no numpy or Python warnings."""
    m = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(8, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.cross_entropy(m(gc.randn(2, 1, 4, 4)), gc.tensor([0, 2])).backward()
