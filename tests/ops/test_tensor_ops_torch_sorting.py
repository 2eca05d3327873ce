"""sort / argsort / topk / msort, unique / nonzero / masked_select / count_nonzero against torch
2.13 CPU (values, indices, NaN placement, stable ties, int/bool/float, empty and size-1 dims,
negative dims, gradients), and multinomial / bernoulli by their distributions and torch's
argument checks (graphc's generator is not torch's, so the draws themselves differ)."""
import numpy as np
import pytest

import graphc as gc
import graphc.nn.functional as F
from graphc.testing import gradcheck

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(3)


def same(g, t):
    g = np.asarray(g.detach().numpy())
    t = t.detach().numpy()
    assert g.shape == t.shape and g.dtype == t.dtype, (g.shape, t.shape, g.dtype, t.dtype)
    np.testing.assert_array_equal(g, t)


def data(shape, kind):
    if kind == "int":
        return RNG.integers(-3, 4, size=shape).astype(np.int64)     # many ties
    if kind == "bool":
        return RNG.random(shape) > 0.5
    a = RNG.standard_normal(shape)
    if a.size > 3:
        a.flat[1] = np.nan
        a.flat[2] = a.flat[3]              # a tie
        a.flat[-1] = -np.inf
    return a


@pytest.mark.parametrize("shape", [(4, 7), (1, 5), (5, 1), (2, 3, 4), (0, 3), (6,), ()])
@pytest.mark.parametrize("kind", ["float", "int", "bool"])
def test_sort_argsort(shape, kind):
    a = data(shape, kind)
    g, t = gc.tensor(a), torch.tensor(a)
    for d in range(-len(shape), len(shape)) if shape else (0, -1):
        for desc in (False, True):
            gv, gi = gc.sort(g, d, descending=desc)
            tv, ti = torch.sort(t, dim=d, descending=desc, stable=True)
            same(gv, tv)
            same(gi, ti)
            same(g.argsort(d, descending=desc), torch.argsort(t, dim=d, descending=desc, stable=True))
            same(g.sort(dim=d, descending=desc, stable=True).values, tv)
    if shape:
        same(gc.msort(g), torch.msort(t))


@pytest.mark.parametrize("shape,k", [((4, 7), 3), ((1, 5), 5), ((6,), 0), ((2, 3, 4), 1)])
def test_topk(shape, k):
    a = RNG.permutation(int(np.prod(shape))).reshape(shape).astype(np.float64)   # distinct values
    g, t = gc.tensor(a), torch.tensor(a)
    for largest in (True, False):
        gv, gi = gc.topk(g, k, largest=largest)
        tv, ti = torch.topk(t, k, largest=largest)
        same(gv, tv)
        same(gi, ti)
        same(g.topk(k, dim=0, largest=largest).indices, t.topk(k, dim=0, largest=largest).indices) \
            if k <= shape[0] else None
    ai = a.astype(np.int64)
    same(gc.topk(gc.tensor(ai), k).values, torch.topk(torch.tensor(ai), k).values)
    with pytest.raises(RuntimeError, match="out of range"):
        gc.topk(g, shape[-1] + 1)


def test_sort_topk_grads():
    a = RNG.standard_normal((3, 5))
    for gfn, tfn in [(lambda x: gc.sort(x, 1, descending=True).values, lambda x: torch.sort(x, 1, descending=True).values),
                     (lambda x: gc.topk(x, 2, 0).values, lambda x: torch.topk(x, 2, 0).values)]:
        gx, tx = gc.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        w = RNG.standard_normal(tuple(tfn(tx).shape))
        (gfn(gx) * gc.tensor(w)).sum().backward()
        (tfn(tx) * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy())
        assert gradcheck(gfn, [gc.tensor(a, requires_grad=True)])


@pytest.mark.parametrize("shape", [(3, 4), (5,), (0, 2), (1, 1), ()])
def test_nonzero_masked_select_count(shape):
    a = RNG.integers(-1, 2, size=shape) * (RNG.random(shape) > 0.3)
    g, t = gc.tensor(a), torch.tensor(a)
    same(gc.nonzero(g), torch.nonzero(t))
    same(gc.argwhere(g), torch.argwhere(t))
    for x, y in zip(g.nonzero(as_tuple=True), t.nonzero(as_tuple=True)):
        same(x, y)
    same(gc.count_nonzero(g), torch.count_nonzero(t))
    if shape:
        same(gc.count_nonzero(g, -1), torch.count_nonzero(t, -1))
    v = RNG.standard_normal(shape)
    same(gc.masked_select(gc.tensor(v), g > 0), torch.masked_select(torch.tensor(v), t > 0))
    if len(shape) == 2:
        m = a[:1] > 0
        same(gc.tensor(v).masked_select(gc.tensor(m)), torch.tensor(v).masked_select(torch.tensor(m)))


def test_unique():
    a = RNG.integers(0, 5, size=(4, 6))
    g, t = gc.tensor(a), torch.tensor(a)
    same(gc.unique(g), torch.unique(t))
    for x, y in zip(g.unique(return_inverse=True, return_counts=True),
                    t.unique(return_inverse=True, return_counts=True)):
        same(x, y)
    b = np.array([[1, 2], [1, 2], [0, 3]])
    for x, y in zip(gc.unique(gc.tensor(b), dim=0, return_inverse=True, return_counts=True),
                    torch.unique(torch.tensor(b), dim=0, return_inverse=True, return_counts=True)):
        same(x, y)
    c = np.array([1, 1, 2, 2, 3, 1, 1])
    for x, y in zip(gc.unique_consecutive(gc.tensor(c), return_inverse=True, return_counts=True),
                    torch.unique_consecutive(torch.tensor(c), return_inverse=True, return_counts=True)):
        same(x, y)
    f = RNG.standard_normal(7).round(0)
    same(gc.unique(gc.tensor(f)), torch.unique(torch.tensor(f)))


def test_multinomial_distribution():
    gc.manual_seed(0)
    p = gc.tensor([0.1, 0.0, 0.6, 0.3])
    s = gc.multinomial(p, 20000, replacement=True).numpy()
    assert s.dtype == np.int64 and s.shape == (20000,)
    np.testing.assert_allclose(np.bincount(s, minlength=4) / 20000, [0.1, 0.0, 0.6, 0.3], atol=0.015)
    s = gc.multinomial(gc.stack([p * 7] * 4000), 3).numpy()          # unnormalised weights
    assert s.shape == (4000, 3) and (s != 1).all()
    assert all(len(set(r)) == 3 for r in s)                          # without replacement: distinct
    np.testing.assert_allclose(np.bincount(s[:, 0], minlength=4) / 4000, [0.1, 0.0, 0.6, 0.3], atol=0.03)
    assert gc.tensor([0.0, 1.0]).multinomial(1).item() == 1
    # more samples than non-zero weights without replacement: torch gives the zero-weight ones last
    same(gc.multinomial(gc.tensor([0.0, 1.0, 0.0]), 2)[:1], torch.multinomial(torch.tensor([0.0, 1.0, 0.0]), 2)[:1])


def test_multinomial_errors_as_torch():
    for bad, msg in [((gc.tensor([0.5, -0.1]), 1), "element < 0"), ((gc.tensor([0.0, 0.0]), 1), "sum of probabilities"),
                     ((gc.tensor([1.0, 0.5]), 3), "n_sample"),
                     ((gc.ones(2, 2, 2), 1), "1 or 2 dim")]:
        with pytest.raises(RuntimeError, match=msg):
            gc.multinomial(*bad)
        with pytest.raises(RuntimeError):
            torch.multinomial(torch.tensor(bad[0].numpy()), bad[1])


def test_bernoulli():
    gc.manual_seed(1)
    p = gc.tensor(RNG.random((200, 50)))
    draws = np.mean([gc.bernoulli(p).numpy() for _ in range(40)], axis=0)
    assert abs(draws.mean() - p.numpy().mean()) < 0.01
    np.testing.assert_allclose(draws, p.numpy(), atol=0.35)
    x = gc.bernoulli(gc.ones(1000, dtype=gc.float64), 0.25)
    assert x.dtype is gc.float64 and set(np.unique(x.numpy())) <= {0.0, 1.0} and abs(x.mean().item() - 0.25) < 0.05
    y = gc.zeros(500)
    y.bernoulli_(0.5)
    assert 150 < y.sum().item() < 350
    with pytest.raises(RuntimeError, match="floating"):
        gc.bernoulli(gc.ones(2, dtype=gc.int64))


def test_nanogpt_top_k_sampling():
    """nanoGPT's generate step: topk filtering, softmax, multinomial -- samples only from the top k."""
    gc.manual_seed(0)
    logits = gc.randn(4, 65)
    v, _ = gc.topk(logits, min(10, logits.size(-1)))
    logits[logits < v[:, [-1]]] = -float("Inf")
    probs = F.softmax(logits, dim=-1)
    idx_next = gc.multinomial(probs, num_samples=1)
    assert idx_next.shape == (4, 1) and idx_next.dtype is gc.int64
    assert (probs.gather(1, idx_next) > 0).all().item()
    assert ((probs > 0).sum(-1) == 10).all().item()
