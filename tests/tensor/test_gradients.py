"""Gradients against central finite differences in float64 (graphc.testing.gradcheck).

Every differentiable primitive is checked directly through graphc.tensor.apply (GRAD_CASES
must name each primitive with a VJP), then composites, broadcasting, indexing, matmul and
higher-order derivatives through the user-level API.
"""

import numpy as np
import pytest
from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st

import graphc as gc
import graphc.nn.functional as GF
from graphc import dtypes as dt
from graphc.ops.registry import PRIMITIVES
from graphc.tensor import apply
from graphc.testing import gradcheck


def R(seed=0):
    return np.random.default_rng(seed)


def T(shape, seed=0, lo=-2.0, hi=2.0):
    return gc.tensor(np.asarray(R(seed).uniform(lo, hi, shape)), dtype=gc.float64)


def away(shape, seed=0, lo=0.3, hi=2.0):
    """Values with |x| in [lo, hi] (away from kinks at 0)."""
    mag = R(seed).uniform(lo, hi, shape)
    return gc.tensor(np.asarray(mag * R(seed + 1).choice([-1.0, 1.0], shape)), dtype=gc.float64)


def pos(shape, seed=0, lo=0.3, hi=2.0):
    return T(shape, seed, lo, hi)


def I(a):
    return gc.tensor(np.asarray(a, dtype=np.int64))


# ---- every primitive with a VJP -----------------------------------------------------------------------
GRAD_CASES = {
    "neg": [(lambda x: apply("neg", x), [T((3, 4))]), (lambda x: apply("neg", x), [T(())])],
    "abs": [(lambda x: apply("abs", x), [away((3, 4))])],
    "sign": [(lambda x: apply("sign", x) * x, [away((5,))])],
    "exp": [(lambda x: apply("exp", x), [T((3, 4))]), (lambda x: apply("exp", x), [T((0, 3))])],
    "log": [(lambda x: apply("log", x), [pos((3, 4))])],
    "sqrt": [(lambda x: apply("sqrt", x), [pos((3, 4))])],
    "rsqrt": [(lambda x: apply("rsqrt", x), [pos((3, 4))])],
    "tanh": [(lambda x: apply("tanh", x), [T((2, 3, 2))])],
    "sigmoid": [(lambda x: apply("sigmoid", x), [T((7,), 0, -6, 6)])],
    "sin": [(lambda x: apply("sin", x), [T((3, 4))])],
    "cos": [(lambda x: apply("cos", x), [T((3, 4))])],
    "erf": [(lambda x: apply("erf", x), [T((3, 4))])],
    "cast": [(lambda x: apply("cast", x, dtype=dt.float64) * x, [T((3,))]),
             (lambda x: apply("cast", apply("cast", x, dtype=dt.int64), dtype=dt.float64) + x, [T((4,), 1, -5, 5)])],
    "add": [(lambda a, b: apply("add", a, b), [T((3, 4)), T((3, 4), 1)]),
            (lambda a: apply("add", a, a), [T((2,))])],
    "sub": [(lambda a, b: apply("sub", a, b), [T((3, 4)), T((3, 4), 1)])],
    "mul": [(lambda a, b: apply("mul", a, b), [T((3, 4)), T((3, 4), 1)]),
            (lambda a: apply("mul", a, a), [T((5,))])],
    "div": [(lambda a, b: apply("div", a, b), [T((3, 4)), away((3, 4), 1)]),
            (lambda a: apply("div", a, a), [away((3,))])],
    "pow": [(lambda a, b: apply("pow", a, b), [pos((3, 4)), T((3, 4), 1)]),
            (lambda a: apply("pow", a, gc.tensor(np.array([[2.0, 3.0, -1.0]] * 2))), [away((2, 3), 2)])],
    "maximum": [(lambda a, b: apply("maximum", a, b), [T((3, 4)), T((3, 4), 1)])],
    "floor_divide": [(lambda a, b: apply("floor_divide", a, b) + a * b, [T((3, 4)), away((3, 4), 1)])],
    "remainder": [(lambda a, b: apply("remainder", a, b), [T((3, 4)), away((3, 4), 1)])],
    "atan2": [(lambda a, b: apply("atan2", a, b), [T((3, 4)), T((3, 4), 1)])],
    "floor": [(lambda x: apply("floor", x) + x * x, [T((3, 4))])],
    "minimum": [(lambda a, b: apply("minimum", a, b), [T((3, 4)), T((3, 4), 1)])],
    "where": [(lambda a, b: apply("where", gc.tensor(R(5).integers(0, 2, (3, 4)).astype(bool)), a, b),
               [T((3, 4)), T((3, 4), 1)])],
    "sum": [(lambda x: apply("sum", x, axes=(1,), keepdim=False), [T((3, 4))]),
            (lambda x: apply("sum", x, axes=(0, 2), keepdim=True), [T((2, 3, 4))]),
            (lambda x: apply("sum", x, axes=(0, 1), keepdim=False), [T((2, 3))]),
            (lambda x: apply("sum", x, axes=(), keepdim=False), [T(())]),
            (lambda x: apply("sum", x, axes=(1,), keepdim=False), [T((3, 0))])],
    "max": [(lambda x: apply("max", x, axes=(1,), keepdim=False), [T((3, 4))]),
            (lambda x: apply("max", x, axes=(0, 2), keepdim=True), [T((2, 3, 4))]),
            (lambda x: apply("max", x, axes=(0, 1), keepdim=False), [T((3, 3))])],
    "reshape": [(lambda x: apply("reshape", x, shape=(4, 3)), [T((3, 4))]),
                (lambda x: apply("reshape", x, shape=()), [T((1, 1))])],
    "permute": [(lambda x: apply("permute", x, perm=(2, 0, 1)), [T((2, 3, 4))])],
    "broadcast_to": [(lambda x: apply("broadcast_to", x, shape=(2, 3, 4)), [T((3, 1))]),
                     (lambda x: apply("broadcast_to", x, shape=(5,)), [T(())]),
                     (lambda x: apply("broadcast_to", x, shape=(2, 1, 4)), [T((1, 4))])],
    "slice": [(lambda x: apply("slice", x, starts=(1, 0), stops=(5, 7), steps=(2, 3)), [T((6, 7))]),
              (lambda x: apply("slice", x, starts=(1, 2), stops=(1, 7), steps=(1, 4)), [T((6, 7))]),
              (lambda x: apply("slice", x, starts=(4, 6), stops=(6, 7), steps=(5, 1)), [T((6, 7))])],
    "pad": [(lambda x: apply("pad", x, lo=(1, 0), hi=(2, 3), interior=(0, 2), value=1.5), [T((3, 4))]),
            (lambda x: apply("pad", x, lo=(0,), hi=(0,), interior=(3,), value=0.0), [T((1,))])],
    "concat": [(lambda a, b, c: apply("concat", a, b, c, axis=1), [T((2, 3)), T((2, 1), 1), T((2, 2), 2)]),
               (lambda a: apply("concat", a, a, axis=0), [T((2, 3))])],
    "matmul": [(lambda a, b: apply("matmul", a, b), [T((3, 4)), T((4, 5), 1)]),
               (lambda a, b: apply("matmul", a, b), [T((2, 3, 4)), T((2, 4, 2), 1)]),
               (lambda a: apply("matmul", a, a), [T((3, 3))])]
    + ([(lambda a, b, ta=ta, tb=tb: apply("matmul", a, b, transpose_a=ta, transpose_b=tb),
         [T((2, 4, 3) if ta else (2, 3, 4)), T((2, 2, 4) if tb else (2, 4, 2), 1)])
        for ta in (False, True) for tb in (False, True)] if "transpose_a" in PRIMITIVES["matmul"].attrs else []),
    "take_along_axis": [(lambda x: apply("take_along_axis", x, I([[0, 2, 2], [1, 1, 0]]), axis=1), [T((2, 4))]),
                        (lambda x: apply("take_along_axis", x, I([[3, 0, 3, 1]] * 2), axis=0), [T((4, 4))])],
    "scatter_add": [(lambda x, s: apply("scatter_add", x, I([[0, 2, 2], [1, 1, 0]]), s, axis=1),
                     [T((2, 4)), T((2, 3), 1)])],
}
if "unfold" in PRIMITIVES:
    GRAD_CASES["unfold"] = [
        (lambda x: gc.ops.functional.unfold(x, 2, stride=1, padding=1, value=0.0), [T((1, 2, 3, 3))]),
        (lambda x: gc.ops.functional.unfold(x, (2, 3), stride=2, dilation=(1, 2)), [T((2, 1, 5, 6))])]
if "fold" in PRIMITIVES:
    GRAD_CASES["fold"] = [
        (lambda c: gc.ops.functional.fold(c, (3, 3), 2, stride=1, padding=1), [T((1, 8, 16))]),
        (lambda c: gc.ops.functional.fold(c, (5, 6), (2, 3), stride=2, dilation=(1, 2)), [T((2, 6, 2))])]


def test_every_differentiable_primitive_is_gradchecked():
    diff = {n for n, p in PRIMITIVES.items() if p.vjp is not None}
    missing = diff - set(GRAD_CASES)
    assert not missing, f"differentiable primitives without a gradient test: {sorted(missing)}"
    assert set(GRAD_CASES) <= diff, sorted(set(GRAD_CASES) - diff)


PRIM_CASES = [(n, i, fn, ins) for n, cs in GRAD_CASES.items() for i, (fn, ins) in enumerate(cs)]


@pytest.mark.parametrize("name,i,fn,inputs", PRIM_CASES, ids=[f"{c[0]}-{c[1]}" for c in PRIM_CASES])
def test_primitive_vjp(name, i, fn, inputs):
    assert gradcheck(fn, inputs)


def test_primitive_vjp_respects_needs():
    """A rule only computes gradients for the inputs that want one."""
    a = T((3,)).requires_grad_()
    b = T((3,), 1)
    (ga,) = gc.autograd.grad(apply("mul", a, b).sum(), [a])
    np.testing.assert_allclose(ga.numpy(), b.numpy())
    y = apply("div", b, a)
    assert y.grad_fn.needs == (False, True)


# ---- composites ------------------------------------------------------------------------------------
def _target(shape, c, seed=3):
    return I(R(seed).integers(0, c, shape))


COMPOSITES = [
    ("relu", lambda x: GF.relu(x), [away((3, 4))]),
    ("leaky_relu", lambda x: GF.leaky_relu(x, 0.2), [away((3, 4))]),
    ("gelu", lambda x: GF.gelu(x), [T((3, 4), 0, -4, 4)]),
    ("gelu_tanh", lambda x: GF.gelu(x, approximate="tanh"), [T((3, 4), 0, -4, 4)]),
    ("silu", lambda x: GF.silu(x), [T((3, 4))]),
    ("softplus", lambda x: GF.softplus(x * 15, beta=0.5, threshold=10.0), [away((3, 4))]),
    ("softmax", lambda x: GF.softmax(x, -1), [T((3, 4))]),
    ("softmax0", lambda x: GF.softmax(x, 0), [T((3, 4, 2))]),
    ("log_softmax", lambda x: GF.log_softmax(x, 1), [T((3, 4, 2))]),
    ("ce", lambda x: GF.cross_entropy(x, _target((5,), 4)), [T((5, 4))]),
    ("ce_sum", lambda x: GF.cross_entropy(x, _target((5,), 4), reduction="sum"), [T((5, 4))]),
    ("ce_none", lambda x: GF.cross_entropy(x, _target((5,), 4), reduction="none"), [T((5, 4))]),
    ("ce_weight", lambda x, w: GF.cross_entropy(x, _target((5,), 4), weight=w), [T((5, 4)), pos((4,), 1)]),
    ("ce_ignore", lambda x: GF.cross_entropy(x, I([0, 2, -100, 1, 2])), [T((5, 4))]),
    ("ce_ignore_idx", lambda x: GF.cross_entropy(x, I([0, 2, 1, 1, 2]), ignore_index=1), [T((5, 4))]),
    ("ce_smooth", lambda x: GF.cross_entropy(x, _target((5,), 4), label_smoothing=0.2), [T((5, 4))]),
    ("ce_all", lambda x, w: GF.cross_entropy(x, I([0, 2, 1, 1, 3]), weight=w, ignore_index=1, label_smoothing=0.1),
     [T((5, 4)), pos((4,), 1)]),
    ("ce_spatial", lambda x: GF.cross_entropy(x, _target((2, 3, 2), 4)), [T((2, 4, 3, 2))]),
    ("ce_unbatched", lambda x: GF.cross_entropy(x, I(2)), [T((4,))]),
    ("ce_probs", lambda x, p: GF.cross_entropy(x, GF.softmax(p, 1)), [T((3, 4)), T((3, 4), 1)]),
    ("nll", lambda x: GF.nll_loss(x, _target((5,), 4)), [T((5, 4))]),
    ("nll_weight_sum", lambda x, w: GF.nll_loss(x, _target((5,), 4), weight=w, reduction="sum"),
     [T((5, 4)), pos((4,), 1)]),
    ("mse", lambda a, b: GF.mse_loss(a, b), [T((3, 4)), T((3, 4), 1)]),
    ("mse_sum", lambda a, b: GF.mse_loss(a, b, reduction="sum"), [T((3, 4)), T((3, 4), 1)]),
    ("l1", lambda a, b: GF.l1_loss(a, b), [T((3, 4)), T((3, 4), 1)]),
    ("bce", lambda p, t: GF.binary_cross_entropy(p, t), [T((3, 4), 0, 0.1, 0.9), T((3, 4), 1, 0, 1)]),
    ("bce_weight", lambda p, t, w: GF.binary_cross_entropy(p, t, weight=w, reduction="none"),
     [T((3, 4), 0, 0.1, 0.9), T((3, 4), 1, 0, 1), pos((3, 4), 2)]),
    ("bce_logits", lambda x, t: GF.binary_cross_entropy_with_logits(x, t), [T((3, 4), 0, -4, 4), T((3, 4), 1, 0, 1)]),
    ("bce_logits_pw", lambda x, t, pw: GF.binary_cross_entropy_with_logits(x, t, pos_weight=pw, reduction="sum"),
     [T((3, 4), 0, -4, 4), T((3, 4), 1, 0, 1), pos((4,), 2)]),
    ("linear", lambda x, w, b: GF.linear(x, w, b), [T((5, 3)), T((4, 3), 1), T((4,), 2)]),
    ("linear_nobias_3d", lambda x, w: GF.linear(x, w), [T((2, 5, 3)), T((4, 3), 1)]),
    ("layer_norm", lambda x, w, b: GF.layer_norm(x, (4,), w, b), [T((3, 4)), T((4,), 1), T((4,), 2)]),
    ("layer_norm_2d", lambda x: GF.layer_norm(x, (3, 4)), [T((2, 3, 4))]),
    ("mean", lambda x: gc.mean(x), [T((3, 4))]),
    ("mean_dim", lambda x: x.mean((0, 2), keepdim=True), [T((2, 3, 4))]),
    ("var", lambda x: gc.var(x, 1), [T((3, 4))]),
    ("var_biased", lambda x: x.var(unbiased=False), [T((3, 4))]),
    ("std", lambda x: gc.std(x, 0, keepdim=True), [T((3, 4))]),
    ("logsumexp", lambda x: gc.logsumexp(x, 1), [T((3, 4))]),
    ("logsumexp_all", lambda x: gc.logsumexp(x, (0, 1)), [T((3, 4))]),
    ("norm", lambda x: gc.norm(x), [T((3, 4))]),
    ("norm_dim", lambda x: gc.norm(x, dim=1), [T((3, 4))]),
    ("norm_1", lambda x: gc.norm(x, p=1), [away((3, 4))]),
    ("norm_3", lambda x: gc.norm(x, p=3, dim=0), [away((3, 4))]),
    ("amax", lambda x: gc.amax(x, 0), [T((3, 4))]),
    ("amin", lambda x: gc.amin(x), [T((3, 4))]),
    ("max_dim", lambda x: x.max(1).values, [T((3, 4))]),
    ("min_dim", lambda x: x.min(0, keepdim=True)[0], [T((3, 4))]),
    ("clamp", lambda x: gc.clamp(x, -1.0, 1.0), [T((20,), 0, -3, 3)]),
    ("masked_fill", lambda x: x.masked_fill(x > 0, 2.0), [away((3, 4))]),
    ("where_scalar", lambda x: gc.where(x > 0, x, 0.5 * x), [away((3, 4))]),
    ("log1p_expm1", lambda x: gc.log1p(x.exp()) + gc.expm1(x), [T((3, 4))]),
    ("reciprocal_square", lambda x: gc.reciprocal(x) + gc.square(x), [away((3, 4))]),
    ("cat_stack", lambda a, b: gc.stack([gc.cat([a, b], 0), gc.cat([b, a], 0)], 1), [T((2, 3)), T((1, 3), 1)]),
    ("split_chunk", lambda x: x.split(2, 1)[1] * x.chunk(3, 1)[0], [T((3, 6))]),
    ("unbind", lambda x: x.unbind(0)[2] * 2 + x.unbind(0)[0], [T((3, 4))]),
    ("repeat_expand", lambda x: x.repeat(2, 3)[:, 1:5] + x[:1].expand(6, 4), [T((3, 4))]),
    ("transpose_flatten", lambda x: x.transpose(0, 2).flatten(1), [T((2, 3, 4))]),
    ("F_pad", lambda x: GF.pad(x, (1, -1, 2, 0), value=3.0), [T((3, 4))]),
    ("gather", lambda x: x.gather(1, I([[0, 0], [2, 1]])), [T((2, 3))]),
    ("index_select", lambda x: x.index_select(1, I([2, 0, 2])), [T((2, 3))]),
    ("scatter_add_method", lambda x, s: x.scatter_add(0, I([[1, 1, 0]]), s), [T((2, 3)), T((1, 3), 1)]),
    ("outer_dot", lambda a, b: gc.outer(a, b).sum() + gc.dot(a, b), [T((4,)), T((4,), 1)]),
]


@pytest.mark.parametrize("name,fn,inputs", COMPOSITES, ids=[c[0] for c in COMPOSITES])
def test_composite_gradients(name, fn, inputs):
    assert gradcheck(fn, inputs)


# ---- broadcasting binary ops ---------------------------------------------------------------------------
BINOPS = [("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
          ("div", lambda a, b: a / (b * b + 0.5)), ("pow", lambda a, b: (a * a + 0.5) ** b),
          ("maximum", gc.maximum), ("minimum", gc.minimum),
          ("where", lambda a, b: gc.where(a > b, a, b * 2))]


@st.composite
def broadcastable(draw):
    nd = draw(st.integers(0, 3))
    shape = draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd))
    sa = [s if draw(st.booleans()) else 1 for s in shape]
    sb = [s if draw(st.booleans()) else 1 for s in shape]
    sa = sa[draw(st.integers(0, len(sa))):]
    sb = sb[draw(st.integers(0, len(sb))):]
    return tuple(sa), tuple(sb)


@pytest.mark.parametrize("name,op", BINOPS, ids=[b[0] for b in BINOPS])
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(shapes=broadcastable(), seed=st.integers(0, 1000))
def test_broadcasting_grads(name, op, shapes, seed):
    sa, sb = shapes
    a, b = T(sa, seed), T(sb, seed + 1)
    assert gradcheck(op, [a, b])
    # the gradients have the inputs' shapes
    a.requires_grad_()
    b.requires_grad_()
    out = op(a, b)
    assert tuple(out.shape) == np.broadcast_shapes(sa, sb)
    ga, gb = gc.autograd.grad(out.sum(), [a, b], allow_unused=True)
    assert tuple(ga.shape) == sa and tuple(gb.shape) == sb


def test_broadcast_grad_sums_back():
    a = gc.ones(3, 1, requires_grad=True)
    b = gc.ones(1, 4, requires_grad=True)
    (a * b * 2).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.full((3, 1), 8.0))
    np.testing.assert_allclose(b.grad.numpy(), np.full((1, 4), 6.0))
    s = gc.tensor(2.0, requires_grad=True)
    v = gc.ones(5, requires_grad=True)
    (s * v).sum().backward()
    assert tuple(s.grad.shape) == () and s.grad.item() == 5.0


# ---- indexing ----------------------------------------------------------------------------------------
INDEXING = [
    ("int", lambda x: x[1]),
    ("neg_int", lambda x: x[-1, 2]),
    ("slice_step", lambda x: x[::2, 1::3]),
    ("slice_neg", lambda x: x[-3:-1, :-2]),
    ("slice_empty", lambda x: x[3:1]),
    ("none", lambda x: x[None, :, None, 1]),
    ("ellipsis", lambda x: x[..., 2]),
    ("ellipsis_mid", lambda x: x[0, ..., 1:]),
    ("tensor", lambda x: x[I([0, 2, 2, -1])]),
    ("tensor_2d", lambda x: x[I([[0, 1], [3, -4]])]),
    ("tensor_dim1", lambda x: x[:, I([4, 0, -1])]),
    ("two_tensors", lambda x: x[I([0, 2, 3]), I([1, 1, -5])]),
    ("two_tensors_bcast", lambda x: x[I([[0], [2]]), I([1, 3, 4])]),
    ("int_slice_tensor", lambda x: x[1, :, I([0, 0, 1])]),
    ("separated", lambda x: x[I([0, 1]), :, I([1, 0])]),
    ("mask", lambda x: x[x > 0]),
    ("mask_rows", lambda x: x[gc.tensor([True, False, True, True])]),
    ("chained", lambda x: x[1:][:, ::2][I([0, 0])]),
]


@pytest.mark.parametrize("name,fn", INDEXING, ids=[c[0] for c in INDEXING])
def test_indexing_grads(name, fn):
    shape = (4, 5, 2) if name in ("int_slice_tensor", "separated") else (4, 5)
    assert gradcheck(fn, [away(shape)])


def test_repeated_index_accumulates():
    x = gc.zeros(3, requires_grad=True)
    x[I([0, 0, 2, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])


# ---- matmul -------------------------------------------------------------------------------------------
MATMUL = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
          ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)),
          ((1, 4), (4, 1)), ((0, 4), (4, 2))]


@pytest.mark.parametrize("sa,sb", MATMUL)
def test_matmul_grads(sa, sb):
    assert gradcheck(lambda a, b: a @ b, [T(sa), T(sb, 1)])


# ---- higher order ------------------------------------------------------------------------------------
def _d(f, x, create_graph=True):
    (g,) = gc.autograd.grad(f(x).sum(), [x], create_graph=create_graph)
    return g


@pytest.mark.parametrize("name,f,d1,d2", [
    ("tanh", gc.tanh, lambda x: 1 - np.tanh(x) ** 2, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    ("sigmoid", gc.sigmoid, lambda x: (s := 1 / (1 + np.exp(-x))) * (1 - s),
     lambda x: (s := 1 / (1 + np.exp(-x))) * (1 - s) * (1 - 2 * s)),
    ("exp", gc.exp, np.exp, np.exp),
    ("pow3", lambda x: x ** 3, lambda x: 3 * x ** 2, lambda x: 6 * x),
    ("sin", gc.sin, np.cos, lambda x: -np.sin(x)),
    ("log", gc.log, lambda x: 1 / x, lambda x: -1 / x ** 2),
    ("chain", lambda x: gc.tanh(gc.exp(x) * 0.5) ** 2,
     lambda x: 2 * np.tanh(np.exp(x) / 2) * (1 - np.tanh(np.exp(x) / 2) ** 2) * np.exp(x) / 2, None),
])
def test_second_derivative(name, f, d1, d2):
    xv = np.array([0.3, 0.7, 1.2, 1.9])
    x = gc.tensor(xv, requires_grad=True)
    g = _d(f, x)
    np.testing.assert_allclose(g.detach().numpy(), d1(xv), rtol=1e-10)
    assert g.requires_grad
    (h,) = gc.autograd.grad(g.sum(), [x])
    if d2 is not None:
        np.testing.assert_allclose(h.numpy(), d2(xv), rtol=1e-9)
    # the second derivative against finite differences of the first
    assert gradcheck(lambda t: _d(f, t.detach().requires_grad_(True) if not t.requires_grad else t), [gc.tensor(xv)])


def test_third_derivative_of_pow():
    x = gc.tensor([1.5, -2.0], requires_grad=True)
    y = (x ** 4).sum()
    (g1,) = gc.autograd.grad(y, [x], create_graph=True)
    (g2,) = gc.autograd.grad(g1.sum(), [x], create_graph=True)
    (g3,) = gc.autograd.grad(g2.sum(), [x])
    np.testing.assert_allclose(g3.numpy(), 24 * np.array([1.5, -2.0]))


def test_hessian_vector_product():
    rng = R(7)
    A = rng.standard_normal((4, 4))
    A = A + A.T
    b = rng.standard_normal(4)
    xv = rng.standard_normal(4)
    v = rng.standard_normal(4)

    def f(x):   # 0.5 x'Ax + b'x + sum(tanh(x)): Hessian A + diag(tanh'')
        return 0.5 * (x @ (gc.tensor(A) @ x)) + gc.dot(gc.tensor(b), x) + gc.tanh(x).sum()

    x = gc.tensor(xv, requires_grad=True)
    (g,) = gc.autograd.grad(f(x), [x], create_graph=True)
    (hv,) = gc.autograd.grad(g, [x], grad_outputs=gc.tensor(v))
    t = np.tanh(xv)
    H = A + np.diag(-2 * t * (1 - t * t))
    np.testing.assert_allclose(hv.numpy(), H @ v, rtol=1e-10)
    # and by finite differences of the gradient
    eps = 1e-6

    def grad_at(p):
        p = gc.tensor(p, requires_grad=True)
        return gc.autograd.grad(f(p), [p])[0].numpy()
    np.testing.assert_allclose(hv.numpy(), (grad_at(xv + eps * v) - grad_at(xv - eps * v)) / (2 * eps), rtol=1e-5)


def test_double_backward_through_composites():
    """create_graph through softmax, layer_norm and cross_entropy: the gradient of the gradient norm."""
    def f(x, w):
        logits = GF.layer_norm(x, (4,)) @ w
        return GF.cross_entropy(logits, I([0, 2, 1]))

    def gnorm(x, w):
        x, w = (t if t.requires_grad else t.detach().requires_grad_(True) for t in (x, w))
        gx, gw = gc.autograd.grad(f(x, w), [x, w], create_graph=True)
        return (gx * gx).sum() + (gw * gw).sum()

    assert gradcheck(lambda x, w: gnorm(x, w), [T((3, 4)), T((4, 3), 1)], atol=1e-4, rtol=1e-3)


def test_gradcheck_catches_a_wrong_vjp():
    from graphc.ops.registry import Primitive, register, PRIMITIVES as P
    name = "test_wrong_sin"
    register(Primitive(name, "elementwise", lambda x: x, np.sin, lambda c, g: (g * 2,), arity=1))
    try:
        with pytest.raises(AssertionError, match="input 0"):
            gradcheck(lambda x: apply(name, x), [T((3,))])
        assert gradcheck(lambda x: apply(name, x), [T((3,))], raise_exception=False) is False
    finally:
        del P[name]


def test_gradcheck_handles_noncontiguous_and_int_inputs():
    x = T((4, 3)).T          # a transposed (non-contiguous) view
    assert gradcheck(lambda a, i: a.gather(1, i), [x, I([[0, 3], [1, 1], [2, 0]])])
