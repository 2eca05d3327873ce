"""Logging channels (GRAPHC_LOG / graphc.logs.set_logs): recompiles, passes, kernels, memory."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import pytest

import graphc as gc
import graphc.logs as glog

PROGRAM = textwrap.dedent("""
    import graphc as gc
    F = gc.nn.functional
    gc.manual_seed(0)
    model = gc.nn.Sequential(gc.nn.Linear(4, 8), gc.nn.ReLU(), gc.nn.Linear(8, 2))
    opt = gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    @gc.compile
    def step(x, y):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    x, y = gc.randn(3, 4), gc.randn(3, 2)
    for _ in range(3):
        step(x, y)
    step(x[:2], y[:2])
    print("done", len(step.traces))
""")


def run_program(log_spec):
    env = dict(os.environ)
    env.pop("GRAPHC_LOG", None)
    if log_spec is not None:
        env["GRAPHC_LOG"] = log_spec
    from repo_paths import ROOT as root
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "done 3"
    return p.stderr.splitlines()


def lines_of(lines, channel):
    return [ln for ln in lines if ln.startswith(f"[graphc.{channel}] ")]


@pytest.fixture(autouse=True)
def _follow_env_again():
    yield
    glog.set_logs(None)


def test_no_logging_by_default():
    assert not [ln for ln in run_program(None) if ln.startswith("[graphc.")]


def test_recompiles_channel_gives_each_trace_and_its_reason():
    lines = run_program("recompiles")
    rec = lines_of(lines, "recompiles")
    assert len(rec) == 3, lines
    assert "tracing step (graph step): first call" in rec[0]
    assert "created new state" in rec[1]
    assert "argument 'x' changed from tensor float32[3, 4] to tensor float32[2, 4] (shape change)" in rec[2]
    assert not lines_of(lines, "passes") and not lines_of(lines, "kernels")


def test_passes_channel_times_every_pass_with_counts():
    """The first graph (`step`, the optimizer's first step, which creates its buffers) serves one
    call: it runs on the interpreter with no passes. The steady step_1 and step_2 get every pass."""
    from graphc.passes.manager import DEFAULT_PASSES
    lines = lines_of(run_program("passes"), "passes")
    assert not [ln for ln in lines if ln.startswith("[graphc.passes] step: ")]
    steady = [ln for ln in lines if ln.startswith("[graphc.passes] step_1: ")]
    assert [ln.split()[2] for ln in steady] == [n for n, _ in DEFAULT_PASSES]
    for ln in steady:
        assert " ms " in ln and "nodes=" in ln and "kernels=" in ln
    fusion = next(ln for ln in steady if ln.split()[2] == "fusion")
    assert "kernels=0" not in fusion
    assert any(ln.startswith("[graphc.passes] step_2: ") for ln in lines)


def test_kernels_and_memory_channels():
    lines = run_program("kernels,memory")
    ks = lines_of(lines, "kernels")
    shot = [ln for ln in ks if ln.startswith("[graphc.kernels] step: ")]
    assert len(shot) == 1 and "one-shot graph" in shot[0] and "runs on the interpreter" in shot[0], ks
    head = [ln for ln in ks if ln.startswith("[graphc.kernels] step_1: ") and "kernel(s)" in ln]
    assert head, ks
    n = int(head[0].split()[2])
    body = [ln for ln in ks if ln.startswith("[graphc.kernels] step_1: k")]
    assert len(body) == n
    for ln in body:
        assert " -> %" in ln and "ops=[" in ln
        assert any(kind in ln for kind in ("pointwise", "reduction", "matmul", "opaque", "view"))
    assert any("matmul" in ln.split("ops=")[1] for ln in body)
    mem = lines_of(lines, "memory")
    assert len(mem) == 2
    for word in ("naive=", "arena=", "lower_bound=", "fresh="):
        assert word in mem[0]
    assert not lines_of(lines, "recompiles")


def test_all_switches_every_channel():
    lines = run_program("all")
    for ch in glog.CHANNELS:
        assert lines_of(lines, ch), ch


def test_set_logs_programmatic_with_caplog(caplog, monkeypatch):
    monkeypatch.delenv("GRAPHC_LOG", raising=False)
    caplog.set_level(logging.INFO, logger="graphc")
    f = gc.compile(lambda x: (x * 2).exp().sum())
    f(gc.ones(3))
    assert not [r for r in caplog.records if r.name.startswith("graphc.")]
    glog.set_logs("recompiles,kernels")
    f(gc.ones(4))
    names = {r.name for r in caplog.records}
    assert names == {"graphc.recompiles", "graphc.kernels"}, names
    rec = [r.getMessage() for r in caplog.records if r.name == "graphc.recompiles"]
    assert len(rec) == 1 and "argument 'x' changed from tensor float32[3] to tensor float32[4]" in rec[0]
    assert rec[0].endswith(f.explain().splitlines()[-1].split(": ", 1)[1])
    assert all(r.levelno == logging.INFO for r in caplog.records)
    caplog.clear()
    glog.set_logs(["memory"])
    f(gc.ones(5))
    assert {r.name for r in caplog.records} == {"graphc.memory"}
    caplog.clear()
    glog.set_logs("")
    f(gc.ones(6))
    assert not [r for r in caplog.records if r.name.startswith("graphc.")]


def test_env_var_is_read_at_call_time(monkeypatch, capsys):
    glog.set_logs(None)
    f = gc.compile(lambda x: x + 1)
    monkeypatch.setenv("GRAPHC_LOG", "recompiles")
    f(gc.ones(2))
    err = capsys.readouterr().err
    assert "[graphc.recompiles] tracing <lambda>" in err and "first call" in err
    monkeypatch.delenv("GRAPHC_LOG")
    f(gc.ones(3))
    assert "[graphc." not in capsys.readouterr().err


def test_set_logs_rejects_unknown_channels():
    with pytest.raises(ValueError, match="unknown log channel"):
        glog.set_logs("recompile")


def test_graphc_log_is_still_the_logarithm():
    import numpy as np
    np.testing.assert_allclose(gc.log(gc.tensor([1.0, np.e])).numpy(), [0.0, 1.0], rtol=1e-6)
    assert callable(gc.logs.set_logs)


def test_a_channel_logger_set_to_info_by_the_application_is_on(caplog, monkeypatch):
    monkeypatch.delenv("GRAPHC_LOG", raising=False)
    lg = logging.getLogger("graphc.recompiles")
    old = lg.level
    lg.setLevel(logging.INFO)
    try:
        caplog.set_level(logging.INFO)
        f = gc.compile(lambda x: x * 3)
        f(gc.ones(2))
        msgs = [r.getMessage() for r in caplog.records if r.name == "graphc.recompiles"]
        assert len(msgs) == 1 and "first call" in msgs[0]
        assert not [r for r in caplog.records if r.name == "graphc.passes"]
    finally:
        lg.setLevel(old)
