"""graphc.report.write_report: one self-contained HTML page, checked in a headless browser."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

import graphc as gc
import graphc.nn.functional as F
from graphc import backends, viz
from graphc.report import write_report

pytest.importorskip("matplotlib")


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def compiled_step(backend="interp"):
    gc.manual_seed(0)
    l1, l2 = gc.nn.Linear(16, 32), gc.nn.Linear(32, 4)
    opt = gc.optim.SGD(list(l1.parameters()) + list(l2.parameters()), lr=0.1, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(l2(F.relu(l1(x))), y)
        loss.backward()
        opt.step()
        return loss
    f = gc.compile(step, backend=backend)
    args = (gc.randn(8, 16), gc.randint(0, 4, (8,)))
    f(*args)
    return f, args


def test_report_has_every_pass_kernels_and_memory(tmp_path):
    f, args = compiled_step()
    p = write_report(f, tmp_path / "r.html", *args, progress=False)
    text = open(p, encoding="utf-8").read()
    stages = f.stages(*args)
    assert stages[0] == "traced" and "fusion" in stages
    for n in stages:
        assert f"id='pass-{n}'" in text
    assert text.count("<section class='pass'") == len(stages)
    for n, ms in f.entry(*args).passes.times_ms.items():
        assert f"{ms:.3f} ms" in text                     # each pass's time
    assert "bytes moved" in text and "primitive nodes" in text
    assert "id='kernels'" in text and "graph k0(" in text  # kernel bodies' IR
    assert "id='memory'" in text and "naive" in text
    assert "captured state" in text
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", text)
    if viz.have_dot():
        n_svg = text.count("<svg")
        assert n_svg >= 2 * len(stages) - 1 + 1          # each stage and its predecessor, + memory


def test_report_includes_llvm_ir_when_the_executable_has_it(tmp_path):
    interp = backends.get("interp")

    class WithLLVM:
        def __init__(self, exe):
            self.exe = exe
            self.llvm_ir = "define void @entry() {\n  ret void\n}"

        def __call__(self, *a, **k):
            return self.exe(*a, **k)
    backends.register("test_fake_llvm", lambda g, **o: WithLLVM(interp(g, **o)))
    f, args = compiled_step(backend="test_fake_llvm")
    text = open(write_report(f, tmp_path / "r.html", *args, progress=False), encoding="utf-8").read()
    assert "id='llvm-ir'" in text and "define void @entry()" in text


@pytest.mark.skipif(_chromium() is None, reason="no chromium for the headless browser test")
@pytest.mark.skipif(not viz.have_dot(), reason="Graphviz `dot` not installed")
def test_report_loads_in_headless_chromium(tmp_path):
    f, args = compiled_step()
    p = write_report(f, tmp_path / "r.html", *args, progress=False)
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", "file://" + str(p)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    stages = f.stages(*args)
    for n in stages:
        assert f'id="pass-{n}"' in dom, f"section for pass {n} missing from the rendered DOM"
    # the page's own script ran, saw every pass section and no script error
    m = re.search(r'id="report-status" data-status="(\w+)">([^<]*)<', dom)
    assert m, "status element missing"
    assert m.group(1) == "ok", m.group(2)
    assert f"({len(stages)} pass sections)" in m.group(2)
    assert dom.count("<svg") >= len(stages)


def test_report_with_the_llvm_backend(tmp_path):
    pytest.importorskip("llvmlite")
    backends.get("llvm")        # with llvmlite installed the llvm backend must be there
    gc.manual_seed(0)
    g, b = gc.randn(64), gc.randn(64)
    f = gc.compile(lambda x: F.gelu(F.layer_norm(x, (64,)) * g + b, approximate="tanh"), backend="llvm")
    x = gc.randn(32, 64)
    f(x)
    text = open(write_report(f, tmp_path / "r.html", x, progress=False), encoding="utf-8").read()
    assert "backend compile failed" not in text, "the llvm backend could not compile this graph"
    assert "id='llvm-ir'" in text and "define" in text
