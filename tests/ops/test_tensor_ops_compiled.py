"""The torch tensor ops traced and compiled on interp, llvm and the cuda simulator == eager
(outputs, and gradients through a compiled forward+backward). The cuda cases run in a
subprocess with NUMBA_ENABLE_CUDASIM=1 (test_in_cuda_simulator drives it; numba picks the
simulator at its first import)."""
import os

import numpy as np
import pytest

import graphc as gc

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
BACKENDS = ["cuda"] if SIM else ["interp", "llvm"]
RNG = np.random.default_rng(1)
INF, NAN = float("inf"), float("nan")


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def i64(*shape):
    return RNG.integers(-4, 5, size=shape).astype(np.int64)


def ix(x, a):
    """An index tensor on x's device (eager cuda tensors; a tracer's constants stay in the graph)."""
    t = gc.tensor(np.asarray(a))
    return t.to(x.device) if x._value is None and x.device.type == "cuda" else t


def _special(x):
    # inf and nan made inside the graph (the simulator's math raises where a GPU gives nan)
    return gc.where(x > 0.8, INF, gc.where(x < -0.8, NAN, gc.where(x.abs() < 0.1, -INF, x)))


# (name, function, inputs, differentiable)
CASES = [
    ("tril_triu", lambda x: gc.tril(x, -1) + gc.triu(x, 2) * 2, [f32(5, 6)], True),
    ("tril_int", lambda x: gc.triu(gc.tril(x, 1)), [i64(2, 3, 4)], False),
    ("flip", lambda x: gc.flip(x, (0, -1)) * x, [f32(3, 4, 5)], True),
    ("roll", lambda x: gc.roll(x, (2, -1), (0, 1)) + gc.roll(x, 7), [f32(5, 6)], True),
    ("movedim", lambda x: gc.movedim(x, (0, 1), (2, 0)) * 2, [f32(2, 3, 4)], True),
    ("broadcast_tensors", lambda a, b: sum(gc.broadcast_tensors(a, b)), [f32(3, 1), f32(4, 1, 5)], True),
    ("meshgrid", lambda a, b: gc.meshgrid(a, b, indexing="xy")[0] * gc.meshgrid(a, b)[1].t(), [f32(3), f32(4)], True),
    ("diagonal", lambda x: gc.diagonal(x, 1, -1, 0) * 3, [f32(4, 2, 5)], True),
    ("diag_embed", lambda x: gc.diag_embed(x, -1) + gc.diag(x[0], 2).sum(), [f32(3, 4)], True),
    ("repeat_interleave", lambda x: gc.repeat_interleave(x, 3, -1), [f32(2, 3)], True),
    ("lerp", lambda a, b, w: gc.lerp(a, b, w) + gc.lerp(a, b, 0.75), [f32(4, 5), f32(4, 5), f32(4, 5)], True),
    ("special", lambda x: gc.nan_to_num(_special(x), 0.5) + gc.isnan(_special(x)) + gc.isinf(_special(x))
     + gc.isfinite(_special(x)), [f32(6, 7)], False),
    ("isclose", lambda a, b: gc.isclose(a, b, rtol=0.5, atol=0.1), [f32(5, 5), f32(5, 5)], False),
    ("rounding", lambda x: gc.round(x * 4) + gc.round(x, decimals=1) + gc.trunc(x * 3) + gc.frac(x * 3),
     [f32(6, 7)], True),
    ("round_halves", lambda x: gc.round(gc.floor(x * 4) + 0.5), [f32(6, 7)], False),
    ("fmod", lambda a, b: gc.fmod(a * 4, b.abs() + 0.5) + gc.remainder(a * 4, b.abs() + 0.5), [f32(4, 5), f32(4, 5)], True),
    ("fmod_int", lambda a: gc.fmod(a, 3) * 10 + gc.remainder(a, -3), [i64(4, 5)], False),
    ("prod", lambda x: gc.prod(x, 1, keepdim=True) + gc.prod(x, 0), [f32(5, 5)], True),
    ("prod_int", lambda x: gc.prod(x, -1) + gc.prod(x), [i64(3, 7)], False),
    ("cumsum_cumprod", lambda x: gc.cumsum(x, 0) + gc.cumprod(x, -1), [f32(5, 9)], True),
    ("cumsum_int", lambda x: gc.cumsum(x, 1), [i64(3, 17)], False),
    ("addmm", lambda i, a, b: gc.addmm(i, a, b, beta=0.5, alpha=2), [f32(4, 3), f32(4, 5), f32(5, 3)], True),
    ("baddbmm", lambda i, a, b: gc.baddbmm(i, a, b, alpha=-1) + gc.addbmm(i, a, b, beta=0),
     [f32(4, 3), f32(2, 4, 5), f32(2, 5, 3)], True),
    ("einsum_attention", lambda q, k: gc.einsum("bhqd,bhkd->bhqk", q, k), [f32(2, 3, 4, 5), f32(2, 3, 6, 5)], True),
    ("einsum_misc", lambda a, b: gc.einsum("ii->i", a) + gc.einsum("ij,j", a, b) + gc.einsum("...i->...", a),
     [f32(4, 4), f32(4)], True),
    ("vector_norm", lambda x: gc.linalg.vector_norm(x, 3, -1) + gc.linalg.vector_norm(x, INF, 0)
     + x.norm(1, dim=1), [f32(4, 4)], True),
    ("scatter_add", lambda x, s: gc.scatter_add(x, 0, ix(x, IDX), s) + x.scatter(1, ix(x, IDX[:, :2]), 2.0),
     [f32(3, 4), f32(2, 4)], True),
    ("scatter_src", lambda x, s: x.scatter(1, ix(x, IDX[:, :2]), s), [f32(3, 4), f32(2, 4)], True),
    ("scatter_reduce", lambda x, s: sum(x.scatter_reduce(0, ix(x, IDX), s, r, include_self=inc)
                                        for r in ("sum", "prod", "mean", "amax", "amin") for inc in (True, False)),
     [f32(3, 4), f32(2, 4)], True),
    ("scatter_reduce_int", lambda x, s: sum(x.scatter_reduce(-1, ix(x, IDX[:, :3]), s, r)
                                            for r in ("sum", "prod", "mean", "amax", "amin")),
     [i64(2, 4), i64(2, 4)], False),
    ("index_add_copy", lambda x, s: gc.index_add(x, 0, ix(x, [2, 0]), s, alpha=2)
     + gc.index_copy(x, 0, ix(x, [1, 2]), s) + x.index_fill(1, ix(x, [3]), -1.0), [f32(3, 4), f32(2, 4)], True),
    ("sort", lambda x: gc.sort(_special(x), 1)[0] + gc.sort(x, 0, descending=True).indices, [f32(5, 6)], False),
    ("sort_grad", lambda x: gc.sort(x, -1, descending=True).values * 2, [f32(3, 7)], True),
    ("sort_ties_int", lambda x: gc.argsort(x, 0) * 100 + gc.argsort(x, -1, descending=True), [i64(6, 5)], False),
    ("topk", lambda x: gc.topk(x, 3).values + gc.topk(x, 3, largest=False).indices, [f32(4, 9)], True),
    ("multinomial", lambda p: gc.multinomial(p.abs() + 0.01, 4) * 10 + gc.multinomial(p.abs(), 4, replacement=True),
     [f32(3, 5)], False),
    ("bernoulli", lambda p: gc.bernoulli(gc.sigmoid(p)) + gc.bernoulli(p, 0.3), [f32(4, 6)], False),
    ("matrix_norm", lambda x: gc.linalg.norm(x, "fro") + gc.linalg.matrix_norm(x, 1) + gc.linalg.norm(x, -INF),
     [f32(4, 5)], True),
]


IDX = np.array([[1, 0, 2, 2], [2, 0, 0, 1]])


def _close(a, b, what):
    a, b = np.asarray(a.numpy()), np.asarray(b.numpy())
    assert a.shape == b.shape and a.dtype == b.dtype, (what, a.shape, b.shape, a.dtype, b.dtype)
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5, equal_nan=True, err_msg=what)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,fn,inputs,diff", CASES, ids=[c[0] for c in CASES])
def test_compiled_equals_eager(backend, name, fn, inputs, diff):
    xs = [gc.tensor(a) for a in inputs]
    gc.manual_seed(5)                      # the random ops draw the same numbers both ways
    eager = fn(*xs)
    gc.manual_seed(5)
    _close(gc.compile(fn, backend=backend)(*xs), eager, f"{name} on {backend}")


@pytest.mark.skipif(not SIM, reason="eager cuda tensors need the simulator (or a GPU)")
@pytest.mark.parametrize("name,fn,inputs,diff", CASES, ids=[c[0] for c in CASES])
def test_eager_on_cuda_device_equals_cpu(name, fn, inputs, diff):
    xs = [gc.tensor(a) for a in inputs]
    gc.manual_seed(5)
    cpu = fn(*xs)
    gc.manual_seed(5)
    dev = fn(*[x.to("cuda") for x in xs])
    assert dev.device.type == "cuda", name
    _close(dev.cpu(), cpu, f"{name} eager on cuda")


DATA_DEPENDENT = [
    ("nonzero", lambda x: gc.nonzero(x > 0)),
    ("nonzero", lambda x: (x > 0).nonzero(as_tuple=True)[0]),
    ("argwhere", lambda x: gc.argwhere(x)),
    ("masked_select", lambda x: gc.masked_select(x, x > 0)),
    ("unique", lambda x: gc.unique(x)),
    ("unique_consecutive", lambda x: x.unique_consecutive()),
]


@pytest.mark.parametrize("name,fn", DATA_DEPENDENT, ids=[f"{c[0]}{i}" for i, c in enumerate(DATA_DEPENDENT)])
def test_data_dependent_shapes_raise_naming_the_line(name, fn):
    x = gc.tensor(f32(3, 4))
    assert fn(x).ndim >= 1                 # eager: works
    with pytest.raises(gc.TraceError, match=rf"{name}.*test_tensor_ops_compiled.py:\d+") as e:
        gc.compile(fn, backend=BACKENDS[0])(x)
    assert "depends on the data" in str(e.value)


def test_traced_sort_too_large_names_the_line():
    f = gc.compile(lambda x: gc.sort(x).values, backend=BACKENDS[0])
    with pytest.raises(gc.TraceError, match=r"sort along a dim of size 5000.*test_tensor_ops_compiled.py:\d+"):
        f(gc.zeros(4, 5000))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,fn,inputs", [(c[0], c[1], c[2]) for c in CASES if c[3]],
                         ids=[c[0] for c in CASES if c[3]])
def test_compiled_gradients_equal_eager(backend, name, fn, inputs):
    w = [None]

    def loss(*xs):
        y = fn(*xs)
        if w[0] is None:
            w[0] = gc.tensor(RNG.standard_normal(tuple(y.shape)).astype(np.float32))
        return (y * w[0]).sum()

    xs = [gc.tensor(a) for a in inputs]
    eager = gc.grad(loss, argnums=tuple(range(len(xs))))(*xs)
    compiled = gc.compile(gc.grad(loss, argnums=tuple(range(len(xs)))), backend=backend)(*xs)
    for k, (a, b) in enumerate(zip(compiled, eager)):
        _close(a, b, f"{name} grad {k} on {backend}")


@pytest.mark.slow
@pytest.mark.skipif(SIM, reason="the driver of the simulator run")
def test_in_cuda_simulator():
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install numba-cuda)")
    from cuda_subprocess import assert_simulator_run_passes
    assert_simulator_run_passes("test_tensor_ops_compiled.py", "-k", "not simulator", timeout=900)
