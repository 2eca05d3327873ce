"""The `graphc` command, run as `python -m graphc ...` in a fresh temporary directory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from graphc import viz

from repo_paths import ROOT  # noqa: E402
needs_dot = pytest.mark.skipif(not viz.have_dot(), reason="Graphviz `dot` not installed")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

MODEL_FILE = textwrap.dedent('''
    import graphc as gc
    import graphc.nn as nn
    import graphc.nn.functional as F

    gc.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    @gc.compile
    def train_step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    train_step_example_args = (gc.randn(8, 16), gc.randint(0, 4, (8,)))

    def predict(x):                      # a plain function: the CLI compiles it
        return F.softmax(model(x), dim=-1)

    def no_args(x):
        return x

    EXAMPLE_ARGS = {"predict": [(gc.randn(4, 16),), (gc.randn(6, 16),)]}
''')


def graphc(tmp_path, *args, ok=True, timeout=300):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["MPLBACKEND"] = "Agg"
    r = subprocess.run([sys.executable, "-m", "graphc", *args], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=timeout)
    if ok:
        assert r.returncode == 0, f"graphc {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture
def work(tmp_path):
    (tmp_path / "model.py").write_text(MODEL_FILE)
    return tmp_path


def is_svg(p):
    root = ET.parse(p).getroot()
    return root.tag.endswith("svg")


def is_png(p):
    data = open(p, "rb").read()
    return len(data) > 100 and data[:8] == PNG_MAGIC


@pytest.mark.parametrize("cmd", [[], ["demo"], ["dump"], ["viz"], ["report"], ["explain"], ["bench"]])
def test_help(tmp_path, cmd):
    r = graphc(tmp_path, *cmd, "--help")
    assert "usage: graphc" in r.stdout
    if cmd in (["dump"], ["viz"], ["explain"]):
        assert "_example_args" in r.stdout and "EXAMPLE_ARGS" in r.stdout
    if cmd == ["bench"]:
        assert "mlp_train_b128" in r.stdout and "--repeat" in r.stdout


def test_no_command_prints_help(tmp_path):
    r = graphc(tmp_path, ok=False)
    assert r.returncode == 2 and "COMMAND" in r.stdout


@pytest.mark.slow
def test_dump_all_and_one_stage(work):
    r = graphc(work, "dump", "model.py:train_step")
    for stage in ("traced", "simplify", "fusion", "memory"):
        assert f" {stage}" in r.stdout
    assert "kernel(" in r.stdout and "update model.0.weight" in r.stdout
    r = graphc(work, "dump", "model.py:train_step", "--stage", "fusion")
    assert "fusion" in r.stdout and "traced" not in r.stdout.split("\n")[0]
    r = graphc(work, "dump", "model.py:predict", "--stage", "all", "--out", "irs", "--locs")
    files = sorted(os.listdir(work / "irs"))
    assert files[0].endswith(".00.traced.ir") and any(f.endswith(".memory.ir") for f in files)
    assert "model.py:" in (work / "irs" / files[0]).read_text()     # --locs


@pytest.mark.slow
def test_dump_errors_are_clear(work):
    r = graphc(work, "dump", "model.py:train_step", "--stage", "nope", ok=False)
    assert r.returncode == 2 and "unknown stage 'nope'" in r.stderr and "fusion" in r.stderr
    r = graphc(work, "dump", "model.py:no_args", ok=False)
    assert r.returncode == 2 and "no_args_example_args" in r.stderr
    r = graphc(work, "dump", "model.py:missing", ok=False)
    assert r.returncode == 2 and "has no 'missing'" in r.stderr
    r = graphc(work, "dump", "nofile.py:f", ok=False)
    assert r.returncode == 2 and "no such file" in r.stderr


@needs_dot
def test_viz_svg_png_dot(work):
    graphc(work, "viz", "model.py:train_step", "--out", "g.svg")
    assert is_svg(work / "g.svg") and "cluster_k" in (work / "g.svg").read_text()
    graphc(work, "viz", "model.py:train_step", "--out", "g.png", "--collapse")
    assert is_png(work / "g.png")
    graphc(work, "viz", "model.py:predict", "--out", "g.dot", "--stage", "traced")
    assert (work / "g.dot").read_text().startswith("digraph")


@needs_dot
def test_report(work):
    graphc(work, "report", "model.py:train_step", "--out", "r.html")
    text = (work / "r.html").read_text()
    assert "id='pass-fusion'" in text and "<svg" in text and "id='memory'" in text


@pytest.mark.slow
def test_explain_shows_captured_state_and_retraces(work):
    r = graphc(work, "explain", "model.py:train_step")
    out = r.stdout
    assert "captured state" in out and "model.0.weight" in out and "momentum_buffer" in out
    assert "write-backs" in out and "model.0.weight <-" in out
    assert "2 trace(s)" in out and "first call" in out and "guard failed" in out
    r = graphc(work, "explain", "model.py:predict", "--calls", "1")
    assert "2 trace(s)" in r.stdout and "shape" in r.stdout          # batch 4 -> 6 retraces


@pytest.mark.slow
def test_bench_json_and_plot(work):
    r = graphc(work, "bench", "mlp_train_b32", "--repeat", "2", "--json", "--plot", "bench.png", "--no-others")
    rows = json.loads(r.stdout)
    assert [x["workload"] for x in rows] == ["mlp_train_b32"]
    row = rows[0]
    assert row["eager_ms"] > 0 and row["compiled_ms"] > 0 and row["ratio"] > 0 and row["kernels"] > 0
    assert row["numpy_ms"] > 0 and "mismatch" not in row and "torch_ms" not in row   # --no-others
    assert is_png(work / "bench.png")
    r = graphc(work, "bench", "--list")
    for n in ("mlp_train_b128", "mlp_train_b32", "mlp_infer_b1024", "ln_gelu", "cnn_train_b64"):
        assert n in r.stdout
    r = graphc(work, "bench", "nope", ok=False)
    assert r.returncode != 0 and "unknown workload" in r.stderr


@pytest.mark.slow
def test_bench_table(work):
    r = graphc(work, "bench", "mlp_infer_b1024", "ln_gelu", "--repeat", "2", "--plot", "", "--no-torch-compile")
    assert "eager/compiled" in r.stdout and "ln_gelu" in r.stdout and "mlp_infer_b1024" in r.stdout
    assert "numpy ms" in r.stdout and "copy floor ms" in r.stdout and "outputs agree" in r.stdout
    assert "torch.compile" not in r.stdout
    assert not (work / "graphc-bench.png").exists()


@pytest.mark.slow
def test_bench_compile_times_llvm(work):
    r = graphc(work, "bench", "mlp_infer_b1024", "--backend", "llvm", "--repeat", "1", "--plot", "",
               "--no-others", "--compile-times", "--threads", "1")
    assert "cold ms" in r.stdout and "warm cache hit" in r.stdout and "mlp_infer_b1024" in r.stdout
    assert "threads=1" in r.stdout


@pytest.mark.slow
def test_demo(work):
    r = graphc(work, "demo", "--steps", "3", "--repeat", "3", "--out", "demo.html")
    assert "eager" in r.stdout and "compiled" in r.stdout and "ratio" in r.stdout
    assert (work / "demo.html").stat().st_size > 0
    assert "pass-fusion" in (work / "demo.html").read_text()


@pytest.mark.slow
def test_tutorial_commands_work(tmp_path):
    """docs/tutorial.md: its mlp.py and every `graphc ...` / `python mlp.py` command in it."""
    import re
    text = open(os.path.join(ROOT, "docs", "tutorial.md")).read()
    code = re.search(r"Save this as `mlp.py`:\n\n```python\n(.*?)```", text, re.S).group(1)
    (tmp_path / "mlp.py").write_text(code)
    cmds = [line.strip().split("  #")[0].strip() for line in text.splitlines()
            if line.startswith("    graphc ") or line.startswith("    python mlp.py")]
    assert len(cmds) >= 10
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    for cmd in cmds:
        if not viz.have_dot() and ("viz" in cmd.split()[:2] or "report" in cmd.split()[:2]):
            continue
        if cmd == "graphc bench":
            cmd += " --repeat 2 --no-others"     # the full suite, kept quick here (columns: tests/tools/test_bench.py)
        elif cmd.startswith("graphc bench "):
            cmd += " --no-torch-compile"         # its first call compiles for tens of seconds
        argv = cmd.split()
        argv = [sys.executable, "-m", "graphc", *argv[1:]] if argv[0] == "graphc" else [sys.executable, *argv[1:]]
        argv = [a if a != "''" else "" for a in argv]
        r = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{cmd}:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    for f in ("step.svg", "traced.svg"):
        if viz.have_dot():
            assert is_svg(tmp_path / f)
    if viz.have_dot():
        assert is_png(tmp_path / "step.png")
        assert (tmp_path / "report.html").stat().st_size > 0
    assert (tmp_path / "graphc-bench.png").exists() and is_png(tmp_path / "graphc-bench.png")
    assert len(os.listdir(tmp_path / "ir")) >= 9
