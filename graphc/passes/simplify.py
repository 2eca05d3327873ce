"""Simplification passes over the IR: dce, cse, fold_constants and simplify.

Each is a pure function Graph -> Graph: it builds a new graph and leaves its input untouched.
Nodes that survive keep their names (so a pass's effect reads as a small diff of the printed IR);
nodes a pass creates get fresh numeric names that no node of the input graph used. Kernel nodes
(op "kernel") are copied as they are: these passes run before fusion, on primitives.

    dce             drop nodes whose value reaches no output and no update
    cse             merge nodes with the same op, inputs and attributes
    fold_constants  evaluate nodes whose inputs are all constants (full, iota, constant)
    simplify        algebraic identities: the rule table RULES, applied to a fixpoint, then dce

cse and fold_constants may leave nodes dead (a folded node's constant inputs, for example);
run dce after them (simplify does).

A rule of simplify is a small function `rule(node, m) -> Value | None`. `node` is the candidate
node, its inputs already simplified (their producers are nodes of the graph being built);
`m` is a RuleContext: `m.const(v)` says whether v is a constant `full` (looking through
broadcast_to, reshape and permute of one) and gives its value, `m.producer(v, op)` gives the
node that made v when it is that op, and `m.emit(op, *inputs, **attrs)` builds a new node (its
type inferred, and itself simplified). A rule returns the Value that replaces node's output --
an existing value or a new one, of exactly node's type -- or None when it does not apply.
The rules live in graphc/passes/rules.py (RULES, re-exported here). A rule is registered for
its ops with @rule_for("op", ...) and the driver indexes the table by
op (RuleIndex), so a node tries only its op's rules (a plain function is tried on every op). An
identity of a commutative op is one pattern over (x, c); @commutative makes its two orientations.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..ir.graph import Graph, Node, TensorType, Value
from ..ir.text import _norm
from .rules import (COMMUTATIVE, RULES, RuleIndex, commutative,  # noqa: F401 (re-exported)
                    index_rules, rule_for, rule_table)


# ---- dce ----------------------------------------------------------------------------------

def dce(graph: Graph) -> Graph:
    """Dead-code elimination: drop nodes whose value reaches no output and no update."""
    live = {v.name for v in graph.outputs} | {v.name for _, v in graph.updates}
    keep = []
    for n in reversed(graph.nodes):
        if n.out.name in live:
            keep.append(n)
            live.update(i.name for i in n.inputs)
    g = graph.copy()
    kept = {n.out.name for n in keep}
    g.erase_all([n for n in g.nodes if n.out.name not in kept])
    return g


# ---- rebuilding a graph node by node ------------------------------------------------------

class _Rebuild:
    """A new graph built from `old` one node at a time: `env` maps each old value's name to the
    value that stands for it in the new graph. Every name of the old graph stays reserved, so a
    kept node keeps its name and a new node's fresh name never collides with one."""

    def __init__(self, old: Graph):
        self.old = old
        g = Graph(old.name)
        g.level = old.level
        self.env = {}
        for v in old.inputs:
            self.env[v.name] = g.add_input(v.type, v.kind, v.label, name=v.name)
        g.reserve_names_of(old)
        self.g = g

    def candidate(self, n: Node) -> Node:
        """A copy of old node n reading the new graph's values, not yet in the graph."""
        return _make_node(n.op, [self.env[i.name] for i in n.inputs], n.attrs, n.out.type,
                          n.out.name, n.loc, n.body.copy() if n.body is not None else None)

    def new_node(self, op, inputs, attrs, loc=None) -> Node:
        """A new primitive node with a fresh name and its inferred type, not yet in the graph."""
        from ..ops.registry import get   # lazy: graphc.ops imports the IR
        t = get(op).infer(*[v.type for v in inputs], **attrs)
        return _make_node(op, inputs, attrs, t, self.g.fresh_name(), loc)

    def append(self, node: Node) -> Value:
        return self.g.append(node)

    def finish(self) -> Graph:
        self.g.outputs = [self.env[v.name] for v in self.old.outputs]
        self.g.updates = [(lbl, self.env[v.name]) for lbl, v in self.old.updates]
        return self.g


def _make_node(op, inputs, attrs, type, name, loc=None, body=None) -> Node:
    out = Value(name, type)
    node = Node(op, inputs, attrs, out, loc, body)
    out.producer = node
    return node


def _same_type(a: TensorType, b: TensorType) -> bool:
    return a.dtype is b.dtype and tuple(a.shape) == tuple(b.shape)


# ---- cse ----------------------------------------------------------------------------------

def _attrs_key(attrs: dict):
    """Attributes in a hashable canonical form: nan == nan, 1 != 1.0 != True, lists == tuples."""
    return tuple(sorted((k, _norm(x)) for k, x in attrs.items()))


def cse(graph: Graph) -> Graph:
    """Common-subexpression elimination: a node with the same op, the same inputs (after the
    merges made above it) and equal attributes as an earlier node is dropped and its uses read
    the earlier node's value. Every primitive is pure (uniform too: its numbers depend only on
    its state input), so every primitive node may be merged; kernel nodes are left alone."""
    rb = _Rebuild(graph)
    seen = {}
    for n in graph.nodes:
        node = rb.candidate(n)
        key = None
        if n.op != "kernel":
            try:
                key = (n.op, tuple(v.name for v in node.inputs), _attrs_key(n.attrs), str(n.out.type))
                hash(key)
            except TypeError:   # an attribute value with no canonical form: never merged
                key = None
        if key is not None and key in seen:
            rb.env[n.out.name] = seen[key]
            continue
        rb.env[n.out.name] = rb.append(node)
        if key is not None:
            seen[key] = node.out
    return rb.finish()


# ---- fold_constants -----------------------------------------------------------------------

CONSTANT_OPS = ("full", "iota", "constant")
MAX_CONSTANT_ELEMENTS = 64     # a folded result that is not one repeated value is kept up to this size
_EVAL_LIMIT = 1 << 16          # never materialize more elements than this while folding
_SAME_VALUE_MOVEMENT = ("broadcast_to", "reshape", "permute", "slice")


def _py_scalar(x, dtype: _dt.DType):
    """A numpy (or Python) scalar as the Python scalar a `full` of dtype holds."""
    if dtype.is_floating_point:
        return float(x)
    if dtype is _dt.bool_:
        return bool(x)
    return int(x)


def _all_equal(arr: np.ndarray) -> bool:
    """Every element bitwise equal to the first (so -0.0 and 0.0 differ, and nan equals itself)."""
    flat = np.ascontiguousarray(arr).reshape(-1)
    if flat.size == 0:
        return True
    if flat.dtype.kind == "f":
        flat = flat.view(np.dtype(f"u{flat.dtype.itemsize}"))
    return bool(np.all(flat == flat[0]))


def _full_node(name, t: TensorType, value, loc=None) -> Node:
    return _make_node("full", [], {"shape": tuple(t.shape), "value": _py_scalar(value, t.dtype),
                                   "dtype": t.dtype}, t, name, loc)


def _folded(node: Node):
    """The full or constant node (same name and type) that node evaluates to, or None."""
    from ..ops.registry import PRIMITIVES
    prim = PRIMITIVES.get(node.op)
    if prim is None or prim.impl is None:
        return None
    t = node.out.type
    ins = [v.producer for v in node.inputs]
    name, loc = node.out.name, node.loc
    if all(p.op == "full" for p in ins):
        if node.op in _SAME_VALUE_MOVEMENT:
            return _full_node(name, t, ins[0].attrs["value"], loc)
        if prim.category == "elementwise":
            # one repeated value in, one repeated value out: evaluate on scalars (0-d arrays)
            try:
                with np.errstate(all="ignore"):
                    r = prim.impl(*[np.array(p.attrs["value"], dtype=p.attrs["dtype"].np) for p in ins],
                                  **node.attrs)
                r = np.asarray(r, dtype=t.dtype.np)
            except Exception:   # e.g. an integer to a negative power: leave it to fail at run time
                return None
            return _full_node(name, t, r.reshape(-1)[0] if r.size else 0, loc)
    if t.numel > _EVAL_LIMIT or any(v.type.numel > _EVAL_LIMIT for v in node.inputs):
        return None
    try:
        with np.errstate(all="ignore"):
            args = [PRIMITIVES[p.op].impl(**p.attrs) for p in ins]
            r = prim.impl(*args, **node.attrs)
            r = np.asarray(r, dtype=t.dtype.np)
    except Exception:
        return None
    if tuple(r.shape) != tuple(t.shape):
        return None
    if _all_equal(r):
        return _full_node(name, t, r.reshape(-1)[0] if r.size else 0, loc)
    if r.size <= MAX_CONSTANT_ELEMENTS:
        data = tuple(_py_scalar(x, t.dtype) for x in r.reshape(-1).tolist())
        return _make_node("constant", [], {"shape": tuple(t.shape), "dtype": t.dtype, "data": data},
                          t, name, loc)
    return None


def fold_constants(graph: Graph) -> Graph:
    """Constant folding: a node whose inputs are all constants (made by full, iota or constant)
    is evaluated with its primitive's numpy implementation and becomes, under the same name, a
    `full` when every element is the same value (any size; float values bitwise equal), else a
    `constant` when it has at most MAX_CONSTANT_ELEMENTS elements; else it stays. Folding
    cascades down the graph in one pass. The constants it read may be left dead (run dce)."""
    rb = _Rebuild(graph)
    for n in graph.nodes:
        node = rb.candidate(n)
        if (n.op != "kernel" and n.op not in CONSTANT_OPS and node.inputs
                and all(v.producer is not None and v.producer.op in CONSTANT_OPS for v in node.inputs)):
            node = _folded(node) or node
        rb.env[n.out.name] = rb.append(node)
    return rb.finish()


# ---- simplify: algebraic rules ------------------------------------------------------------

_THROUGH = ("broadcast_to", "reshape", "permute")   # movements that keep "one repeated value"


class RuleContext:
    """What a rule sees besides its node: constant matching and building new nodes."""

    def __init__(self, rebuild: _Rebuild, rules, max_depth: int = 64):
        self.rb = rebuild
        self.rules = rules
        self._by_op = index_rules(rules)
        self._uses = None
        self.fired = {}          # rule name -> times it fired
        self._depth = 0
        self._max_depth = max_depth

    # ---- matching --------------------------------------------------------------------------
    @staticmethod
    def producer(v: Value, op=None):
        """The node that made v (when op is given: only when its op is op, or one of a tuple)."""
        p = v.producer
        if p is None or op is None:
            return p
        return p if (p.op == op if isinstance(op, str) else p.op in op) else None

    def const(self, v: Value):
        """(True, value) when every element of v is one known value -- v is a `full`, or a
        broadcast_to / reshape / permute of one -- else (False, None)."""
        p = v.producer
        while p is not None and p.op in _THROUGH:
            p = p.inputs[0].producer
        if p is not None and p.op == "full":
            return True, p.attrs["value"]
        return False, None

    def uses(self, v: Value):
        """How many times the input graph reads v (as a node input, an output or an update), or
        None for a value a rule built. A heuristic for rules that would duplicate work, never a
        condition for correctness (a rewrite above may have given v more readers since)."""
        if self._uses is None:
            old = self.rb.old
            counts = {u.name: 0 for u in old.inputs} | {n.out.name: 0 for n in old.nodes}
            for u in [i for n in old.nodes for i in n.inputs] + list(old.outputs) + [u for _, u in old.updates]:
                counts[u.name] += 1
            self._uses = counts
        return self._uses.get(v.name)

    def is_const(self, v: Value, x) -> bool:
        """Is every element of v equal to x (as numbers: 1 == 1.0; nan never matches)?"""
        ok, value = self.const(v)
        return ok and not isinstance(value, bool) and value == x

    # ---- building --------------------------------------------------------------------------
    def emit(self, op: str, *inputs: Value, loc=None, **attrs) -> Value:
        """A new node op(*inputs, **attrs) in the graph being built, simplified in turn."""
        return self.settle(self.rb.new_node(op, list(inputs), attrs, loc))

    def full(self, t: TensorType, value, loc=None) -> Value:
        """A new `full` of type t holding value (as the exact Python scalar type t's dtype wants)."""
        return self.settle(_full_node(self.rb.g.fresh_name(), t, value, loc))

    def settle(self, node: Node) -> Value:
        """Try the rules on node: the first replacement of node's exact type wins; else node
        joins the graph as it is."""
        if node.op != "kernel" and self._depth < self._max_depth:
            self._depth += 1
            try:
                for rule in self._by_op.rules(node.op):
                    r = rule(node, self)
                    if r is not None and r is not node.out and _same_type(r.type, node.out.type):
                        self.fired[rule.__name__] = self.fired.get(rule.__name__, 0) + 1
                        return r
            finally:
                self._depth -= 1
        return self.rb.append(node)


def _simplify_once(graph: Graph, rules):
    rb = _Rebuild(graph)
    m = RuleContext(rb, rules)
    for n in graph.nodes:
        rb.env[n.out.name] = m.settle(rb.candidate(n))
    return rb.finish(), m.fired


MAX_SWEEPS = 8


def simplify(graph: Graph, rules=None) -> Graph:
    """Algebraic simplification: rewrite with the rule table (RULES, or `rules`) to a fixpoint,
    then dce. One sweep visits the nodes in order; a node's inputs are already simplified when
    its rules run, and a node a rule builds is simplified in turn, so one sweep usually reaches
    the fixpoint and a second confirms it (at most MAX_SWEEPS). Every replacement has exactly
    the type of the value it replaces."""
    rules = RULES if rules is None else list(rules)
    g = graph
    for _ in range(MAX_SWEEPS):
        g, fired = _simplify_once(dce(g), rules)   # (dce first: RuleContext.uses counts live readers)
        if not fired:
            break
    return dce(g)
