"""Fused chains thousands of ops long (issue 13, item 1).

`x = x * 1.0001 + 0.001` repeated fuses into one kernel whose body is one long chain. The code
generators compute a body value at an index by walking the body from an output back to its
inputs; done by recursion, that walk ran out of Python's stack at about 340 ops (RecursionError
in the llvm and cuda backends). It now runs with an explicit stack (backends/kernels.evaluate).

Every chain here is 10,000 elementwise ops (5,000 steps), forward, with `loss.backward()` inside
the compiled function, and with an eager backward through a compiled call, on "interp" and
"llvm" in this process and on "cuda" in numba's CUDA simulator (a subprocess: the simulator
must be chosen before numba is first imported; tiny tensors there). Values are compared with
eager graphc (the same float32 roundings) and with numpy in float64.
"""
import os
import time

import numpy as np
import pytest

import graphc as gc
from graphc.ir import parse_graph

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
BACKENDS = ["cuda"] if SIM else ["interp", "llvm"]
STEPS = 5000                      # two ops each: a 10,000-op chain
SHAPE = (2, 3)
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::RuntimeWarning")]


def chain(x, steps=STEPS):
    for _ in range(steps):
        x = x * 1.0001 + 0.001
    return x


def _x0():
    return np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)


def _float64_chain(x, steps=STEPS):
    x = x.astype(np.float64)
    for _ in range(steps):
        x = x * 1.0001 + 0.001
    return x


def _eager():
    """Eager graphc: the value, the sum and d(sum)/dx."""
    x = gc.tensor(_x0(), requires_grad=True)
    y = chain(x)
    s = y.sum()
    s.backward()
    return y.detach().numpy(), float(s.item()), x.grad.numpy()


@pytest.fixture(scope="module")
def eager():
    return _eager()


def _close_to_float64(got, want64):
    # float32 rounds 10,000 times along the chain: ~1e-4 relative drift from the exact value
    np.testing.assert_allclose(got, want64, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_chain_forward(backend, eager):
    f = gc.compile(chain, backend=backend)
    t0 = time.perf_counter()
    got = f(gc.tensor(_x0())).numpy()
    took = time.perf_counter() - t0
    np.testing.assert_allclose(got, eager[0], rtol=1e-5, atol=1e-5)
    _close_to_float64(got, _float64_chain(_x0()))
    assert took < 240, f"{backend}: compiling and running a 10,000-op chain took {took:.0f} s"


@pytest.mark.parametrize("backend", BACKENDS)
def test_chain_backward_inside_compiled_function(backend, eager):
    def step(x):
        loss = chain(x).sum()
        loss.backward()
        return loss
    x = gc.tensor(_x0(), requires_grad=True)
    loss = gc.compile(step, backend=backend)(x)
    np.testing.assert_allclose(float(loss.item()), eager[1], rtol=1e-5)
    _close_to_float64(float(loss.item()), _float64_chain(_x0()).sum())
    np.testing.assert_allclose(x.grad.numpy(), eager[2], rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), np.full(SHAPE, 1.0001 ** STEPS), rtol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_chain_eager_backward_through_compiled_call(backend, eager):
    x = gc.tensor(_x0(), requires_grad=True)
    y = gc.compile(chain, backend=backend)(x)
    y.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), eager[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), eager[2], rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), np.full(SHAPE, 1.0001 ** STEPS), rtol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_chain_of_slices(backend):
    """300 fused `x = x[1:] * c`: cuda's index expression nested a pair of parentheses per slice,
    past the 200 Python's parser takes (SyntaxError); forward and gradient (pads) vs eager."""
    n = 300
    w = np.arange(1, 5, dtype=np.float32)

    def step(x):
        for _ in range(n):
            x = x[1:] * 1.001
        loss = (x * gc.tensor(w)).sum()
        loss.backward()
        return loss
    x0 = np.random.default_rng(0).standard_normal(n + 4).astype(np.float32)
    xe, xc = gc.tensor(x0, requires_grad=True), gc.tensor(x0, requires_grad=True)
    want = float(step(xe).item())
    got = float(gc.compile(step, backend=backend)(xc).item())
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(got, (x0[n:].astype(np.float64) * 1.001 ** n * w).sum(), rtol=1e-4)
    np.testing.assert_allclose(xc.grad.numpy(), xe.grad.numpy(), rtol=1e-6)


def _planned_movement_chain(n):
    """A planned graph of one pointwise kernel: n rounds of neg / transpose / flatten-unflatten,
    straight to the code generators (no passes: the simplifier would cancel the movement ops).
    Index maps compose through every one of them, so the walk is 4n values deep."""
    lines, cur, shape = [], "%x", (2, 3)
    for i in range(n):
        t = lambda s: "f32[" + ",".join(map(str, s)) + "]"      # noqa: E731
        lines.append(f"      %n{i}: {t(shape)} = neg({cur})")
        tshape = shape[::-1]
        lines.append(f"      %p{i}: {t(tshape)} = permute(%n{i}) {{perm=(1, 0)}}")
        lines.append(f"      %f{i}: f32[6] = reshape(%p{i}) {{shape=(6,)}}")
        lines.append(f"      %r{i}: {t(tshape)} = reshape(%f{i}) {{shape=({tshape[0]}, {tshape[1]})}}")
        cur, shape = f"%r{i}", tshape
    t = "f32[" + ",".join(map(str, shape)) + "]"
    body = "\n".join(lines)
    return parse_graph(f"""graph deep(%x: f32[2,3]) {{
  %out: {t} = kernel(%x) {{buffers=('out',), kind='pointwise'}}
    graph k0(%x: f32[2,3]) {{
{body}
      return {cur}
    }}
  return %out
}}"""), shape


@pytest.mark.parametrize("backend", BACKENDS)
def test_codegen_walks_long_movement_chains(backend):
    """10,000 body values, three in four of them movement ops, in one kernel: the generated
    code computes what the interpreter does (an even number of rounds: x itself)."""
    from graphc.backends import get
    from graphc.backends.interpreter import PlannedInterpreter
    g, shape = _planned_movement_chain(2500)
    x = _x0()
    want = PlannedInterpreter(g)([x.copy()])[0]
    got = get(backend)(g)([x.copy()])[0]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, x)


@pytest.mark.skipif(SIM, reason="the driver of the simulator run")
def test_in_cuda_simulator():
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install numba-cuda)")
    from cuda_subprocess import assert_simulator_run_passes
    assert_simulator_run_passes("test_deep_chains.py", "-k", "not simulator", timeout=900)
