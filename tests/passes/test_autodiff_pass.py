"""graphc.passes.autodiff.autodiff(graph, wrt): a pure Graph -> Graph pass, tested on
hand-written IR text and on traced graphs, against finite differences and eager autograd,
with the graphs run by the reference interpreter."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.backends.interpreter import Interpreter
from graphc.ir import TensorType, parse_graph, print_graph, verify
from graphc.passes.autodiff import autodiff, backprop

F = gc.nn.functional


def _with_attrs(text):
    """Hand-written IR, with the matmul attributes the registry declares (all off)."""
    from graphc.ops.registry import PRIMITIVES
    attrs = PRIMITIVES["matmul"].attrs
    return text.replace("MATMUL_ATTRS", "{" + ", ".join(f"{k}=False" for k in attrs) + "}" if attrs else "")

MLP_TEXT = """
graph loss(%x: f64[3,4], %w: f64[4,2], %b: f64[2], %idx: i64[3,1]) {
  %0: f64[3,2] = matmul(%x, %w) MATMUL_ATTRS
  %1: f64[3,2] = broadcast_to(%b) {shape=(3, 2)}
  %2: f64[3,2] = add(%0, %1)
  %3: f64[3,2] = tanh(%2)
  %4: f64[3,1] = max(%3) {axes=(1,), keepdim=True}
  %5: f64[3,2] = broadcast_to(%4) {shape=(3, 2)}
  %6: f64[3,2] = sub(%3, %5)
  %7: f64[3,2] = exp(%6)
  %8: f64[3,1] = sum(%7) {axes=(1,), keepdim=True}
  %9: f64[3,1] = log(%8)
  %10: f64[3,1] = take_along_axis(%6, %idx) {axis=1}
  %11: f64[3,1] = sub(%9, %10)
  %12: f64[2,4] = slice(%x) {starts=(0, 0), stops=(3, 4), steps=(2, 1)}
  %13: f64[8] = reshape(%12) {shape=(8,)}
  %14: f64[8] = sigmoid(%13)
  %15: f64[] = sum(%14) {axes=(0,), keepdim=False}
  %16: f64[4,3] = permute(%x) {perm=(1, 0)}
  %17: f64[4,7] = concat(%16, %w, %w) {axis=1}
  %18: f64[4,7] = mul(%17, %17)
  %19: f64[] = sum(%18) {axes=(0, 1), keepdim=False}
  %20: f64[] = sum(%11) {axes=(0, 1), keepdim=False}
  %21: f64[] = add(%20, %15)
  %22: f64[] = full() {shape=(), value=0.01, dtype=f64}
  %23: f64[] = mul(%19, %22)
  %24: f64[] = add(%21, %23)
  return %24, %3
}
"""

ELEMENTWISE_TEXT = """
graph elementwise(%a: f64[5], %b: f64[5]) {
  %0: f64[5] = sin(%a)
  %1: f64[5] = cos(%b)
  %2: f64[5] = mul(%0, %1)
  %3: f64[5] = exp(%b)
  %4: f64[5] = sqrt(%3)
  %5: f64[5] = rsqrt(%3)
  %6: f64[5] = div(%4, %5)
  %7: f64[5] = erf(%a)
  %8: f64[5] = abs(%7)
  %9: f64[5] = maximum(%a, %b)
  %10: f64[5] = minimum(%a, %b)
  %11: f64[5] = neg(%10)
  %12: f64[5] = pow(%3, %a)
  %13: b1[5] = gt(%a, %b)
  %14: f64[5] = where(%13, %2, %6)
  %15: f64[5] = add(%14, %8)
  %16: f64[5] = add(%15, %9)
  %17: f64[5] = sub(%16, %11)
  %18: f64[5] = add(%17, %12)
  %19: f64[5] = sigmoid(%a)
  %20: f64[5] = mul(%18, %19)
  %21: f64[7] = pad(%20) {lo=(1,), hi=(1,), interior=(0,), value=0.5}
  %22: f64[7] = mul(%21, %21)
  %23: f64[] = sum(%22) {axes=(0,), keepdim=False}
  return %23
}
"""


def _inputs_for(graph, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for v in graph.inputs:
        t = v.type
        if t.dtype.is_floating_point:
            out.append(rng.uniform(-1.0, 1.0, t.shape).astype(t.dtype.np))
        else:
            out.append(rng.integers(0, t.shape[-1] if t.shape else 2, t.shape).astype(t.dtype.np))
    return out


def _numeric_grads(graph, ins, wrt_names, eps=1e-6):
    run = Interpreter(graph)
    names = [v.name for v in graph.inputs]
    res = []
    for w in wrt_names:
        k = names.index(w)
        g = np.zeros_like(ins[k])
        for j in range(ins[k].size):
            plus = [a.copy() for a in ins]
            minus = [a.copy() for a in ins]
            plus[k].reshape(-1)[j] += eps
            minus[k].reshape(-1)[j] -= eps
            g.reshape(-1)[j] = (float(run(plus)[0]) - float(run(minus)[0])) / (2 * eps)
        res.append(g)
    return res


@pytest.mark.parametrize("text", [MLP_TEXT, ELEMENTWISE_TEXT], ids=["mlp", "elementwise"])
def test_autodiff_of_handwritten_ir_matches_finite_differences(text):
    g = parse_graph(_with_attrs(text))
    verify(g)
    before = print_graph(g, locs=True)
    wrt = [v.name for v in g.inputs if v.type.dtype.is_floating_point]
    d = autodiff(g, wrt)
    assert print_graph(g, locs=True) == before          # pure: the input graph is unchanged
    verify(d)
    assert parse_graph(print_graph(d)) == d
    n = len(g.outputs)
    assert [v.name for v in d.outputs[:n]] == [v.name for v in g.outputs]
    assert [v.type for v in d.outputs[n:]] == [v.type for v in g.inputs if v.name in wrt]
    ins = _inputs_for(g)
    got = Interpreter(d)(ins)
    for a, b in zip(got[:n], Interpreter(g)(ins)):      # the original outputs are unchanged
        np.testing.assert_allclose(a, b, rtol=1e-12)
    for name, analytic, numeric in zip(wrt, got[n:], _numeric_grads(g, ins, wrt)):
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7, err_msg=name)


def test_autodiff_defaults_unused_inputs_and_state():
    g = parse_graph("""
graph f(%x: f64[3], state %w: f64[3] "fc.w", %unused: f64[2], %n: i64[3]) {
  %0: f64[3] = mul(%x, %w)
  %1: f64[] = sum(%0) {axes=(0,), keepdim=False}
  return %1
  update fc.w <- %0
}""")
    d = autodiff(g)                                     # every floating-point input, in order
    assert len(d.outputs) == 1 + 3
    assert [(lbl, v.name) for lbl, v in d.updates] == [(lbl, v.name) for lbl, v in g.updates]
    x, w, u, n = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]), np.ones(2), np.arange(3)
    out = Interpreter(d)([x, w, u, n])
    np.testing.assert_allclose(out[1], w)
    np.testing.assert_allclose(out[2], x)
    np.testing.assert_allclose(out[3], np.zeros(2))     # no dependence: zeros
    np.testing.assert_allclose(out[4], x * w)           # the update is still computed
    d2 = autodiff(g, ["w"])
    np.testing.assert_allclose(Interpreter(d2)([x, w, u, n])[1], x)


def test_autodiff_rejects_bad_requests():
    g = parse_graph("graph f(%x: f64[3]) {\n  %0: f64[3] = exp(%x)\n  return %0\n}")
    with pytest.raises(ValueError, match="scalar"):
        autodiff(g)
    with pytest.raises(ValueError, match="not inputs"):
        autodiff(parse_graph("graph f(%x: f64[]) {\n  return %x\n}"), ["y"])
    with pytest.raises(ValueError, match="no output"):
        autodiff(parse_graph("graph f(%x: f64[]) {\n  return\n}"))
    with pytest.raises(ValueError, match="scalar"):
        autodiff(parse_graph("graph f(%x: i64[]) {\n  return %x\n}"))


def test_stop_gradient_blocks_the_gradient():
    g = parse_graph("""
graph f(%x: f64[2]) {
  %0: f64[2] = stop_gradient(%x)
  %1: f64[2] = mul(%0, %x)
  %2: f64[] = sum(%1) {axes=(0,), keepdim=False}
  return %2
}""")
    x = np.array([2.0, -3.0])
    np.testing.assert_allclose(Interpreter(autodiff(g))([x])[1], x)    # not 2x


def test_autodiff_of_an_output_that_is_an_input():
    d = autodiff(parse_graph("graph f(%x: f64[]) {\n  return %x\n}"))
    np.testing.assert_allclose(Interpreter(d)([np.array(3.0)])[1], 1.0)


# ---- against eager autograd, on traced graphs ----------------------------------------------------

def _traced(fn, *args):
    return gc.compile(fn).graph(*args, stage="traced")


CASES = {
    "softmax_ce": lambda x, w: F.cross_entropy(x @ w, gc.tensor([0, 2, 1, 2])),
    "log_softmax": lambda x, w: (F.log_softmax(x @ w, dim=0) * w.sum()).sum(),
    "layer_norm": lambda x, w: F.layer_norm(x, (3,)).mul(x).sum() + w.sum(),
    "mse_tanh": lambda x, w: F.mse_loss((x @ w).tanh(), gc.ones(4, 3, dtype=gc.float64)),
    "reductions": lambda x, w: x.amax(1).sum() + w.mean() * x.var() + x.std(0).sum(),
    "movement": lambda x, w: ((gc.cat([x.T, w], 1).reshape(-1).narrow(0, 2, 7) * 3).sum()
                              + x.unsqueeze(0).permute(2, 1, 0).pow(2).sum() + x[1:3, ::2].sum()
                              + gc.stack(w.split(1, 0), 2).tanh().sum()),
    "indexing": lambda x, w: (x.gather(1, gc.tensor([[0], [2], [1], [0]])).sum()
                              + w.index_select(0, gc.tensor([2, 0, 2])).pow(2).sum()),
    "batched_matmul": lambda x, w: (x.reshape(2, 2, 3) @ w.expand(2, 3, 3)).sigmoid().sum(),
    "relu_clamp": lambda x, w: (F.relu(x @ w) + (x @ w).clamp(-0.1, 0.2)).sum(),
}


@pytest.mark.parametrize("name", list(CASES))
def test_autodiff_matches_eager_autograd(name):
    fn = CASES[name]
    rng = np.random.default_rng(1)
    x = gc.tensor(rng.standard_normal((4, 3)))
    w = gc.tensor(rng.standard_normal((3, 3)))
    g = _traced(fn, x, w)
    d = autodiff(g, ["x", "w"])
    ins = [x.numpy(), w.numpy()]
    state = [v for v in g.inputs if v.kind == "state"]
    assert not state, f"unexpected captured state {state}"
    got = Interpreter(d)(ins)
    xe, we = x.clone().requires_grad_(), w.clone().requires_grad_()
    loss = fn(xe, we)
    gx, gw = gc.autograd.grad(loss, [xe, we], allow_unused=True)
    np.testing.assert_allclose(got[0], loss.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(got[1], 0 * ins[0] if gx is None else gx.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[2], 0 * ins[1] if gw is None else gw.numpy(), rtol=1e-9, atol=1e-12)


def test_second_derivative_by_applying_the_pass_twice():
    g = parse_graph("""
graph f(%x: f64[3]) {
  %0: f64[3] = tanh(%x)
  %1: f64[3] = mul(%0, %x)
  %2: f64[] = sum(%1) {axes=(0,), keepdim=False}
  return %2
}""")
    d = autodiff(g, ["x"])                              # outputs: f, df/dx
    h = d.copy()
    s = h.add_node("sum", [h.outputs[1]], {"axes": (0,), "keepdim": False}, TensorType((), gc.float64))
    h.outputs = [s]
    verify(h)
    dd = autodiff(h, ["x"])                             # d/dx sum(df/dx): the Hessian's row sums
    x = np.array([0.3, -1.2, 2.0])
    got = Interpreter(dd)([x])[1]
    xe = gc.tensor(x, requires_grad=True)
    gx, = gc.autograd.grad((xe.tanh() * xe).sum(), xe, create_graph=True)
    hx, = gc.autograd.grad(gx.sum(), xe)
    np.testing.assert_allclose(got, hx.numpy(), rtol=1e-12)


def test_backprop_wrt_intermediates_and_cut_values():
    from graphc.tracing import Trace, tracing
    g = parse_graph("""
graph f(%x: f64[3]) {
  %h: f64[3] = exp(%x)
  %m: f64[3] = sin(%h)
  %y: f64[3] = mul(%m, %h)
  %s: f64[] = sum(%y) {axes=(0,), keepdim=False}
  return %s
}""")
    x = np.array([0.1, -0.4, 0.7])
    h = np.exp(x)
    for cut, dh in (((), np.cos(h) * h + np.sin(h)), (("m",), np.sin(h))):
        gg = g.copy()
        vals = {v.name: v for v in gg.inputs} | {n.out.name: n.out for n in gg.nodes}
        tr = Trace(gg)
        with tracing(tr), gc.no_grad():
            seed = gc.ones_like(tr.tracer(vals["s"]))
            got = backprop(tr, [vals["s"]], [seed], [vals["h"], vals["x"], vals["s"]], cut=set(cut))
        gg.outputs = [t._value for t in got]
        verify(gg)
        dh_, dx_, ds_ = Interpreter(gg)([x])
        np.testing.assert_allclose(dh_, dh, rtol=1e-12)
        np.testing.assert_allclose(dx_, dh * h, rtol=1e-12)
        np.testing.assert_allclose(ds_, 1.0)


# ---- the pipeline's autodiff pass: grad placeholders while tracing, expanded by the pass --------

from graphc.passes import autodiff as AD  # noqa: E402


@pytest.fixture
def deferred(monkeypatch):
    """Tracing leaves the backward to the pass (graphc.passes.autodiff.DEFER_TO_PASS)."""
    monkeypatch.setattr(AD, "DEFER_TO_PASS", True)


def _sgd_step():
    gc.manual_seed(0)
    model = gc.nn.Sequential(gc.nn.Linear(6, 8), gc.nn.ReLU(), gc.nn.Linear(8, 3))
    opt = gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    step.model = model
    return step, (gc.randn(5, 6), gc.randint(0, 3, (5,)))


def _ops(g):
    return [n.op for n in g.nodes]


def test_traced_stage_has_placeholders_and_the_autodiff_stage_the_backward(deferred):
    step, args = _sgd_step()
    f = gc.compile(step, backend="interp")
    f(*args)                                     # creates the momentum buffers: a second trace
    traced, expanded = f.graph(*args, stage="traced"), f.graph(*args, stage="autodiff")
    grads = [n for n in traced.nodes if n.op == "grad"]
    assert len(grads) == 4 and len({n.attrs["group"] for n in grads}) == 1     # 2 weights, 2 biases
    assert [n.inputs[-1].label for n in grads] == ["model.0.weight", "model.0.bias",
                                                   "model.2.weight", "model.2.bias"]
    assert all(n.out.type == n.inputs[-1].type for n in grads)
    # no backward in the traced stage: the forward's matmuls and W^T only (two layers)
    assert _ops(traced).count("matmul") == 2 and _ops(traced).count("permute") == 2
    assert "grad" not in _ops(expanded)
    assert _ops(expanded).count("matmul") == 2 + 3      # + dW1, dW2, dx of layer 2
    # the backward stands where the placeholders stood: before the optimizer reads it
    first_grad = _ops(traced).index("grad")
    assert _ops(expanded)[:first_grad] == _ops(traced)[:first_grad]
    assert len(f.entry(*args).passes.stages[0][1].nodes) == len(traced.nodes)


def test_dump_writes_the_graph_before_and_after_autodiff_and_times_it(deferred, tmp_path):
    step, args = _sgd_step()
    f = gc.compile(step, backend="interp", dump=str(tmp_path))
    f(*args)
    name = f.graph(*args).name
    before = (tmp_path / f"{name}.00.traced.ir").read_text()
    after = (tmp_path / f"{name}.02.autodiff.ir").read_text()
    assert " = grad(%" in before and " = grad(%" not in after
    assert parse_graph(before) == f.graph(*args, stage="traced")
    assert parse_graph(after) == f.graph(*args, stage="autodiff")
    assert "autodiff" in f.entry(*args).passes.times_ms
    assert f.stages(*args)[:3] == ["traced", "verify", "autodiff"]
    assert "autodiff" in f.stats(*args)["pass_ms"]


def test_placeholders_round_trip_as_text_and_verify(deferred):
    step, args = _sgd_step()
    g = gc.compile(step, backend="interp").graph(*args, stage="traced")
    verify(g)
    for locs in (False, True):
        text = print_graph(g, locs=locs)
        assert parse_graph(text) == g and print_graph(parse_graph(text), locs=locs) == text
    assert "create_graph=False" in text and "group=0" in text and "outputs=1" in text


GRAD_TEXT = """
graph f(%x: f64[3], %w: f64[3]) {
  %0: f64[3] = mul(%x, %w)
  %1: f64[3] = sin(%0)
  %2: f64[] = sum(%1) {axes=(0,), keepdim=False}
  %3: f64[] = full() {shape=(), value=1.0, dtype=f64}
  %4: f64[3] = grad(%2, %3, %w) {group=0, outputs=1, cut=(), create_graph=False}
  %5: f64[3] = grad(%2, %3, %x) {group=0, outputs=1, cut=(), create_graph=False}
  %6: f64[3] = sub(%w, %4)
  return %2, %6, %5
}
"""


def test_the_pass_expands_handwritten_placeholders_and_is_pure():
    g = parse_graph(GRAD_TEXT)
    verify(g)
    text = print_graph(g)
    d = AD.expand_grads(g)
    assert print_graph(g) == text                       # pure
    verify(d)
    assert "grad" not in _ops(d) and _ops(d)[-1] == "sub"
    x, w = np.array([0.1, -0.7, 1.3]), np.array([0.5, 2.0, -1.0])
    _, w2, gx = Interpreter(d)([x, w])
    np.testing.assert_allclose(w2, w - np.cos(x * w) * x, rtol=1e-12)
    np.testing.assert_allclose(gx, np.cos(x * w) * w, rtol=1e-12)
    # the pure autodiff(graph, wrt) expands them first
    dd = autodiff(g, ["x"])
    assert "grad" not in _ops(dd)
    np.testing.assert_allclose(Interpreter(dd)([x, w])[3], np.cos(x * w) * w, rtol=1e-12)
    assert AD.expand_grads(d) is d                      # nothing to expand: the graph as it is


def test_the_verifier_checks_a_placeholder_like_a_primitive():
    from graphc.ir.verify import IRVerifyError
    bad_seed = GRAD_TEXT.replace("%4: f64[3] = grad(%2, %3, %w)", "%4: f64[3] = grad(%2, %0, %w)")
    with pytest.raises(IRVerifyError, match="grad rejects its inputs: grad: seed 0 has shape"):
        verify(parse_graph(bad_seed))
    no_attr = GRAD_TEXT.replace(", create_graph=False}\n  %6", "}\n  %6")
    with pytest.raises(IRVerifyError, match=r"missing \['create_graph'\]"):
        verify(parse_graph(no_attr))
    wrong_type = GRAD_TEXT.replace("%5: f64[3] = grad", "%5: f32[3] = grad")
    with pytest.raises(IRVerifyError, match="output type is f32"):
        verify(parse_graph(wrong_type))


def test_a_backend_given_a_placeholder_fails_naming_it(deferred):
    step, args = _sgd_step()
    f = gc.compile(step, backend="interp")
    traced = f.graph(*args, stage="traced")
    with pytest.raises(RuntimeError, match=r"graph-level op that the autodiff pass expands"):
        f._backend_compile(traced)


def test_autodiff_cannot_be_switched_off():
    with pytest.raises(ValueError, match="the autodiff pass cannot be switched off"):
        gc.compile(lambda x: x, passes={"autodiff": False})


# bit for bit: the same program traced with the backward emitted at once (DEFER_TO_PASS False)
# and left to the pass (True), on interp and llvm

def _mlp_steps(backend):
    step, args = _sgd_step()
    f = gc.compile(step, backend=backend)
    return [f(*args) for _ in range(3)] + list(step.model.parameters())


def _two_backwards(backend):
    gc.manual_seed(1)
    w = gc.randn(5, 4, requires_grad=True)

    @gc.compile(backend=backend)
    def two(x):
        (x @ w).tanh().sum().backward()
        ((x @ w) ** 2).mean().backward()           # accumulates into w.grad
        g = w.grad
        with gc.no_grad():
            w.sub_(0.01 * g)
        w.grad = None
        return g * 1
    x = gc.randn(3, 5)
    return [two(x) for _ in range(3)] + [w]


def _grad_allow_unused(backend):
    gc.manual_seed(2)
    a, b = gc.randn(4, requires_grad=True), gc.randn(4, requires_grad=True)

    @gc.compile(backend=backend)
    def f(x):
        ga, gb = gc.autograd.grad((x * a).sin().sum(), [a, b], allow_unused=True)
        assert gb is None
        return ga
    return [f(gc.randn(4))]


def _no_grad_cut(backend):
    gc.manual_seed(3)
    w = gc.randn(4, 4, requires_grad=True)

    @gc.compile(backend=backend)
    def f(x):
        h = x @ w
        with gc.no_grad():
            s = h.exp().sum()                       # a constant to the backward
        loss = (h * s).tanh().sum()
        loss.backward()
        g = w.grad
        w.grad = None
        return loss, g * 1
    return list(f(gc.randn(3, 4)))


def _double_backward(backend):
    gc.manual_seed(4)
    v = gc.randn(6, requires_grad=True)

    @gc.compile(backend=backend)
    def f(x):
        g, = gc.autograd.grad((v.tanh() * x).sum(), v, create_graph=True)
        (g * g).sum().backward()
        r = v.grad
        v.grad = None
        return g.detach() * 1, r * 1
    return list(f(gc.randn(6)))


def _eager_backward_through_a_call(backend):
    gc.manual_seed(5)
    u = gc.randn(3, 3, requires_grad=True)

    @gc.compile(backend=backend)
    def f(x):
        return (x @ u).sigmoid().sum()
    x = gc.randn(2, 3, requires_grad=True)
    gx, = gc.autograd.grad(f(x), x, create_graph=True)
    gx.sum().backward()                             # double backward through the compiled call
    return [gx, u.grad, x.grad]


SCENARIOS = {"mlp_sgd": _mlp_steps, "two_backwards": _two_backwards,
             "grad_allow_unused": _grad_allow_unused, "no_grad_cut": _no_grad_cut,
             "create_graph": _double_backward, "eager_bridge": _eager_backward_through_a_call}


def _bits(ts):
    return [(t.dtype, tuple(t.shape), t.detach().numpy().tobytes()) for t in ts]


@pytest.mark.parametrize("backend", ["interp", pytest.param("llvm", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_results_are_bit_identical_with_the_backward_left_to_the_pass(name, backend, monkeypatch):
    monkeypatch.setattr(AD, "DEFER_TO_PASS", False)
    want = _bits(SCENARIOS[name](backend))
    monkeypatch.setattr(AD, "DEFER_TO_PASS", True)
    got = _bits(SCENARIOS[name](backend))
    assert got == want


def test_a_one_shot_graph_runs_its_placeholders_expanded(monkeypatch):
    """The optimizer's first step creates its buffers: that trace serves one call, on the
    reference interpreter over the traced graph (no passes), which must expand it first."""
    got = {}
    for defer in (False, True):
        monkeypatch.setattr(AD, "DEFER_TO_PASS", defer)
        step, args = _sgd_step()
        f = gc.compile(step, backend="llvm")
        loss = f(*args)
        fn = next(iter(f._cache.values()))[0].fn
        assert fn.one_shot and fn._passes is None       # the interpreter, no pipeline
        got[defer] = _bits([loss] + list(step.model.parameters()))
    assert got[True] == got[False]


def test_trace_time_errors_are_decided_without_the_backward(deferred):
    w = gc.randn(3, requires_grad=True)
    u = gc.randn(3, requires_grad=True)

    @gc.compile(backend="interp")
    def unused(x):
        return gc.autograd.grad((x * w).sum(), [w, u])
    with pytest.raises(RuntimeError, match=r"input 1\) appears to not have been used"):
        unused(gc.randn(3))

    @gc.compile(backend="interp")
    def nonleaf(x):
        (x * w).sum().backward()
        return w.grad
    with pytest.raises(gc.TraceError, match="non-leaf tensor that requires grad"):
        nonleaf(gc.randn(3, requires_grad=True) * 2)
