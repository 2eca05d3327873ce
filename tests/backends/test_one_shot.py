"""One-shot graphs: a trace during which the function created state (an optimizer's first step)
serves that call only, so with the llvm backend it runs on the reference interpreter over the
traced graph, with no passes and no native code (graphc/compiler/graph_function.py: GraphFunction.exe)."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
import graphc.nn.functional as F
from graphc.backends.interpreter import Interpreter

pytest.importorskip("llvmlite")


def _setup(backend, **kw):
    gc.manual_seed(0)
    model = gc.nn.Sequential(gc.nn.Linear(5, 7), gc.nn.ReLU(), gc.nn.Linear(7, 3))
    opt = gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return model, gc.compile(step, backend=backend, **kw) if backend else step


def _data():
    gc.manual_seed(1)
    return gc.randn(4, 5), gc.randint(0, 3, (4,))


def test_first_optimizer_step_runs_on_the_interpreter_then_native_code():
    model, f = _setup("llvm")
    x, y = _data()
    f(x, y)
    first = f._cache[next(iter(f._cache))][-1]     # entries: most recent first
    assert first.fn.one_shot and first.fn._passes is None        # no passes ran for it
    assert isinstance(first.fn.exe.host, Interpreter) and first.fn._backend_exe is None
    f(x, y)
    steady = f.entry(x, y)
    assert not steady.fn.one_shot and steady is not first
    assert type(steady.fn.exe.host).__name__ == "LLVMExecutable"
    f(x, y)
    assert len(f.traces) == 2


def test_one_shot_steps_match_eager_and_the_interpreter_backend():
    runs = {}
    for backend in (None, "interp", "llvm"):
        model, f = _setup(backend)
        x, y = _data()
        losses = [float(f(x, y).item()) for _ in range(4)]
        runs[backend] = (losses, [p.detach().numpy().copy() for p in model.parameters()])
    for backend in ("interp", "llvm"):
        np.testing.assert_allclose(runs[backend][0], runs[None][0], rtol=1e-5)
        for a, b in zip(runs[backend][1], runs[None][1]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_inspection_of_a_one_shot_entry_compiles_it_on_demand():
    """.ir() runs the passes and .llvm_ir() builds the native code of a one-shot signature
    when asked; the call itself never needed them."""
    _, f = _setup("llvm")
    x, y = _data()
    e = f.entry(x, y)          # traces (the optimizer's buffers are created) without running
    assert e.fn.one_shot and e.fn._passes is None
    assert "kernel" in f.ir(x, y)                       # the final stage, passes run now
    assert "define" in f.llvm_ir(x, y) and e.fn._backend_exe is not None


def test_with_dumps_a_one_shot_graph_goes_through_the_whole_pipeline(tmp_path):
    _, f = _setup("llvm", dump=str(tmp_path))
    x, y = _data()
    f(x, y)
    first = f._cache[next(iter(f._cache))][-1]
    assert first.fn._passes is not None and first.fn._backend_exe is not None
    assert (tmp_path / f"{first.fn.graph.name}.llvm.ll").exists()


def test_other_backends_compile_one_shot_graphs_as_usual():
    _, f = _setup("interp")
    x, y = _data()
    f(x, y)
    first = f._cache[next(iter(f._cache))][-1]
    assert first.fn.one_shot and first.fn._passes is not None
