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
