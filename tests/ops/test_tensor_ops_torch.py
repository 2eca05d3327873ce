"""The torch tensor-op surface (tril/triu, flip, roll, movedim, meshgrid, diagonal/diag_embed,
repeat_interleave, rounding, special values, isclose, lerp, prod/cumsum/cumprod, addmm family,
einsum, linalg norms) against torch 2.13 CPU: values over odd, size-1, empty shapes and negative
dims, int and float dtypes; gradients against torch's and gradcheck in float64."""
import numpy as np
import pytest

import graphc as gc
from graphc.testing import gradcheck

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
SHAPES = [(3, 5), (1, 4), (4, 1), (2, 3, 4), (0, 3), (3, 0)]
INF, NAN = float("inf"), float("nan")


def arr(shape, dtype=np.float64):
    if np.issubdtype(dtype, np.integer):
        return RNG.integers(-5, 6, size=shape).astype(dtype)
    return RNG.standard_normal(shape).astype(dtype)


def both(a):
    return gc.tensor(a), torch.tensor(a)


def same(g, t, rtol=1e-7, atol=1e-10):
    if isinstance(g, (tuple, list)):
        assert len(g) == len(t)
        for a, b in zip(g, t):
            same(a, b, rtol, atol)
        return
    g = np.asarray(g.detach().numpy())
    t = t.detach().numpy()
    assert g.shape == t.shape, (g.shape, t.shape)
    assert g.dtype == t.dtype, (g.dtype, t.dtype)
    np.testing.assert_allclose(g, t, rtol=rtol, atol=atol, equal_nan=True)


def grads_match(gfn, tfn, arrays, rtol=1e-6, atol=1e-9):
    """The gradient of sum(fn(x) * w) for a fixed random w, graphc vs torch, and a gradcheck."""
    gs = [gc.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    gy, ty = gfn(*gs), tfn(*ts)
    w = arr(tuple(ty.shape))
    (gy * gc.tensor(w)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    for g, t in zip(gs, ts):
        np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol)
    if all(a.size for a in arrays):
        assert gradcheck(gfn, [gc.tensor(a, requires_grad=True) for a in arrays])


# ---- arrange -------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [s for s in SHAPES])
@pytest.mark.parametrize("k", [-2, -1, 0, 1, 6])
def test_tril_triu(shape, k):
    for dt in (np.float64, np.int64):
        g, t = both(arr(shape, dt))
        same(gc.tril(g, k), torch.tril(t, k))
        same(g.triu(k), t.triu(k))
    g, t = both(arr(shape) > 0)
    same(gc.tril(g, k), torch.tril(t, k))


def test_tril_refuses_1d_and_grad():
    with pytest.raises(RuntimeError, match="tril"):
        gc.tril(gc.ones(3))
    grads_match(lambda x: gc.tril(x, -1), lambda x: torch.tril(x, -1), [arr((4, 3))])


@pytest.mark.parametrize("shape", SHAPES)
def test_flip_roll_movedim(shape):
    g, t = both(arr(shape, np.int64))
    nd = len(shape)
    same(gc.flip(g, (0, -1)), torch.flip(t, (0, -1)))
    same(g.flip(-1), t.flip(-1))
    same(gc.roll(g, 3), torch.roll(t, 3))
    same(gc.roll(g, (-7, 2), (0, -1)), torch.roll(t, (-7, 2), (0, -1)))
    same(gc.movedim(g, 0, -1), torch.movedim(t, 0, -1))
    same(gc.moveaxis(g, (0, -1), (-1, 0)), torch.moveaxis(t, (0, -1), (-1, 0)))
    if nd == 3:
        same(g.movedim((2, 0), (0, 1)), t.movedim((2, 0), (0, 1)))
        same(gc.fliplr(g), torch.fliplr(t))
        same(gc.flipud(g), torch.flipud(t))
    grads_match(lambda x: gc.roll(gc.flip(x, -1), 1, 0), lambda x: torch.roll(torch.flip(x, (-1,)), 1, 0),
                [arr(shape)])


def test_broadcast_tensors_meshgrid_numel():
    a, b = arr((3, 1)), arr((4, 1, 5))
    same(gc.broadcast_tensors(gc.tensor(a), gc.tensor(b)), torch.broadcast_tensors(torch.tensor(a), torch.tensor(b)))
    xs = [arr((3,)), arr((4,)), arr((1,)), arr((0,))]
    for idx in ("ij", "xy"):
        for n in (1, 2, 3, 4):
            same(gc.meshgrid(*[gc.tensor(x) for x in xs[:n]], indexing=idx),
                 torch.meshgrid(*[torch.tensor(x) for x in xs[:n]], indexing=idx))
        same(gc.meshgrid([gc.tensor(x) for x in xs[:2]], indexing=idx),
             torch.meshgrid([torch.tensor(x) for x in xs[:2]], indexing=idx))
    with pytest.raises(RuntimeError, match="indexing"):
        gc.meshgrid(gc.ones(2), indexing="yx")
    assert gc.numel(gc.ones(2, 3, 0)) == 0 and gc.numel(gc.ones(2, 3)) == 6 == gc.ones(2, 3).numel()


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (1, 1), (2, 3, 4), (0, 3)])
@pytest.mark.parametrize("off", [-4, -1, 0, 2, 9])
def test_diagonal_diag_embed(shape, off):
    g, t = both(arr(shape))
    same(gc.diagonal(g, off), torch.diagonal(t, off))
    same(g.diagonal(off, -1, 0), t.diagonal(off, -1, 0))
    same(gc.diag_embed(g, off), torch.diag_embed(t, off))
    same(gc.diag_embed(g, off, 0, -1), torch.diag_embed(t, off, 0, -1))
    same(gc.diag_embed(g, off, -1, 0), torch.diag_embed(t, off, -1, 0))
    if len(shape) == 2:
        same(gc.diag(g, off), torch.diag(t, off))
        if shape[0]:
            same(gc.diag(g[0], off), torch.diag(t[0], off))


def test_diag_grads_and_errors():
    grads_match(lambda x: gc.diagonal(x, 1, -1, 0), lambda x: torch.diagonal(x, 1, -1, 0), [arr((3, 4, 2))])
    grads_match(lambda x: gc.diag_embed(x, -1), lambda x: torch.diag_embed(x, -1), [arr((2, 3))])
    with pytest.raises(RuntimeError, match="identical"):
        gc.diagonal(gc.ones(2, 2), 0, 1, -1)
    with pytest.raises(RuntimeError, match="1D or 2D"):
        gc.diag(gc.ones(2, 2, 2))


@pytest.mark.parametrize("shape", SHAPES)
def test_repeat_interleave(shape):
    g, t = both(arr(shape, np.int64))
    same(gc.repeat_interleave(g, 3), torch.repeat_interleave(t, 3))
    same(g.repeat_interleave(2, dim=-1), t.repeat_interleave(2, dim=-1))
    same(g.repeat_interleave(gc.tensor(2), dim=0), t.repeat_interleave(torch.tensor(2), dim=0))
    same(g.repeat_interleave(0, dim=0), t.repeat_interleave(0, dim=0))
    with pytest.raises(NotImplementedError, match="repeat_interleave"):
        gc.repeat_interleave(gc.ones(3), gc.tensor([1, 2, 3]))
    grads_match(lambda x: gc.repeat_interleave(x, 2, 0), lambda x: torch.repeat_interleave(x, 2, 0), [arr((3, 2))])


# ---- rounding, special values, comparisons ------------------------------------------------------
SPECIAL = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999999999999994, 3.7, -3.7, 1e30, -1e-30,
                    INF, -INF, NAN, 0.0, -0.0, 0.3, -0.3, 7.25, 123.456, -0.05])


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_rounding(dt):
    g, t = both(SPECIAL.astype(dt))
    for d in (0, 1, 2, -1, -2):
        same(gc.round(g, decimals=d), torch.round(t, decimals=d))
    same(g.round(), t.round())
    for f in ("trunc", "floor", "ceil", "frac", "fix"):
        same(getattr(gc, f)(g), getattr(torch, f)(t))
    gi, ti = both(arr((3, 4), np.int64))
    for f in ("round", "trunc", "floor", "ceil"):
        same(getattr(gc, f)(gi), getattr(torch, f)(ti))
    with pytest.raises(RuntimeError, match="frac"):
        gc.frac(gi)


def test_rounding_grads():
    x = arr((3, 4)) * 3
    grads_match(lambda v: gc.round(v) + gc.trunc(v) * v, lambda v: torch.round(v) + torch.trunc(v) * v, [x])
    grads_match(gc.frac, torch.frac, [x])


def test_fmod_vs_remainder():
    a = np.array([-7.5, 7.5, -7.5, 7.5, 5.0, -1e-20, 0.0, INF, 3.0, -2.0, NAN, 6.0])
    b = np.array([2.0, 2.0, -2.0, -2.0, 5.0, 1.0, 3.0, 2.0, INF, 0.0, 1.0, -INF])
    for dt in (np.float64, np.float32):
        (ga, ta), (gb, tb) = both(a.astype(dt)), both(b.astype(dt))
        same(gc.fmod(ga, gb), torch.fmod(ta, tb))
        same(ga.fmod(2.5), ta.fmod(2.5))
        same(gc.remainder(ga[:7], gb[:7]), torch.remainder(ta[:7], tb[:7]))
    ia, ib = np.array([-7, 7, -7, 7, 0, 5]), np.array([3, 3, -3, -3, 2, 5])
    (ga, ta), (gb, tb) = both(ia), both(ib)
    same(gc.fmod(ga, gb), torch.fmod(ta, tb))
    same(gc.fmod(ga, 4), torch.fmod(ta, 4))
    same(gc.remainder(ga, gb), torch.remainder(ta, tb))
    x, y = arr((3, 4)) * 4, np.abs(arr((3, 4))) + 0.5
    grads_match(gc.fmod, torch.fmod, [x, y])


def test_inplace_methods():
    x = arr((3, 4)) * 3
    for name, args in [("tril_", (1,)), ("triu_", (-1,)), ("round_", ()), ("trunc_", ()), ("frac_", ()),
                       ("floor_", ()), ("ceil_", ()), ("fmod_", (1.5,)), ("cumsum_", (1,)), ("cumprod_", (0,)),
                       ("nan_to_num_", ()), ("masked_fill_", ("mask", -7.0))]:
        g, t = both(x)
        ga = [gc.tensor(x > 0) if a == "mask" else a for a in args]
        ta = [torch.tensor(x > 0) if a == "mask" else a for a in args]
        assert getattr(g, name)(*ga) is g
        getattr(t, name)(*ta)
        same(g, t)


def test_special_values():
    for dt in (np.float64, np.float32):
        g, t = both(SPECIAL.astype(dt))
        for f in ("isnan", "isinf", "isfinite", "isposinf", "isneginf"):
            same(getattr(gc, f)(g), getattr(torch, f)(t))
            same(getattr(g, f)(), getattr(t, f)())
        same(gc.nan_to_num(g), torch.nan_to_num(t))
        same(g.nan_to_num(1.5, posinf=2.0, neginf=-3.0), t.nan_to_num(1.5, posinf=2.0, neginf=-3.0))
    gi, ti = both(arr((2, 3), np.int64))
    for f in ("isnan", "isinf", "isfinite", "nan_to_num"):
        same(getattr(gc, f)(gi), getattr(torch, f)(ti))


def test_isclose_allclose():
    a = np.array([1.0, 1.0, INF, -INF, NAN, 0.0, 1e-9, 100.0])
    b = np.array([1.0 + 1e-6, 1.1, INF, INF, NAN, 1e-8, 0.0, 100.001])
    (ga, ta), (gb, tb) = both(a), both(b)
    for kw in ({}, {"equal_nan": True}, {"rtol": 1e-3, "atol": 0.0}, {"rtol": 0.0, "atol": 0.2}):
        same(gc.isclose(ga, gb, **kw), torch.isclose(ta, tb, **kw))
        assert gc.allclose(ga[:1], gb[:1], **kw) == torch.allclose(ta[:1], tb[:1], **kw)
        assert gc.allclose(ga, gb, **kw) == torch.allclose(ta, tb, **kw)
    (gi, ti), (gj, tj) = both(np.array([1, 2, 3])), both(np.array([1, 3, 3]))
    same(gc.isclose(gi, gj), torch.isclose(ti, tj))
    assert ga[:4].allclose(ga[:4]) and not gi.allclose(gj)
    with pytest.raises(RuntimeError, match="did not match"):
        gc.isclose(ga, gi)


@pytest.mark.parametrize("shape", [(3, 5), (1,), (0, 2)])
def test_lerp(shape):
    (gs, ts), (ge, te) = both(arr(shape)), both(arr(shape))
    w = RNG.uniform(-0.5, 1.5, size=shape)
    same(gc.lerp(gs, ge, gc.tensor(w)), torch.lerp(ts, te, torch.tensor(w)))
    for s in (0.0, 0.25, 0.5, 1.0, 2.0):
        same(gs.lerp(ge, s), ts.lerp(te, s))
    grads_match(lambda a, b, c: gc.lerp(a, b, c), torch.lerp, [arr(shape), arr(shape), w])


# ---- products and scans ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES + [(7,), (1,), ()])
def test_prod_cumsum_cumprod(shape):
    for dt in (np.float64, np.int64, np.float32):
        g, t = both(arr(shape, dt))
        rt = 1e-5 if dt == np.float32 else 1e-7
        same(gc.prod(g), torch.prod(t), rtol=rt)
        for d in range(-len(shape), len(shape)) if shape else (0, -1):
            same(g.prod(d), t.prod(d), rtol=rt)
            same(gc.prod(g, d, keepdim=True), torch.prod(t, d, keepdim=True), rtol=rt)
            same(gc.cumsum(g, d), torch.cumsum(t, d), rtol=rt, atol=1e-5)
            same(g.cumprod(d), t.cumprod(d), rtol=rt)
    gb, tb = both(arr(shape) > 0)
    if shape:
        same(gc.cumsum(gb, 0), torch.cumsum(tb, 0))
        same(gc.prod(gb, 0), torch.prod(tb, 0))
    gi, ti = both(arr(shape, np.int64))
    same(gc.cumsum(gi, -1, dtype=gc.float64), torch.cumsum(ti, -1, dtype=torch.float64))
    same(gi.prod(dtype=gc.float64), ti.prod(dtype=torch.float64))


def test_scan_grads_with_zeros():
    x = arr((3, 6))
    x[1, 2] = 0.0
    x[2, 0] = x[2, 4] = 0.0
    grads_match(lambda v: gc.cumsum(v, 1), lambda v: torch.cumsum(v, 1), [x])
    grads_match(lambda v: gc.cumprod(v, -1), lambda v: torch.cumprod(v, -1), [x])
    grads_match(lambda v: gc.prod(v, 1), lambda v: torch.prod(v, 1), [x])
    grads_match(gc.prod, torch.prod, [arr((5,))])


# ---- addmm family, einsum, norms ---------------------------------------------------------------
@pytest.mark.parametrize("beta,alpha", [(1, 1), (0.5, 2.0), (0, 1), (0, -1.5)])
def test_addmm_family(beta, alpha):
    i, m1, m2 = arr((4, 3)), arr((4, 5)), arr((5, 3))
    i[0, 0] = NAN           # beta=0 ignores input's nan, as torch
    b1, b2 = arr((2, 4, 5)), arr((2, 5, 3))
    kw = {"beta": beta, "alpha": alpha}
    T = torch.tensor
    same(gc.addmm(gc.tensor(i), gc.tensor(m1), gc.tensor(m2), **kw), torch.addmm(T(i), T(m1), T(m2), **kw))
    same(gc.tensor(i[0]).addmm(gc.tensor(m1), gc.tensor(m2), **kw), T(i[0]).addmm(T(m1), T(m2), **kw))
    same(gc.baddbmm(gc.tensor(i), gc.tensor(b1), gc.tensor(b2), **kw), torch.baddbmm(T(i), T(b1), T(b2), **kw))
    same(gc.addbmm(gc.tensor(i), gc.tensor(b1), gc.tensor(b2), **kw), torch.addbmm(T(i), T(b1), T(b2), **kw))
    v = arr((5,))
    same(gc.addmv(gc.tensor(i[:, 0]), gc.tensor(m1), gc.tensor(v), **kw), torch.addmv(T(i[:, 0]), T(m1), T(v), **kw))
    ii, a, b = arr((4, 3), np.int64), arr((4, 5), np.int64), arr((5, 3), np.int64)
    same(gc.addmm(gc.tensor(ii), gc.tensor(a), gc.tensor(b)), torch.addmm(T(ii), T(a), T(b)))
    if beta:
        grads_match(lambda x, y, z: gc.addmm(x, y, z, **kw), lambda x, y, z: torch.addmm(x, y, z, **kw),
                    [arr((4, 3)), m1, m2])


EINSUM = [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("ij,jk", [(3, 4), (4, 5)]), ("ii->i", [(4, 4)]), ("ii", [(4, 4)]),
    ("ij->ji", [(2, 3)]), ("ij", [(2, 3)]), ("ba", [(2, 3)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]), ("i,i->", [(5,), (5,)]), ("i,j->ij", [(3,), (4,)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("...i", [(2, 3, 4)]), ("ijk->", [(2, 3, 4)]), ("ij,ij->ij", [(3, 4), (3, 4)]), ("iij->ji", [(3, 3, 2)]),
    ("i,i,i->i", [(4,), (4,), (4,)]), ("ab,cd->", [(2, 3), (4, 5)]), ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("ij,jk", [(3, 1), (4, 5)]), ("...,...->...", [(2, 3), (3,)]), ("ij,j->i", [(0, 3), (3,)]),
    ("b i d, b j d -> b i j", [(2, 3, 4), (2, 5, 4)]), ("i...->...", [(3, 2, 2)]),
]


@pytest.mark.parametrize("eq,shapes", EINSUM)
def test_einsum(eq, shapes):
    xs = [arr(s) for s in shapes]
    same(gc.einsum(eq, *[gc.tensor(x) for x in xs]), torch.einsum(eq, *[torch.tensor(x) for x in xs]),
         rtol=1e-10, atol=1e-12)
    same(gc.einsum(eq, [gc.tensor(x) for x in xs]), torch.einsum(eq, [torch.tensor(x) for x in xs]),
         rtol=1e-10, atol=1e-12)


def test_einsum_grads_and_errors():
    grads_match(lambda a, b: gc.einsum("bij,bkj->bik", a, b), lambda a, b: torch.einsum("bij,bkj->bik", a, b),
                [arr((2, 3, 4)), arr((2, 5, 4))])
    grads_match(lambda a: gc.einsum("ii->", a), lambda a: torch.einsum("ii->", a), [arr((3, 3))])
    ints = [arr((2, 3), np.int64), arr((3, 4), np.int64)]
    same(gc.einsum("ij,jk->ik", *map(gc.tensor, ints)), torch.einsum("ij,jk->ik", *map(torch.tensor, ints)))
    for eq, shapes, msg in [("ij,jk->ik", [(2, 3)], "operands"), ("ijk", [(2, 3)], "labels"),
                            ("ij->q", [(2, 3)], "does not appear"), ("ij->ii", [(2, 2)], "repeats"),
                            ("i1", [(2, 3)], "invalid"), ("ij,jk", [(2, 3), (4, 5)], "do not match")]:
        with pytest.raises(RuntimeError, match=msg):
            gc.einsum(eq, *[gc.ones(*s) for s in shapes])


ORDS = [2, 1, 0, 3, 0.5, -1, INF, -INF]


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4), (1,), (5,)])
def test_vector_norm(shape):
    g, t = both(arr(shape))
    for o in ORDS:
        same(gc.linalg.vector_norm(g, o), torch.linalg.vector_norm(t, o))
        same(gc.linalg.vector_norm(g, o, -1, keepdim=True), torch.linalg.vector_norm(t, o, -1, keepdim=True))
        if len(shape) > 1:
            same(gc.linalg.vector_norm(g, o, (0, -1)), torch.linalg.vector_norm(t, o, (0, -1)))
        same(gc.linalg.norm(g, o, -1), torch.linalg.norm(t, o, -1))
        same(g.norm(o), t.norm(o))
        same(g.norm(o, dim=0, keepdim=True), t.norm(o, dim=0, keepdim=True))
    same(gc.linalg.norm(g), torch.linalg.norm(t))
    same(g.norm(), t.norm())
    same(g.norm("fro"), t.norm("fro"))
    gf, tf = both(arr(shape, np.float32))
    same(gc.linalg.vector_norm(gf, dtype=gc.float64), torch.linalg.vector_norm(tf, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="floating point"):
        gc.linalg.vector_norm(gc.ones(3, dtype=gc.int64))


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4), (1, 1)])
def test_matrix_norm(shape):
    g, t = both(arr(shape))
    for o in ("fro", 1, -1, INF, -INF):
        same(gc.linalg.matrix_norm(g, o), torch.linalg.matrix_norm(t, o))
        same(gc.linalg.matrix_norm(g, o, (-1, 0), keepdim=True), torch.linalg.matrix_norm(t, o, (-1, 0), keepdim=True))
        same(gc.linalg.norm(g, o, (0, -1)), torch.linalg.norm(t, o, (0, -1)))
        if len(shape) == 2:
            same(gc.linalg.norm(g, o), torch.linalg.norm(t, o))
    for o in (2, "nuc"):
        with pytest.raises(NotImplementedError, match="singular values"):
            gc.linalg.matrix_norm(g, o)
    with pytest.raises(NotImplementedError, match="singular values"):
        g.norm("nuc")


def test_norm_grads():
    x = arr((3, 4))
    for o in (2, 1, 3, INF):
        grads_match(lambda v: gc.linalg.vector_norm(v, o, -1), lambda v: torch.linalg.vector_norm(v, o, -1), [x])
    grads_match(lambda v: gc.linalg.matrix_norm(v, 1), lambda v: torch.linalg.matrix_norm(v, 1), [x])
    z = np.zeros((2, 3))            # torch's 0 (not nan) gradient of the 2-norm at 0
    grads_match(lambda v: gc.linalg.vector_norm(v), lambda v: torch.linalg.vector_norm(v), [z])
