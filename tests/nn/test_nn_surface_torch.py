"""The torch.nn surface of issue 15 against torch 2.13 (activations here; losses, distances,
norms, padding and the rest in tests/nn/test_nn_surface_torch_*.py, which share these helpers):
values and gradients w.r.t. inputs and parameters, float32 to ~1e-5 and float64 tight, at the
edge values (kinks, 0, large |x|), modules' weights copied from torch's through state_dict (so
the keys must match) and their reprs equal to torch's; plus gradcheck in float64 against finite
differences."""
import numpy as np
import pytest

import graphc as gc
import graphc.nn as nn
import graphc.nn.functional as F
from graphc.testing import gradcheck

torch = pytest.importorskip("torch")
TF = torch.nn.functional

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def npy(t):
    return np.array(t.detach().numpy(), copy=True)


def _pair(a, dt, grad):
    """(graphc, torch) leaves from one numpy array: floats cast to dt (and differentiable)."""
    if isinstance(a, np.ndarray) and a.dtype.kind == "f":
        a = a.astype(dt)
        return gc.tensor(a, requires_grad=grad), torch.tensor(a, requires_grad=grad)
    if isinstance(a, np.ndarray):
        return gc.tensor(a), torch.tensor(a)
    return a, a


def load_from_torch(gm, tm):
    """Copy torch's state_dict into the graphc module (strict: the keys must be torch's)."""
    gm.load_state_dict({k: gc.tensor(v.detach().numpy().copy()) for k, v in tm.state_dict().items()})


def compare(gfn, tfn, *arrays, dtypes=(np.float32, np.float64), grad=True, tol=None, tol64=None, gmod=None,
            tmod=None, nodiff=(), what=""):
    """gfn(*graphc inputs) == tfn(*torch inputs) in value and, with a random cotangent, in the
    gradients of every float input but those at the positions in nodiff (and of the modules'
    parameters, when given)."""
    for dt in dtypes:
        t = dict(TOL[dt], **(tol or {}), **((tol64 or {}) if dt is np.float64 else {}))
        if gmod is not None:
            tmod.to(torch.float64 if dt is np.float64 else torch.float32)
            gmod.double() if dt is np.float64 else gmod.float()
            load_from_torch(gmod, tmod)
            gmod.zero_grad(), tmod.zero_grad()
        pairs = [_pair(a, dt, grad and i not in nodiff) for i, a in enumerate(arrays)]
        gy, ty = gfn(*[p[0] for p in pairs]), tfn(*[p[1] for p in pairs])
        assert tuple(gy.shape) == tuple(ty.shape), (what, gy.shape, ty.shape)
        assert gy.dtype.name == str(ty.dtype).replace("torch.", ""), (what, gy.dtype, ty.dtype)
        np.testing.assert_allclose(npy(gy), ty.detach().numpy(), err_msg=f"{what} {dt.__name__} value",
                                   equal_nan=True, **t)
        if not grad or not ty.requires_grad:
            continue
        cot = np.random.default_rng(7).standard_normal(tuple(ty.shape)).astype(dt)
        (gy * gc.tensor(cot)).sum().backward()
        (ty * torch.tensor(cot)).sum().backward()
        for i, (g, tt) in enumerate(pairs):
            if isinstance(g, gc.Tensor) and g.requires_grad:
                want = np.zeros(tt.shape, dt) if tt.grad is None else tt.grad.numpy()
                got = np.zeros(tt.shape, dt) if g.grad is None else npy(g.grad)
                np.testing.assert_allclose(got, want, err_msg=f"{what} {dt.__name__} grad of input {i}",
                                           equal_nan=True, **t)
        if gmod is not None:
            tgrads = {k: p.grad for k, p in tmod.named_parameters()}
            for k, p in gmod.named_parameters():
                assert (p.grad is None) == (tgrads[k] is None), (what, k)
                if p.grad is not None:
                    np.testing.assert_allclose(npy(p.grad), tgrads[k].numpy(), err_msg=f"{what} {dt.__name__} "
                                               f"grad of {k}", **t)


def check_module(gm, tm, *arrays, **kw):
    assert repr(gm) == repr(tm)
    assert list(gm.state_dict()) == list(tm.state_dict())
    compare(gm, tm, *arrays, gmod=gm, tmod=tm, what=repr(tm), **kw)


def rand(*shape, seed=0, scale=2.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def away_from(x, kinks, gap=1e-3):
    """x nudged off the kinks, for finite differences."""
    x = np.array(x, dtype=np.float64)
    for k in kinks:
        near = np.abs(x - k) < gap
        x[near] = k + 2 * gap
    return x


# the edge values: every kink of the functions below, 0 and -0, tiny and large |x|
EDGE = np.array([0.0, -0.0, 1e-8, -1e-8, 1e-4, -1e-4, 0.3, -0.3, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 3.0,
                 -3.0, 6.0, -6.0, 10.0, -10.0, 17.0, -17.0, 20.0, -20.0, 30.0, -30.0, 89.0, -89.0, 100.0,
                 -100.0])

# (name, graphc fn, torch fn, kinks for gradcheck)
ACTIVATIONS = [
    ("elu", F.elu, TF.elu, [0]),
    ("elu_alpha", lambda x: F.elu(x, 0.3), lambda x: TF.elu(x, 0.3), [0]),
    ("selu", F.selu, TF.selu, [0]),
    ("celu", lambda x: F.celu(x, 1.7), lambda x: TF.celu(x, 1.7), [0]),   # (float64: F64_LOOSE)
    ("hardtanh", F.hardtanh, TF.hardtanh, [-1, 1]),
    ("hardtanh_range", lambda x: F.hardtanh(x, -2.0, 3.0), lambda x: TF.hardtanh(x, -2.0, 3.0), [-2, 3]),
    ("relu6", F.relu6, TF.relu6, [0, 6]),
    ("mish", F.mish, TF.mish, []),
    ("softplus", F.softplus, TF.softplus, [20]),
    ("softplus_beta", lambda x: F.softplus(x, 2.0, 10.0), lambda x: TF.softplus(x, 2.0, 10.0), [5]),
    ("softplus_neg_beta", lambda x: F.softplus(x, 0.5, 3.0), lambda x: TF.softplus(x, 0.5, 3.0), [6]),
    ("softsign", F.softsign, TF.softsign, []),
    ("hardswish", F.hardswish, TF.hardswish, [-3, 3]),
    ("hardsigmoid", F.hardsigmoid, TF.hardsigmoid, [-3, 3]),
    ("logsigmoid", F.logsigmoid, TF.logsigmoid, []),
    ("threshold", lambda x: F.threshold(x, 0.5, -2.0), lambda x: TF.threshold(x, 0.5, -2.0), [0.5]),
    ("tanhshrink", F.tanhshrink, TF.tanhshrink, []),
    ("softshrink", F.softshrink, TF.softshrink, [-0.5, 0.5]),
    ("softshrink_0", lambda x: F.softshrink(x, 0.0), lambda x: TF.softshrink(x, 0.0), [0]),
    ("hardshrink", lambda x: F.hardshrink(x, 0.3), lambda x: TF.hardshrink(x, 0.3), [-0.3, 0.3]),
    ("relu", F.relu, TF.relu, [0]),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2), [0]),
    ("silu", F.silu, TF.silu, []),
]


# torch's own backward rounds a constant to float32 in float64: celu's 1 / alpha.toFloat()
# (derivatives.yaml), hardsigmoid's 1.0f / 6.0f (its CPU kernel); graphc's are exact
F64_LOOSE = {"celu": dict(rtol=1e-6), "hardsigmoid": dict(rtol=1e-7)}


@pytest.mark.parametrize("name,gfn,tfn,kinks", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_edge_values_and_gradients(name, gfn, tfn, kinks):
    for x in (EDGE, rand(3, 1, 5), np.array(0.7)):
        compare(gfn, tfn, x, tol64=F64_LOOSE.get(name), what=name)


@pytest.mark.parametrize("name,gfn,tfn,kinks", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_gradcheck(name, gfn, tfn, kinks):
    x = gc.tensor(away_from(rand(2, 5, seed=1), kinks))
    assert gradcheck(gfn, [x])


def test_activation_nan_passes_through():
    x = np.array([np.nan, 1.0, -1.0])
    for name, gfn, tfn, _ in ACTIVATIONS:
        with torch.no_grad():
                np.testing.assert_array_equal(np.isnan(npy(gfn(gc.tensor(x)))), np.isnan(tfn(torch.tensor(x)).numpy()),
                                          err_msg=name)


MODULES = [
    (lambda m: m.ELU(), (4, 3)), (lambda m: m.ELU(0.5), (4, 3)), (lambda m: m.SELU(), (2, 3, 2)),
    (lambda m: m.CELU(2.0), (5,)), (lambda m: m.Hardtanh(-2, 3), (4, 3)), (lambda m: m.ReLU6(), (4, 3)),
    (lambda m: m.Mish(), (1, 7)), (lambda m: m.Softplus(2, 10), (4, 3)), (lambda m: m.Softsign(), (3,)),
    (lambda m: m.Hardswish(), (4, 3)), (lambda m: m.Hardsigmoid(), (4, 3)), (lambda m: m.LogSigmoid(), (4, 3)),
    (lambda m: m.GLU(), (3, 4)), (lambda m: m.GLU(0), (4, 3)), (lambda m: m.Threshold(0.1, 20), (4, 3)),
    (lambda m: m.Tanhshrink(), (4, 3)), (lambda m: m.Softshrink(), (4, 3)), (lambda m: m.Hardshrink(0.3), (4, 3)),
    (lambda m: m.Softmin(1), (2, 5)), (lambda m: m.Softmin(), (2, 5)), (lambda m: m.Softmin(-1), (2, 3, 5)),
    (lambda m: m.PReLU(), (4, 3)), (lambda m: m.PReLU(3, init=0.1), (2, 3, 4)),
    (lambda m: m.PReLU(3), (2, 3)), (lambda m: m.PReLU(), (5,)),
]


@pytest.mark.filterwarnings("ignore:Implicit dimension choice")
@pytest.mark.parametrize("make,shape", MODULES, ids=[repr(m[0](torch.nn)) + str(m[1]) for m in MODULES])
def test_activation_module_matches_torch(make, shape):
    tm = make(torch.nn)
    if isinstance(tm, torch.nn.PReLU):     # a weight that is not the default, per channel
        with torch.no_grad():
            tm.weight.copy_(torch.linspace(-0.5, 0.7, tm.weight.numel()))
    check_module(make(nn), tm, rand(*shape, seed=3), tol64=F64_LOOSE.get(type(tm).__name__.lower()))


def test_prelu_weight_gradient_and_shape_errors():
    compare(F.prelu, TF.prelu, rand(2, 3, 4), np.array([0.1, -0.2, 0.3]))
    compare(F.prelu, TF.prelu, rand(2, 3), np.array([0.25]))
    assert gradcheck(F.prelu, [gc.tensor(away_from(rand(2, 3, 2), [0])), gc.tensor(np.array([0.1, 0.2, 0.3]))])
    with pytest.raises(RuntimeError, match="mismatch of parameter numbers"):
        F.prelu(gc.randn(2, 4), gc.ones(3))
    with pytest.raises(RuntimeError, match="mismatch of parameter numbers"):
        F.prelu(gc.randn(3), gc.ones(3))


def test_glu_softmin_options():
    compare(lambda x: F.glu(x, 1), lambda x: TF.glu(x, 1), rand(2, 6, 3))
    compare(lambda x: F.softmin(x, 0, dtype=gc.float64), lambda x: TF.softmin(x, 0, dtype=torch.float64),
            rand(3, 2), dtypes=(np.float32,))
    with pytest.raises(RuntimeError, match="Halving dimension must be even"):
        F.glu(gc.randn(2, 5))
    with pytest.raises(RuntimeError, match="lambda must be greater or equal to 0"):
        F.softshrink(gc.randn(3), -1.0)
    with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
        F.hardtanh(gc.randn(3), 2.0, 1.0)


INPLACE = [("elu", F.elu, TF.elu), ("selu", F.selu, TF.selu), ("celu", F.celu, TF.celu),
           ("hardtanh", F.hardtanh, TF.hardtanh), ("relu6", F.relu6, TF.relu6), ("mish", F.mish, TF.mish),
           ("hardswish", F.hardswish, TF.hardswish), ("hardsigmoid", F.hardsigmoid, TF.hardsigmoid),
           ("threshold", lambda x, inplace: F.threshold(x, 0.1, 2.0, inplace),
            lambda x, inplace: TF.threshold(x, 0.1, 2.0, inplace)),
           ("relu", F.relu, TF.relu), ("leaky_relu", F.leaky_relu, TF.leaky_relu), ("silu", F.silu, TF.silu)]


@pytest.mark.parametrize("name,gfn,tfn", INPLACE, ids=[i[0] for i in INPLACE])
def test_inplace_writes_the_input_and_differentiates(name, gfn, tfn):
    """inplace=True returns the input, overwritten, and backward through it is torch's."""
    def g(x):
        h = x * 1.5
        out = gfn(h, inplace=True)
        assert out is h
        return h + 0

    def t(x):
        h = x * 1.5
        out = tfn(h, inplace=True)
        assert out is h
        return h + 0
    compare(g, t, rand(3, 4, seed=5), tol64=F64_LOOSE.get(name), what=name)


def test_rrelu_eval_is_torch_and_train_draws_slopes():
    for lo, hi in ((1 / 8, 1 / 3), (0.1, 0.3), (0.2, 0.2)):
        compare(lambda x: F.rrelu(x, lo, hi), lambda x: TF.rrelu(x, lo, hi), EDGE)
        gm, tm = nn.RReLU(lo, hi).eval(), torch.nn.RReLU(lo, hi).eval()
        assert repr(gm) == repr(tm)
        compare(gm, tm, rand(3, 4))
    assert repr(nn.RReLU(0.1, 0.3, True)) == repr(torch.nn.RReLU(0.1, 0.3, True))
    gc.manual_seed(0)
    x = gc.tensor(-np.abs(rand(200, 100)) - 0.1, requires_grad=True)
    y = F.rrelu(x, 0.1, 0.3, training=True)
    slope = npy(y) / npy(x)
    assert slope.min() >= 0.1 and slope.max() <= 0.3 and abs(slope.mean() - 0.2) < 0.005
    y.sum().backward()
    np.testing.assert_allclose(npy(x.grad), slope, rtol=1e-6)       # torch's: the drawn slope
    np.testing.assert_array_equal(npy(F.rrelu(gc.tensor([0.5, 2.0]), training=True)), [0.5, 2.0])
    with pytest.raises(RuntimeError, match="Lower bound should be less than or equal"):
        F.rrelu(gc.randn(3), 0.5, 0.1, True)


UNDERSCORED = [("rrelu_", ()), ("elu_", ()), ("selu_", ()), ("celu_", (0.5,)), ("hardtanh_", (-0.5, 2.0)), ("threshold_", (0.2, -1.0)),
               ("relu_", ()), ("leaky_relu_", (0.3,))]


@pytest.mark.parametrize("name,args", UNDERSCORED, ids=[u[0] for u in UNDERSCORED])
def test_underscore_forms_are_inplace(name, args):
    def run(lib, x):
        h = x * 1.5
        assert getattr(lib, name)(h, *args) is h
        return h + 0
    compare(lambda x: run(F, x), lambda x: run(TF, x), rand(3, 4, seed=6), what=name)
