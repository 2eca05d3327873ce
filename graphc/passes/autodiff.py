"""Reverse-mode automatic differentiation over the IR.

backprop() walks the traced nodes backwards and calls each primitive's VJP rule on tracer
tensors, so the backward nodes are recorded into the same graph: the rules are the ones the
eager tape uses. autodiff() is the pure Graph -> Graph pass built on it.
"""
from __future__ import annotations

from .. import autograd as ag
from .. import mode as _mode
from ..ir.graph import Graph, TensorType
from ..ops import functional as F
from ..ops.registry import PRIMITIVES, VJPContext


def _relevant(nodes, outputs, wrt, cut=frozenset()):
    """Names of values on a path from some wrt value to some output (not passing through
    a node whose output is in `cut`)."""
    fwd = {v.name for v in wrt}
    for n in nodes:
        if (n.out.name not in cut and PRIMITIVES[n.op].vjp is not None
                and any(i.name in fwd for i in n.inputs)):
            fwd.add(n.out.name)
    back = {v.name for v in outputs}
    for n in reversed(nodes):
        if n.out.name in back and n.out.name not in cut:
            back.update(i.name for i in n.inputs)
    return fwd & back


def backprop(trace, outputs, seeds, wrt, cut=None):
    """Emit the backward of `outputs` (Values, seeded with cotangent tensors) into `trace`'s
    graph; return the gradient tensor for each Value in `wrt` (None where it has none).

    A wrt Value may be a graph input or any intermediate value. Gradients do not flow through
    nodes whose output is in `cut` (default: the values the trace recorded with grad mode
    off, as eager autograd records no history under no_grad)."""
    graph = trace.graph
    if cut is None:
        cut = getattr(trace, "nograd", frozenset())
    nodes = list(graph.nodes)          # the VJP rules append to graph.nodes as we go
    rel = _relevant(nodes, outputs, wrt, cut)
    want = {w.name for w in wrt}
    found = {}
    ct = {}
    for v, s in zip(outputs, seeds):
        if v.name in rel:
            s = trace.tracer(trace.value_of(s)) if s._value is None or s._trace is not trace else s
            ct[v.name] = s if v.name not in ct else F.add(ct[v.name], s)
    for n in reversed(nodes):
        g = ct.pop(n.out.name, None)
        if g is None:
            continue
        if n.out.name in want:
            found[n.out.name] = g
        if n.out.name in cut:
            continue
        prim = PRIMITIVES[n.op]
        if prim.vjp is None:
            continue
        needs = tuple(i.name in rel and i.type.dtype.is_floating_point for i in n.inputs)
        if not any(needs):
            continue
        ctx = VJPContext(tuple(trace.tracer(i) for i in n.inputs), trace.tracer(n.out),
                         n.attrs, needs, tuple(i.type for i in n.inputs))
        for i, gi, need in zip(n.inputs, prim.vjp(ctx, g), needs):
            if gi is None or not need:
                continue
            ct[i.name] = gi if i.name not in ct else F.add(ct[i.name], gi)
    # what is left in ct belongs to graph inputs (never popped): a wrt input may also be an output
    return [found.get(w.name, ct.get(w.name)) for w in wrt]


def autodiff(graph: Graph, wrt=None) -> Graph:
    """Differentiate the graph's first output (a scalar) with respect to `wrt` (input names;
    default: every floating-point input). The result returns the original outputs followed
    by one gradient per wrt input (zeros where the output does not depend on it)."""
    g = graph.copy()
    if not g.outputs:
        raise ValueError("autodiff: the graph has no output to differentiate")
    out = g.outputs[0]
    if out.type.numel != 1 or not out.type.dtype.is_floating_point:
        raise ValueError(f"autodiff: the first output must be a floating-point scalar, got {out.type}")
    by_name = {v.name: v for v in g.inputs}
    if wrt is None:
        wrt = [v.name for v in g.inputs if v.type.dtype.is_floating_point]
    missing = [w for w in wrt if w not in by_name]
    if missing:
        raise ValueError(f"autodiff: {missing} are not inputs of graph {g.name}")
    wrt_vals = [by_name[w] for w in wrt]
    tr = _mode.new_trace(g)      # a graphc.tracing.Trace (registered with mode: passes sit below tracing)
    with _mode.tracing(tr), ag.no_grad():
        seed = F.ones_like(tr.tracer(out))
        grads = backprop(tr, [out], [seed], wrt_vals)
        grads = [gr if gr is not None else F.zeros_like(tr.tracer(w)) for gr, w in zip(grads, wrt_vals)]
    g.outputs = list(g.outputs) + [gr._value for gr in grads]
    return g
