"""The llvm backend's runtime: multi-core kernels (graphc's thread pool, pool.py), the on-disk object cache,
bounds-check mode (GRAPHC_BOUNDS_CHECK), .llvm_ir()/.asm() and the dump files."""
import ctypes
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("llvmlite")

import graphc as gc                                     # noqa: E402
import graphc.nn as nn                                  # noqa: E402
import graphc.nn.functional as F                        # noqa: E402
from graphc.backends import get                         # noqa: E402
from graphc.backends.interpreter import PlannedInterpreter  # noqa: E402
from graphc.backends.llvm import runtime as R           # noqa: E402
from graphc.ir import parse_graph                       # noqa: E402
from graphc.passes.manager import run_passes            # noqa: E402

llvm_compile = get("llvm")
from repo_paths import ROOT  # noqa: E402


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))


def plan(g):
    return run_passes(g).final


def _inputs(g, seed=0):
    from test_llvm import inputs_for
    return inputs_for(g, seed)


def _same(a, b, exact=True, atol=1e-6):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape and x.dtype == y.dtype
        if exact:
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=atol, equal_nan=True)


BIG = """graph big(%x: f64[300,257], %y: f64[300,257], state %s: f64[300,257]) {
  %0: f64[300,257] = exp(%x)
  %1: f64[300,257] = mul(%0, %y)
  %2: f64[300] = sum(%1) {axes=(1,), keepdim=False}
  %3: f64[300,1] = reshape(%2) {shape=(300, 1)}
  %4: f64[300,257] = broadcast_to(%3) {shape=(300, 257)}
  %5: f64[300,257] = div(%1, %4)
  %6: f64[300] = max(%5) {axes=(1,), keepdim=False}
  %7: f64[300,257] = add(%s, %5)
  return %5, %6
  update s <- %7
}"""


# ---- 1. multi-core -----------------------------------------------------------------------------------------
def test_large_kernels_run_in_parallel_with_identical_results():
    g = parse_graph(BIG.replace("keepdim=True", "keepdim=False"))
    p = plan(g)
    ins = _inputs(p)
    e1 = llvm_compile(p, threads=1)
    e2 = llvm_compile(p, threads=2)
    assert e1.parallel_kernels == [] and e1.threads == 1
    if not R.init()["pool"]:
        pytest.skip("no thread pool on this platform")
    assert e2.parallel_kernels and "graphc_pool_run" in e2.llvm_ir
    a, b = [x.copy() for x in ins], [x.copy() for x in ins]
    _same(e1(a), e2(b))
    _same(a, b)
    _same(e2([x.copy() for x in ins]), PlannedInterpreter(p)([x.copy() for x in ins]), exact=False)


def _blas_split():
    st = R.init()
    if not (st["pool"] and st["blas_threads"]):
        pytest.skip("no thread pool or OpenBLAS's thread control not available")


@pytest.mark.parametrize("M,N", [(301, 203), (97, 301)])
@pytest.mark.parametrize("ta,tb,dt", [(False, False, "f64"), (True, False, "f32"), (False, True, "f64"),
                                      (True, True, "f32")])
def test_split_gemm_each_thread_computes_its_block_and_its_epilogue(ta, tb, dt, M, N):
    """A big GEMM with an elementwise epilogue runs as one parallel region: each thread computes
    its block of rows (or of columns, when op(B) is the wider operand) and that block's
    epilogue; OpenBLAS is held at one thread meanwhile and given its count back after the call."""
    _blas_split()
    K = 91
    a = f"[{K},{M}]" if ta else f"[{M},{K}]"
    b = f"[{N},{K}]" if tb else f"[{K},{N}]"
    g = parse_graph(f"""graph f(%a: {dt}{a}, %b: {dt}{b}, state %w: {dt}[{M},{N}]) {{
      %0: {dt}[{M},{N}] = matmul(%a, %b) {{transpose_a={ta}, transpose_b={tb}}}
      %1: {dt}[{M},{N}] = tanh(%0)
      %2: {dt}[{M},{N}] = add(%w, %1)
      return %0, %1
      update w <- %2
    }}""")
    p = plan(g)
    ins = _inputs(p)
    e2 = llvm_compile(p, threads=2)
    assert e2.parallel_kernels == ["k0_matmul"]
    assert (p.nodes[0].out.name in e2._builder.col_split) == (N > M)
    lib = R.init()["libs"][0]
    before = lib.scipy_openblas_get_num_threads64_()
    a_, b_ = [x.copy() for x in ins], [x.copy() for x in ins]
    tol = 1e-4 if dt == "f32" else 1e-9       # sums of 64 products of size ~20: float32 cancellation
    _same(e2(a_), PlannedInterpreter(p)(b_), exact=False, atol=tol)
    _same(a_, b_, exact=False, atol=tol)
    assert lib.scipy_openblas_get_num_threads64_() == before


def test_split_gemm_batched_splits_batches():
    _blas_split()
    g = parse_graph("""graph f(%a: f32[6,3,40,50], %b: f32[6,3,50,70]) {
      %0: f32[6,3,40,70] = matmul(%a, %b) {transpose_a=False, transpose_b=False}
      %1: f32[6,3,40,70] = exp(%0)
      return %1
    }""")
    p = plan(g)
    ins = _inputs(p)
    e2 = llvm_compile(p, threads=2)
    assert e2.parallel_kernels == ["k0_matmul"]
    _same(e2(ins), PlannedInterpreter(p)(ins), exact=False, atol=1e-4)


def test_split_gemm_not_when_the_epilogue_reads_other_rows_or_overwrites_an_operand():
    _blas_split()
    from graphc.passes.memory import validate_plan
    moved = plan(parse_graph("""graph f(%a: f64[300,64], %b: f64[64,300]) {
      %0: f64[300,300] = matmul(%a, %b) {transpose_a=False, transpose_b=False}
      %1: f64[300,300] = permute(%0) {perm=[1, 0]}
      %2: f64[300,300] = add(%0, %1)
      return %2
    }"""))
    # planned by hand: the new value of %a written in place over the GEMM operand %a
    clobber = parse_graph("""graph f(%b: f64[300,300], state %a: f64[300,300]) {
      %1: f64[300,300], %0: f64[300,300] = kernel(%a, %b) {buffers=('state:a', 'out'), kind='matmul'}
        graph k0(%a: f64[300,300], %b: f64[300,300]) {
          %0: f64[300,300] = matmul(%a, %b) {transpose_a=False, transpose_b=False}
          %1: f64[300,300] = add(%0, %a)
          return %1, %0
        }
      return %0
      update a <- %1
    }""")
    validate_plan(clobber)
    for p in (moved, clobber):
        assert len(p.nodes) == 1 and p.nodes[0].attrs["kind"] == "matmul", p
        ins = _inputs(p)
        e2 = llvm_compile(p, threads=2)
        assert e2.parallel_kernels == []
        a_, b_ = [x.copy() for x in ins], [x.copy() for x in ins]
        _same(e2(a_), PlannedInterpreter(p)(b_), exact=False)
        _same(a_, b_, exact=False)


def test_parallel_matmul_epilogues(monkeypatch):
    """GRAPHC_PAR_EPILOGUES=1: a GEMM that cannot be split by rows (its epilogue reads the
    result transposed) runs whole, then its epilogue across the threads."""
    monkeypatch.setenv("GRAPHC_PAR_EPILOGUES", "1")
    g = parse_graph("""graph f(%a: f64[200,64], %b: f64[64,200], state %w: f64[200,200]) {
      %0: f64[200,200] = matmul(%a, %b) {transpose_a=False, transpose_b=False}
      %3: f64[200,200] = permute(%0) {perm=[1, 0]}
      %1: f64[200,200] = tanh(%3)
      %2: f64[200,200] = add(%w, %1)
      return %0, %1
      update w <- %2
    }""")
    p = plan(g)
    ins = _inputs(p)
    e2 = llvm_compile(p, threads=2)
    if R.init()["pool"]:
        assert any(n.endswith("_epilogue") for n in e2.parallel_kernels), e2.parallel_kernels
    a, b = [x.copy() for x in ins], [x.copy() for x in ins]
    _same(e2(a), llvm_compile(p, threads=1)(b))
    _same(a, b)
    monkeypatch.delenv("GRAPHC_PAR_EPILOGUES")
    assert llvm_compile(p, threads=2).parallel_kernels == []


def test_small_kernels_stay_serial():
    g = parse_graph("""graph f(%x: f64[100,10]) {
      %0: f64[100,10] = exp(%x)
      return %0
    }""")
    assert llvm_compile(plan(g), threads=2).parallel_kernels == []


def test_random_graphs_with_every_kernel_parallel(monkeypatch):
    from hypothesis import HealthCheck, given, settings
    from randgraphs import random_graphs
    monkeypatch.setenv("GRAPHC_PAR_THRESHOLD", "1")
    monkeypatch.setenv("GRAPHC_PAR_EPILOGUES", "1")

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(random_graphs())
    def run(g):
        p = plan(g)
        ins = _inputs(p)
        _same(llvm_compile(p, threads=2)([x.copy() for x in ins]), llvm_compile(p, threads=1)([x.copy() for x in ins]))
    run()


_THREADS_SCRIPT = """
import os, sys, numpy as np
sys.path.insert(0, {tests!r})
import graphc as gc, graphc.nn as nn, graphc.nn.functional as F
gc.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
opt = gc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
gc.manual_seed(1)
x, y = gc.randn(256, 64), gc.randint(0, 10, (256,))
def step(x, y):
    opt.zero_grad()
    loss = F.cross_entropy(F.softmax(model(x), dim=-1) * 3, y)
    loss.backward()
    opt.step()
    return loss
f = gc.compile(step, backend="llvm")
losses = [float(f(x, y).item()) for _ in range(3)]
exe = f.entry(x, y).exe
np.savez(sys.argv[1], losses=np.array(losses), threads=exe.threads, npar=len(exe.parallel_kernels),
         **{{k: v.detach().numpy() for k, v in model.state_dict().items()}})
"""


def _run(script, env_extra, *argv):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **env_extra)
    r = subprocess.run([sys.executable, "-c", script, *argv], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.mark.slow
def test_training_step_deterministic_and_equal_for_1_and_2_threads_in_subprocesses(tmp_path):
    """Two threads give the same numbers every run (chunk boundaries are fixed, whichever thread
    takes a chunk) and agree with one thread to rounding: a GEMM split into row blocks may round
    differently from OpenBLAS's own partition of the whole product."""
    script = _THREADS_SCRIPT.format(tests=os.path.join(ROOT, "tests"))
    out = {}
    for t in ("1", "2", "2b"):
        _run(script, {"GRAPHC_NUM_THREADS": t[0], "GRAPHC_PAR_THRESHOLD": "4096",
                      "GRAPHC_CACHE_DIR": str(tmp_path / "c")}, str(tmp_path / f"r{t}.npz"))
        out[t] = dict(np.load(tmp_path / f"r{t}.npz"))
    assert int(out["1"]["threads"]) == 1 and int(out["1"]["npar"]) == 0
    if R.init()["pool"]:
        assert int(out["2"]["threads"]) == 2 and int(out["2"]["npar"]) > 0
    for k in out["1"]:
        if k not in ("threads", "npar"):
            np.testing.assert_array_equal(out["2"][k], out["2b"][k], err_msg=k)
            np.testing.assert_allclose(out["1"][k], out["2"][k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_num_threads_setting(monkeypatch):
    monkeypatch.setenv("GRAPHC_NUM_THREADS", "3")
    assert R.num_threads() == 3
    monkeypatch.delenv("GRAPHC_NUM_THREADS")
    assert R.num_threads() >= 1
    monkeypatch.setenv("GRAPHC_NUM_THREADS", "lots")
    with pytest.raises(ValueError, match="GRAPHC_NUM_THREADS"):
        R.num_threads()


# ---- 2. the disk cache --------------------------------------------------------------------------------------
_CACHE_SCRIPT = """
import json, sys, numpy as np
import graphc as gc, graphc.nn as nn, graphc.nn.functional as F
gc.manual_seed(0)
model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5))
opt = gc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
gc.manual_seed(1)
x, y = gc.randn(8, 20), gc.randint(0, 5, (8,))
def step(x, y):
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss
f = gc.compile(step, backend="llvm")
loss = float(f(x, y).item())
exe = f.entry(x, y).exe
st = f.stats(x, y)
print(json.dumps(dict(loss=loss, hit=exe.cache_hit, ms=exe.compile_ms, st_hit=st["cache_hit"],
                      st_ms=st["compile_ms"], ir="define" in exe.llvm_ir, asm=len(exe.asm) > 0)))
"""


@pytest.mark.slow
def test_disk_cache_cold_then_warm_process(tmp_path):
    env = {"GRAPHC_CACHE_DIR": str(tmp_path / "cache")}
    cold = json.loads(_run(_CACHE_SCRIPT, env).stdout.strip().splitlines()[-1])
    warm = json.loads(_run(_CACHE_SCRIPT, env).stdout.strip().splitlines()[-1])
    assert cold["hit"] is False and warm["hit"] is True
    assert cold["st_hit"] is False and warm["st_hit"] is True and warm["st_ms"] == warm["ms"]
    assert warm["loss"] == cold["loss"]
    assert warm["ms"] < cold["ms"]
    assert warm["ir"] and warm["asm"]         # text is still available on a cache hit
    assert any(n.endswith(".o") for n in os.listdir(tmp_path / "cache"))


def test_cache_key_depends_on_options_and_graph(tmp_path):
    p = plan(parse_graph(BIG))
    a = llvm_compile(p, threads=1)
    b = llvm_compile(p, threads=1)
    c = llvm_compile(p, threads=1, checks=True)
    assert not a.cache_hit and b.cache_hit and not c.cache_hit
    assert a.cache_key == b.cache_key != c.cache_key
    p2 = plan(parse_graph(BIG.replace("exp(%x)", "sin(%x)")))
    assert llvm_compile(p2, threads=1).cache_key != a.cache_key
    ins = _inputs(p)
    _same(a([x.copy() for x in ins]), b([x.copy() for x in ins]))


def test_cache_key_depends_on_codegen_source(monkeypatch):
    """An edited code generator misses the cache even if nobody bumps CODEGEN_VERSION."""
    from graphc.backends.llvm import runtime as R
    sha = R.codegen_sources()
    assert len(sha) == 64 and R.codegen_sources() == sha
    before = R.cache_key("graph g() {}", {})
    monkeypatch.setitem(R.codegen_sources.__defaults__[0], "sha", "0" * 64)
    assert R.cache_key("graph g() {}", {}) != before


def test_codegen_sources_cover_every_module_that_decides_the_code():
    """The kernel lowering, the shared kernel helpers and the op records (decompositions) are
    part of the code generator: editing any of them alone must miss the cache."""
    import os
    from graphc.backends.llvm import jit
    files = {os.path.relpath(f, os.path.dirname(os.path.dirname(os.path.abspath(gc.__file__))))
             for f in jit.codegen_source_files()}
    for f in ("graphc/backends/llvm/scalar.py", "graphc/backends/lower/walk.py",
              "graphc/backends/lower/expr.py", "graphc/backends/kernels.py",
              "graphc/ops/registry.py", "graphc/ops/elementwise.py"):
        assert f in files, f


def test_cache_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", "off")
    p = plan(parse_graph(BIG))
    assert not llvm_compile(p).cache_hit and not llvm_compile(p).cache_hit


# ---- 3. bounds checks ---------------------------------------------------------------------------------------
GATHER = """graph f(%x: f64[4,5], %i: i64[4,2], %a: i64[6], %b: i64[6], %t: f64[3,5], %j: i64[3,2], %s: f64[3,2]) {
  %0: f64[4,2] = take_along_axis(%x, %i) {axis=1}
  %1: f64[4,2] = exp(%0)
  %2: i64[6] = floor_divide(%a, %b)
  %3: i64[6] = remainder(%a, %b)
  %4: f64[3,5] = scatter_add(%t, %j, %s) {axis=1}
  return %1, %2, %3, %4
}"""


def _gather_inputs():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((4, 5)), rng.integers(0, 5, (4, 2)), np.arange(6) - 3, np.array([2, -3, 1, 5, 7, -1]),
            rng.standard_normal((3, 5)), rng.integers(0, 5, (3, 2)), rng.standard_normal((3, 2))]


def test_out_of_range_indices_raise_under_checks_instead_of_crashing():
    p = plan(parse_graph(GATHER))
    exe = llvm_compile(p, checks=True)
    assert exe.checks
    ins = _gather_inputs()
    _same(exe([x.copy() for x in ins]), PlannedInterpreter(p)([x.copy() for x in ins]), exact=False)
    bad = [x.copy() for x in ins]
    bad[1][2, 1] = 5
    with pytest.raises(R.BoundsError, match=r"take_along_axis index .*index 5 out of bounds \[0, 5\)") as e:
        exe(bad)
    assert isinstance(e.value, IndexError) and "kernel %" in str(e.value)
    bad[1][2, 1] = -7
    with pytest.raises(IndexError, match="index -7"):
        exe(bad)
    bad = [x.copy() for x in ins]
    bad[5][0, 0] = 99
    with pytest.raises(R.BoundsError, match="scatter_add index .*99"):
        exe(bad)
    bad = [x.copy() for x in ins]
    bad[3][4] = 0
    with pytest.raises(ZeroDivisionError, match="integer division by zero"):
        exe(bad)
    # the flag is cleared: the next good call runs
    _same(exe([x.copy() for x in ins]), PlannedInterpreter(p)([x.copy() for x in ins]), exact=False)


def test_bounds_check_env_is_read_at_build_time(monkeypatch):
    p = plan(parse_graph(GATHER))
    monkeypatch.setenv("GRAPHC_BOUNDS_CHECK", "1")
    exe = llvm_compile(p)
    monkeypatch.delenv("GRAPHC_BOUNDS_CHECK")
    assert exe.checks and not llvm_compile(p).checks
    bad = _gather_inputs()
    bad[1][0, 0] = 12
    with pytest.raises(IndexError):
        exe(bad)


def _both_modes(fn, *args, grads=False):
    """Run fn compiled with llvm (checks on) and with llvm (checks off) and interp; same results."""
    res = []
    for backend, opts in (("llvm", {"checks": True}), ("llvm", {}), ("interp", {})):
        gc.manual_seed(0)
        f = gc.compile(fn(), backend=backend, **opts)
        out = [f(*args) for _ in range(2)]
        res.append([np.asarray(o.detach().numpy()) for o in out])
    _same(res[0], res[1])
    _same(res[0], res[2], exact=False)


@pytest.mark.slow
def test_model_zoo_graphs_identical_under_bounds_checks():
    gc.manual_seed(1)
    x, y = gc.randn(9, 20), gc.randint(0, 5, (9,))

    def mlp():
        model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5))
        opt = gc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        return step
    _both_modes(mlp, x, y)

    xc, yc = gc.randn(3, 2, 8, 8), gc.randint(0, 3, (3,))

    def conv():
        model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(4 * 4 * 4, 3))
        opt = gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        return step
    _both_modes(conv, xc, yc)
    xs, ys = gc.randn(7, 11), gc.randint(0, 11, (7,))
    _both_modes(lambda: (lambda x, y: F.cross_entropy(F.softmax(x, dim=-1), y)), xs, ys)
    w, b = gc.randn(11), gc.randn(11)
    _both_modes(lambda: (lambda x: F.gelu(F.layer_norm(x, (11,)) * w + b)), xs)


@pytest.mark.slow
def test_random_graphs_under_bounds_checks():
    from hypothesis import HealthCheck, given, settings
    from randgraphs import random_graphs

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(random_graphs())
    def run(g):
        p = plan(g)
        ins = _inputs(p)
        _same(llvm_compile(p, checks=True)([x.copy() for x in ins]), llvm_compile(p)([x.copy() for x in ins]))
    run()


@pytest.mark.parametrize("shape", [(1, 1), (0, 3), (3, 0), (7, 13), (13, 7), (1, 31), (257, 129)])
def test_odd_sizes_size_one_empty_and_transposed_inputs_under_checks(shape):
    n, m = shape
    g = parse_graph(f"""graph f(%x: f64[{n},{m}], state %s: f64[{n},{m}]) {{
      %0: f64[{n},{m}] = exp(%x)
      %1: f64[{n},{m}] = add(%s, %0)
      %2: f64[{n}] = sum(%1) {{axes=(1,), keepdim=False}}
      %3: f64[{m}] = sum(%0) {{axes=(0,), keepdim=False}}
      return %0, %2, %3
      update s <- %1
    }}""")
    p = plan(g)
    rng = np.random.default_rng(0)
    for checks in (True, False):
        xt, st = rng.standard_normal((m, n)).T, rng.standard_normal((m, n)).T      # non-contiguous views
        want_s = st + np.exp(xt)
        exe = llvm_compile(p, checks=checks, threads=2)
        got = exe([xt, st])
        np.testing.assert_allclose(got[0], np.exp(xt))
        np.testing.assert_allclose(got[1], want_s.sum(1))
        np.testing.assert_allclose(got[2], np.exp(xt).sum(0))
        np.testing.assert_allclose(got[3], want_s)     # the update value (written in place where planned)
        if any(b.kind == "state" for k in p.nodes for b in k.attrs["buffers"]):
            assert got[3] is st
            np.testing.assert_allclose(st, want_s)


# ---- 4. native text ---------------------------------------------------------------------------------------
def test_llvm_ir_asm_and_dump_files(tmp_path):
    x = gc.randn(5, 6)
    f = gc.compile(lambda x: (x * 2).exp().sum(1), backend="llvm", dump=str(tmp_path / "d"))
    ir_text, asm = f.llvm_ir(x), f.asm(x)
    assert "define" in ir_text and "graphc_main" in ir_text
    assert "graphc_main:" in asm and "ret" in asm
    f(x)
    files = os.listdir(tmp_path / "d")
    assert any(n.endswith(".llvm.ll") for n in files) and any(n.endswith(".s") for n in files), files
    assert any(n.endswith(".ir") for n in files)
    ll = next(n for n in files if n.endswith(".llvm.ll"))
    assert open(tmp_path / "d" / ll).read() == ir_text
    m = gc.compile(nn.Linear(6, 2), backend="llvm")
    assert "define" in m.llvm_ir(x) and len(m.asm(x)) > 0
    st = f.stats(x)
    assert "compile_ms" in st and "cache_hit" in st
    g = gc.compile(lambda x: x * 2, backend="interp")
    with pytest.raises(ValueError, match="backend='llvm'"):
        g.llvm_ir(x)
    with pytest.raises(ValueError, match="backend='llvm'"):
        g.asm(x)


def test_cached_input_pointers_follow_the_arrays_passed():
    g = parse_graph("""graph f(%x: f64[3,4]) {
      %0: f64[3,4] = mul(%x, %x)
      return %0
    }""")
    exe = llvm_compile(plan(g))
    a, b = np.arange(12.0).reshape(3, 4), np.ones((3, 4))
    np.testing.assert_array_equal(exe([a])[0], a * a)
    a += 1                                          # same object, new contents
    np.testing.assert_array_equal(exe([a])[0], a * a)
    np.testing.assert_array_equal(exe([b])[0], b)
    np.testing.assert_array_equal(exe([np.asfortranarray(a)])[0], a * a)
    np.testing.assert_array_equal(exe([a])[0], a * a)
    with pytest.raises(ValueError, match="expects"):
        exe([a.reshape(4, 3)])


# ---- per-kernel profile (GRAPHC_PROFILE=1) -------------------------------------------------------------------
def test_kernel_profile_counts_time_per_kernel(monkeypatch):
    import time
    g = plan(parse_graph(BIG))
    ins = _inputs(g)
    exe = llvm_compile(g, threads=1, profile=True)
    t0 = time.perf_counter()
    for _ in range(3):
        exe([x.copy() for x in ins])
    wall = time.perf_counter() - t0
    rows = exe.kernel_profile()
    assert [r["kernel"] for r in rows] == [f"k{n}_{k.attrs['kind']}" for n, k in enumerate(g.nodes)
                                           if k.attrs["kind"] != "view"]
    assert all(r["seconds"] > 0 for r in rows)
    assert sum(r["seconds"] for r in rows) < wall
    assert rows[0]["ops"] == [m.op for m in g.nodes[0].body.nodes]
    exe.kernel_profile(reset=True)
    assert all(r["seconds"] == 0 for r in exe.kernel_profile())
    _same(exe([x.copy() for x in ins]), llvm_compile(g, threads=1)([x.copy() for x in ins]))
    with pytest.raises(RuntimeError, match="GRAPHC_PROFILE=1"):
        llvm_compile(g, threads=1).kernel_profile()
    monkeypatch.setenv("GRAPHC_PROFILE", "1")
    assert llvm_compile(g, threads=1).options["profile"] is True


def test_openblas_held_at_one_thread_during_a_call_and_restored():
    st = R.init()
    if not st["blas_threads"]:
        pytest.skip("OpenBLAS's thread control not available")
    lib = st["libs"][0]
    g = plan(parse_graph("""graph f(%a: f32[64,64], %b: f32[64,64]) {
      %0: f32[64,64] = matmul(%a, %b) {transpose_a=False, transpose_b=False}
      return %0
    }"""))
    before = lib.scipy_openblas_get_num_threads64_()
    for threads in (1, 2):
        exe = llvm_compile(g, threads=threads)
        assert "scipy_openblas_set_num_threads64_" in exe.llvm_ir
        exe(_inputs(g))
        assert lib.scipy_openblas_get_num_threads64_() == before


# ---- the default backend ----------------------------------------------------------------------------------
def test_llvm_is_the_default_cpu_backend(monkeypatch):
    from graphc import backends
    monkeypatch.delenv("GRAPHC_BACKEND", raising=False)
    assert backends.default() == "llvm"
    f = gc.compile(lambda x: x * 2)
    assert f.backend == "llvm"
    x = gc.randn(3)
    np.testing.assert_array_equal(f(x).numpy(), x.numpy() * 2)
    assert "define" in f.llvm_ir(x)
    monkeypatch.setenv("GRAPHC_BACKEND", "interp")
    assert gc.compile(lambda x: x * 2).backend == "interp"
    assert gc.compile(lambda x: x * 2, backend="llvm").backend == "llvm"
    monkeypatch.setenv("GRAPHC_BACKEND", "fast")
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        gc.compile(lambda x: x * 2)


def test_read_only_non_contiguous_inputs_are_not_written_back():
    """A broadcast view (read-only, stride 0) runs on a contiguous copy; only state the graph
    updates is written back to the caller's array."""
    g = plan(parse_graph("""graph f(%x: f64[3,4], state %s: f64[3,4]) {
      %0: f64[3,4] = mul(%x, %s)
      %1: f64[3,4] = add(%s, %x)
      return %0
      update s <- %1
    }"""))
    exe = llvm_compile(g)
    x = np.broadcast_to(np.arange(4.0), (3, 4))
    s = np.ones((4, 3)).T                       # writable, transposed: written back
    out = exe([x, s])
    np.testing.assert_array_equal(out[0], np.broadcast_to(np.arange(4.0), (3, 4)))
    np.testing.assert_array_equal(s, 1 + np.broadcast_to(np.arange(4.0), (3, 4)))
    assert not x.flags.writeable


@pytest.mark.slow
def test_fold_and_scatter_add_split_over_images(monkeypatch):
    """conv and max-pool gradients (fold, scatter_add along the window axis) run in parallel
    over dim 0 (each image only writes its own slice), with the one-thread numbers exactly."""
    if not R.init()["pool"]:
        pytest.skip("no thread pool on this platform")
    monkeypatch.setenv("GRAPHC_PAR_THRESHOLD", "64")

    def run(threads):
        gc.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(4 * 5 * 5, 3))
        opt = gc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        x, y = gc.randn(6, 2, 10, 10), gc.randint(0, 3, (6,))

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        f = gc.compile(step, backend="llvm", threads=threads)
        losses = [float(f(x, y).item()) for _ in range(3)]
        return f.entry(x, y).exe, losses, [p.detach().numpy().copy() for p in model.parameters()]
    e2, l2, p2 = run(2)
    ops = {f"k{n}_opaque": k.body.nodes[0].op for n, k in enumerate(e2.graph.nodes) if k.attrs["kind"] == "opaque"}
    par = [ops[n] for n in e2.parallel_kernels if n in ops]
    assert "fold" in par and "scatter_add" in par, (ops, e2.parallel_kernels)
    e1, l1, p1 = run(1)
    assert l1 == l2
    _same(p1, p2)


def test_in_place_input_is_read_through_the_output_pointer():
    """An input updated in place (SGD momentum's buffer) is read through the pointer argument
    of the output that overwrites it: LLVM then sees one address, and the loop vectorises
    without a runtime overlap check that would always send it down the scalar path."""
    from graphc.backends.llvm.codegen import KernelGen, ModuleBuilder
    p, buf = gc.randn(37, 129), gc.randn(37, 129)

    def upd(g):
        with gc.no_grad():
            buf.mul_(0.9).add_(g)
            p.sub_(buf * 0.1)
        return p
    f = gc.compile(upd, backend="llvm")
    g = gc.randn(37, 129)
    want_buf = buf.numpy() * np.float32(0.9) + g.numpy()
    want_p = p.numpy() - want_buf * np.float32(0.1)
    f(g)
    np.testing.assert_allclose(buf.numpy(), want_buf, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p.numpy(), want_p, rtol=1e-5, atol=1e-6)
    graph = f.entry(g).exe.graph
    mb = ModuleBuilder(graph, R.GEMM)
    mb.build()
    k = graph.nodes[0]
    kg = KernelGen(mb, k, "probe", False)
    shared = [(v.name, j) for j, o in enumerate(k.outs) for v, x in zip(k.body.inputs, k.inputs)
              if mb.buffer(x) == mb.buffer(o)]
    assert shared, "the test graph has no in-place update"
    for name, j in shared:
        assert kg.in_ptrs[name] is kg.out_ptrs[j]
    others = [v.name for v in k.body.inputs if v.name not in dict(shared)]
    assert all(kg.in_ptrs[n] not in kg.out_ptrs for n in others)


@pytest.mark.parametrize("shape", [(64, 16, 28, 28), (3, 5, 7), (1, 1, 1, 1), (2, 1, 3, 1), (0, 4, 5)])
def test_pointwise_over_short_inner_dims_loops_flat(shape, monkeypatch):
    """A ReLU mask whose mask comes reshaped ([n, c, h*w] -> [n, c, h, w]) loops over the
    output as [n, c*h*w]: contiguous and vectorised, no gathers (it was 0.74 ms of the CNN
    step); same values as numpy at odd sizes, size 1 and empty, also in checks mode."""
    rng = np.random.default_rng(0)
    n = shape[0]
    flat_in = gc.tensor(rng.standard_normal((n, shape[1], int(np.prod(shape[2:]))), dtype=np.float32))
    gr = gc.tensor(rng.standard_normal(shape, dtype=np.float32))

    def mask(a, g):
        return gc.where(a.reshape(shape) > 0, g, gc.zeros_like(g))
    want = np.where(flat_in.numpy().reshape(shape) > 0, gr.numpy(), 0)
    f = gc.compile(mask, backend="llvm")
    np.testing.assert_array_equal(f(flat_in, gr).numpy(), want)
    if shape == (64, 16, 28, 28):
        assert "masked.gather" not in f.llvm_ir(flat_in, gr)
    monkeypatch.setenv("GRAPHC_BOUNDS_CHECK", "1")
    checked = gc.compile(mask, backend="llvm")
    np.testing.assert_array_equal(checked(flat_in, gr).numpy(), want)


_BLAS_SCRIPT = """
import ctypes, json, numpy as np
import graphc as gc
from graphc.backends.llvm import runtime as R
rng = np.random.default_rng(0)
a = rng.standard_normal((300, 200)).astype(np.float32)
b = rng.standard_normal((200, 257)).astype(np.float32)
f = gc.compile(lambda a, b: a @ b, backend="llvm")
got = f(gc.tensor(a), gc.tensor(b)).numpy()
err = float(np.abs(got - a.astype(np.float64) @ b).max())
shared = ctypes.CDLL(R._openblas_path())     # numpy's instance: dlopen hands back the loaded one
print(json.dumps(dict(core=R.init()["blas_core"], numpy_core=R._corename(shared),
                      err=err, private=R.init()["libs"][0]._handle != shared._handle)))
"""


def _blas_run(tmp_path, core):
    env = {"GRAPHC_BLAS_CORETYPE": core, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    return json.loads(_run(_BLAS_SCRIPT, env).stdout.strip().splitlines()[-1])


def test_blas_instance_choice_without_avx512_or_when_told_numpy():
    """numpy's own OpenBLAS instance is used when the host lacks AVX-512 or the user says
    GRAPHC_BLAS_CORETYPE=numpy."""
    path = R._openblas_path()
    lib, core = R._blas_instance(path, "+sse2,+avx2,+fma,-avx512f")
    shared = ctypes.CDLL(path)
    assert lib._handle == shared._handle and core == R._corename(shared)


def test_blas_numpy_instance_in_a_subprocess(tmp_path):
    r = _blas_run(tmp_path, "numpy")
    assert not r["private"] and r["core"] == r["numpy_core"] and r["err"] < 1e-3


def test_blas_auto_loads_avx512_kernels_where_numpy_picks_avx2(tmp_path):
    """On an AVX-512 host where numpy's OpenBLAS picks Haswell/Zen kernels (AMD Zen 4), graphc
    calls a private copy loaded with OPENBLAS_CORETYPE=SkylakeX; elsewhere numpy's own."""
    r = _blas_run(tmp_path, "auto")
    feats = R.init()["features"].split(",")
    avx512 = all(f in feats for f in R._AVX512)
    if avx512 and r["numpy_core"].lower() in ("haswell", "zen"):
        assert r["private"] and r["core"] == "SkylakeX"
        assert any(n.endswith(".so") for n in os.listdir(tmp_path / "xdg" / "graphc" / "blas"))
    else:
        assert not r["private"] and r["core"] == r["numpy_core"]
    assert r["err"] < 1e-3


def test_blas_unknown_core_name_falls_back_to_numpy(tmp_path):
    """A core name OpenBLAS does not know loads whatever it detects; graphc notices the
    mismatch and keeps numpy's instance (the result is still right)."""
    r = _blas_run(tmp_path, "NoSuchCore")
    assert not r["private"] and r["err"] < 1e-3


@pytest.mark.slow
def test_many_executables_small_code_model():
    """Objects use the small code model (RIP-relative constants) inside llvmlite's contiguous
    per-object memory blocks; calls to BLAS and libm go through the runtime linker's stubs and
    GOT. Many executables, each calling sgemm and libm's sinf, load and compute right while
    large arrays are mapped and freed in between (runtime.CODE_MODEL, codegen.RW_ANCHOR)."""
    keep, big = [], []
    rng = np.random.default_rng(0)
    for i in range(60):
        f = gc.compile(lambda a, b: ((a @ b).relu().sin() * 0.5 + (a @ b).tanh()).sum(1), backend="llvm")
        a = rng.standard_normal((3 + i, 7)).astype(np.float32)
        b = rng.standard_normal((7, 5)).astype(np.float32)
        m = a.astype(np.float64) @ b
        want = (np.sin(np.maximum(m, 0)) * 0.5 + np.tanh(m)).sum(1)
        np.testing.assert_allclose(f(gc.tensor(a), gc.tensor(b)).numpy(), want, rtol=1e-4, atol=1e-4)
        exe = f.entry(gc.tensor(a), gc.tensor(b)).exe
        assert "movabs" not in exe.asm and "sinf@PLT" in exe.asm
        keep.append(f)
        if i % 10 == 0:
            big.append(np.ones(2 ** 25 * (1 + i % 3)))     # 256-768 MB mappings in between
            big = big[-2:]
