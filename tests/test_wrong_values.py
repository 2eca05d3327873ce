"""Regression tests for the programs that gave silently wrong values or refused to compile
(issue 13; tests/support/wrong_value_programs.py): every backend against eager graphc, against
float64, against PyTorch where it is installed, and bit-identical when computed twice."""
import numpy as np
import pytest

import graphc as gc
from graphc.passes.fusion import fuse
from graphc.passes.memory import elementwise_reader, plan_memory, validate_plan
from wrong_value_programs import PROGRAMS

from cuda_subprocess import assert_simulator_run_passes

BACKENDS = ["interp", "llvm"]
IDS = [p.__name__ for p, _ in PROGRAMS]


def _x(shape, dtype=np.float32):
    return np.random.default_rng(sum(shape)).standard_normal(shape).astype(dtype)


def _step(program):
    def step(x):
        loss, out = program(gc, x)
        loss.backward()
        return loss, out, x.grad
    return step


def _eager(program, x):
    t = gc.tensor(x, requires_grad=True)
    loss, out = program(gc, t)
    loss.backward()
    return [a.detach().numpy() for a in (loss, out, t.grad)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("program,shape", PROGRAMS, ids=IDS)
def test_forward_matches_eager_and_float64(program, shape, backend):
    x = _x(shape)
    f = gc.compile(lambda t: program(gc, t), backend=backend)
    got = [a.numpy() for a in f(gc.tensor(x))]
    want = [a.numpy() for a in program(gc, gc.tensor(x))]
    want64 = [a.numpy() for a in program(gc, gc.tensor(x.astype(np.float64)))]
    for g, w, w64 in zip(got, want, want64):
        np.testing.assert_allclose(g, w, rtol=2e-6, atol=2e-6)
        np.testing.assert_allclose(g, w64, rtol=1e-5, atol=1e-5)
    again = [a.numpy() for a in f(gc.tensor(x))]
    for g, a in zip(got, again):
        assert np.array_equal(g, a), "the same call computed twice differs"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("program,shape", PROGRAMS, ids=IDS)
def test_gradients_match_eager_and_float64(program, shape, backend):
    x = _x(shape)
    step = gc.compile(_step(program), backend=backend)
    got = [a.detach().numpy() for a in step(gc.tensor(x, requires_grad=True))]
    want = _eager(program, x)
    want64 = _eager(program, x.astype(np.float64))
    for g, w, w64 in zip(got, want, want64):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(g, w64, rtol=1e-4, atol=1e-5)
    again = [a.detach().numpy() for a in step(gc.tensor(x, requires_grad=True))]
    for g, a in zip(got, again):
        assert np.array_equal(g, a), "the same step computed twice differs"


@pytest.mark.parametrize("program,shape", PROGRAMS, ids=IDS)
def test_eager_float64_matches_torch(program, shape):
    torch = pytest.importorskip("torch")
    x = _x(shape, np.float64)
    t = torch.tensor(x, requires_grad=True)
    loss, out = program(torch, t)
    loss.backward()
    want = [loss.detach().numpy(), out.detach().numpy(), t.grad.numpy()]
    got = _eager(program, x)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_cuda_backend_in_simulator():
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed")
    assert_simulator_run_passes("cuda_sim_wrong_values.py")


# ---- the planner's rules, alone --------------------------------------------------------------
def _planned(program, shape):
    """The fused graph before planning, planned again here (plan_memory is a pass of its own)."""
    f = gc.compile(lambda t: program(gc, t), backend="interp")
    return plan_memory(fuse(f.graph(gc.tensor(_x(shape)), stage="dce")))


def test_no_output_overwrites_an_input_another_output_reads_permuted():
    """The kernel writing log_softmax(x) and its transpose may not write either over x's
    buffer: the transpose reads x at another index than the one being written."""
    from wrong_value_programs import logsoftmax_transposed
    g = _planned(logsoftmax_transposed, (33, 33))
    validate_plan(g)
    for k in g.kernels():
        transposing = any(n.op == "permute" for n in k.body.nodes)
        for i, _ in enumerate(k.inputs):
            for out in k.outs:
                if transposing and k.body.inputs[i].type.shape == out.type.shape:
                    assert not elementwise_reader(k, i, out), str(k)


@pytest.mark.parametrize("name", ["strided_slice_dead_output", "relu_amax_permuted"])
def test_kernels_write_no_dead_outputs_and_plans_validate(name):
    import wrong_value_programs as wvp
    program = getattr(wvp, name)
    shape = dict((p.__name__, s) for p, s in PROGRAMS)[name]
    g = _planned(program, shape)
    validate_plan(g)
    read = {v.name for n in g.nodes for v in n.inputs} | {v.name for v in g.outputs}
    for k in g.kernels():
        for v in k.outs:
            assert v.name in read, f"kernel output %{v.name} is never read:\n{g}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make_out", [lambda w: w.clone(), lambda w: w * 1.0, lambda w: -(-w),
                                      lambda w: w.T.T * 1.0],
                         ids=["clone", "mul1", "negneg", "TT"])
def test_a_result_read_before_an_update_keeps_the_old_value(backend, make_out):
    """Found by tests/test_fuzz.py: the graph returns %w itself (simplified from w.clone()) and
    updates w; the result used to be copied after the write-back, so it showed the new value."""
    w = gc.tensor(np.array([[1.0, 2.0]], np.float32))

    def step(x):
        out = make_out(w)
        w.add_(x)
        return out, w * 1.0
    old, new = gc.compile(step, backend=backend)(gc.tensor(np.float32(10)))
    np.testing.assert_array_equal(old.numpy(), [[1.0, 2.0]])
    np.testing.assert_array_equal(new.numpy(), [[11.0, 12.0]])
    np.testing.assert_array_equal(w.numpy(), [[11.0, 12.0]])
