"""The IR verifier: checks that a graph is well formed and every node's type is what its
primitive's rule says, so a pass that breaks the graph is caught where it ran, not in a backend."""
from __future__ import annotations

from .graph import Graph, TensorType, UseListError
from .text import format_node


class _Describe:
    """A node's printed text for an error message, formatted only if an error is raised."""
    __slots__ = ("node",)

    def __init__(self, node):
        self.node = node

    def __format__(self, spec):
        return f"node `{format_node(self.node).splitlines()[0]}`"

    __str__ = lambda self: format(self, "")


class IRVerifyError(ValueError):
    """A malformed graph; the message names the offending node as printed text."""


def _same_type(a, b) -> bool:
    return (isinstance(a, TensorType) and isinstance(b, TensorType) and a.dtype is b.dtype
            and tuple(a.shape) == tuple(b.shape))


def verify(g: Graph) -> Graph:
    """Raise IRVerifyError at the first problem; return g unchanged so verify can be a pass."""
    from ..ops import registry   # lazy: graphc.ops imports the IR

    names, defined = set(), set()   # value names seen; ids of values defined so far

    def define(v, what):
        if v.name in names:
            raise IRVerifyError(f"{what}: value name %{v.name} is defined twice")
        names.add(v.name)
        defined.add(id(v))

    for v in g.inputs:
        what = f"graph input %{v.name}"
        if v.kind not in ("arg", "state"):
            raise IRVerifyError(f"{what}: kind must be 'arg' or 'state', got {v.kind!r}")
        if not isinstance(v.type, TensorType):
            raise IRVerifyError(f"{what}: type {v.type!r} is not a TensorType")
        if v.producer is not None:
            raise IRVerifyError(f"{what}: a graph input must have no producer")
        define(v, what)

    for n in g.nodes:
        what = _Describe(n)
        for v in n.inputs:
            if id(v) not in defined:
                raise IRVerifyError(f"{what}: input %{v.name} is not a graph input or the output "
                                    "of an earlier node")
        if any(v.producer is not n for v in n.outs):
            raise IRVerifyError(f"{what}: its output's producer is not this node")
        if n.op == "kernel":
            _verify_kernel(n, what)
            for v in n.outs:
                define(v, what)
            continue
        if n.extra:
            raise IRVerifyError(f"{what}: a primitive defines exactly one value")
        if n.body is not None:
            raise IRVerifyError(f"{what}: only kernel nodes have a body")
        # a graph-level op (the autodiff pass's `grad` placeholders) is checked like a primitive
        prim = registry.GRAPH_OPS.get(n.op)
        try:
            prim = prim or registry.get(n.op)
        except KeyError:
            raise IRVerifyError(f"{what}: unknown op {n.op!r}") from None
        if prim.arity is not None and len(n.inputs) != prim.arity:
            raise IRVerifyError(f"{what}: {n.op} takes {prim.arity} inputs, got {len(n.inputs)}")
        if set(n.attrs) != set(prim.attrs):
            missing = [k for k in prim.attrs if k not in n.attrs]
            extra = sorted(k for k in n.attrs if k not in prim.attrs)
            raise IRVerifyError(f"{what}: {n.op} takes attrs {list(prim.attrs)}; "
                                f"missing {missing}, unexpected {extra}")
        try:
            expect = prim.infer(*[v.type for v in n.inputs], **n.attrs)
        except Exception as e:
            raise IRVerifyError(f"{what}: {n.op} rejects its inputs: {e}") from e
        if not _same_type(expect, n.out.type):
            raise IRVerifyError(f"{what}: output type is {n.out.type} but {n.op} gives {expect}")
        define(n.out, what)

    for v in g.outputs:
        if id(v) not in defined:
            raise IRVerifyError(f"return value %{v.name} is not defined in the graph")
    state = {v.label: v for v in g.inputs if v.kind == "state"}
    labels = set()
    for lbl, v in g.updates:
        what = f"update {lbl} <- %{v.name}"
        if lbl in labels:
            raise IRVerifyError(f"{what}: state {lbl!r} is updated twice")
        labels.add(lbl)
        if id(v) not in defined:
            raise IRVerifyError(f"{what}: %{v.name} is not defined in the graph")
        if lbl in state and not _same_type(state[lbl].type, v.type):
            raise IRVerifyError(f"{what}: state {lbl!r} has type {state[lbl].type}, "
                                f"the update has type {v.type}")
    try:
        g.check_uses()         # the pass manager verifies after every pass: a pass that edited
    except UseListError as e:  # node inputs behind the Graph's back is caught where it did so
        raise IRVerifyError(str(e)) from None
    return g


KERNEL_KINDS = ("pointwise", "reduction", "matmul", "opaque", "view")


def _verify_kernel(n, what):
    """A kernel's body is a graph of its own: inputs typed like the node's inputs, one output
    typed like the node's output, no state updates."""
    body = n.body
    if body is None:
        raise IRVerifyError(f"{what}: a kernel node needs a body graph")
    kind = n.attrs.get("kind")
    if kind not in KERNEL_KINDS:
        raise IRVerifyError(f"{what}: kernel kind must be one of {KERNEL_KINDS}, got {kind!r}")
    if len(body.inputs) != len(n.inputs) or not all(
            _same_type(a.type, b.type) for a, b in zip(body.inputs, n.inputs)):
        raise IRVerifyError(f"{what}: the body's inputs ({', '.join(str(v.type) for v in body.inputs)}) "
                            f"do not match the kernel's ({', '.join(str(v.type) for v in n.inputs)})")
    if len(body.outputs) != len(n.outs) or not all(
            _same_type(a.type, b.type) for a, b in zip(body.outputs, n.outs)):
        raise IRVerifyError(f"{what}: the body must return {len(n.outs)} value(s) typed "
                            f"{', '.join(str(v.type) for v in n.outs)}")
    if body.updates:
        raise IRVerifyError(f"{what}: a kernel body cannot update state")
    try:
        verify(body)
    except IRVerifyError as e:
        raise IRVerifyError(f"{what}: in its body: {e}") from e
