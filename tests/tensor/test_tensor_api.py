"""The PyTorch-shaped Tensor API, eagerly: creation, dtypes and promotion, operators and
methods with broadcasting, indexing, metadata, conversion, repr and torch-like errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc


def arr(x):
    return np.asarray(x.detach().numpy() if isinstance(x, gc.Tensor) else x)


def eq(t, want, dtype=None):
    want = np.asarray(want)
    assert tuple(t.shape) == want.shape, (t.shape, want.shape)
    if dtype is not None:
        assert t.dtype is dtype, (t.dtype, dtype)
    np.testing.assert_allclose(arr(t).astype(np.float64), want.astype(np.float64), rtol=1e-6, atol=1e-7)


# ---- creation -----------------------------------------------------------------------------------------
def test_tensor_from_data_infers_dtype():
    assert gc.tensor([1, 2]).dtype is gc.int64
    assert gc.tensor([1.0, 2]).dtype is gc.float32
    assert gc.tensor([True, False]).dtype is gc.bool
    assert gc.tensor(3).dtype is gc.int64 and gc.tensor(3).shape == ()
    assert gc.tensor(2.5).dtype is gc.float32
    assert gc.tensor(np.array([1.0, 2.0])).dtype is gc.float64        # numpy keeps its dtype
    assert gc.tensor(np.float64(1.5)).dtype is gc.float64
    assert gc.tensor(np.array([1, 2], dtype=np.int32)).dtype is gc.int64
    assert gc.tensor(np.array([1.0], dtype=np.float16)).dtype is gc.float32
    assert gc.tensor([[1, 2], [3, 4]], dtype=gc.float64).dtype is gc.float64
    assert gc.tensor([1, 2], dtype="float32").dtype is gc.float32
    assert gc.tensor([1.7, -1.7], dtype=gc.int64).tolist() == [1, -1]
    assert gc.tensor([]).shape == (0,) and gc.tensor([]).dtype is gc.float32
    eq(gc.tensor([gc.tensor(1.0), gc.tensor(2.0)]), [1.0, 2.0])
    with pytest.raises(TypeError):
        gc.tensor(["a", "b"])
    with pytest.raises(TypeError):
        gc.tensor(np.array([1 + 2j]))


def test_tensor_copies_data():
    a = np.array([1.0, 2.0])
    t = gc.tensor(a)
    a[0] = 9
    assert t.tolist() == [1.0, 2.0]
    u = gc.tensor(t)
    t.add_(1)
    assert u.tolist() == [1.0, 2.0]


def test_from_numpy_shares_memory():
    a = np.arange(6.0).reshape(2, 3)
    t = gc.from_numpy(a)
    assert t.dtype is gc.float64
    a[0, 0] = 42
    assert t[0, 0].item() == 42
    t.mul_(2)
    assert a[1, 2] == 10
    assert t.numpy() is a or np.shares_memory(t.numpy(), a)
    with pytest.raises(TypeError):
        gc.from_numpy([1, 2])
    with pytest.raises(TypeError, match="not supported"):
        gc.from_numpy(np.zeros(2, dtype=np.complex64))
    assert gc.as_tensor(t) is t


def test_numpy_shares_memory_and_refuses_requires_grad():
    t = gc.zeros(3)
    n = t.numpy()
    n[1] = 5
    assert t.tolist() == [0.0, 5.0, 0.0]
    w = gc.zeros(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Can't call numpy\(\) on Tensor that requires grad"):
        w.numpy()
    assert w.detach().numpy().shape == (2,)
    np.testing.assert_array_equal(np.asarray(gc.tensor([1, 2])), [1, 2])


@pytest.mark.parametrize("fn", [gc.zeros, gc.ones, gc.empty])
def test_zeros_ones_empty_shapes(fn):
    assert fn(2, 3).shape == (2, 3)
    assert fn((2, 3)).shape == (2, 3)
    assert fn([4]).shape == (4,)
    assert fn(()).shape == ()
    assert fn(0, 3).shape == (0, 3)
    assert fn(2).dtype is gc.float32
    assert fn(2, dtype=gc.int64).dtype is gc.int64
    assert fn(2, dtype=gc.bool).dtype is gc.bool
    assert fn(2, dtype=gc.float64).dtype is gc.float64


def test_zeros_ones_full_values():
    eq(gc.zeros(2, 2), np.zeros((2, 2)))
    eq(gc.ones(3, dtype=gc.int64), [1, 1, 1], gc.int64)
    eq(gc.full((2, 3), 1.5), np.full((2, 3), 1.5), gc.float32)
    assert gc.full((2,), 7).dtype is gc.int64
    assert gc.full((2,), True).dtype is gc.bool
    assert gc.full([2], 3, dtype=gc.float64).dtype is gc.float64
    assert gc.full(3, 0.5).shape == (3,)
    with pytest.raises(ValueError):
        gc.zeros(-1)


def test_like_constructors():
    x = gc.ones(2, 3, dtype=gc.float64)
    for fn, v in ((gc.zeros_like, 0), (gc.ones_like, 1), (gc.empty_like, 0)):
        y = fn(x)
        assert y.shape == x.shape and y.dtype is gc.float64
        eq(y, np.full((2, 3), v))
    assert gc.ones_like(x, dtype=gc.int64).dtype is gc.int64
    eq(gc.full_like(x, 7), np.full((2, 3), 7), gc.float64)
    eq(gc.full_like(gc.ones(2, dtype=gc.int64), 2.7), [2, 2], gc.int64)
    r = gc.rand_like(x)
    assert r.shape == (2, 3) and r.dtype is gc.float64
    assert gc.randn_like(gc.ones(4)).shape == (4,)
    ri = gc.randint_like(gc.zeros(5, dtype=gc.int64), 3)
    assert ri.dtype is gc.int64 and ((arr(ri) >= 0) & (arr(ri) < 3)).all()
    assert x.new_zeros(3).dtype is gc.float64 and x.new_ones((2, 2)).shape == (2, 2)
    eq(x.new_full((2,), 5), [5, 5], gc.float64)


def test_arange():
    eq(gc.arange(5), [0, 1, 2, 3, 4], gc.int64)
    eq(gc.arange(1, 10, 3), [1, 4, 7], gc.int64)
    eq(gc.arange(10, 0, -3), [10, 7, 4, 1], gc.int64)
    eq(gc.arange(0, 1, 0.25), [0, 0.25, 0.5, 0.75], gc.float32)
    assert gc.arange(0, 1, 0.1).shape == (10,)
    eq(gc.arange(5.0), [0, 1, 2, 3, 4], gc.float32)
    eq(gc.arange(-1.5, 1.0, 0.5), [-1.5, -1.0, -0.5, 0.0, 0.5], gc.float32)
    eq(gc.arange(0, 10, 4, dtype=gc.float64), [0, 4, 8], gc.float64)
    assert gc.arange(3, 3).shape == (0,)
    assert gc.arange(5, 0).shape == (0,)
    with pytest.raises(RuntimeError, match="step must be nonzero"):
        gc.arange(0, 5, 0)


def test_linspace_and_eye():
    eq(gc.linspace(0, 1, 5), [0, 0.25, 0.5, 0.75, 1.0], gc.float32)
    eq(gc.linspace(-1, 1, 1), [-1.0])
    assert gc.linspace(0, 1, 0).shape == (0,)
    eq(gc.linspace(0, 10, 3, dtype=gc.float64), [0, 5, 10], gc.float64)
    eq(gc.eye(3), np.eye(3), gc.float32)
    eq(gc.eye(2, 4), np.eye(2, 4))
    eq(gc.eye(3, dtype=gc.int64), np.eye(3), gc.int64)


def test_random_creation():
    r = gc.rand(1000)
    assert r.dtype is gc.float32 and r.shape == (1000,)
    assert (arr(r) >= 0).all() and (arr(r) < 1).all() and 0.4 < arr(r).mean() < 0.6
    n = gc.randn(4000, dtype=gc.float64)
    assert n.dtype is gc.float64 and abs(arr(n).mean()) < 0.1 and 0.9 < arr(n).std() < 1.1
    assert gc.randn((2, 3)).shape == (2, 3) and gc.rand(()).shape == ()
    i = gc.randint(3, 7, (500,))
    assert i.dtype is gc.int64 and arr(i).min() == 3 and arr(i).max() == 6
    assert gc.randint(5, (3,)).shape == (3,)
    assert gc.randint(0, 2, size=(2, 2), dtype=gc.float32).dtype is gc.float32
    with pytest.raises(RuntimeError):
        gc.randint(5, 5, (2,))
    p = gc.randperm(10)
    assert sorted(p.tolist()) == list(range(10))


def test_manual_seed_reproducibility():
    gc.manual_seed(123)
    a = (gc.rand(5), gc.randn(3, 2), gc.randint(0, 100, (4,)))
    gc.manual_seed(123)
    b = (gc.rand(5), gc.randn(3, 2), gc.randint(0, 100, (4,)))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(arr(x), arr(y))
    gc.manual_seed(124)
    assert not np.array_equal(arr(gc.rand(5)), arr(a[0]))
    g1, g2 = gc.Generator().manual_seed(7), gc.Generator().manual_seed(7)
    np.testing.assert_array_equal(arr(gc.rand(4, generator=g1)), arr(gc.rand(4, generator=g2)))


# ---- dtypes and promotion ------------------------------------------------------------------------------
def test_dtype_objects():
    assert gc.float is gc.float32 and gc.double is gc.float64 and gc.long is gc.int64
    assert repr(gc.float32) == "graphc.float32"
    assert gc.float32.is_floating_point and not gc.int64.is_floating_point
    assert gc.get_default_dtype() is gc.float32
    assert gc.promote_types(gc.int64, gc.float32) is gc.float32
    assert gc.promote_types(gc.bool, gc.int64) is gc.int64
    assert gc.promote_types(gc.float32, gc.float64) is gc.float64
    with pytest.raises(TypeError):
        gc.set_default_dtype(gc.int64)
    with pytest.raises(TypeError, match="unknown dtype"):
        gc.tensor([1], dtype="float16")


PROMOTION = [
    (lambda: gc.tensor([1, 2]) + 1.5, gc.float32),                                     # int tensor + float scalar
    (lambda: gc.tensor([1, 2]) / gc.tensor([2, 4]), gc.float32),                       # int / int
    (lambda: gc.tensor([1, 2]) / 2, gc.float32),
    (lambda: gc.tensor([True]) + gc.tensor([True]), gc.bool),                          # bool + bool
    (lambda: gc.tensor([True]) * gc.tensor([False]), gc.bool),
    (lambda: gc.tensor([True]) + 1, gc.int64),
    (lambda: gc.tensor([True]) + 1.0, gc.float32),
    (lambda: gc.ones(2) + gc.tensor(1.0, dtype=gc.float64), gc.float32),               # f32 + f64 0-dim
    (lambda: gc.ones(2) + gc.ones(2, dtype=gc.float64), gc.float64),                   # f32 + f64 1-d
    (lambda: gc.ones(2) + gc.ones(1, dtype=gc.float64), gc.float64),
    (lambda: gc.tensor([1, 2]) + gc.tensor(2.5, dtype=gc.float64), gc.float64),        # int + f64 0-dim
    (lambda: gc.tensor([1, 2]) + gc.tensor(2.5), gc.float32),
    (lambda: gc.tensor(1) + 2.5, gc.float32),
    (lambda: gc.ones(2, dtype=gc.float64) * 2.5, gc.float64),
    (lambda: gc.ones(2, dtype=gc.float64) + gc.ones(2), gc.float64),
    (lambda: gc.tensor([1, 2]) * True, gc.int64),
    (lambda: gc.tensor([3, 4]) ** 2, gc.int64),
    (lambda: gc.tensor([3, 4]) ** 0.5, gc.float32),
    (lambda: 2 ** gc.tensor([1, 2]), gc.int64),
    (lambda: 2.0 ** gc.tensor([1, 2]), gc.float32),
    (lambda: gc.tensor([1, 2]) < 1.5, gc.bool),
    (lambda: gc.tensor([1, 2]).exp(), gc.float32),
    (lambda: gc.tensor([1, 2]).sum(), gc.int64),
    (lambda: gc.tensor([True, False]).sum(), gc.int64),
    (lambda: gc.where(gc.tensor([True]), gc.tensor([1]), 2.5), gc.float32),
    (lambda: gc.where(gc.tensor([True]), 1, 0), gc.int64),
    (lambda: gc.cat([gc.ones(1, dtype=gc.int64), gc.ones(1)]), gc.float32),
    (lambda: gc.maximum(gc.tensor([1]), gc.tensor([1.5])), gc.float32),
    (lambda: gc.tensor([1, -2]).clamp(min=0.5), gc.float32),
    (lambda: -gc.tensor([1, 2]), gc.int64),
    (lambda: ~gc.tensor([1, 2]), gc.int64),
    (lambda: gc.tensor([1, 2]).float(), gc.float32),
]


@pytest.mark.parametrize("i", range(len(PROMOTION)))
def test_promotion(i):
    fn, want = PROMOTION[i]
    assert fn().dtype is want


def test_result_type():
    assert gc.result_type(gc.ones(2), 1.5) is gc.float32
    assert gc.result_type(gc.tensor([1]), 1.5) is gc.float32
    assert gc.result_type(gc.tensor([1]), gc.tensor(1.5, dtype=gc.float64)) is gc.float64
    assert gc.result_type(gc.ones(1), gc.tensor(1, dtype=gc.int64)) is gc.float32
    assert gc.result_type(1, 2.0) is gc.float32
    assert gc.result_type(True, 2) is gc.int64


def test_default_dtype_float64():
    gc.set_default_dtype(gc.float64)
    try:
        assert gc.tensor([1.0]).dtype is gc.float64
        assert gc.zeros(2).dtype is gc.float64
        assert (gc.tensor([1, 2]) + 1.5).dtype is gc.float64
        assert (gc.ones(2, dtype=gc.float32) + 1.5).dtype is gc.float32
        assert gc.arange(0.0, 1.0, 0.5).dtype is gc.float64
        assert gc.rand(2).dtype is gc.float64
    finally:
        gc.set_default_dtype(gc.float32)


def test_conversions():
    x = gc.tensor([1.7, -1.7, 0.0])
    eq(x.long(), [1, -1, 0], gc.int64)
    eq(x.bool(), [True, True, False], gc.bool)
    eq(x.double(), arr(x), gc.float64)
    eq(gc.tensor([True, False]).float(), [1.0, 0.0], gc.float32)
    assert x.type_as(gc.tensor([1])).dtype is gc.int64
    assert gc.cast(x, "float64").dtype is gc.float64


# ---- operators and methods with broadcasting ----------------------------------------------------------
OPS = [
    ("add", lambda a, b: a + b, np.add), ("sub", lambda a, b: a - b, np.subtract),
    ("mul", lambda a, b: a * b, np.multiply), ("div", lambda a, b: a / b, np.true_divide),
    ("radd", lambda a, b: 2.5 + b, lambda a, b: 2.5 + b), ("rsub", lambda a, b: 1 - a, lambda a, b: 1 - a),
    ("rmul", lambda a, b: 3 * a, lambda a, b: 3 * a), ("rdiv", lambda a, b: 1 / b, lambda a, b: 1 / b),
    ("pow", lambda a, b: abs(a) ** b, lambda a, b: np.abs(a) ** b),
    ("max", gc.maximum, np.maximum), ("min", gc.minimum, np.minimum),
    ("lt", lambda a, b: a < b, np.less), ("ge", lambda a, b: a >= b, np.greater_equal),
    ("eqop", lambda a, b: a == b, np.equal), ("neop", lambda a, b: a != b, np.not_equal),
    ("method_add", lambda a, b: a.add(b, alpha=2), lambda a, b: a + 2 * b),
    ("method_sub", lambda a, b: a.sub(b), np.subtract),
]


@st.composite
def broadcast_pair(draw):
    nd = draw(st.integers(0, 4))
    shape = draw(st.lists(st.integers(0, 3), min_size=nd, max_size=nd))
    sa = tuple(s if draw(st.booleans()) else 1 for s in shape)[draw(st.integers(0, nd)):]
    sb = tuple(s if draw(st.booleans()) else 1 for s in shape)[draw(st.integers(0, nd)):]
    return sa, sb


@pytest.mark.parametrize("name,gop,nop", OPS, ids=[o[0] for o in OPS])
@settings(max_examples=15, deadline=None, derandomize=True)
@given(shapes=broadcast_pair(), seed=st.integers(0, 100))
def test_binary_ops_broadcast(name, gop, nop, shapes, seed):
    sa, sb = shapes
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2.0, sa).astype(np.float32) * rng.choice([-1, 1], sa)
    b = rng.uniform(0.5, 2.0, sb).astype(np.float32)
    out = gop(gc.tensor(a), gc.tensor(b))
    with np.errstate(all="ignore"):
        want = np.asarray(nop(a, b))
    assert tuple(out.shape) == want.shape
    np.testing.assert_allclose(arr(out).astype(np.float64), want.astype(np.float64), rtol=1e-5)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(shapes=broadcast_pair())
def test_broadcast_shapes_matches_numpy(shapes):
    sa, sb = shapes
    assert gc.broadcast_shapes(sa, sb) == np.broadcast_shapes(sa, sb)
    t = gc.broadcast_to(gc.zeros(sa), np.broadcast_shapes(sa, sb))
    assert tuple(t.shape) == np.broadcast_shapes(sa, sb)


def test_unary_methods():
    x = gc.tensor([0.5, 1.5, 2.0])
    for m, f in [("exp", np.exp), ("log", np.log), ("sqrt", np.sqrt), ("rsqrt", lambda v: 1 / np.sqrt(v)),
                 ("tanh", np.tanh), ("sigmoid", lambda v: 1 / (1 + np.exp(-v))), ("sin", np.sin), ("cos", np.cos),
                 ("log1p", np.log1p), ("expm1", np.expm1), ("square", np.square), ("reciprocal", np.reciprocal),
                 ("neg", np.negative), ("abs", np.abs), ("sign", np.sign), ("relu", lambda v: np.maximum(v, 0))]:
        eq(getattr(x, m)(), f(arr(x)))
    eq(abs(gc.tensor([-1, 2])), [1, 2], gc.int64)
    eq(-gc.tensor([1.0, -2.0]), [-1.0, 2.0])
    eq(~gc.tensor([True, False]), [False, True], gc.bool)
    eq(~gc.tensor([0, 5]), [-1, -6], gc.int64)
    eq(gc.tensor([True, False]) & gc.tensor([True, True]), [True, False], gc.bool)
    eq(gc.tensor([True, False]) | False, [True, False], gc.bool)
    eq(gc.tensor([True, False]) ^ gc.tensor([True, True]), [False, True], gc.bool)
    with pytest.raises(TypeError, match="bool"):
        gc.tensor([6]) & gc.tensor([3])
    with pytest.raises(TypeError):
        ~gc.tensor([1.0])


def test_reduction_methods():
    a = np.arange(12.0).reshape(3, 4) - 5
    x = gc.tensor(a)
    eq(x.sum(), a.sum())
    eq(x.sum(0), a.sum(0))
    eq(x.sum((0, 1)), a.sum())
    eq(x.sum(dim=()), a.sum())
    eq(x.sum(-1, keepdim=True), a.sum(-1, keepdims=True))
    eq(x.mean(1), a.mean(1))
    eq(x.var(), a.var(ddof=1))
    eq(x.std(0, unbiased=False), a.std(0))
    eq(x.amax(1), a.max(1))
    eq(x.amin(), a.min())
    v, i = x.max(1)
    eq(v, a.max(1))
    eq(i, a.argmax(1), gc.int64)
    eq(x.min(0).indices, a.argmin(0))
    eq(x.argmax(), a.argmax())
    eq(x.argmin(1, keepdim=True), a.argmin(1)[:, None])
    eq(x.logsumexp(1), np.log(np.exp(a).sum(1)))
    eq(x.norm(), np.linalg.norm(a))
    eq((x > 0).any(), True)
    eq((x > 0).all(1), (a > 0).all(1))
    eq(gc.max(x, gc.zeros(3, 4, dtype=gc.float64)), np.maximum(a, 0))
    assert x.max(1)._fields == ("values", "indices")


def test_shape_methods():
    x = gc.tensor(np.arange(24.0).reshape(2, 3, 4))
    a = arr(x)
    eq(x.reshape(4, -1), a.reshape(4, -1))
    eq(x.view(-1), a.reshape(-1))
    eq(x.flatten(1), a.reshape(2, 12))
    eq(x.permute(2, 0, 1), a.transpose(2, 0, 1))
    eq(x.transpose(0, 2), a.swapaxes(0, 2))
    eq(x.mT, a.swapaxes(-1, -2))
    eq(x[0].T, a[0].T)
    eq(x[0].t(), a[0].T)
    eq(x.unsqueeze(1), a[:, None])
    eq(x[:, :1].squeeze(), a[:, 0])
    eq(x[:, :1].squeeze(1), a[:, 0])
    eq(x[:1].expand(3, 3, 4), np.broadcast_to(a[:1], (3, 3, 4)))
    eq(x[0, 0].repeat(2, 2), np.tile(a[0, 0], (2, 2)))
    eq(x.narrow(2, 1, 2), a[:, :, 1:3])
    assert [t.shape for t in x.split(2, 2)] == [(2, 3, 2), (2, 3, 2)]
    assert [t.shape for t in x.chunk(3, 1)] == [(2, 1, 4)] * 3
    assert len(x.unbind(0)) == 2
    eq(gc.cat([x, x], 1), np.concatenate([a, a], 1))
    eq(gc.stack([x, x], -1), np.stack([a, a], -1))
    eq(x.view_as(gc.zeros(6, 4)), a.reshape(6, 4))
    assert x.contiguous() is x


def test_matmul_variants():
    a, b = np.random.default_rng(0).standard_normal((2, 3, 4)), np.random.default_rng(1).standard_normal((4, 5))
    eq(gc.tensor(a) @ gc.tensor(b), a @ b)
    eq(gc.tensor(b[:, 0]) @ gc.tensor(b), b[:, 0] @ b)
    eq(gc.matmul(gc.tensor(a), gc.tensor(b[:, 0])), a @ b[:, 0])
    eq(gc.tensor(b[:, 0]).dot(gc.tensor(b[:, 1])), b[:, 0] @ b[:, 1])
    eq(gc.mm(gc.tensor(a[0]), gc.tensor(b)), a[0] @ b)
    eq(gc.bmm(gc.tensor(a), gc.tensor(a).mT), a @ a.swapaxes(1, 2))
    eq(gc.tensor(b) @ gc.tensor(b.T), b @ b.T)


# ---- indexing -------------------------------------------------------------------------------------------
A = np.arange(60.0).reshape(3, 4, 5)

INDEXES = [
    1, -1, (1, 2), (0, -1, 4), slice(1, None), slice(None, None, 2), slice(-2, None), slice(4, 1),
    (slice(None), 1), (Ellipsis, 1), (1, Ellipsis), (None, 1), (slice(None), None, slice(1, 3)),
    (Ellipsis, None), [0, 2], ([0, 2], [1, 3]), (np.array([[0], [2]]), np.array([1, 3])),
    (slice(None), np.array([3, -1, 0])), (np.array([1, 1]), slice(None), np.array([0, 4])),
    np.array([True, False, True]), (1, np.array([True, False, True, False])),
    (A > 30,), (A[:, :, 0] > 10,), (slice(1, 3), [1, 2], slice(None, None, 2)),
]


@pytest.mark.parametrize("ix", INDEXES, ids=[f"ix{i}" for i in range(len(INDEXES))])
def test_getitem_like_numpy(ix):
    """Where numpy and torch agree (no int mixed with index tensors), x[ix] is numpy's a[ix]."""
    x = gc.tensor(A)

    def conv(e):
        if isinstance(e, np.ndarray):
            return gc.tensor(e)
        return e
    gix = tuple(conv(e) for e in ix) if isinstance(ix, tuple) else conv(ix)
    eq(x[gix], A[ix])


def test_getitem_int_with_tensor_places_like_torch():
    x = gc.tensor(A)
    idx = gc.tensor([0, 2, 1])
    # torch applies the int first, so the index's dims stay in place (numpy moves them first)
    assert x[0, :, idx].shape == (4, 3)
    eq(x[0, :, idx], A[0][:, [0, 2, 1]])
    assert x[idx, 1, idx].shape == (3,)
    assert x[idx, :, idx].shape == (3, 4)
    assert x[None, 1, idx].shape == (1, 3, 5)


def test_getitem_views_share_memory():
    x = gc.tensor(A.copy())
    v = x[1, :, ::2]
    assert np.shares_memory(arr(v), arr(x))
    v.mul_(0)
    assert x[1, 0, 0].item() == 0 and x[1, 0, 1].item() == A[1, 0, 1]
    g = x[gc.tensor([0])]
    assert not np.shares_memory(arr(g), arr(x))


def test_getitem_errors():
    x = gc.zeros(2, 3)
    with pytest.raises(IndexError, match="index 2 is out of bounds for dimension 0 with size 2"):
        x[2]
    with pytest.raises(IndexError, match="index -4 is out of bounds for dimension 1 with size 3"):
        x[:, -4]
    with pytest.raises(IndexError, match="index 3 is out of bounds for dimension 1 with size 3"):
        x[gc.tensor([0]), gc.tensor([3])]
    with pytest.raises(IndexError, match="index 5 is out of bounds for dimension 0 with size 2"):
        x[gc.tensor([0, 5])]
    with pytest.raises(IndexError, match="too many indices for tensor of dimension 2"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match="single ellipsis"):
        x[..., ...]
    with pytest.raises(IndexError, match="tensors used as indices must be long"):
        x[gc.tensor([0.0])]
    with pytest.raises(IndexError, match="The shape of the mask"):
        x[gc.tensor([True, False, True])]
    with pytest.raises(ValueError, match="step must be greater than zero"):
        x[::-1]
    with pytest.raises(IndexError):
        x["a"]


def test_setitem():
    x = gc.tensor(A.copy())
    a = A.copy()
    for ix, v in [(0, 1.5), ((1, 2), gc.tensor([9.0] * 5)), ((slice(None), 0, slice(1, 3)), 7.0),
                  ((Ellipsis, 4), gc.tensor(np.arange(12.0).reshape(3, 4))), ([0, 2], -1.0),
                  ((gc.tensor([1, 2]), gc.tensor([0, 3])), gc.tensor([[100.0], [200.0]])),
                  (gc.tensor(A[:, 0, 0] > 20), 3.0)]:
        x[ix] = v
        nix = tuple(e.numpy() if isinstance(e, gc.Tensor) else e for e in ix) if isinstance(ix, tuple) else (
            ix.numpy() if isinstance(ix, gc.Tensor) else ix)
        a[nix] = v.numpy() if isinstance(v, gc.Tensor) else v
        eq(x, a)
    y = gc.zeros(3, 4)
    y[0, :, ] = gc.tensor([1.0, 2.0, 3.0, 4.0])
    y[1:, gc.tensor([0, 1])] = gc.tensor([[5.0, 6.0]])
    eq(y, [[1, 2, 3, 4], [5, 6, 0, 0], [5, 6, 0, 0]])
    z = gc.zeros(2, 3, 4)
    z[0, :, gc.tensor([1, 3])] = gc.ones(3, 2)     # torch's placement: the index dims stay in place
    assert z.sum().item() == 6 and z[0, 1, 3].item() == 1
    i = gc.zeros(3, dtype=gc.int64)
    i[1] = 2.7
    assert i.tolist() == [0, 2, 0]


# ---- metadata and conversion ----------------------------------------------------------------------------
def test_metadata():
    x = gc.zeros(2, 3, 4)
    assert x.shape == (2, 3, 4) and isinstance(x.shape, gc.Size)
    assert repr(x.shape) == "graphc.Size([2, 3, 4])"
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4
    assert x.ndim == 3 and x.dim() == 3
    assert x.numel() == 24 and x.shape.numel() == 24
    assert len(x) == 2
    assert x.dtype is gc.float32 and x.is_floating_point()
    assert str(x.device) == "cpu" and x.device == gc.device("cpu")
    assert gc.is_tensor(x) and not gc.is_tensor(np.zeros(2))
    with pytest.raises(TypeError, match="len"):
        len(gc.tensor(1.0))
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.size(3)
    with pytest.raises(TypeError):
        gc.Tensor([1, 2])


def test_item_tolist_and_python_conversions():
    assert gc.tensor(2.5).item() == 2.5 and isinstance(gc.tensor(2.5).item(), float)
    assert gc.tensor([3]).item() == 3 and isinstance(gc.tensor([3]).item(), int)
    assert gc.tensor(True).item() is True
    with pytest.raises(RuntimeError, match="a Tensor with 2 elements cannot be converted to Scalar"):
        gc.tensor([1.0, 2.0]).item()
    assert gc.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert gc.tensor(1.5).tolist() == 1.5
    assert float(gc.tensor(2.5)) == 2.5 and int(gc.tensor(2.7)) == 2
    assert bool(gc.tensor([1.0])) is True and bool(gc.tensor(0)) is False
    with pytest.raises(RuntimeError, match="Boolean value of Tensor with more than one value is ambiguous"):
        bool(gc.tensor([1.0, 2.0]))
    assert [t.item() for t in gc.tensor([1.0, 2.0])] == [1.0, 2.0]
    assert list(range(10))[gc.tensor(3)] == 3
    with pytest.raises(TypeError):
        list(range(10))[gc.tensor(3.0)]
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(gc.tensor(1.0))


def test_repr():
    assert repr(gc.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(gc.tensor([1.0, 2.5])) == "tensor([1.0000, 2.5000])"
    assert repr(gc.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(gc.tensor(3.5)) == "tensor(3.5000)"
    assert repr(gc.tensor([True, False])) == "tensor([ True, False])"
    assert repr(gc.tensor([1.0], dtype=gc.float64)) == "tensor([1.], dtype=graphc.float64)"
    assert repr(gc.zeros(0)) == "tensor([])"
    assert repr(gc.zeros(0, dtype=gc.int64)) == "tensor([], dtype=graphc.int64)"
    assert repr(gc.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    assert repr(gc.tensor([1.0], requires_grad=True) * 2) == "tensor([2.], grad_fn=<MulBackward>)"
    assert repr(gc.tensor([[1.0, 2.0], [3.0, 4.0]])) == "tensor([[1., 2.],\n        [3., 4.]])"
    assert repr(gc.tensor([1e-8, 1e8])) == "tensor([1.0000e-08, 1.0000e+08])"


# ---- errors that read like torch --------------------------------------------------------------------------
def test_matmul_errors():
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(32x784 and 10x784\)"):
        gc.randn(32, 784) @ gc.randn(10, 784)
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(1x3 and 4x2\)"):
        gc.ones(3) @ gc.ones(4, 2)
    with pytest.raises(RuntimeError, match="inconsistent tensor size"):
        gc.ones(3) @ gc.ones(4)
    with pytest.raises(RuntimeError, match="both arguments to matmul need to be at least 1D"):
        gc.matmul(gc.ones(()), gc.ones(3))
    with pytest.raises(RuntimeError, match="expected m1 and m2 to have the same dtype"):
        gc.ones(2, 3) @ gc.ones(3, 2, dtype=gc.float64)
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(5x3 and 4x2\)"):
        gc.nn.functional.linear(gc.ones(5, 3), gc.ones(2, 4))


def test_broadcast_errors():
    with pytest.raises(RuntimeError, match=r"The size of tensor a \(3\) must match the size of tensor b \(4\) "
                                           r"at non-singleton dimension 0"):
        gc.ones(3) + gc.ones(4)
    with pytest.raises(RuntimeError, match=r"The size of tensor a \(3\) must match the size of tensor b \(2\) "
                                           r"at non-singleton dimension 1"):
        gc.ones(2, 3) + gc.ones(3, 2)
    with pytest.raises(RuntimeError, match=r"The expanded size of the tensor \(4\) must match the existing size "
                                           r"\(3\) at non-singleton dimension 1"):
        gc.ones(2, 3).expand(2, 4)
    with pytest.raises(RuntimeError, match="isn't allowed in a leading, non-existing dimension 0"):
        gc.ones(2, 3).expand(-1, 2, 3)


def test_shape_errors():
    with pytest.raises(RuntimeError, match=r"shape '\[4, 2\]' is invalid for input of size 6"):
        gc.ones(2, 3).view(4, 2)
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        gc.ones(2, 3).view(-1, -1)
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"):
        gc.ones(2, 3).sum(2)
    with pytest.raises(RuntimeError, match="dim 1 appears multiple times in the list of dims"):
        gc.ones(2, 3).sum((1, -1))
    with pytest.raises(RuntimeError, match="Sizes of tensors must match except in dimension 1"):
        gc.cat([gc.ones(2, 3), gc.zeros(3, 2)], 1)
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got \[2\] at entry 0 "
                                           r"and \[3\] at entry 1"):
        gc.stack([gc.ones(2), gc.zeros(3)])
    with pytest.raises(RuntimeError, match="duplicate dims"):
        gc.ones(2, 3).permute(0, 0)
    with pytest.raises(RuntimeError, match="number of dimensions"):
        gc.ones(2, 3).permute(1, 0, 2)
    with pytest.raises(RuntimeError, match=r"start \(2\) \+ length \(2\) exceeds dimension size \(3\)"):
        gc.ones(2, 3).narrow(1, 2, 2)
    with pytest.raises(RuntimeError, match="split_with_sizes expects split_sizes to sum exactly to 5"):
        gc.ones(5).split([2, 2])
    with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with a bool tensor is not supported"):
        gc.tensor([True]) - gc.tensor([False])
    with pytest.raises(TypeError, match="bool"):
        -gc.tensor([True])
    with pytest.raises(RuntimeError, match="mean\\(\\): could not infer output dtype.*Got: Long"):
        gc.tensor([1, 2]).mean()
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max' must not be None"):
        gc.ones(2).clamp()
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        gc.ones(2, requires_grad=True).exp().backward()


def test_empty_tensors():
    e = gc.zeros(0, 3)
    assert (e + 1).shape == (0, 3)
    eq(e.sum(0), [0, 0, 0])
    assert e.sum(1).shape == (0,)
    assert e.mean(1).shape == (0,)
    assert np.isnan(arr(e.mean())).all()
    assert (e @ gc.ones(3, 2)).shape == (0, 2)
    eq(gc.zeros(2, 0) @ gc.zeros(0, 3), np.zeros((2, 3)))
    assert e.reshape(3, 0).shape == (3, 0)
    assert gc.cat([e, gc.ones(1, 3)]).shape == (1, 3)
    assert e[gc.tensor([], dtype=gc.int64)].shape == (0, 3)
    assert e.T.shape == (3, 0)
    with pytest.raises(ValueError):
        e.amax(0)


def test_numpy_scalars_defer_to_tensor_operators():
    x = gc.ones(2, requires_grad=True)
    y = np.float64(2.0) * x
    assert isinstance(y, gc.Tensor) and y.dtype is gc.float32 and y.grad_fn is not None
    assert isinstance(np.int64(3) - x, gc.Tensor)
    assert isinstance(np.float32(1.0) / x, gc.Tensor)
    (np.float64(3.0) * x).sum().backward()
    eq(x.grad, [3.0, 3.0])
