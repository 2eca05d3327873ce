"""torch's scatter family against torch 2.13 CPU (tests/ops/test_tensor_ops_torch.py has the rest of
the tensor ops): scatter (src, value, reduce=), scatter_add, scatter_reduce (every reduction,
include_self both ways), index_add/index_copy/index_fill, with indices smaller than the input,
repeated indices, empty indices, negative dims, int and float dtypes; gradients vs torch."""
import numpy as np
import pytest

import graphc as gc
from graphc.testing import gradcheck

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(2)


def same(g, t, rtol=1e-7, atol=1e-10):
    g = np.asarray(g.detach().numpy())
    t = t.detach().numpy()
    assert g.shape == t.shape and g.dtype == t.dtype, (g.shape, t.shape, g.dtype, t.dtype)
    np.testing.assert_allclose(g, t, rtol=rtol, atol=atol)


def data(shape, dt):
    if dt == np.int64:
        return RNG.integers(-5, 6, size=shape).astype(dt)
    return RNG.standard_normal(shape).astype(dt)


# (input shape, dim, index, src shape): index smaller than input / src in the other dims, repeats
CASES = [
    ((3, 5), 0, [[0, 1, 2, 0], [2, 0, 0, 1]], (2, 5)),
    ((3, 5), 1, [[0, 4, 2], [1, 1, 3]], (2, 4)),
    ((3, 5), -1, [[4, 4, 4, 4, 4], [0, 1, 2, 3, 4], [1, 0, 1, 0, 1]], (3, 5)),
    ((4,), 0, [3, 3, 0], (5,)),
    ((2, 3, 4), 1, np.zeros((2, 2, 4), np.int64), (2, 2, 4)),
    ((3, 4), 0, np.zeros((0, 4), np.int64), (2, 4)),
    ((1, 1), 1, [[0]], (1, 1)),
]


@pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter")
@pytest.mark.parametrize("shape,dim,index,sshape", CASES)
@pytest.mark.parametrize("dt", [np.float64, np.int64, np.float32])
def test_scatter_family(shape, dim, index, sshape, dt):
    x, src = data(shape, dt), data(sshape, dt)
    idx = np.asarray(index, np.int64)
    gx, tx = gc.tensor(x), torch.tensor(x)
    gi, ti = gc.tensor(idx), torch.tensor(idx)
    gs, ts = gc.tensor(src), torch.tensor(src)
    rt = 1e-5 if dt == np.float32 else 1e-7
    same(gc.scatter_add(gx, dim, gi, gs), torch.scatter_add(tx, dim, ti, ts), rt)
    same(gx.scatter_add(dim, gi, gs), tx.scatter_add(dim, ti, ts), rt)
    same(gc.scatter(gx, dim, gi, 3), torch.scatter(tx, dim, ti, 3))
    same(gx.scatter(dim, gi, value=-2), tx.scatter(dim, ti, value=-2))
    same(gx.scatter(dim, gi, gs, reduce="add"), tx.scatter(dim, ti, ts, reduce="add"), rt)
    same(gx.scatter(dim, gi, gs, reduce="multiply"), tx.scatter(dim, ti, ts, reduce="multiply"), rt)
    for reduce in ("sum", "prod", "mean", "amax", "amin"):
        for inc in (True, False):
            same(gx.scatter_reduce(dim, gi, gs, reduce, include_self=inc),
                 tx.scatter_reduce(dim, ti, ts, reduce, include_self=inc), rt)


def test_scatter_src_unique_indices():
    x, src = data((3, 5), np.float64), data((3, 5), np.float64)
    idx = np.array([[0, 1, 2, 0, 1], [1, 2, 0, 2, 2], [2, 0, 1, 1, 0]])
    same(gc.scatter(gc.tensor(x), 0, gc.tensor(idx), gc.tensor(src)),
         torch.scatter(torch.tensor(x), 0, torch.tensor(idx), torch.tensor(src)))
    y = gc.tensor(x)
    y.scatter_(1, gc.tensor(idx[:, :2]), gc.tensor(src))
    t = torch.tensor(x)
    t.scatter_(1, torch.tensor(idx[:, :2]), torch.tensor(src))
    same(y, t)


@pytest.mark.parametrize("dt", [np.float64, np.int64])
def test_index_add_copy_fill(dt):
    x = data((4, 3, 2), dt)
    for dim, idx, sshape in [(0, [3, 0, 3], (3, 3, 2)), (1, [2, 1], (4, 2, 2)), (-1, [1], (4, 3, 1)),
                             (0, [], (0, 3, 2))]:
        i = np.array(idx, np.int64)
        s = data(sshape, dt)
        gx, tx, gi, ti, gs, ts = gc.tensor(x), torch.tensor(x), gc.tensor(i), torch.tensor(i), gc.tensor(s), torch.tensor(s)
        same(gc.index_add(gx, dim, gi, gs), torch.index_add(tx, dim, ti, ts))
        same(gx.index_add(dim, gi, gs, alpha=2), tx.index_add(dim, ti, ts, alpha=2))
        same(gx.index_fill(dim, gi, 7), tx.index_fill(dim, ti, 7))
        if len(set(idx)) == len(idx):
            same(gc.index_copy(gx, dim, gi, gs), torch.index_copy(tx, dim, ti, ts))
            same(gx.index_select(dim, gi), tx.index_select(dim, ti))
    y, t = gc.tensor(x), torch.tensor(x)
    y.index_add_(0, gc.tensor([1, 1]), gc.ones(2, 3, 2, dtype=y.dtype))
    t.index_add_(0, torch.tensor([1, 1]), torch.ones(2, 3, 2, dtype=t.dtype))
    same(y, t)


def test_errors():
    x = gc.ones(3, 4)
    with pytest.raises(RuntimeError, match="int64"):
        gc.scatter_add(x, 0, gc.ones(2, 4), x)
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        gc.scatter_add(x, 0, gc.tensor([0, 1]), x)
    with pytest.raises(RuntimeError, match="smaller"):
        gc.scatter_add(x, 0, gc.zeros(2, 5, dtype=gc.int64), gc.ones(2, 5))
    with pytest.raises(RuntimeError, match="reduce argument"):
        x.scatter_reduce(0, gc.zeros(1, 4, dtype=gc.int64), x, "max")
    with pytest.raises(IndexError, match="vector"):
        gc.index_add(x, 0, gc.zeros(1, 1, dtype=gc.int64), x)
    with pytest.raises(RuntimeError, match="Number of indices"):
        gc.index_copy(x, 0, gc.tensor([0]), x)
    with pytest.raises(IndexError, match="out of bounds"):
        gc.scatter_add(x, 0, gc.tensor([[5, 0, 0, 0]]), x[:1])


def _grads(gfn, tfn, arrays):
    gs = [gc.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    gy, ty = gfn(*gs), tfn(*ts)
    w = RNG.standard_normal(tuple(ty.shape))
    (gy * gc.tensor(w)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    for g, t in zip(gs, ts):
        np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=1e-6, atol=1e-9)
    assert gradcheck(gfn, [gc.tensor(a, requires_grad=True) for a in arrays])


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_grads(reduce, include_self):
    idx = np.array([[0, 2, 1], [2, 2, 0]])     # distinct values, so no ties in amax/amin
    x, src = data((3, 3), np.float64), data((2, 3), np.float64)
    _grads(lambda a, s: a.scatter_reduce(0, gc.tensor(idx), s, reduce, include_self=include_self),
           lambda a, s: a.scatter_reduce(0, torch.tensor(idx), s, reduce, include_self=include_self), [x, src])


def test_scatter_index_grads():
    idx = np.array([[1, 0, 2], [2, 1, 0]])
    x, src = data((3, 4), np.float64), data((2, 4), np.float64)
    _grads(lambda a, s: gc.scatter_add(a, 0, gc.tensor(idx), s), lambda a, s: torch.scatter_add(a, 0, torch.tensor(idx), s),
           [x, src[:, :3]])
    _grads(lambda a, s: gc.scatter(a, 1, gc.tensor(idx[:, :2]), s), lambda a, s: torch.scatter(a, 1, torch.tensor(idx[:, :2]), s),
           [x, src[:, :2]])
    i = np.array([2, 0])
    _grads(lambda a, s: gc.index_add(a, 0, gc.tensor(i), s, alpha=3), lambda a, s: torch.index_add(a, 0, torch.tensor(i), s, alpha=3), [x, src])
    _grads(lambda a, s: gc.index_copy(a, 0, gc.tensor(i), s), lambda a, s: torch.index_copy(a, 0, torch.tensor(i), s), [x, src])
