"""Differential fuzzing: random user-level programs, every backend against eager graphc and float64.

tests/support/fuzz_programs.py draws small straight-line programs over the PyTorch-style API (unary and
binary elementwise ops with broadcasting, transposes, reshapes, slices and indexing, cat/stack,
pad, gather, where, reductions, matmul, softmax/log_softmax, layer_norm) on shapes with odd
sizes, size 1 and size 0, with nan/inf planted in some inputs. Each program is checked by
fuzz_programs.check_program:

- eager graphc in float64 == torch in float64 (forward and input gradients), where torch is installed;
- eager graphc in the program's dtype == float64 within float32 tolerances;
- for each backend (interp, llvm): `graphc.compile(f)` forward == eager (and loss.backward() outside
  it), a compiled train step (loss.backward() inside the compiled function, returning the inputs'
  .grad) == eager and float64, and two SGD steps on captured parameters (updated in place inside
  the compiled function) == eager;
- calling each compiled function twice gives bit-identical results, and the first call's results
  are not changed by the second.

A failure is shrunk by hypothesis and printed as the program's source, ready to paste into a repro.
The CI size runs here (GRAPHC_FUZZ_CI_EXAMPLES programs, derandomized: the same programs every
run); the long run is `python -m pytest -m fuzz tests/test_fuzz.py` (GRAPHC_FUZZ_EXAMPLES programs,
a new random sample each run) or `python bench/fuzz.py`, which keeps going after a failure.
"""
import os

import pytest
from hypothesis import HealthCheck, assume, example, given, settings

import fuzz_programs as fp
from fuzz_programs import Input, Program

CI_EXAMPLES = int(os.environ.get("GRAPHC_FUZZ_CI_EXAMPLES", 60))
LONG_EXAMPLES = int(os.environ.get("GRAPHC_FUZZ_EXAMPLES", 2000))
CUDA_CHILD = os.environ.get("GRAPHC_FUZZ_CUDA_CHILD") == "1"

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")


def _check(prog, **kw):
    try:
        fp.check_program(prog, **kw)
    except fp.Rejected:
        assume(False)


def P(inputs, lines, outputs, loss, dtype="float32", seed=0, specials=0, kinks=()):
    return Program([Input(*i) for i in inputs], list(lines), list(outputs), loss, list(kinks), dtype, seed, specials)


# programs from the issue (and earlier fuzz findings), checked before the random ones every run
KNOWN = [
    # a fused transpose of a buffer written in place
    P([("x0", (33, 33), "x")], [("v0", "F.log_softmax(x0, dim=0).transpose(0, -1)")], ["v0"], "v0.mean()"),
    # softmax over a size-0 dim
    P([("x0", (3, 0), "x"), ("w0", (3, 0), "w")], [("v0", "F.softmax(x0, dim=1)"), ("v1", "F.log_softmax(x0, dim=-1)")],
      ["v0", "v1"], "(v0 * w0).sum() + v1.sum()"),
    # amax's gradient after layer_norm + log_softmax (llvm: the max recomputed, contracted differently)
    P([("x0", (3, 5), "x"), ("w0", (3,), "w")], [("v0", "F.log_softmax(F.layer_norm(x0, (5,)), dim=-1).amax(dim=-1)")],
      ["v0"], "(v0 * w0).sum()"),
    # PlanError: buffers ... overlap (found by the fuzzer, shrunk)
    P([("x0", (), "x"), ("w0", (), "w"), ("w1", (), "w")],
      [("v0", "-x0"), ("v1", "-v0"), ("v2", "v1 + v1"), ("v3", "-v2"), ("v4", "-v3"), ("v5", "-v4"), ("v6", "F.relu(v5)")],
      ["v0", "v6"], "(v0 * w0).sum() + (v6 * w1).sum()", kinks=[("zero", "v5")]),
    # SGD on a captured parameter whose copy (w.clone(), w * 1.0, -(-w)) is returned: the compiled
    # step returns the value after the in-place update (found by the fuzzer)
    P([("x0", (2,), "x")], [("v0", "x0.clone()")], ["v0"], "(v0 * v0).sum()"),
    # logsumexp over a size-0 dim: -inf as torch, not "max(): cannot reduce over axis 0 of size 0"
    P([("x0", (0, 1), "x"), ("w0", (1,), "w")], [("v0", "gc.logsumexp(x0, dim=0, keepdim=False)")], ["v0"],
      "(v0 * w0).sum()"),
    # relu (and maximum) of nan
    P([("x0", (7,), "x")], [("v0", "F.relu(x0)"), ("v1", "gc.maximum(x0, x0 * 0.5)")], ["v0", "v1"],
      "v0.sum() + v1.sum()", specials=3, kinks=[("zero", "x0")]),
    # a slice of an empty tensor, read through a reshape: the lowering's delinearize divided by
    # the zero stride of the empty dim (ZeroDivisionError while compiling; found by the long run)
    P([("x0", (2, 0, 2), "x"), ("w0", (2, 0), "w")], [("v0", "x0[:, :, 1]")], ["v0"], "(v0 * w0).sum()"),
    # layer_norm whose weight holds inf and -inf: the input's gradient sums infinities of both
    # signs; torch keeps -inf in some lanes, graphc gives NaN (found by the long fuzz run)
    P([("x1", (8, 8), "x"), ("x2", (8, 8, 8), "x"), ("i0", (0, 8), "i", 8), ("c0", (8,), "c"), ("x3", (0, 8), "x"),
       ("w0", (8, 8, 8), "w"), ("w1", (8, 8, 8), "w"), ("w2", (0, 8), "w")],
      [("v0", "gc.maximum(x2, x1)"), ("v1", "x1.gather(-2, i0)"), ("v2", "F.layer_norm(x2, (8, 8), x1, x1)"),
       ("v3", "gc.where(c0 > 0, 0.0, v1)"), ("v4", "v3.mT"), ("v5", "F.relu(v3)"), ("v6", "-v5"), ("v7", "x3 * v6")],
      ["v0", "v2", "v4", "v7"], "(v0 * w0).sum() + (v2 * w1).sum() + v4.sum() + (v7 * w2).sum()", specials=3),
]


CI_SETTINGS = settings(max_examples=CI_EXAMPLES, deadline=None, derandomize=True, database=None,
                       suppress_health_check=list(HealthCheck), print_blob=False)


@pytest.mark.parametrize("prog", KNOWN, ids=[f"known{k}" for k in range(len(KNOWN))])
def test_known_programs(prog):
    fp.check_program(prog)


@pytest.mark.slow
@CI_SETTINGS
@given(fp.programs(max_steps=8, max_numel=1200))
def test_random_programs_all_backends(prog):
    _check(prog)


@pytest.mark.slow
@pytest.mark.fuzz
@settings(max_examples=LONG_EXAMPLES, deadline=None, derandomize=False, database=None,
          suppress_health_check=list(HealthCheck))
@given(fp.programs(max_steps=10, max_numel=4000))
def test_random_programs_long(prog):
    _check(prog)


def test_generated_programs_are_source():
    """A program is its source: repr is runnable Python defining f, the same text on torch."""
    @settings(max_examples=15, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(fp.programs())
    def run(prog):
        import graphc as gc
        ns = {"gc": gc, "F": gc.nn.functional}
        exec(repr(prog), ns)                      # noqa: S102
        arrays = prog.arrays()
        loss, outs = ns["f"](*fp.tensors(prog, gc, "float64", arrays, False))
        assert loss.shape == () and len(outs) == len(prog.outputs)
    run()


# ---- the cuda backend in numba's CUDA simulator -----------------------------------------------------------
@pytest.mark.skipif(not CUDA_CHILD, reason="run by test_random_programs_cuda_simulator in a subprocess")
def test_cuda_sim_child():
    @settings(max_examples=int(os.environ.get("GRAPHC_FUZZ_CUDA_EXAMPLES", 6)), deadline=None,
              derandomize=True, database=None, suppress_health_check=list(HealthCheck), print_blob=False)
    @given(fp.programs(max_steps=4, sizes=fp.TINY_SIZES, max_numel=12, max_ndim=2, specials=False))
    def run(prog):
        _check(prog, backends=("cuda",), use_torch=False)
    run()


@pytest.mark.slow
def test_random_programs_cuda_simulator():
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install numba-cuda)")
    from cuda_subprocess import run_cases, simulator_env
    r = run_cases("test_fuzz.py", dict(simulator_env(), GRAPHC_FUZZ_CUDA_CHILD="1"), "-k", "cuda_sim_child")
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    assert "1 passed" in r.stdout, r.stdout[-3000:]
