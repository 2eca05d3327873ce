"""Random graphs give the same results through every combination of passes, and every memory
plan the pipeline makes passes the validator."""
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

import graphc as gc  # noqa: E402
from graphc import backends  # noqa: E402
from graphc.backends.interpreter import Interpreter  # noqa: E402
from graphc.ir import parse_graph, print_graph, verify  # noqa: E402
from graphc.passes.manager import DEFAULT_PASSES, REQUIRED, run_passes  # noqa: E402
from graphc.passes.memory import validate_plan  # noqa: E402
from randgraphs import random_graphs  # noqa: E402

SWITCHABLE = [name for name, _ in DEFAULT_PASSES if name != "verify" and name not in REQUIRED]


def _inputs(g, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(-2, 3, v.type.shape).astype(v.type.dtype.np) for v in g.inputs]


def _compare(want, got, dtype_exact=True):
    assert len(want) == len(got)
    for a, b in zip(want, got):
        assert a.shape == b.shape and a.dtype == b.dtype
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        else:
            np.testing.assert_array_equal(a, b)


@pytest.mark.slow
@settings(max_examples=80, deadline=None)
@given(g=random_graphs(), switches=st.fixed_dictionaries({n: st.booleans() for n in SWITCHABLE}),
       seed=st.integers(0, 2 ** 16))
def test_random_graphs_agree_through_every_pass_combination(g, switches, seed):
    want = Interpreter(g)([a.copy() for a in _inputs(g, seed)])
    res = run_passes(g, enabled=switches)
    final = res.final
    verify(final)
    assert parse_graph(print_graph(final)) == final
    if switches["memory"]:
        validate_plan(final)
    got = backends.get("interp")(final)([a.copy() for a in _inputs(g, seed)])
    _compare(want, got)


def test_every_pass_can_be_switched_off_from_compile_and_the_numbers_show_it():
    gc.manual_seed(0)
    w = gc.randn(16, 8, requires_grad=True)

    def step(x):
        loss = gc.tanh(x @ w).pow(2).mean()
        loss.backward()
        with gc.no_grad():
            w.sub_(0.1 * w.grad)
            w.grad = None
        return loss

    x = gc.randn(4, 16)
    results = {}
    for off in [None] + SWITCHABLE:
        w.data.copy_(gc.ones(16, 8) * 0.01) if False else None
        f = gc.compile(step, passes={off: False} if off else None, backend="interp")
        e = f.entry(x)
        names = [n for n, _ in e.passes.stages]
        if off and off != "fusion":
            assert off not in names
        results[off] = e
    assert results[None].graph.kernels()
    fused = len(results[None].graph.kernels())
    unfused = len(results["fusion"].graph.kernels())
    assert fused < unfused
    for backend in ("llvm", None):
        with pytest.raises(ValueError, match="memory plan.*backend='interp'"):
            gc.compile(step, passes={"memory": False}, backend=backend)


def test_autodiff_is_in_the_pipeline_and_cannot_be_switched_off():
    assert [n for n, _ in DEFAULT_PASSES][:2] == ["verify", "autodiff"]
    with pytest.raises(ValueError, match="autodiff pass cannot be switched off: it expands the `grad` placeholders"):
        gc.compile(lambda x: x * 2, passes={"autodiff": False})
    g = parse_graph("graph f(%x: f32[2]) {\n  return %x\n}")
    with pytest.raises(ValueError, match="autodiff pass cannot be switched off"):
        run_passes(g, enabled={"autodiff": False})
    with pytest.raises(ValueError, match="unknown pass"):
        run_passes(g, enabled={"autodif": False})


@pytest.mark.slow
def test_plans_of_traced_models_validate():
    import graphc.nn.functional as F
    gc.manual_seed(0)
    model = gc.nn.Sequential(gc.nn.Conv2d(1, 4, 3, padding=1), gc.nn.BatchNorm2d(4), gc.nn.ReLU(),
                             gc.nn.MaxPool2d(2), gc.nn.Flatten(), gc.nn.Linear(4 * 4 * 4, 3))
    opt = gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    f = gc.compile(step)
    x, y = gc.randn(2, 1, 8, 8), gc.randint(0, 3, (2,))
    f(x, y)
    f(x, y)
    validate_plan(f.graph(x, y))


def test_compiled_stats_report_every_field():
    import graphc.nn.functional as F
    x, g, b = gc.randn(64, 32), gc.randn(32), gc.randn(32)
    f = gc.compile(lambda x: F.gelu(F.layer_norm(x, (32,)) * g + b, approximate="tanh"))
    st = f.stats(x)
    for key in ("primitive_nodes", "kernels", "bytes_moved", "naive_bytes", "arena_bytes",
                "lower_bound_bytes", "pass_ms"):
        assert key in st
    assert st["kernels"] == 1 and st["primitive_nodes"] > 10
    assert st["bytes_moved"] < st["bytes_moved_unfused"]
    assert set(st["pass_ms"]) >= {"fusion", "schedule", "memory"}
    off = gc.compile(lambda x: F.gelu(F.layer_norm(x, (32,)) * g + b, approximate="tanh"),
                     passes={"fusion": False}).stats(x)
    assert off["kernels"] == off["primitive_nodes"] > st["kernels"]
