"""Eager graphc against torch: forward values, gradients, type promotion and indexing."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import graphc as gc  # noqa: E402
import graphc.nn.functional as GF  # noqa: E402
import torch.nn.functional as TF  # noqa: E402

DT = {"f32": (gc.float32, torch.float32), "f64": (gc.float64, torch.float64)}
TOL = {"f32": dict(rtol=1e-5, atol=1e-6), "f64": dict(rtol=1e-10, atol=1e-12)}


def rng(seed=0):
    return np.random.default_rng(seed)


def pair(a, requires_grad=False):
    """The same data as a graphc and a torch tensor."""
    g = gc.tensor(a)
    t = torch.from_numpy(np.array(a))
    if requires_grad:
        g.requires_grad_(True)
        t.requires_grad_(True)
    return g, t


def same(g, t, rtol=1e-5, atol=1e-6):
    if isinstance(t, (tuple, list)):
        assert len(g) == len(t)
        for a, b in zip(g, t):
            same(a, b, rtol, atol)
        return
    assert isinstance(g, gc.Tensor)
    assert tuple(g.shape) == tuple(t.shape), (g.shape, t.shape)
    assert g.dtype.name == str(t.dtype).replace("torch.", ""), (g.dtype, t.dtype)
    np.testing.assert_allclose(g.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=atol)


def check(gfn, tfn, arrays, dt="f64", grad=True, rtol=None, atol=None):
    """Compare forward and (for float inputs) gradients under a random cotangent."""
    tol = dict(TOL[dt])
    if rtol is not None:
        tol["rtol"] = rtol
    if atol is not None:
        tol["atol"] = atol
    np_dt = np.float32 if dt == "f32" else np.float64
    arrays = [a.astype(np_dt) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in arrays]
    gs, ts = [], []
    for a in arrays:
        if isinstance(a, np.ndarray):
            want = grad and a.dtype.kind == "f"
            g, t = pair(a, want)
        else:
            g = t = a
        gs.append(g)
        ts.append(t)
    gout, tout = gfn(*gs), tfn(*ts)
    same(gout, tout, **tol)
    if not grad:
        return
    diff_g = [g for g in gs if isinstance(g, gc.Tensor) and g.requires_grad]
    diff_t = [t for t in ts if isinstance(t, torch.Tensor) and t.requires_grad]
    if not diff_g or not tout.requires_grad:
        return
    cot = rng(99).standard_normal(tuple(tout.shape)).astype(np_dt)
    gg = gc.autograd.grad(gout, diff_g, grad_outputs=gc.tensor(cot), allow_unused=True)
    tg = torch.autograd.grad(tout, diff_t, grad_outputs=torch.from_numpy(cot), allow_unused=True)
    for a, b in zip(gg, tg):
        if b is None:
            assert a is None or np.all(a.numpy() == 0)
        else:
            same(a, b, **tol)


# ---- unary elementwise and activations --------------------------------------------------------------
def _pos(shape, seed=0):
    return np.asarray(rng(seed).uniform(0.3, 3.0, shape))


def _any(shape, seed=0):
    return np.asarray(rng(seed).standard_normal(shape))


def _away0(shape, seed=0):
    x = rng(seed).uniform(0.2, 2.0, shape)
    return np.asarray(x * rng(seed + 1).choice([-1.0, 1.0], shape))


UNARY = [
    ("exp", gc.exp, torch.exp, _any),
    ("log", gc.log, torch.log, _pos),
    ("sqrt", gc.sqrt, torch.sqrt, _pos),
    ("rsqrt", gc.rsqrt, torch.rsqrt, _pos),
    ("tanh", gc.tanh, torch.tanh, _any),
    ("sigmoid", gc.sigmoid, torch.sigmoid, _any),
    ("sin", gc.sin, torch.sin, _any),
    ("cos", gc.cos, torch.cos, _any),
    ("erf", gc.erf, torch.erf, _any),
    ("abs", gc.abs, torch.abs, _away0),
    ("neg", gc.neg, torch.neg, _any),
    ("sign", gc.sign, torch.sign, _away0),
    ("log1p", gc.log1p, torch.log1p, _pos),
    ("expm1", gc.expm1, torch.expm1, _any),
    ("square", gc.square, torch.square, _any),
    ("reciprocal", gc.reciprocal, torch.reciprocal, _pos),
    ("relu", GF.relu, TF.relu, _away0),
    ("leaky_relu", lambda x: GF.leaky_relu(x, 0.1), lambda x: TF.leaky_relu(x, 0.1), _away0),
    ("gelu", GF.gelu, TF.gelu, _any),
    ("gelu_tanh", lambda x: GF.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh"), _any),
    ("silu", GF.silu, TF.silu, _any),
    ("softplus", GF.softplus, TF.softplus, _any),
    ("softplus_beta", lambda x: GF.softplus(x * 10, beta=2.0, threshold=5.0),
     lambda x: TF.softplus(x * 10, beta=2.0, threshold=5.0), _any),
    ("sigmoid_method", lambda x: x.sigmoid(), lambda x: x.sigmoid(), _any),
    ("clamp", lambda x: gc.clamp(x, -0.5, 0.7), lambda x: torch.clamp(x, -0.5, 0.7), _any),
    ("clamp_min", lambda x: x.clamp(min=0.1), lambda x: x.clamp(min=0.1), _any),
]


@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize("name,gfn,tfn,gen", UNARY, ids=[u[0] for u in UNARY])
def test_unary(name, gfn, tfn, gen, dt):
    check(gfn, tfn, [gen((3, 5))], dt)
    check(gfn, tfn, [gen(())], dt)
    check(gfn, tfn, [gen((0, 2))], dt)


def test_unary_int_input_promotes_to_float():
    a = np.arange(1, 6)
    for gfn, tfn in [(gc.exp, torch.exp), (gc.sqrt, torch.sqrt), (gc.sigmoid, torch.sigmoid),
                     (gc.log, torch.log), (gc.reciprocal, torch.reciprocal), (gc.abs, torch.abs),
                     (gc.neg, torch.neg), (gc.sign, torch.sign), (gc.square, torch.square)]:
        same(gfn(gc.tensor(a)), tfn(torch.tensor(a)))


@pytest.mark.parametrize("dt", ["f32", "f64"])
def test_log1p_expm1_accurate_near_zero(dt):
    """log(1 + x) and exp(x) - 1 lose every digit of a tiny result (float32 log1p(1e-10) would
    be 0): graphc.log1p/expm1 match torch's to a few ulps there, and on ints promote as torch."""
    g_dt, t_dt = DT[dt]
    a = np.array([1e-30, -1e-20, 1e-10, -3e-8, 1e-5, -0.999, -1.0, 0.0, 0.5, 3.0, 80.0, np.inf])
    for gfn, tfn in [(gc.log1p, torch.log1p), (gc.expm1, torch.expm1)]:
        g = gfn(gc.tensor(a, dtype=g_dt)).numpy()
        t = tfn(torch.tensor(a, dtype=t_dt)).numpy()
        np.testing.assert_allclose(g, t, rtol=4 * np.finfo(g.dtype).eps, atol=0)
    for gfn, tfn in [(gc.log1p, torch.log1p), (gc.expm1, torch.expm1)]:
        same(gfn(gc.tensor(np.arange(0, 5))), tfn(torch.tensor(np.arange(0, 5))))


def test_extreme_values():
    a = np.array([-1000.0, -50.0, -1.0, 0.0, 1.0, 50.0, 1000.0])
    for gfn, tfn in [(gc.sigmoid, torch.sigmoid), (gc.tanh, torch.tanh), (GF.softplus, TF.softplus),
                     (lambda x: GF.log_softmax(x, 0), lambda x: TF.log_softmax(x, 0)),
                     (lambda x: GF.softmax(x, 0), lambda x: TF.softmax(x, 0)),
                     (lambda x: gc.logsumexp(x, 0), lambda x: torch.logsumexp(x, 0))]:
        for dt in ("f32", "f64"):
            check(gfn, tfn, [a], dt)


# ---- binary, with broadcasting and promotion ---------------------------------------------------------
BINARY = [
    ("add", gc.add, torch.add, _any),
    ("sub", gc.sub, torch.sub, _any),
    ("mul", gc.mul, torch.mul, _any),
    ("div", gc.div, torch.div, _away0),
    ("pow", gc.pow, torch.pow, _pos),
    ("maximum", gc.maximum, torch.maximum, _any),
    ("minimum", gc.minimum, torch.minimum, _any),
    ("add_alpha", lambda a, b: gc.add(a, b, alpha=2.5), lambda a, b: torch.add(a, b, alpha=2.5), _any),
    ("sub_alpha", lambda a, b: a.sub(b, alpha=-3), lambda a, b: a.sub(b, alpha=-3), _any),
    ("atan2ish", lambda a, b: a * b + a / (b * b + 1), lambda a, b: a * b + a / (b * b + 1), _any),
]
SHAPES = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((), (2, 3)), ((5,), ()),
          ((1, 3, 1), (2, 1, 5)), ((0, 3), (1, 3))]


@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize("sa,sb", SHAPES)
@pytest.mark.parametrize("name,gfn,tfn,gen", BINARY, ids=[b[0] for b in BINARY])
def test_binary(name, gfn, tfn, gen, sa, sb, dt):
    check(gfn, tfn, [gen(sa, 1), gen(sb, 2)], dt)


@pytest.mark.parametrize("backend", [None, "interp", "llvm"])
def test_atan2(backend):
    """The primitive (no user-level function yet: same shape and dtype operands) against
    torch.atan2: every quadrant, the axes, signed zeros, infinities, NaN; and its gradient."""
    from graphc.tensor import apply
    v = np.array([0.0, -0.0, 0.5, -0.5, 3.0, -3.0, 1e-30, np.inf, -np.inf, np.nan])
    a, b = np.repeat(v, len(v)), np.tile(v, len(v))
    for dt in ("f32", "f64"):
        fn = lambda y, x: apply("atan2", y, x)
        if backend:
            fn = gc.compile(fn, backend=backend)
        ga, gb = gc.tensor(a, dtype=DT[dt][0]), gc.tensor(b, dtype=DT[dt][0])
        ta, tb = torch.tensor(a, dtype=DT[dt][1]), torch.tensor(b, dtype=DT[dt][1])
        np.testing.assert_allclose(fn(ga, gb).numpy(), torch.atan2(ta, tb).numpy(),
                                   rtol=2e-7 if dt == "f32" else 1e-15, atol=0, equal_nan=True)
    y, x = rng(3).normal(size=(3, 4)), rng(4).normal(size=(3, 4))
    check(lambda p, q: apply("atan2", p, q), torch.atan2, [y, x])


def test_binary_with_scalars():
    a = _pos((2, 3))
    for op in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
               "__truediv__", "__rtruediv__", "__pow__", "__rpow__"):
        for s in (2, 0.5, -1.5) + (() if "sub" in op or "pow" in op else (True,)):
            check(lambda x: getattr(x, op)(s), lambda x: getattr(x, op)(s), [a])


def test_minmax_ties_share_gradient():
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([1.0, 0.0, 3.0])
    check(gc.maximum, torch.maximum, [a, b])
    check(gc.minimum, torch.minimum, [a, b])
    check(lambda x: gc.amax(x, 1), lambda x: torch.amax(x, 1), [np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])])
    check(lambda x: gc.amin(x), lambda x: torch.amin(x), [np.array([[1.0, 3.0, 1.0], [2.0, 2.0, 2.0]])])


def test_pow_special_cases():
    check(gc.pow, torch.pow, [np.array([0.0, 0.0, 2.0, 1.5]), np.array([2.0, 0.0, 3.0, 0.5])])
    check(lambda x: x ** 2, lambda x: x ** 2, [np.array([-2.0, 0.0, 3.0])])
    check(lambda x: 2.0 ** x, lambda x: 2.0 ** x, [np.array([-2.0, 0.0, 3.0])])
    same(gc.tensor([1, 2, 3]) ** 2, torch.tensor([1, 2, 3]) ** 2)
    same(gc.tensor([1, 2, 3]) ** 0.5, torch.tensor([1, 2, 3]) ** 0.5)
    same(2 ** gc.tensor([1, 2, 3]), 2 ** torch.tensor([1, 2, 3]))


@pytest.mark.parametrize("op", ["lt", "le", "gt", "ge", "eq", "ne"])
def test_comparisons(op):
    a = rng(1).integers(0, 3, (3, 4)).astype(np.float64)
    b = rng(2).integers(0, 3, (4,)).astype(np.float64)
    same(getattr(gc, op)(gc.tensor(a), gc.tensor(b)), getattr(torch, op)(torch.tensor(a), torch.tensor(b)))
    same(getattr(gc, op)(gc.tensor(a), 1), getattr(torch, op)(torch.tensor(a), 1))
    same(getattr(gc, op)(gc.tensor(a).long(), 1.5), getattr(torch, op)(torch.tensor(a).long(), 1.5))


def test_logical_ops():
    a = rng(1).integers(0, 2, (3, 4)).astype(bool)
    b = rng(2).integers(0, 2, (4,)).astype(bool)
    ga, ta = pair(a)
    gb, tb = pair(b)
    same(ga & gb, ta & tb)
    same(ga | gb, ta | tb)
    same(ga ^ gb, ta ^ tb)
    same(~ga, ~ta)
    same(gc.logical_and(ga, gb), torch.logical_and(ta, tb))
    x = rng(3).integers(-1, 2, (3, 4))
    gx, tx = pair(x)
    same(gc.logical_not(gx), torch.logical_not(tx))
    same(gc.logical_or(gx, 0), torch.logical_or(tx, torch.tensor(0)))
    same(gc.logical_xor(gx, gb), torch.logical_xor(tx, tb))


def test_where_and_masked_fill():
    c = rng(0).integers(0, 2, (3, 1)).astype(bool)
    check(lambda x, y: gc.where(gc.tensor(c), x, y), lambda x, y: torch.where(torch.tensor(c), x, y),
          [_any((3, 4), 1), _any((4,), 2)])
    check(lambda x: gc.where(gc.tensor(c), x, 0.0), lambda x: torch.where(torch.tensor(c), x, 0.0),
          [_any((3, 4), 1)])
    check(lambda x: x.masked_fill(gc.tensor(c), -1.5), lambda x: x.masked_fill(torch.tensor(c), -1.5),
          [_any((3, 4), 1)])
    # int and float branches promote
    same(gc.where(gc.tensor(c), gc.tensor([1, 2, 3, 4]), 0.5),
         torch.where(torch.tensor(c), torch.tensor([1, 2, 3, 4]), 0.5))
    same(gc.where(gc.tensor(c), 1.0, 0.0), torch.where(torch.tensor(c), 1.0, 0.0))


# ---- reductions ----------------------------------------------------------------------------------
REDUCE = [
    ("sum", lambda x: x.sum(), lambda x: x.sum()),
    ("sum_dim", lambda x: x.sum(1), lambda x: x.sum(1)),
    ("sum_dims_keep", lambda x: x.sum((0, -1), keepdim=True), lambda x: x.sum((0, -1), keepdim=True)),
    ("mean", lambda x: x.mean(), lambda x: x.mean()),
    ("mean_dim", lambda x: x.mean(-1, keepdim=True), lambda x: x.mean(-1, keepdim=True)),
    ("var", lambda x: x.var(), lambda x: x.var()),
    ("var_dim", lambda x: x.var(1), lambda x: x.var(1)),
    ("var_biased", lambda x: x.var(0, unbiased=False), lambda x: x.var(0, unbiased=False)),
    ("var_corr", lambda x: gc.var(x, (0, 2), correction=2, keepdim=True),
     lambda x: torch.var(x, (0, 2), correction=2, keepdim=True)),
    ("std", lambda x: x.std(), lambda x: x.std()),
    ("std_dim", lambda x: x.std(2, keepdim=True), lambda x: x.std(2, keepdim=True)),
    ("amax", lambda x: x.amax(), lambda x: x.amax()),
    ("amax_dims", lambda x: x.amax((0, 2)), lambda x: x.amax((0, 2))),
    ("amin_dim", lambda x: x.amin(1, keepdim=True), lambda x: x.amin(1, keepdim=True)),
    ("max", lambda x: x.max(), lambda x: x.max()),
    ("min", lambda x: x.min(), lambda x: x.min()),
    ("max_dim_values", lambda x: x.max(1).values, lambda x: x.max(1).values),
    ("min_dim_keep", lambda x: x.min(-1, keepdim=True)[0], lambda x: x.min(-1, keepdim=True)[0]),
    ("logsumexp", lambda x: x.logsumexp(1), lambda x: x.logsumexp(1)),
    ("logsumexp_dims", lambda x: gc.logsumexp(x, (0, 2), keepdim=True),
     lambda x: torch.logsumexp(x, (0, 2), keepdim=True)),
    ("norm", lambda x: x.norm(), lambda x: x.norm()),
    ("norm_dim", lambda x: gc.norm(x, dim=1), lambda x: torch.norm(x, dim=1)),
    ("norm_1", lambda x: gc.norm(x, p=1, dim=-1), lambda x: torch.norm(x, p=1, dim=-1)),
    ("norm_3", lambda x: gc.norm(x, p=3), lambda x: torch.norm(x, p=3)),
    ("norm_inf", lambda x: gc.norm(x, p=float("inf"), dim=0), lambda x: torch.norm(x, p=float("inf"), dim=0)),
    ("softmax", lambda x: GF.softmax(x, 1), lambda x: TF.softmax(x, 1)),
    ("softmax_last", lambda x: GF.softmax(x, -1), lambda x: TF.softmax(x, -1)),
    ("log_softmax", lambda x: GF.log_softmax(x, 0), lambda x: TF.log_softmax(x, 0)),
    ("log_softmax_last", lambda x: GF.log_softmax(x, -1), lambda x: TF.log_softmax(x, -1)),
]


@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize("name,gfn,tfn", REDUCE, ids=[r[0] for r in REDUCE])
def test_reductions(name, gfn, tfn, dt):
    check(gfn, tfn, [_any((3, 4, 5))], dt)


def test_arg_reductions_and_indices():
    a = rng(0).integers(0, 4, (4, 5)).astype(np.float64)   # ties: the first index wins
    ga, ta = pair(a)
    same(ga.argmax(), ta.argmax())
    same(ga.argmin(), ta.argmin())
    for d in (0, 1, -1):
        same(ga.argmax(d), ta.argmax(d))
        same(ga.argmin(d, keepdim=True), ta.argmin(d, keepdim=True))
        same(ga.max(d).indices, ta.max(d).indices)
        same(ga.min(d).indices, ta.min(d).indices)
    same(ga.argmax(keepdim=True), ta.argmax(keepdim=True))


def test_int_and_bool_reductions():
    a = rng(0).integers(-3, 4, (3, 4))
    ga, ta = pair(a)
    same(ga.sum(), ta.sum())
    same(ga.sum(0), ta.sum(0))
    same(ga.amax(1), ta.amax(1))
    same(ga.amin(0), ta.amin(0))
    same(ga.max(), ta.max())
    same(ga.sum(dtype=gc.float64), ta.sum(dtype=torch.float64))
    b = a > 0
    gb, tb = pair(b)
    same(gb.sum(), tb.sum())
    same(gb.sum(1), tb.sum(1))
    same(gb.any(), tb.any())
    same(gb.all(1), tb.all(1))
    same(gb.any(0), tb.any(0))
    same(ga.any(), ta.any())
    same(ga.all(), ta.all())
    same(gb.amax(1), tb.amax(1))
    same(gb.amin(0), tb.amin(0))
    same(ga.float().mean(0), ta.float().mean(0))
    same(ga.logsumexp(1), ta.logsumexp(1))
    same(gb.logsumexp(0), tb.logsumexp(0))


# ---- movement ------------------------------------------------------------------------------------
MOVE = [
    ("reshape", lambda x: x.reshape(4, -1), lambda x: x.reshape(4, -1)),
    ("view", lambda x: x.view(2, 2, 15), lambda x: x.view(2, 2, 15)),
    ("permute", lambda x: x.permute(2, 0, 1), lambda x: x.permute(2, 0, 1)),
    ("transpose", lambda x: x.transpose(0, -1), lambda x: x.transpose(0, -1)),
    ("mT", lambda x: x.mT, lambda x: x.mT),
    ("flatten", lambda x: x.flatten(), lambda x: x.flatten()),
    ("flatten_1", lambda x: x.flatten(1), lambda x: x.flatten(1)),
    ("flatten_0_1", lambda x: gc.flatten(x, 0, 1), lambda x: torch.flatten(x, 0, 1)),
    ("unsqueeze", lambda x: x.unsqueeze(1), lambda x: x.unsqueeze(1)),
    ("unsqueeze_neg", lambda x: x.unsqueeze(-1), lambda x: x.unsqueeze(-1)),
    ("squeeze", lambda x: x[:, :1].squeeze(), lambda x: x[:, :1].squeeze()),
    ("squeeze_dim", lambda x: x[:, :1].squeeze(1), lambda x: x[:, :1].squeeze(1)),
    ("squeeze_noop", lambda x: x.squeeze(0), lambda x: x.squeeze(0)),
    ("expand", lambda x: x[:, :1].expand(3, 4, 5), lambda x: x[:, :1].expand(3, 4, 5)),
    ("expand_new", lambda x: x[0].expand(2, -1, -1), lambda x: x[0].expand(2, -1, -1)),
    ("repeat", lambda x: x.repeat(2, 1, 3), lambda x: x.repeat(2, 1, 3)),
    ("repeat_more", lambda x: x[0].repeat(2, 1, 2), lambda x: x[0].repeat(2, 1, 2)),
    ("narrow", lambda x: x.narrow(2, 1, 3), lambda x: x.narrow(2, 1, 3)),
    ("narrow_neg", lambda x: x.narrow(1, -2, 2), lambda x: x.narrow(1, -2, 2)),
    ("split", lambda x: x.split(2, 2), lambda x: x.split(2, 2)),
    ("split_sizes", lambda x: x.split([1, 3], 1), lambda x: x.split([1, 3], 1)),
    ("chunk", lambda x: x.chunk(3, -1), lambda x: x.chunk(3, -1)),
    ("unbind", lambda x: x.unbind(1), lambda x: x.unbind(1)),
    ("cat", lambda x: gc.cat([x, x * 2, x[:, :1]], 1), lambda x: torch.cat([x, x * 2, x[:, :1]], 1)),
    ("cat_neg", lambda x: gc.cat([x, x], -1), lambda x: torch.cat([x, x], -1)),
    ("stack", lambda x: gc.stack([x, x + 1], 1), lambda x: torch.stack([x, x + 1], 1)),
    ("stack_last", lambda x: gc.stack([x, x], -1), lambda x: torch.stack([x, x], -1)),
    ("pad", lambda x: GF.pad(x, (1, 2)), lambda x: TF.pad(x, (1, 2))),
    ("pad_2d", lambda x: GF.pad(x, (0, 1, 2, 0), value=1.5), lambda x: TF.pad(x, (0, 1, 2, 0), value=1.5)),
    ("pad_crop", lambda x: GF.pad(x, (-1, 1, 1, -2)), lambda x: TF.pad(x, (-1, 1, 1, -2))),
    ("T_2d", lambda x: x[0].T, lambda x: x[0].T),
    ("t", lambda x: x[0].t(), lambda x: x[0].t()),
    ("swapaxes", lambda x: x.swapaxes(0, 1), lambda x: x.swapaxes(0, 1)),
    ("view_as", lambda x: x.view_as(gc.zeros(5, 12)) if isinstance(x, gc.Tensor) else x.view_as(torch.zeros(5, 12)),
     None),
]


@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize("name,gfn,tfn", MOVE, ids=[m[0] for m in MOVE])
def test_movement(name, gfn, tfn, dt):
    tfn = tfn or gfn
    if name in ("split", "split_sizes", "chunk", "unbind"):
        # tuples: compare forward, and the gradient of a weighted sum of the pieces
        check(lambda x: gfn(x)[0] * 2 + gfn(x)[-1].sum() if name != "split_sizes" else gfn(x)[1].sum(1),
              lambda x: tfn(x)[0] * 2 + tfn(x)[-1].sum() if name != "split_sizes" else tfn(x)[1].sum(1),
              [_any((3, 4, 5))], dt)
        g, t = pair(_any((3, 4, 5)))
        same(gfn(g), tfn(t))
    else:
        check(gfn, tfn, [_any((3, 4, 5))], dt)


def test_gather_scatter_index_select():
    x = _any((4, 5))
    idx = rng(1).integers(0, 5, (4, 3))
    check(lambda a: gc.gather(a, 1, gc.tensor(idx)), lambda a: torch.gather(a, 1, torch.tensor(idx)), [x])
    idx0 = rng(2).integers(0, 4, (2, 5))
    check(lambda a: a.gather(0, gc.tensor(idx0)), lambda a: a.gather(0, torch.tensor(idx0)), [x])
    # a smaller index in the non-gathered dims
    idx_small = rng(3).integers(0, 5, (2, 2))
    check(lambda a: a.gather(1, gc.tensor(idx_small)), lambda a: a.gather(1, torch.tensor(idx_small)), [x])
    sel = np.array([3, 0, 3, -1 + 4])
    check(lambda a: a.index_select(0, gc.tensor(sel)), lambda a: a.index_select(0, torch.tensor(sel)), [x])
    check(lambda a: gc.index_select(a, 1, gc.tensor([4, 4, 1])),
          lambda a: torch.index_select(a, 1, torch.tensor([4, 4, 1])), [x])
    src = _any((4, 3), 5)
    check(lambda a, s: a.scatter_add(1, gc.tensor(idx), s),
          lambda a, s: a.scatter_add(1, torch.tensor(idx), s), [x, src])


# ---- matmul --------------------------------------------------------------------------------------
MATMUL = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
          ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)),
          ((1, 4), (4, 1)), ((0, 4), (4, 3)), ((3, 0), (0, 2))]


@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize("sa,sb", MATMUL)
def test_matmul(sa, sb, dt):
    check(gc.matmul, torch.matmul, [_any(sa, 1), _any(sb, 2)], dt, rtol=1e-4 if dt == "f32" else None)
    check(lambda a, b: a @ b, lambda a, b: a @ b, [_any(sa, 1), _any(sb, 2)], dt,
          rtol=1e-4 if dt == "f32" else None)


def test_mm_bmm_dot_outer():
    check(gc.mm, torch.mm, [_any((2, 3)), _any((3, 4), 1)])
    check(gc.bmm, torch.bmm, [_any((2, 2, 3)), _any((2, 3, 4), 1)])
    check(gc.dot, torch.dot, [_any((5,)), _any((5,), 1)])
    check(gc.outer, torch.outer, [_any((3,)), _any((4,), 1)])
    same(gc.tensor([[1, 2], [3, 4]]) @ gc.tensor([[1], [1]]), torch.tensor([[1, 2], [3, 4]]) @ torch.tensor([[1], [1]]))


# ---- composites: losses, linear, layer_norm ------------------------------------------------------
CE_OPTS = [dict(), dict(reduction="sum"), dict(reduction="none"), dict(ignore_index=1),
           dict(ignore_index=2, reduction="sum"), dict(label_smoothing=0.2),
           dict(label_smoothing=0.1, reduction="none"), dict(use_weight=True),
           dict(use_weight=True, reduction="sum"), dict(use_weight=True, ignore_index=0),
           dict(use_weight=True, label_smoothing=0.3), dict(use_weight=True, label_smoothing=0.3, ignore_index=1),
           dict(use_weight=True, reduction="none", label_smoothing=0.1)]


def _split_opts(opts):
    opts = dict(opts)
    use_w = opts.pop("use_weight", False)
    return use_w, opts


@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize("opts", CE_OPTS)
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 2, 3), (4,)])
def test_cross_entropy(opts, shape, dt):
    use_w, kw = _split_opts(opts)
    c = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    target = rng(3).integers(0, c, tshape)
    w = rng(4).uniform(0.5, 2.0, (c,))
    tw = torch.tensor(w.astype(np.float32 if dt == "f32" else np.float64))
    gw = gc.tensor(tw.numpy())
    check(lambda x: GF.cross_entropy(x, gc.tensor(target), weight=gw if use_w else None, **kw),
          lambda x: TF.cross_entropy(x, torch.tensor(target), weight=tw if use_w else None, **kw),
          [_any(shape)], dt, rtol=1e-4 if dt == "f32" else None)
    check(lambda x: GF.nll_loss(GF.log_softmax(x, 0 if len(shape) == 1 else 1), gc.tensor(target),
                                weight=gw if use_w else None, **{k: v for k, v in kw.items() if k != "label_smoothing"}),
          lambda x: TF.nll_loss(TF.log_softmax(x, 0 if len(shape) == 1 else 1), torch.tensor(target),
                                weight=tw if use_w else None, **{k: v for k, v in kw.items() if k != "label_smoothing"}),
          [_any(shape)], dt, rtol=1e-4 if dt == "f32" else None)


@pytest.mark.parametrize("opts", [dict(), dict(reduction="sum"), dict(label_smoothing=0.25),
                                  dict(use_weight=True), dict(use_weight=True, reduction="none")])
def test_cross_entropy_probability_targets(opts):
    use_w, kw = _split_opts(opts)
    p = rng(5).uniform(0, 1, (5, 3, 2))
    p = p / p.sum(1, keepdims=True)
    w = rng(4).uniform(0.5, 2.0, (3,))
    check(lambda x, t: GF.cross_entropy(x, t, weight=gc.tensor(w) if use_w else None, **kw),
          lambda x, t: TF.cross_entropy(x, t, weight=torch.tensor(w) if use_w else None, **kw),
          [_any((5, 3, 2)), p])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_and_binary_losses(reduction):
    x, y = _any((4, 3), 1), _any((4, 3), 2)
    check(lambda a, b: GF.mse_loss(a, b, reduction=reduction), lambda a, b: TF.mse_loss(a, b, reduction=reduction), [x, y])
    check(lambda a, b: GF.l1_loss(a, b, reduction=reduction), lambda a, b: TF.l1_loss(a, b, reduction=reduction), [x, y])
    p = rng(3).uniform(0.05, 0.95, (4, 3))
    t = rng(4).uniform(0, 1, (4, 3))
    w = rng(5).uniform(0.5, 1.5, (4, 3))
    check(lambda a, b: GF.binary_cross_entropy(a, b, reduction=reduction),
          lambda a, b: TF.binary_cross_entropy(a, b, reduction=reduction), [p, t])
    check(lambda a, b: GF.binary_cross_entropy(a, b, weight=gc.tensor(w), reduction=reduction),
          lambda a, b: TF.binary_cross_entropy(a, b, weight=torch.tensor(w), reduction=reduction), [p, t])
    check(lambda a, b: GF.binary_cross_entropy_with_logits(a, b, reduction=reduction),
          lambda a, b: TF.binary_cross_entropy_with_logits(a, b, reduction=reduction), [x * 5, t])
    pw = rng(6).uniform(0.5, 3, (3,))
    check(lambda a, b: GF.binary_cross_entropy_with_logits(a, b, weight=gc.tensor(w), pos_weight=gc.tensor(pw),
                                                           reduction=reduction),
          lambda a, b: TF.binary_cross_entropy_with_logits(a, b, weight=torch.tensor(w), pos_weight=torch.tensor(pw),
                                                           reduction=reduction), [x * 5, t])


def test_bce_saturated_probabilities():
    p = np.array([0.0, 1.0, 0.5, 1.0, 0.0])
    t = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    check(GF.binary_cross_entropy, TF.binary_cross_entropy, [p, t], grad=False)


@pytest.mark.parametrize("dt", ["f32", "f64"])
def test_linear(dt):
    check(GF.linear, TF.linear, [_any((5, 3)), _any((4, 3), 1), _any((4,), 2)], dt, rtol=1e-4 if dt == "f32" else None)
    check(GF.linear, TF.linear, [_any((2, 5, 3)), _any((4, 3), 1)], dt, rtol=1e-4 if dt == "f32" else None)
    check(GF.linear, TF.linear, [_any((3,)), _any((4, 3), 1), _any((4,), 2)], dt, rtol=1e-4 if dt == "f32" else None)


@pytest.mark.parametrize("dt", ["f32", "f64"])
def test_layer_norm(dt):
    tol = dict(rtol=1e-4, atol=1e-5) if dt == "f32" else {}
    check(lambda x, w, b: GF.layer_norm(x, (5,), w, b), lambda x, w, b: TF.layer_norm(x, (5,), w, b),
          [_any((3, 4, 5)), _any((5,), 1), _any((5,), 2)], dt, **tol)
    check(lambda x: GF.layer_norm(x, [4, 5]), lambda x: TF.layer_norm(x, [4, 5]), [_any((3, 4, 5))], dt, **tol)
    check(lambda x, w: GF.layer_norm(x, 5, w, eps=1e-2), lambda x, w: TF.layer_norm(x, (5,), w, eps=1e-2),
          [_any((3, 5)), _any((5,), 1)], dt, **tol)


def test_one_hot():
    t = rng(0).integers(0, 4, (3, 2))
    same(GF.one_hot(gc.tensor(t)), TF.one_hot(torch.tensor(t)))
    same(GF.one_hot(gc.tensor(t), 6), TF.one_hot(torch.tensor(t), 6))


# ---- type promotion ------------------------------------------------------------------------------
def _mk(spec):
    """('t', dtype, ndim) -> tensor pair, or a Python scalar."""
    if not isinstance(spec, tuple):
        return spec, spec
    _, name, ndim = spec
    shape = (2,) * ndim
    gd = {"b": gc.bool, "i": gc.int64, "f": gc.float32, "d": gc.float64}[name]
    td = {"b": torch.bool, "i": torch.int64, "f": torch.float32, "d": torch.float64}[name]
    return gc.ones(shape, dtype=gd), torch.ones(shape, dtype=td)


def T(dt, ndim=1):
    return ("t", dt, ndim)


PROMO = [(T(a, n), T(b, m)) for a in "bifd" for b in "bifd" for n, m in ((1, 1), (1, 0), (0, 1), (0, 0))]
PROMO += [(T(a, n), s) for a in "bifd" for n in (0, 1) for s in (True, 2, 2.5)]
PROMO += [(s, T(a, n)) for a in "bifd" for n in (0, 1) for s in (True, 3, -1.5)]


@pytest.mark.parametrize("a,b", PROMO, ids=[f"{a}-{b}" for a, b in PROMO])
def test_promotion_matches_torch(a, b):
    ga, ta = _mk(a)
    gb, tb = _mk(b)
    want = torch.result_type(ta, tb) if isinstance(ta, torch.Tensor) else torch.result_type(tb, ta)
    assert gc.result_type(ga, gb).name == str(want).replace("torch.", "")
    ops = ["__add__", "__sub__", "__mul__", "__truediv__", "__pow__", "__lt__", "__eq__", "__ne__"]
    if isinstance(ga, gc.Tensor) and isinstance(gb, gc.Tensor):
        ops += [lambda x, y, lib: lib.where(lib.ones((), dtype=lib.bool), x, y),
                lambda x, y, lib: lib.maximum(x, y), lambda x, y, lib: lib.minimum(x, y),
                lambda x, y, lib: lib.cat([x.reshape(-1), y.reshape(-1)])]
    both_bool = all(v is True or (isinstance(v, gc.Tensor) and v.dtype is gc.bool) for v in (ga, gb))
    for op in ops:
        if both_bool and op == "__pow__":   # torch: bool_tensor ** True works, bool ** bool tensors not
            continue
        if isinstance(op, str):
            def run(x, y, lib, op=op):
                if isinstance(x, (gc.Tensor, torch.Tensor)):
                    return getattr(x, op)(y)
                if op in ("__lt__", "__eq__", "__ne__"):   # reflected: y > x etc.
                    return getattr(y, {"__lt__": "__gt__"}.get(op, op))(x)
                return getattr(y, "__r" + op[2:])(x)
        else:
            run = op
        try:
            want = run(ta, tb, torch)
        except (RuntimeError, NotImplementedError):
            with pytest.raises((RuntimeError, TypeError, ValueError)):
                run(ga, gb, gc)
            continue
        same(run(ga, gb, gc), want)


def test_promotion_with_default_dtype_float64():
    old = gc.get_default_dtype()
    gc.set_default_dtype(gc.float64)
    torch_old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for a, b in [(T("i"), 2.5), (T("f"), 2.5), (T("b"), 1.5), (T("i", 0), 0.5)]:
            ga, ta = _mk(a)
            same(ga + b, ta + b)
            same(ga / 2, ta / 2)
        same(gc.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))
        same(gc.arange(0, 1, 0.25), torch.arange(0, 1, 0.25))
    finally:
        gc.set_default_dtype(old)
        torch.set_default_dtype(torch_old)


def test_cat_promotes():
    same(gc.cat([gc.ones(2, dtype=gc.int64), gc.ones(3)]), torch.cat([torch.ones(2, dtype=torch.int64), torch.ones(3)]))
    same(gc.cat([gc.ones(2, dtype=gc.bool), gc.ones(3, dtype=gc.int64)]),
         torch.cat([torch.ones(2, dtype=torch.bool), torch.ones(3, dtype=torch.int64)]))
    same(gc.stack([gc.ones(2), gc.ones(2, dtype=gc.float64)]), torch.stack([torch.ones(2), torch.ones(2, dtype=torch.float64)]))


# ---- indexing ------------------------------------------------------------------------------------
I0 = np.array([0, 2, -1])
I1 = np.array([[1, 0], [2, -3]])
I2 = np.array([1, 0, 3])


def _resolve(ix, lib):
    mk = (lambda a: gc.tensor(a)) if lib == "gc" else (lambda a: torch.tensor(a))
    if isinstance(ix, tuple):
        return tuple(_resolve(e, lib) for e in ix)
    if isinstance(ix, np.ndarray):
        return mk(ix)
    return ix


MASK4 = np.array([True, False, True, True])
MASK34 = (np.arange(12).reshape(3, 4) % 3 == 0)

INDEX = [
    0, -1, 2, (1, 2), (0, -1, 3), slice(None), slice(1, None), slice(None, None, 2), slice(-2, None),
    slice(5, 1), slice(-10, 10, 3), (slice(None), 1), (Ellipsis, 1), (1, Ellipsis), (Ellipsis, slice(1, 3)),
    None, (None, 1), (slice(None), None, 2), (None, Ellipsis, None), (1, None, slice(None, None, 2), None),
    I0, (I0,), (slice(None), I2), (Ellipsis, I2[:2]), (I0, I2), (I0, slice(None), I2), (0, slice(None), I2),
    (I1,), (I1, I2[:2]), (slice(None), I1), (slice(1, 3), I1, 0), (0, I2), (I0, 1), (I0, 1, I2),
    (I0[:, None], I2), (None, I0, None, I2), (I0, None, I2), (slice(None), slice(None), I1),
    (1, slice(None), I1), (I0, Ellipsis), (Ellipsis, I1, slice(None)), (slice(None), I2, slice(0, 4, 2)),
    np.array([True, False, True]),
    (slice(None), MASK4), (Ellipsis, MASK4[:2]), (Ellipsis, np.array([True, False, True, True, False]), slice(None)), (MASK34,), (MASK34, slice(1, None)), (1, MASK34[0]),
    np.array(True), np.array(False), (np.array([], dtype=np.int64),), (I0, I0, I0), True, False, (I0, True), (None, False, 1), (0, True, I2),
    (np.array([0, 2]), slice(None), np.array([1, 1]), slice(None)),
]


@pytest.mark.parametrize("ix", INDEX, ids=[f"ix{i}" for i in range(len(INDEX))])
def test_getitem_matches_torch(ix):
    a = rng(0).standard_normal((3, 4, 5, 2))
    if isinstance(ix, tuple) and any(isinstance(e, np.ndarray) and e.dtype == bool and e.ndim == 2 for e in ix):
        a = rng(0).standard_normal((3, 4, 5))
    g, t = pair(a, requires_grad=True)
    gout, tout = g[_resolve(ix, "gc")], t[_resolve(ix, "torch")]
    same(gout, tout, rtol=0, atol=0)
    cot = rng(1).standard_normal(tuple(tout.shape))
    (gg,) = gc.autograd.grad(gout, [g], grad_outputs=gc.tensor(cot))
    (tg,) = torch.autograd.grad(tout, [t], grad_outputs=torch.tensor(cot))
    same(gg, tg, rtol=1e-12, atol=1e-12)


SETITEM = [
    (0, "s"), ((1, 2), "s"), (slice(1, 3), "row"), ((slice(None), 0), "col"), ((Ellipsis, 1), "col"),
    (np.array([0, 2]), "s"), ((0, slice(None), np.array([1, 4])), "x"), ((np.array([0, 1]), np.array([1, 2])), "s"),
    (MASK4[:3], "s"), ((slice(None), slice(None, None, 2)), "s"),
]


@pytest.mark.parametrize("ix,kind", SETITEM)
def test_setitem_matches_torch(ix, kind):
    a = rng(0).standard_normal((3, 4, 5))
    g, t = pair(a)
    ti = _resolve(ix, "torch")
    shape = tuple(t[ti].shape)
    if kind == "s":
        v = 7.5
        g[_resolve(ix, "gc")] = v
        t[ti] = v
    else:
        v = rng(1).standard_normal(shape)
        g[_resolve(ix, "gc")] = gc.tensor(v)
        t[ti] = torch.tensor(v)
        # a broadcast value too
        g2, t2 = pair(a)
        g2[_resolve(ix, "gc")] = gc.tensor(v[..., :1])
        t2[ti] = torch.tensor(v[..., :1])
        same(g2, t2, rtol=0, atol=0)
    same(g, t, rtol=0, atol=0)


# ---- random index expressions --------------------------------------------------------------------------
def _random_index(r, shape):
    """A random mix of ints, slices (any start/stop/step), None, one Ellipsis, int index tensors
    (broadcasting shapes, negative entries) and bool masks over a tensor of `shape`."""
    ix, d, nd, used_ell = [], 0, len(shape), False
    while d < nd and r.random() < 0.85:
        u, n = r.random(), shape[d]
        if u < 0.15:
            ix.append(None)
            continue
        if u < 0.2 and not used_ell:
            ix.append(Ellipsis)
            used_ell = True
            d = nd - r.randint(0, nd - d)
            continue
        if u < 0.4 and n > 0:
            ix.append(r.randint(-n, n - 1))
        elif u < 0.6:
            ix.append(slice(r.choice([None, r.randint(-n - 1, n + 1)]), r.choice([None, r.randint(-n - 1, n + 1)]),
                            r.choice([None, 1, 2, 3])))
        elif u < 0.9 and n > 0:
            k = r.randint(0, 3)
            shp = r.choice([(k,), (1, k), (k, 1), (2, k)])
            ix.append(np.array([r.randint(-n, n - 1) for _ in range(int(np.prod(shp)))], dtype=np.int64).reshape(shp))
        elif n > 0:
            ix.append(np.array([r.random() < 0.5 for _ in range(n)]))
        else:
            ix.append(slice(None))
        d += 1
    return tuple(ix)


def _fuzz_cases(n, seed):
    import random
    r = random.Random(seed)
    for _ in range(n):
        nd = r.randint(1, 4)
        shape = tuple(r.randint(0, 4) if r.random() < 0.1 else r.randint(1, 4) for _ in range(nd))
        yield shape, _random_index(r, shape)


def test_random_getitem_matches_torch():
    for shape, ix in _fuzz_cases(400, 0):
        a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
        try:
            want = torch.from_numpy(a)[_resolve(ix, "torch")]
        except (IndexError, RuntimeError, ValueError):
            with pytest.raises((IndexError, RuntimeError, ValueError)):
                gc.tensor(a)[_resolve(ix, "gc")]
            continue
        got = gc.tensor(a)[_resolve(ix, "gc")]
        assert tuple(got.shape) == tuple(want.shape), (shape, ix)
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=f"{shape} {ix}")


def test_random_setitem_matches_torch():
    for k, (shape, ix) in enumerate(_fuzz_cases(400, 1)):
        a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
        t, g = torch.from_numpy(a.copy()), gc.tensor(a.copy())
        try:
            shp = tuple(t[_resolve(ix, "torch")].shape)
        except (IndexError, RuntimeError, ValueError):
            continue
        v = np.random.default_rng(k).standard_normal(shp)
        if k % 3 == 0 and shp:
            v = v[..., :1]                 # a broadcast value
        t[_resolve(ix, "torch")] = torch.from_numpy(v)
        g[_resolve(ix, "gc")] = gc.tensor(v)
        np.testing.assert_array_equal(g.numpy(), t.numpy(), err_msg=f"{shape} {ix}")
