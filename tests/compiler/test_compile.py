"""gc.compile: tracing into the IR, captured state and write-backs, the cache and its guards,
explain(), the IR stages and dumps, gradients inside compiled functions, and eager backward
through a compiled call. Every compiled graph is also verified and round-tripped through its
text form by the autouse fixture in conftest.py."""
from __future__ import annotations

import glob
import os
import re

import numpy as np
import pytest

import graphc as gc
from graphc.ir import parse_graph, print_graph, verify

F = gc.nn.functional


def default_stages():
    from graphc.passes.manager import DEFAULT_PASSES
    return ["traced"] + [name for name, _ in DEFAULT_PASSES]


def arr(t):
    return np.array(t.detach().numpy(), copy=True)


def close(a, b, rtol=1e-6, atol=1e-6):
    a = arr(a) if isinstance(a, gc.Tensor) else np.asarray(a)
    b = arr(b) if isinstance(b, gc.Tensor) else np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def T(*values, dtype=None, requires_grad=False):
    return gc.tensor(np.array(values, dtype=np.float64).reshape(-1) if len(values) > 1 else values[0],
                     dtype=dtype or gc.float32, requires_grad=requires_grad)


# ---- tracing basics ------------------------------------------------------------------------------

W_GLOBAL = gc.tensor([[1.0, -2.0], [0.5, 3.0], [-1.0, 0.25]])


def test_trace_records_primitives_and_lifts_captured_state(checked_graphs):
    @gc.compile
    def f(x):
        return (x @ W_GLOBAL).tanh().sum()

    x = gc.tensor([[0.1, 0.2, 0.3], [-1.0, 0.0, 2.0]])
    close(f(x), (x @ W_GLOBAL).tanh().sum())
    g = f.graph(x, stage="traced")
    assert [(v.kind, v.label) for v in g.inputs] == [("arg", "x"), ("state", "W_GLOBAL")]
    assert [n.op for n in g.nodes] == ["matmul", "tanh", "sum"]
    assert g.updates == [] and len(g.outputs) == 1
    assert g.nodes[0].loc.startswith("test_compile.py:")
    assert "f" in checked_graphs
    text = f.ir(x)
    assert text.startswith("graph f(%x: f32[2,3], state %W_GLOBAL: f32[3,2]) {")


def test_inplace_update_of_captured_state_is_a_write_back_applied_once_per_call():
    counter = gc.zeros(())
    total = gc.zeros(3)

    def step(x):
        counter.add_(1)
        total.add_(x * counter)
        return total * 1

    c = gc.compile(step)
    x = gc.tensor([1.0, 2.0, 3.0])
    r1, r2 = c(x), c(x)
    assert float(counter.item()) == 2.0
    close(total, [3.0, 6.0, 9.0])
    close(r1, [1.0, 2.0, 3.0])
    close(r2, [3.0, 6.0, 9.0])
    text = c.ir(x)
    assert "update counter <- %" in text and "update total <- %" in text
    # eager twice from the same start gives the same
    counter.zero_(), total.zero_()
    e1, e2 = step(x), step(x)
    close(e1, r1), close(e2, r2)


def test_inplace_update_of_an_argument_is_written_back():
    def f(x):
        x.mul_(2)
        return x + 1

    c = gc.compile(f)
    a, b = gc.tensor([1.0, 2.0]), gc.tensor([1.0, 2.0])
    for _ in range(2):
        close(c(a), f(b))
        close(a, b)
    assert "update x <- %" in c.ir(a)


def test_python_scalars_and_shapes_are_static():
    @gc.compile
    def f(x, scale, n):
        return x * scale + x.shape[0] * n

    x = gc.ones(3)
    close(f(x, 2.0, 1), [5.0] * 3)
    close(f(x, 2.0, 1), [5.0] * 3)
    close(f(x, 3.0, 1), [6.0] * 3)             # a different Python scalar retraces
    close(f(gc.ones(4), 3.0, 1), [7.0] * 4)     # a different shape retraces
    assert len(f.traces) == 3
    ir = f.ir(x, 3.0, 1)
    assert "value=3.0" in ir and "state" not in ir


# ---- the cache and explain() ---------------------------------------------------------------------

def test_retrace_reasons_for_signature_changes(capsys):
    @gc.compile(explain=True)
    def f(x, s):
        return (x[0] if isinstance(x, tuple) else x) * s

    x = gc.ones(2, 3)
    f(x, 2.0)
    f(x, 2.0)
    f(x, 3.0)
    f(gc.ones(4, 3), 3.0)
    f(gc.ones(4, 3, dtype=gc.float64), 3.0)
    f(gc.ones(4, 3, requires_grad=True), 3.0)
    with gc.no_grad():
        f(gc.ones(4, 3, requires_grad=True), 3.0)
    f((x,), 3.0)
    assert len(f.traces) == 7
    log = f.explain()
    lines = log.splitlines()
    assert lines[0] == "f: 7 trace(s)"
    assert "first call" in lines[1]
    assert "'s' changed from float 2.0 to float 3.0" in lines[2] and "python scalar" in lines[2]
    assert "'x' changed" in lines[3] and "shape change" in lines[3]
    assert "dtype change" in lines[4] and "float64" in lines[4]
    assert "requires_grad change" in lines[5]
    assert "grad mode changed" in lines[6] and "'x'" not in lines[6]
    assert "structure of the arguments changed" in lines[7]
    err = capsys.readouterr().err
    assert err.count("graphc: tracing f") == 7 and "grad mode changed" in err


def test_guard_failures_retrace_with_reasons():
    import types
    mod = types.ModuleType("guarded")
    exec("import graphc as gc\nw = gc.ones(3)\ndef f(x):\n    return x * w\n", mod.__dict__)
    f = gc.compile(mod.f)
    x = gc.tensor([1.0, 2.0, 3.0])
    close(f(x), [1.0, 2.0, 3.0])
    mod.w = gc.full((3,), 2.0)                   # the global is rebound to another tensor
    close(f(x), [2.0, 4.0, 6.0])
    assert "global 'w' now refers to a different object" in f.explain()

    v = gc.ones(3)

    def g(x):
        return x + v
    cg = gc.compile(g)
    close(cg(x), [2.0, 3.0, 4.0])
    v = gc.zeros(3)                              # the closure variable is rebound  # noqa: F841
    close(cg(x), [1.0, 2.0, 3.0])
    assert "closure variable 'v' now refers to a different object" in cg.explain()


def test_guard_on_captured_grad_going_from_none_to_a_tensor():
    p = gc.tensor([1.0, 2.0], requires_grad=True)

    @gc.compile
    def step(x):
        loss = (p * x).sum()
        loss.backward()
        return loss

    x = gc.tensor([3.0, 4.0])
    step(x)
    close(p.grad, [3.0, 4.0])
    step(x)                                      # accumulates onto the existing .grad, as eagerly
    close(p.grad, [6.0, 8.0])
    step(x)
    close(p.grad, [9.0, 12.0])
    assert len(step.traces) == 2
    assert "'p.grad' was None when traced, now a tensor" in step.explain()
    assert "state %p.grad" in step.ir(x) and "update p.grad <- %" in step.ir(x)
    p.grad = None
    step(x)                                      # the first trace again: no retrace
    close(p.grad, [3.0, 4.0])
    assert len(step.traces) == 2


def test_guards_on_modules_train_mode_and_replaced_parameters():
    gc.manual_seed(0)
    model = gc.nn.Linear(3, 2)

    def f(x):
        return model(x)
    c = gc.compile(f)
    x = gc.randn(4, 3)
    close(c(x), model(x))
    model.eval()
    close(c(x), model(x))
    model.weight = gc.nn.Parameter(gc.zeros(2, 3))
    close(c(x), model(x))
    log = c.explain()
    assert "module 'model' switched between train() and eval()" in log
    assert "parameter 'model.weight' was replaced by another tensor" in log


def test_unknown_backend_and_pass_switches():
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        gc.compile(lambda x: x, backend="nope")
    f = gc.compile(lambda x: x + 1, passes={"dce": False})
    x = gc.ones(2)
    close(f(x), [2.0, 2.0])
    assert f.stages(x) == [s for s in default_stages() if s != "dce"]
    g = gc.compile(lambda x: x + 1, passes={"no_such_pass": True})
    with pytest.raises(ValueError, match="unknown pass"):
        g(x)


# ---- IR stages and dumps -------------------------------------------------------------------------

def _dead_code_fn(x):
    unused = x.exp() * 3       # noqa: F841  (dead: DCE removes it)
    return x.sum()


def test_ir_stages():
    f = gc.compile(_dead_code_fn)
    x = gc.ones(2, 2)
    stages = default_stages()
    assert f.stages(x) == stages and stages[:2] == ["traced", "verify"] and "dce" in stages
    traced, dced = f.ir(x, stage="traced"), f.ir(x, stage="dce")
    assert "exp" in traced and "exp" not in dced and "exp" not in f.ir(x)
    assert f.ir(x, stage="verify") == traced
    assert f.ir(x) == f.ir(x, stage="final") == f.ir(x, stage=stages[-1])
    allt = f.ir(x, stage="all")
    assert [ln for ln in allt.splitlines() if ln.startswith("# ----")] == [f"# ---- {s}" for s in stages]
    assert "# _dead" not in f.ir(x) and "test_compile.py:" in f.ir(x, locs=True)
    with pytest.raises(KeyError, match="unknown stage 'nope'"):
        f.ir(x, stage="nope")
    for stage in stages:
        g = f.graph(x, stage=stage)
        verify(g)
        assert parse_graph(print_graph(g, locs=True)) == g
    assert len(f.traces) == 1                   # inspecting does not retrace


def _check_dumps(d, graph_name, entry_passes):
    files = sorted(glob.glob(os.path.join(d, f"{graph_name}.*.ir")))
    names = [os.path.basename(p) for p in files]
    assert names == [f"{graph_name}.{i:02d}.{s}.ir" for i, (s, _) in enumerate(entry_passes.stages)]
    for p, (stage, g) in zip(files, entry_passes.stages):
        text = open(p).read()
        assert re.search(r"# \S+\.py:\d+$", text, re.M), "dumps carry `# file:line` locations"
        back = parse_graph(text)
        verify(back)
        assert back == g


def test_dump_dir_writes_every_stage_and_each_dump_parses_back(tmp_path):
    d = str(tmp_path / "dumps")
    f = gc.compile(_dead_code_fn, dump=d)
    x = gc.ones(2, 2)
    f(x)
    _check_dumps(d, "_dead_code_fn", f.entry(x).passes)


def test_graphc_dump_env(tmp_path, monkeypatch):
    d = str(tmp_path / "envdumps")
    monkeypatch.setenv("GRAPHC_DUMP", d)
    w = gc.tensor([1.0, 2.0], requires_grad=True)

    def loss_fn(x):
        return (x * w).tanh().sum()
    f = gc.compile(loss_fn, backend="interp")
    x = gc.tensor([0.5, -0.5])
    loss = f(x)
    _check_dumps(d, "loss_fn", f.entry(x).passes)
    loss.backward()                              # eager backward: its graph is dumped too
    assert sorted(os.path.basename(p) for p in glob.glob(os.path.join(d, "loss_fn_backward.*"))) == \
        [f"loss_fn_backward.{i:02d}.{s}.ir" for i, s in enumerate(default_stages())]
    for p in glob.glob(os.path.join(d, "*.ir")):
        verify(parse_graph(open(p).read()))


# ---- backward inside a compiled function ---------------------------------------------------------

def _sgd_problem(dtype=gc.float32):
    gc.manual_seed(3)
    w = gc.randn(4, 3, dtype=dtype, requires_grad=True)
    b = gc.zeros(3, dtype=dtype, requires_grad=True)
    x = gc.randn(8, 4, dtype=dtype)
    y = gc.randint(0, 3, (8,))
    return w, b, x, y


def test_traced_backward_matches_eager_and_clears_grads():
    w, b, x, y = _sgd_problem()
    w0, b0 = w.detach().clone(), b.detach().clone()

    def make(w, b):
        def step(x, y):
            loss = F.cross_entropy(x @ w + b, y)
            loss.backward()
            with gc.no_grad():
                w.sub_(0.5 * w.grad)
                b.sub_(0.5 * b.grad)
                w.grad = None
                b.grad = None
            return loss
        return step

    c = gc.compile(make(w, b))
    w2, b2 = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    e = make(w2, b2)
    for _ in range(3):
        close(c(x, y), e(x, y), rtol=1e-5)
        close(w, w2, rtol=1e-5, atol=1e-6), close(b, b2, rtol=1e-5, atol=1e-6)
        assert w.grad is None and b.grad is None
    assert len(c.traces) == 1
    ir = c.ir(x, y)
    assert "update w <- %" in ir and "update b <- %" in ir and ".grad" not in ir


def test_grad_of_captured_and_argument_leaves_written_back():
    w = gc.tensor([1.0, -2.0], requires_grad=True)

    def f(x):
        loss = (w * x * x).sum()
        loss.backward()
        return loss

    c = gc.compile(f)
    x = gc.tensor([3.0, 4.0], requires_grad=True)
    x2 = gc.tensor([3.0, 4.0], requires_grad=True)
    c(x)
    close(w.grad, [9.0, 16.0]), close(x.grad, [6.0, -16.0])
    c(x2)                                        # the argument's .grad is bound per call
    close(x2.grad, [6.0, -16.0]), close(x.grad, [6.0, -16.0]), close(w.grad, [18.0, 32.0])
    assert "update x.grad <- %" in c.ir(x)


def test_inplace_update_of_a_grad_inside_the_trace():
    w = gc.tensor([1.0, 2.0], requires_grad=True)
    w.grad = gc.tensor([5.0, 5.0])

    @gc.compile
    def f(x):
        w.grad.zero_()
        loss = (w * x).sum()
        loss.backward()
        w.grad.mul_(10)                          # e.g. gradient scaling
        return loss

    f(gc.tensor([1.0, 3.0]))
    close(w.grad, [10.0, 30.0])


def test_no_grad_regions_cut_the_traced_gradient():
    def make(w):
        def f():
            with gc.no_grad():
                m = w.mean()
            loss = (w * m).sum()
            loss.backward()
            return loss
        return f

    w1 = gc.tensor([0.5, -1.0, 2.0], requires_grad=True)
    w2 = gc.tensor([0.5, -1.0, 2.0], requires_grad=True)
    make(w1)()
    gc.compile(make(w2))()
    close(w2.grad, w1.grad)
    close(w2.grad, [0.5, 0.5, 0.5])


def test_two_training_steps_in_one_trace():
    def make(w):
        def two():
            for _ in range(2):
                loss = (w ** 2).sum()
                loss.backward()
                with gc.no_grad():
                    w.sub_(0.1 * w.grad)
                    w.grad = None
            return loss
        return two

    w1 = gc.tensor([0.5, -1.0, 2.0], requires_grad=True)
    w2 = gc.tensor([0.5, -1.0, 2.0], requires_grad=True)
    close(gc.compile(make(w2))(), make(w1)())
    close(w2, w1)
    close(w2, [0.32, -0.64, 1.28])


def test_autograd_grad_inside_a_trace():
    def g(x):
        h = x * 2
        loss = (h ** 2).sum()
        gh, = gc.autograd.grad(loss, h, retain_graph=True)       # an intermediate
        gx, = gc.autograd.grad(loss, x, retain_graph=True)
        return gh, gx

    x = gc.tensor([1.0, -2.0, 4.0], requires_grad=True)
    for a, b in zip(gc.compile(g)(x), g(x)):
        close(a, b)

    w = gc.tensor([0.5, -1.0, 2.0], requires_grad=True)

    def h():
        loss = (w ** 3).sum()
        gw, = gc.autograd.grad(loss, w, retain_graph=True)       # no create_graph: a constant
        (loss + gw.sum()).backward()
        return loss

    h()
    expect = arr(w.grad)
    w.grad = None
    gc.compile(h)()
    close(w.grad, expect)
    close(expect, [0.75, 3.0, 12.0])


# ---- gc.grad / gc.value_and_grad -----------------------------------------------------------------

def _f(x):
    return (x.tanh() * x).sum()


@pytest.mark.parametrize("where", ["eager", "compiled"])
def test_grad_and_value_and_grad(where):
    wrap = (lambda fn: fn) if where == "eager" else gc.compile
    x = gc.tensor([0.3, -1.2, 2.0], dtype=gc.float64)
    t = np.tanh(arr(x))
    d1 = t + arr(x) * (1 - t * t)
    close(wrap(gc.grad(_f))(x), d1)
    v, g = wrap(gc.value_and_grad(_f))(x)
    close(v, (t * arr(x)).sum()), close(g, d1)
    # second derivative, nested
    d2 = 2 * (1 - t * t) - 2 * arr(x) * t * (1 - t * t)
    close(wrap(gc.grad(lambda a: gc.grad(_f)(a).sum()))(x), d2)
    # argnums and has_aux
    (val, aux), (ga, gb) = wrap(gc.value_and_grad(lambda a, b: ((a * b).sum(), a + b),
                                                  argnums=(0, 1), has_aux=True))(x, x * 2)
    close(val, 2 * (arr(x) ** 2).sum()), close(aux, 3 * arr(x))
    close(ga, 2 * arr(x)), close(gb, arr(x))


def test_grad_treats_values_sharing_the_argument_as_constants():
    def outer(x):
        y = x * 2
        return gc.grad(lambda a: (a * y).sum())(y)      # y inside is a constant, as eagerly

    x = gc.tensor([0.5, -1.0, 2.0])
    close(gc.compile(outer)(x), outer(x))
    close(outer(x), [1.0, -2.0, 4.0])


# ---- results: aliasing, outputs, nesting ---------------------------------------------------------

def test_results_do_not_alias_inputs_or_state():
    w = gc.tensor([1.0, 2.0, 3.0])

    @gc.compile
    def f(x):
        return x, w, x.detach(), x.reshape(3, 1), w.expand(2, 3), x

    x = gc.tensor([4.0, 5.0, 6.0])
    outs = f(x)
    for o in outs:
        o.add_(100.0)                           # every result is its own writable tensor
    close(x, [4.0, 5.0, 6.0]), close(w, [1.0, 2.0, 3.0])
    close(outs[0], [104.0, 105.0, 106.0]), close(outs[5], [104.0, 105.0, 106.0])


def test_returning_structures_and_python_values():
    Pair = __import__("collections").namedtuple("Pair", "a b")

    def f(x, k):
        return {"sum": x.sum(), "parts": [x * k, Pair(x + 1, None)], "k": k, "name": "f",
                "shape": tuple(x.shape)}

    c = gc.compile(f)
    x = gc.tensor([1.0, 2.0])
    got, want = c(x, 3), f(x, 3)
    assert set(got) == set(want) and got["k"] == 3 and got["name"] == "f" and got["shape"] == (2,)
    close(got["sum"], want["sum"]), close(got["parts"][0], want["parts"][0])
    assert isinstance(got["parts"][1], Pair) and got["parts"][1].b is None
    close(got["parts"][1].a, [2.0, 3.0])
    assert gc.compile(lambda: None)() is None


def test_compiled_called_inside_compiled_inlines():
    @gc.compile
    def inner(x):
        return x * 2

    @gc.compile
    def outer(x):
        return inner(x).exp() + inner(x + 1)

    x = gc.tensor([0.0, 1.0])
    close(outer(x), np.exp([0.0, 2.0]) + [2.0, 4.0], rtol=1e-6)
    assert inner.traces == []                    # never traced on its own
    assert [n.op for n in outer.graph(x, stage="traced").nodes].count("mul") == 2


def test_calling_twice_equals_eager_twice_with_optimizer_state():
    def run(compiled):
        gc.manual_seed(0)
        m = gc.nn.Linear(4, 3)
        opt = gc.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        x, y = gc.randn(8, 4), gc.randint(0, 3, (8,))

        def step(x, y):
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()                     # .grad is None between calls
            return loss
        f = gc.compile(step) if compiled else step
        losses = [float(f(x, y).item()) for _ in range(4)]
        return losses, arr(m.weight), f

    (le, we, _), (lc, wc, f) = run(False), run(True)
    np.testing.assert_allclose(lc, le, rtol=1e-6)
    np.testing.assert_allclose(wc, we, rtol=1e-5, atol=1e-7)
    # the first trace created the momentum buffers, so the second call retraced with them present
    assert len(f.traces) == 2 and "created new state" in f.explain()


# ---- eager backward through a compiled call ------------------------------------------------------

def test_eager_backward_through_compiled_module():
    gc.manual_seed(1)
    m = gc.nn.Linear(3, 2)
    cm = gc.compile(m)
    x = gc.randn(4, 3, requires_grad=True)
    y = cm(x)
    assert y.requires_grad and y.grad_fn is not None and y.grad_fn.name == "CompiledFunctionBackward"
    (y ** 2).sum().backward()
    got = [arr(m.weight.grad), arr(m.bias.grad), arr(x.grad)]
    m.zero_grad()
    x.grad = None
    (m(x) ** 2).sum().backward()
    for a, b in zip(got, [m.weight.grad, m.bias.grad, x.grad]):
        close(a, b, rtol=1e-5)
    with gc.no_grad():
        assert cm(x).grad_fn is None and not cm(x).requires_grad


def test_eager_backward_through_several_outputs_and_nonleaf_inputs():
    w = gc.tensor([0.5, -1.5, 2.0], dtype=gc.float64, requires_grad=True)

    def f(x):
        return x.tanh(), (x * w.sum()).exp(), x.sum() > 0, (x * w).sum() * 2

    c = gc.compile(f)
    a = gc.tensor([0.1, 0.2, -0.3], dtype=gc.float64, requires_grad=True)

    def grads(fn):
        w.grad, a.grad = None, None
        x = a * 3                               # a non-leaf: gradients flow on into a
        t, e, flag, s = fn(x)
        assert not flag.requires_grad
        (t.sum() + (e * e).sum() + s).backward()
        return arr(w.grad), arr(a.grad)

    for got, want in zip(grads(c), grads(f)):
        close(got, want, rtol=1e-10)
    t, e, flag, s = c(a)
    (t.sum() + e.sum()).backward()               # some outputs unused: zero cotangents


def test_eager_double_backward_through_compiled():
    x = gc.tensor([0.5, -1.0, 2.0], dtype=gc.float64, requires_grad=True)
    c = gc.compile(lambda x: (x ** 3).sin().sum())
    g, = gc.autograd.grad(c(x), x, create_graph=True)
    xe = arr(x)
    close(g, np.cos(xe ** 3) * 3 * xe ** 2, rtol=1e-10)
    h, = gc.autograd.grad(g.sum(), x)
    close(h, -np.sin(xe ** 3) * 9 * xe ** 4 + np.cos(xe ** 3) * 6 * xe, rtol=1e-10)


def test_eager_backward_errors_match_eager_autograd():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    w = gc.tensor([3.0, 4.0], requires_grad=True)
    c = gc.compile(lambda x: (x * w).sum())
    loss = c(x)
    with gc.no_grad():
        w.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*'w'"):
        loss.backward()
    loss = c(x)
    loss.backward(retain_graph=True)
    loss.backward()
    close(x.grad, [8.0, 10.0])
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()


def test_no_grad_fn_without_differentiable_inputs():
    c = gc.compile(gc.grad(_f))
    g = c(gc.tensor([0.3, 0.4]))
    assert not g.requires_grad and g.grad_fn is None
    c2 = gc.compile(lambda x: x * 2)
    assert c2(gc.ones(2)).grad_fn is None


def test_compiled_train_step_output_keeps_its_backward_until_params_change():
    w = gc.tensor([1.0, 2.0], requires_grad=True)

    @gc.compile
    def step(x):
        loss = (w * w * x).sum()
        loss.backward()
        with gc.no_grad():
            w.sub_(0.1 * w.grad)
        w.grad = None
        return loss

    loss = step(gc.ones(2))
    close(w, [0.8, 1.6])
    assert loss.grad_fn is not None             # as eagerly: the loss still has its history,
    with pytest.raises(RuntimeError, match="updated by the compiled call itself"):
        loss.backward()                         # but w, which it needs, has changed since
    loss = step(gc.ones(2))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()                         # the eager error, for the eager program too
    we = gc.tensor([1.0, 2.0], requires_grad=True)
    loss = (we * we).sum()
    with gc.no_grad():
        we.sub_(0.1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


# ---- guards on the Python values a trace read ----------------------------------------------------

LR = 0.1


def _scaled(x):
    return x * LR                                # read by a helper the compiled function calls


def test_python_globals_read_while_tracing_are_guarded():
    global LR

    @gc.compile
    def f(x):
        return _scaled(x) + 1

    x = gc.ones(2)
    try:
        close(f(x), [1.1, 1.1])
        LR = 0.5
        close(f(x), [1.5, 1.5])
        close(f(x), [1.5, 1.5])
    finally:
        LR = 0.1
    assert len(f.traces) == 2
    assert "global 'LR' changed from 0.1 to 0.5 (python values are static" in f.explain()


def test_attributes_of_a_bound_methods_object_are_guarded():
    class Scaler:
        def __init__(self):
            self.w = gc.ones(2)
            self.k = 2.0

        def apply(self, x):
            return x * self.w * self.k

    s = Scaler()
    c = gc.compile(s.apply)
    x = gc.tensor([1.0, 2.0])
    close(c(x), [2.0, 4.0])
    assert "state %self.w" in c.ir(x)
    s.k = 3.0
    close(c(x), [3.0, 6.0])
    s.w = gc.zeros(2)
    close(c(x), [0.0, 0.0])
    log = c.explain()
    assert "attribute 'self.k' changed from 2.0 to 3.0" in log
    assert "attribute 'self.w' now refers to a different object" in log


def test_module_attributes_are_guarded():
    class Scale(gc.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = gc.nn.Linear(2, 2)
            self.factor = 1.0

        def forward(self, x):
            return self.lin(x) * self.factor

    m = Scale()
    cm = gc.compile(m)
    x = gc.ones(3, 2)
    close(cm(x), m(x))
    m.factor = 4.0
    close(cm(x), m(x))
    assert "attribute 'Scale.factor' changed from 1.0 to 4.0" in cm.explain()


def test_notes_name_the_user_line_not_library_frames():
    def f(x):
        return x.reshape(5)                      # numpy or graphc raise; the note names this line

    with pytest.raises(RuntimeError) as e:
        gc.compile(f)(gc.ones(2, 2))
    notes = "\n".join(getattr(e.value, "__notes__", []))
    assert "test_compile.py" in notes and "x.reshape(5)" in notes


def test_retain_grad_and_grad_argument_on_compiled_outputs():
    x = gc.tensor([1.0, 2.0, 3.0], requires_grad=True)
    c = gc.compile(lambda x: (x * x, x.sum()))
    sq, s = c(x)
    sq.retain_grad()
    (sq * 2).sum().backward(retain_graph=True)
    close(sq.grad, [2.0, 2.0, 2.0]), close(x.grad, [4.0, 8.0, 12.0])
    x.grad = None
    s.backward(gc.tensor(3.0, dtype=gc.float64))       # a cotangent of another dtype is cast
    close(x.grad, [3.0, 3.0, 3.0])


def test_attribute_names_are_not_mistaken_for_globals():
    import types
    mod = types.ModuleType("loop")
    exec("import graphc as gc\n"
         "m = gc.nn.Linear(2, 1)\n"
         "opt = gc.optim.SGD(m.parameters(), lr=0.1)\n"
         "def train_step(x):\n"
         "    opt.zero_grad()\n"
         "    loss = m(x).sum()\n"
         "    loss.backward()\n"
         "    opt.step()\n"
         "    return loss\n", mod.__dict__)
    f = gc.compile(mod.train_step)
    for step in range(4):
        mod.step = step                          # a global named like the attribute opt.step
        f(gc.ones(3, 2))
    assert len(f.traces) <= 2, f.explain()


# ---- guards added by library code (Trace.add_guard) -------------------------------------------------

def test_trace_add_guard_retraces_with_its_description():
    from graphc import tracing
    flag = {"on": True}

    def helper(x):           # library code reading a Python setting while traced
        tr = tracing.active()
        if tr is not None:
            seen = flag["on"]
            tr.add_guard(lambda: f"flag changed to {flag['on']}", lambda: flag["on"] == seen)
        return x * 2 if flag["on"] else x * 3

    f = gc.compile(lambda x: helper(x) + 1)
    x = gc.ones(2)
    close(f(x), [3.0, 3.0])
    close(f(x), [3.0, 3.0])
    assert len(f.traces) == 1
    flag["on"] = False
    close(f(x), [4.0, 4.0])
    assert len(f.traces) == 2
    assert "guard failed: flag changed to False" in f.explain()
    flag["on"] = True                            # the first trace is valid again: reused
    close(f(x), [3.0, 3.0])
    assert len(f.traces) == 2


def test_trace_add_guard_with_a_key_keeps_the_last():
    from graphc.ir.graph import Graph
    from graphc.tracing import Trace
    tr = Trace(Graph("g"))
    tr.add_guard("a", lambda: True, key="k")
    tr.add_guard("b", lambda: True)
    tr.add_guard("c", lambda: False, key="k")
    assert [d for d, _ in tr.guards] == ["c", "b"]


# ---- guards on an optimizer's Python settings ---------------------------------------------------------

def _opt_setup(make_opt, seed=0):
    gc.manual_seed(seed)
    model = gc.nn.Linear(3, 2)
    opt = make_opt(model.parameters())
    x, y = gc.randn(5, 3), gc.randn(5, 2)

    def step(x, y):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return model, opt, step, x, y


def _run_with_change(make_opt, change, compiled):
    model, opt, step, x, y = _opt_setup(make_opt)
    fn = gc.compile(step) if compiled else step
    losses = []
    for i in range(6):
        if i == 3:
            change(opt)
        losses.append(float(fn(x, y).item()))
    return losses, [arr(p) for p in model.parameters()], fn


def _set(key, value, group=0):
    def change(opt):
        opt.param_groups[group][key] = value
    return change


OPT_CHANGES = {
    "sgd-nesterov": (lambda p: gc.optim.SGD(p, lr=0.1, momentum=0.9), _set("nesterov", True), "'nesterov'"),
    "sgd-maximize": (lambda p: gc.optim.SGD(p, lr=0.1), _set("maximize", True), "'maximize'"),
    "sgd-momentum-on": (lambda p: gc.optim.SGD(p, lr=0.1), _set("momentum", 0.9), "'momentum'"),
    "sgd-momentum-off": (lambda p: gc.optim.SGD(p, lr=0.1, momentum=0.9), _set("momentum", 0), "'momentum'"),
    "sgd-weight-decay-on": (lambda p: gc.optim.SGD(p, lr=0.1), _set("weight_decay", 0.1), "'weight_decay'"),
    "adam-amsgrad": (lambda p: gc.optim.Adam(p, lr=0.05), _set("amsgrad", True), "'amsgrad'"),
    "adam-weight-decay-off": (lambda p: gc.optim.Adam(p, lr=0.05, weight_decay=0.1),
                              _set("weight_decay", 0), "'weight_decay'"),
    "rmsprop-centered": (lambda p: gc.optim.RMSprop(p, lr=0.01), _set("centered", True), "'centered'"),
    "rmsprop-momentum-on": (lambda p: gc.optim.RMSprop(p, lr=0.01), _set("momentum", 0.5), "'momentum'"),
    "adagrad-lr-decay-on": (lambda p: gc.optim.Adagrad(p, lr=0.1), _set("lr_decay", 0.01), "'lr_decay'"),
}


@pytest.mark.parametrize("case", sorted(OPT_CHANGES))
def test_optimizer_setting_change_retraces_and_matches_eager(case):
    make_opt, change, key = OPT_CHANGES[case]
    le, pe, _ = _run_with_change(make_opt, change, compiled=False)
    lc, pc, fn = _run_with_change(make_opt, change, compiled=True)
    np.testing.assert_allclose(lc, le, rtol=1e-5, atol=1e-7)
    for a, b in zip(pc, pe):
        close(a, b, rtol=1e-5, atol=1e-6)
    reasons = [r for _, r in fn.traces]
    hit = [r for r in reasons if key in r]
    assert hit, fn.explain()
    assert "optimizer 'opt'" in hit[0] and "param_groups[0]" in hit[0], hit[0]


@pytest.mark.parametrize("change", [
    _set("lr", 0.01), _set("momentum", 0.5), _set("dampening", 0.0), _set("weight_decay", 0.2)])
def test_optimizer_hyperparameter_values_do_not_retrace(change):
    make = lambda p: gc.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.05)  # noqa: E731
    le, pe, _ = _run_with_change(make, change, compiled=False)
    lc, pc, fn = _run_with_change(make, change, compiled=True)
    np.testing.assert_allclose(lc, le, rtol=1e-5, atol=1e-7)
    for a, b in zip(pc, pe):
        close(a, b, rtol=1e-5, atol=1e-6)
    # the first trace creates the momentum buffers: one retrace for that, none for the change
    assert len(fn.traces) == 2, fn.explain()


def test_adam_betas_and_eps_values_do_not_retrace():
    make = lambda p: gc.optim.Adam(p, lr=0.05)  # noqa: E731

    def change(opt):
        opt.param_groups[0]["betas"] = (0.8, 0.99)
        opt.param_groups[0]["eps"] = 1e-6
        opt.param_groups[0]["lr"] = 0.01
    le, _, _ = _run_with_change(make, change, compiled=False)
    lc, _, fn = _run_with_change(make, change, compiled=True)
    np.testing.assert_allclose(lc, le, rtol=1e-5, atol=1e-7)
    assert len(fn.traces) == 2, fn.explain()


def test_add_param_group_retraces_and_steps_the_new_params():
    def run(compiled):
        gc.manual_seed(0)
        model = gc.nn.Linear(3, 2)
        extra = gc.zeros(2, requires_grad=True)
        opt = gc.optim.SGD(model.parameters(), lr=0.1)
        x, y = gc.randn(5, 3), gc.randn(5, 2)

        def step(x, y):
            opt.zero_grad()
            loss = F.mse_loss(model(x) + extra, y)
            loss.backward()
            opt.step()
            return loss
        fn = gc.compile(step) if compiled else step
        for i in range(4):
            if i == 2:
                opt.add_param_group({"params": [extra], "lr": 0.5})
            fn(x, y)
        return arr(extra), fn

    e, _ = run(False)
    c, fn = run(True)
    close(c, e)
    assert np.abs(e).sum() > 0                   # the new group really stepped
    assert "param groups changed (1 when traced, now 2" in fn.explain()


def test_replaced_optimizer_state_tensor_retraces():
    model, opt, step, x, y = _opt_setup(lambda p: gc.optim.SGD(p, lr=0.1, momentum=0.9))
    fn = gc.compile(step)
    fn(x, y)
    fn(x, y)
    fn(x, y)
    assert len(fn.traces) == 2
    buf = opt.state[model.weight]["momentum_buffer"]
    with gc.no_grad():
        buf.mul_(0.5)                            # in place: same tensor, no retrace
    fn(x, y)
    assert len(fn.traces) == 2
    opt.state[model.weight]["momentum_buffer"] = gc.zeros(2, 3)   # a new tensor object
    w_before = arr(model.weight)
    fn(x, y)
    assert len(fn.traces) == 3
    assert "state 'momentum_buffer' of a parameter [2, 3] was replaced by another tensor" in fn.explain()
    # the new buffer is the one the step updated
    assert np.abs(arr(opt.state[model.weight]["momentum_buffer"])).sum() > 0
    assert not np.allclose(arr(model.weight), w_before)


def test_optimizer_guard_does_not_fire_for_load_state_dict_in_place():
    model, opt, step, x, y = _opt_setup(lambda p: gc.optim.Adam(p, lr=0.05))
    fn = gc.compile(step)
    for _ in range(3):
        fn(x, y)
    sd = opt.state_dict()
    fn(x, y)
    opt.load_state_dict(sd)                      # same shapes: written into the same tensors
    fn(x, y)
    assert len(fn.traces) == 2, fn.explain()


# ---- autograd.grad's create_graph while tracing ---------------------------------------------------------

@pytest.mark.parametrize("create_graph", [False, True])
def test_autograd_grad_create_graph_is_passed_to_the_trace(create_graph):
    seen = {}

    def f(x):
        y = (x ** 3).sum()
        g, = gc.autograd.grad(y, x, create_graph=create_graph)
        seen["requires_grad"] = g.requires_grad
        return g

    x = gc.tensor([1.0, 2.0], requires_grad=True)
    g = gc.compile(f)(x)
    assert seen["requires_grad"] is create_graph
    close(g, [3.0, 12.0])
    assert g.requires_grad is create_graph


def test_autograd_grad_create_graph_gives_second_derivative_in_a_trace():
    def f(x):
        g, = gc.autograd.grad((x ** 3).sum(), x, create_graph=True)
        g2, = gc.autograd.grad(g.sum(), x)
        return g2

    close(gc.compile(f)(gc.tensor([1.0, 2.0], requires_grad=True)), [6.0, 12.0])


# ---- eager backward through a compiled call that draws random numbers ------------------------------------

def test_eager_backward_through_compiled_random_call_recomputes_the_same_numbers():
    w = gc.tensor([1.0, -2.0, 3.0, 0.5], requires_grad=True)

    def f(x):
        noise = gc.rand(4)
        return (x * w * noise).sum(), noise

    c = gc.compile(f)
    x = gc.ones(4)
    for _ in range(3):
        gc.manual_seed(3)
        w.grad = None
        loss, noise = c(x)
        loss.backward()
        close(w.grad, noise)                     # d/dw = x * noise: the noise of this call
        gc.manual_seed(3)
        assert np.array_equal(arr(gc.rand(4)), arr(noise))
    loss, noise = c(x)                           # the generator moved on: other numbers
    w.grad = None
    loss.backward()
    close(w.grad, noise)


@pytest.mark.parametrize("backend", ["interp", "llvm"])
def test_one_compiled_function_from_several_threads(backend):
    """A compiled function called from several Python threads at once gives every thread its
    own right answer: the executable (one arena per graph) runs one call at a time."""
    import threading
    f = gc.compile(lambda x: (x * 2.0).exp().sum(1) + x.mean(1), backend=backend)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((64, 300)).astype(np.float32) for _ in range(4)]
    wants = [np.exp(x.astype(np.float64) * 2).sum(1) + x.mean(1) for x in xs]
    f(gc.tensor(xs[0]))
    errors = []

    def worker(x, want):
        try:
            t = gc.tensor(x)
            for _ in range(100):
                np.testing.assert_allclose(f(t).numpy(), want, rtol=1e-5)
        except Exception as e:     # noqa: BLE001 -- reported below
            errors.append(e)
    ts = [threading.Thread(target=worker, args=a) for a in zip(xs, wants)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    assert not errors, errors[0]
