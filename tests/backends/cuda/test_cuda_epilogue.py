"""A matmul epilogue with a movement op downstream of the product (issue 13, item E).

The cuda backend runs a matmul kernel's elementwise epilogue in the GEMM's store, where the
thread holding product [i, j] stores output [i, j]. It did so whenever the product itself was
read only by elementwise ops -- also when a transpose came later: `(x - x @ y).t()` computed
`x.T - x @ y` (the sub was evaluated at the transposed index, the product was not). Now the
epilogue runs in the store only when every value computed from the product reaches the outputs
through elementwise ops (kernels.epilogue_reads_product_pointwise); otherwise the product goes
through scratch and a pointwise launch reads it at the index mapped through the movement ops.

Every program runs on "interp" and "llvm" here and on "cuda" in numba's CUDA simulator (a
subprocess: the simulator must be chosen before numba is first imported), compared with eager
graphc and with torch where it is installed: values, a plain .sum(), and gradients of a
weighted sum (the gradient of a plain sum does not see a transpose).
"""
import os

import numpy as np
import pytest

import graphc as gc
from graphc.ir import parse_graph

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
BACKENDS = ["cuda"] if SIM else ["interp", "llvm"]
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def sub_transposed(x, y):
    return (x - x @ y).t()


def bias_transposed_scaled(x, y, b):
    return (x @ y + b).t() * 2


def nested_transposed(x):
    return (x - (x @ x.t()) @ x).t()


PROGRAMS = {    # name: (function, input shapes); square products fuse their epilogue into the GEMM kernel
    "sub_t": (sub_transposed, [(3, 3), (3, 3)]),
    "sub_t_nonsquare": (sub_transposed, [(3, 4), (4, 4)]),
    "bias_t_scaled": (bias_transposed_scaled, [(3, 3), (3, 3), (3,)]),
    "bias_t_scaled_nonsquare": (bias_transposed_scaled, [(3, 4), (4, 5), (5,)]),
    "nested_t": (nested_transposed, [(3, 3)]),
    "nested_t_nonsquare": (nested_transposed, [(3, 4)]),
}


def _inputs(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


def _weights(fn, arrays):
    """A fixed, non-symmetric weight of the output's shape."""
    shape = fn(*[gc.tensor(a) for a in arrays]).shape
    return np.arange(1, int(np.prod(shape)) + 1, dtype=np.float32).reshape(shape) / 7.0


def _eager(fn, arrays, w):
    ts = [gc.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    total = out.sum()
    (out * gc.tensor(w)).sum().backward()
    return out.detach().numpy(), float(total.item()), [t.grad.numpy() for t in ts]


def _torch(fn, arrays, w):
    torch = pytest.importorskip("torch")
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = fn(*ts)
    total = out.sum()
    (out * torch.tensor(w, dtype=torch.float64)).sum().backward()
    return out.detach().numpy(), float(total.item()), [t.grad.numpy() for t in ts]


def _compiled(fn, arrays, w, backend):
    ts = [gc.tensor(a, requires_grad=True) for a in arrays]
    wt = gc.tensor(w)

    def step(*xs):
        out = fn(*xs)
        total = out.sum()
        (out * wt).sum().backward()
        return out, total
    out, total = gc.compile(step, backend=backend)(*ts)
    value = gc.compile(fn, backend=backend)(*[gc.tensor(a) for a in arrays])
    return value.detach().numpy(), out.detach().numpy(), float(total.item()), [t.grad.numpy() for t in ts]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_epilogue_downstream_of_product(name, backend):
    fn, shapes = PROGRAMS[name]
    arrays = _inputs(shapes)
    w = _weights(fn, arrays)
    value, out, total, grads = _compiled(fn, arrays, w, backend)
    e_out, e_total, e_grads = _eager(fn, arrays, w)
    for got in (value, out):
        np.testing.assert_allclose(got, e_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(total, e_total, rtol=1e-5, atol=1e-5)
    for g, e in zip(grads, e_grads):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-4)
    try:
        import torch  # noqa: F401
    except ImportError:
        return
    t_out, t_total, t_grads = _torch(fn, arrays, w)
    np.testing.assert_allclose(value, t_out, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(total, t_total, rtol=1e-4, atol=1e-4)
    for g, t in zip(grads, t_grads):
        np.testing.assert_allclose(g, t, rtol=1e-4, atol=1e-3)


def _kernel_graph(inputs, product, body, out):
    """A planned graph of one matmul kernel (straight to the backends: the fuser gives a matmul
    kernel only epilogues of the product's shape, these cover the other ones as well)."""
    sig = ", ".join(f"%{n}: {t}" for n, t in inputs)
    args = ", ".join(f"%{n}" for n, _ in inputs)
    lines = "\n".join("      " + line for line in [product] + body)
    return parse_graph(f"""graph f({sig}) {{
  %out: {out} = kernel({args}) {{buffers=('out',), kind='matmul'}}
    graph k0({sig}) {{
{lines}
      return %e
    }}
  return %out
}}""")


MM = "%p: f32[3,4] = matmul(%a, %b) {transpose_a=False, transpose_b=False}"
KERNELS = {   # name: (graph, numpy reference of a, b, c)
    "sub_then_transpose": (_kernel_graph(
        [("a", "f32[3,5]"), ("b", "f32[5,4]"), ("c", "f32[3,4]")], MM,
        ["%s: f32[3,4] = sub(%c, %p)", "%e: f32[4,3] = permute(%s) {perm=(1, 0)}"], "f32[4,3]"),
        lambda a, b, c: (c - a @ b).T),
    "transpose_then_add": (_kernel_graph(
        [("a", "f32[3,5]"), ("b", "f32[5,4]"), ("c", "f32[4,3]")], MM,
        ["%t: f32[4,3] = permute(%p) {perm=(1, 0)}", "%e: f32[4,3] = add(%t, %c)"], "f32[4,3]"),
        lambda a, b, c: (a @ b).T + c),
    "reshape": (_kernel_graph(
        [("a", "f32[3,5]"), ("b", "f32[5,4]"), ("c", "f32[2,6]")], MM,
        ["%n: f32[3,4] = neg(%p)", "%r: f32[2,6] = reshape(%n) {shape=(2, 6)}", "%e: f32[2,6] = mul(%r, %c)"],
        "f32[2,6]"),
        lambda a, b, c: (-(a @ b)).reshape(2, 6) * c),
    "slice": (_kernel_graph(
        [("a", "f32[3,5]"), ("b", "f32[5,4]"), ("c", "f32[2,2]")], MM,
        ["%x: f32[3,4] = exp(%p)",
         "%s: f32[2,2] = slice(%x) {starts=(1, 1), stops=(3, 4), steps=(1, 2)}", "%e: f32[2,2] = sub(%s, %c)"],
        "f32[2,2]"),
        lambda a, b, c: np.exp(a @ b)[1:3, 1:4:2] - c),
    "broadcast": (_kernel_graph(
        [("a", "f32[3,5]"), ("b", "f32[5,1]"), ("c", "f32[2,3,4]")],
        "%p: f32[3,1] = matmul(%a, %b) {transpose_a=False, transpose_b=False}",
        ["%q: f32[3,1] = tanh(%p)", "%w: f32[2,3,4] = broadcast_to(%q) {shape=(2, 3, 4)}",
         "%e: f32[2,3,4] = add(%w, %c)"], "f32[2,3,4]"),
        lambda a, b, c: np.tanh(a @ b)[None] + c),
    "batched_transpose": (_kernel_graph(
        [("a", "f32[2,3,5]"), ("b", "f32[2,5,3]"), ("c", "f32[2,3,3]")],
        "%p: f32[2,3,3] = matmul(%a, %b) {transpose_a=False, transpose_b=False}",
        ["%s: f32[2,3,3] = sub(%c, %p)", "%e: f32[2,3,3] = permute(%s) {perm=(0, 2, 1)}"], "f32[2,3,3]"),
        lambda a, b, c: np.swapaxes(c - a @ b, 1, 2)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_matmul_kernel_epilogue_through_movement_ops(name, backend):
    from graphc.backends import get
    from graphc.backends.interpreter import PlannedInterpreter
    g, ref = KERNELS[name]
    arrays = _inputs([tuple(v.type.shape) for v in g.inputs], seed=1)
    want = ref(*[a.astype(np.float64) for a in arrays])
    got = get(backend)(g)([a.copy() for a in arrays])[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, PlannedInterpreter(g)([a.copy() for a in arrays])[0], rtol=1e-5, atol=1e-5)


def test_which_epilogues_read_the_product_pointwise():
    from graphc.backends import kernels as K
    from graphc.backends.cuda.codegen import ELEMENTWISE
    ok = _kernel_graph([("a", "f32[3,5]"), ("b", "f32[5,4]"), ("c", "f32[3,4]")], MM,
                       ["%t: f32[3,4] = tanh(%p)", "%e: f32[3,4] = add(%t, %c)"], "f32[3,4]")
    assert K.epilogue_reads_product_pointwise(ok.nodes[0], ELEMENTWISE)
    for name, (g, _) in KERNELS.items():
        assert not K.epilogue_reads_product_pointwise(g.nodes[0], ELEMENTWISE), name


@pytest.mark.slow
@pytest.mark.skipif(SIM, reason="the driver of the simulator run")
def test_in_cuda_simulator():
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install numba-cuda)")
    from cuda_subprocess import assert_simulator_run_passes
    assert_simulator_run_passes("test_cuda_epilogue.py", "-k", "not simulator and not which", timeout=900)
