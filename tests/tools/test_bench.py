"""graphc/bench/, its peers (bench/peers/) and bench/llvm.py: the implementations agree with
graphc eager (numerical checks on small sizes), the harness builds its rows, the peers are found
(or their absence reported), the targets are judged right. No test here asserts on a time. The
torch.compile column runs only with GRAPHC_TEST_TORCH_COMPILE=1 (its first call compiles for tens
of seconds); its failure path is tested without compiling."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from graphc import bench

from repo_paths import ROOT  # noqa: E402
HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_JAX = importlib.util.find_spec("jax") is not None

SMALL = {
    "mlp_train": dict(dims=(20, 16, 12, 5), batch=8),
    "mlp_infer": dict(dims=(20, 16, 12, 5), batch=6),
    "ln_gelu": dict(n=8, d=32),
    "cnn_train": dict(batch=3, hw=8, c1=4, c2=6),
}


def small(family):
    return bench.Workload(f"small_{family}", family, f"small {family}", **SMALL[family])


def _steps(im, n):
    return [np.array(im.to_numpy(im.call()), copy=True) for _ in range(n)]


def _check_against_eager(w, column, steps=3, rtol=1e-4):
    state = w.init(seed=1)
    ref = w.impl("eager", state)
    other = w.impl(column, state)
    if other is None:
        pytest.skip(f"{column} not installed")
    got, want = _steps(other, steps), _steps(ref, steps)
    for g, r in zip(got, want):
        assert g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=rtol, atol=1e-5)
    if w.kind == "train":               # the updates themselves: every parameter after `steps` steps
        assert len(set(float(v) for v in want)) == steps          # the loss moved: steps were taken
        for g, r in zip(other.params(), ref.params()):
            assert g.shape == r.shape
            np.testing.assert_allclose(g, r, rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("family", list(SMALL))
def test_numpy_by_hand_matches_graphc_eager(family):
    _check_against_eager(small(family), "numpy")


@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
@pytest.mark.parametrize("family", list(SMALL))
def test_torch_matches_graphc_eager(family):
    _check_against_eager(small(family), "torch")


@pytest.mark.skipif(not HAVE_JAX, reason="jax not installed")
def test_jax_matches_graphc_eager():
    """In a subprocess: jax starts threads, and later tests of this process fork."""
    code = ("import sys; sys.path[:0] = sys.argv[1:]; import test_bench as t\n"
            "for fam in ('mlp_train', 'cnn_train'):\n"
            "    t._check_against_eager(t.small(fam), 'jax')\n"
            "print('ok')")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", code, os.path.join(ROOT, "tests", "tools"),
                        os.path.join(ROOT, "tests", "support")], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


def test_workloads_are_the_issue_models():
    w = bench.WORKLOADS["cnn_train_b64"]
    P = w.init()["params"]
    assert [p.shape for p in P] == [(16, 1, 3, 3), (16,), (32, 16, 3, 3), (32,), (10, 1568), (10,)]
    assert w.init()["x"].shape == (64, 1, 28, 28)
    assert [p.shape for p in bench.WORKLOADS["mlp_train_b128"].init()["params"][::2]] == \
        [(512, 784), (256, 512), (10, 256)]
    assert bench.WORKLOADS["mlp_train_b32"].init()["x"].shape == (32, 784)
    assert bench.WORKLOADS["mlp_infer_b1024"].init()["x"].shape == (1024, 784)
    assert bench.WORKLOADS["ln_gelu"].init()["x"].shape == (4096, 1024)
    fn, args = bench.WORKLOADS["cnn_train_b64"](backend="interp", compiled=False)   # the old interface
    assert args[0].shape == (64, 1, 28, 28) and math.isfinite(float(fn(*args).detach().numpy()))


@pytest.fixture
def tiny(monkeypatch):
    for fam in ("mlp_train", "ln_gelu"):
        monkeypatch.setitem(bench.WORKLOADS, f"tiny_{fam}", small(fam))
    return bench.WORKLOADS


@pytest.mark.slow
def test_harness_rows_and_table(tiny):
    rows = bench.run(["tiny_mlp_train", "tiny_ln_gelu"], backend="llvm", repeat=2, torch_compile=False,
                     jax=False, progress=False)       # jax: only in subprocesses (test_jax_matches...)
    for r in rows:
        for c in ("eager", "compiled", "numpy"):
            assert r[f"{c}_ms"] > 0
        assert "mismatch" not in r and r["max_rel_err"]["numpy"] <= bench.TOL
        assert ("torch_ms" in r) == HAVE_TORCH and "jax_ms" not in r
        assert "torch_compile_ms" not in r and r["kernels"] >= 1
    assert "first_loss" in rows[0] and "copy_floor_ms" in rows[1] and "copy_floor_ms" not in rows[0]
    ln = rows[1]
    assert 0.5 < ln["copy_bandwidth_gbs"] < 1000 and ln["copy_same_ms"] > 0
    # the floor: reading x and writing y once at the bandwidth measured in the same run
    assert ln["copy_floor_ms"] == pytest.approx(2 * ln["x_bytes"] / (ln["copy_bandwidth_gbs"] * 1e9) * 1e3)
    text = bench.table(rows)
    assert "numpy ms" in text and "eager/compiled" in text and "copy floor ms" in text
    assert "copyto x ms" in text and "GB/s" in text
    assert "compiled/floor" in text and "outputs agree" in text and "MISMATCH" not in text


@pytest.mark.slow
def test_harness_reports_a_disagreement(tiny, monkeypatch):
    peers = bench.load_peers()
    good = peers.impls["numpy"]

    def off(family, state):
        im = good(family, state)
        return bench.Impl(lambda: im.call() * np.float32(1.01))
    monkeypatch.setitem(peers.impls, "numpy", off)
    row = bench.run_one("tiny_ln_gelu", backend="interp", repeat=1, others=False)
    assert set(row["mismatch"]) == {"numpy"} and row["mismatch"]["numpy"] > bench.TOL
    assert "MISMATCH" in bench.table([row])


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
def test_torch_compile_failure_is_reported_not_raised(tiny, monkeypatch):
    def broken(f):
        raise RuntimeError("no C++ compiler\nmore detail")
    monkeypatch.setattr(bench.load_peers().module.torch_steps, "_torch_compile", broken)
    row = bench.run_one("tiny_ln_gelu", backend="interp", repeat=1, jax=False)
    assert row["torch_compile_error"] == "RuntimeError: no C++ compiler" and "torch_compile_ms" not in row
    assert "torch_ms" in row
    text = bench.table([row])
    assert "torch.compile n/a (RuntimeError: no C++ compiler)" in text


@pytest.mark.skipif(not (HAVE_TORCH and os.environ.get("GRAPHC_TEST_TORCH_COMPILE")),
                    reason="set GRAPHC_TEST_TORCH_COMPILE=1 (torch.compile takes tens of seconds)")
def test_torch_compile_column(tiny):
    row = bench.run_one("tiny_ln_gelu", backend="interp", repeat=2, jax=False)
    assert "torch_compile_error" not in row, row.get("torch_compile_error")
    assert row["torch_compile_ms"] > 0 and row["max_rel_err"]["torch_compile"] <= bench.TOL


def test_peers_default_to_the_repositorys_bench_folder():
    p = bench.load_peers()
    assert bench.default_peers_path() == os.path.join(ROOT, "bench", "peers") == p.path
    assert set(p.impls) == set(bench.PEER_COLUMNS) and p.missing is None
    assert bench.load_peers(os.path.join(ROOT, "bench")) is p          # bench/ itself names the same
    with pytest.raises(FileNotFoundError):
        bench.load_peers(os.path.join(ROOT, "no-such-folder"))


@pytest.mark.slow
def test_without_peers_graphc_columns_only(tiny, monkeypatch):
    """An installed graphc without the repository: no bench/peers next to the package."""
    monkeypatch.setattr(bench.peers, "default_path", lambda: None)
    missing = bench.load_peers()
    assert not missing and "--peers PATH" in missing.missing
    row = bench.run_one("tiny_ln_gelu", backend="interp", repeat=1)
    assert row["peers"] is None and row["peers_missing"] == missing.missing
    assert row["eager_ms"] > 0 and row["compiled_ms"] > 0 and "copy_floor_ms" in row
    assert not any(f"{c}_ms" in row or f"{c}_error" in row for c in bench.PEER_COLUMNS)
    text = bench.table([row])
    assert "peers not available" in text and "numpy ms" not in text and "graphc compiled ms" in text
    assert bench.run_one("tiny_ln_gelu", backend="interp", repeat=1, peers="")["peers_missing"] == "--peers ''"


@pytest.mark.slow
def test_peers_from_a_file(tmp_path, tiny):
    f = tmp_path / "mine.py"
    f.write_text("from graphc.bench import Impl\nimport numpy as np\n"
                 "IMPLS = {'numpy': lambda family, state: Impl(lambda: np.zeros(1))}\n")
    row = bench.run_one("tiny_ln_gelu", backend="interp", repeat=1, peers=str(f))
    assert row["peers"] == str(f) and set(row["mismatch"]) == {"numpy"}    # the wrong shape, reported
    (tmp_path / "bad.py").write_text("X = 1\n")
    with pytest.raises(ImportError):
        bench.load_peers(str(tmp_path / "bad.py"))


@pytest.mark.slow
def test_graphc_bench_command_peers_option():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "graphc", "bench", "mlp_infer_b1024", "--repeat", "1", "--plot", "",
           "--backend", "interp"]
    r = subprocess.run(cmd + ["--peers", ""], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "peers not available" in r.stdout and "numpy ms" not in r.stdout and "graphc compiled ms" in r.stdout
    r = subprocess.run(cmd + ["--peers", os.path.join(ROOT, "nope")], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "no peer implementations" in r.stderr


def test_the_package_imports_neither_torch_nor_jax():
    """Not at module level anywhere in graphc/ (the peers that use them live in bench/peers/), and
    not by importing graphc, its bench suite, the command line or the peers."""
    import ast
    for d, _, fs in os.walk(os.path.join(ROOT, "graphc")):
        for f in fs:
            if not f.endswith(".py"):
                continue
            tree = ast.parse(open(os.path.join(d, f), encoding="utf-8").read())
            top = [n for b in tree.body for n in ast.walk(b)
                   if isinstance(b, (ast.Import, ast.ImportFrom, ast.If, ast.Try))]
            for n in top:
                mods = [a.name for a in n.names] if isinstance(n, ast.Import) else \
                    [n.module or ""] if isinstance(n, ast.ImportFrom) and not n.level else []
                assert not any(m.split(".")[0] in ("torch", "jax") for m in mods), (d, f, n.lineno)
    code = ("import sys, graphc, graphc.bench as b, graphc.cli as c; c.build_parser(); b.load_peers()\n"
            "print(sorted(m for m in ('torch', 'jax') if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr[-3000:]


def test_compile_probe_counts_the_tracing_calls(tiny):
    r = bench.compile_probe("tiny_mlp_train", "llvm")
    assert r["traces"] == 2                          # .grad is None on the first call, then exists
    assert len(r["first_calls_ms"]) == 2 and "backend_cache_hit" in r
    r = bench.compile_probe("tiny_ln_gelu", "interp")
    assert r["traces"] == 1 and "backend_cache_hit" not in r


@pytest.mark.slow
def test_compile_times_cold_then_warm_from_the_disk_cache():
    r = bench.compile_times("mlp_infer_b1024", "llvm", warm_runs=1)
    assert r["cold_cache_hit"] is False and r["warm_cache_hit"] is True
    assert all(math.isfinite(r[k]) for k in ("compile_cold_ms", "compile_warm_ms", "backend_compile_cold_ms"))
    text = bench.compile_table([dict(r, workload="mlp_infer_b1024")])
    assert "mlp_infer_b1024" in text and "cold ms" in text


def test_thread_env_caps_every_library():
    env = bench.thread_env(1)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "GRAPHC_NUM_THREADS"):
        assert env[k] == "1"
    assert "intra_op_parallelism_threads=1" in env["XLA_FLAGS"] and "multi_thread_eigen=false" in env["XLA_FLAGS"]
    assert "intra_op_parallelism_threads=2" in bench.thread_env(2)["XLA_FLAGS"]


def _row(name, **ms):
    return {"workload": name, **{f"{k}_ms": v for k, v in ms.items()}}


def test_targets_judged_from_the_rows():
    rows = [_row("mlp_train_b128", compiled=2.0, torch=3.0, torch_compile=1.9, jax=2.5,
                 compile_cold=1200.0, compile_warm=150.0),
            _row("mlp_train_b32", eager=6.0, compiled=2.0),
            _row("ln_gelu", compiled=1.4, copy_floor=1.0),
            _row("mlp_infer_b1024", compiled=10.6, numpy=10.0),
            _row("cnn_train_b64", compiled=5.0, torch=5.0)]
    ts = {t["target"].split(":")[0].split(" <")[0]: t for t in bench.targets(rows)}
    t = ts["mlp_train b128"]
    assert t["pass"] is False and t["ratio"] == pytest.approx(2.0 / 1.9) and "torch_compile" in t["detail"]
    assert ts["mlp_train b32"]["pass"] is True and ts["mlp_train b32"]["ratio"] == pytest.approx(3.0)
    assert ts["ln_gelu"]["pass"] is True
    assert ts["mlp_infer b1024"]["pass"] is False
    assert ts["cnn_train b64"]["pass"] is True
    assert ts["compile mlp_train b128 cold"]["pass"] is True
    assert ts["compile mlp_train b128 warm (disk cache)"]["pass"] is False
    assert all(t["pass"] is None for t in bench.targets([]))
    text = bench.targets_text(bench.targets(rows))
    assert text.count("PASS") == 4 and text.count("FAIL") == 3


@pytest.mark.slow
def test_bench_llvm_script_json():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "llvm.py"), "mlp_infer_b1024", "--repeat", "1",
                        "--no-compile-times", "--no-torch-compile", "--no-jax", "--json", "--threads", "1"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert [x["workload"] for x in out["rows"]] == ["mlp_infer_b1024"]
    assert out["rows"][0]["backend"] == "llvm" and "mismatch" not in out["rows"][0]
    assert out["rows"][0]["threads"] == 1 and out["environment"]["threads"] == 1
    ts = {t["target"]: t for t in out["targets"]}
    assert len(ts) == 7
    infer = next(t for k, t in ts.items() if k.startswith("mlp_infer"))
    assert infer["pass"] in (True, False) and infer["ratio"] > 0
    assert sum(t["pass"] is None for t in ts.values()) == 6
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "llvm.py"), "nope"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "unknown workload" in r.stderr
