"""The IR's data model: a typed SSA graph of primitive nodes.

A Graph has inputs (each an argument of the traced function or a piece of captured state),
nodes in a valid order, outputs (what the function returns, flattened) and updates: state
slots (a captured tensor's data, or its .grad) that the call writes back afterwards.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .. import dtypes as _dt
from .printer import print_graph, structure


@dataclass(frozen=True)
class TensorType:
    shape: tuple
    dtype: _dt.DType

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    def __str__(self) -> str:
        return f"{self.dtype.short}[{','.join(str(s) for s in self.shape)}]"


class Value:
    """One SSA value: produced by exactly one node, or a graph input."""
    __slots__ = ("name", "type", "producer", "kind", "label")

    def __init__(self, name: str, type: TensorType, producer=None, kind=None, label=None):
        self.name = name
        self.type = type
        self.producer = producer   # the Node that defines it, None for graph inputs
        self.kind = kind           # graph inputs only: "arg" or "state"
        self.label = label         # graph inputs only: what it is to the user ("x", "fc1.weight")

    @property
    def shape(self):
        return self.type.shape

    @property
    def dtype(self):
        return self.type.dtype

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


class Node:
    """A primitive applied to values -- or, with op "kernel", a fused group of primitives whose
    `body` is a Graph (its inputs are this node's inputs, in order; its one output is `out`)."""
    __slots__ = ("op", "inputs", "attrs", "out", "loc", "body", "extra")

    def __init__(self, op: str, inputs, attrs, out: Value, loc=None, body=None, extra=()):
        self.op = op
        self.inputs = list(inputs)
        self.attrs = dict(attrs)
        self.out = out
        self.loc = loc             # "file.py:12" of the user code that made it, if known
        self.body = body           # the fused Graph of a kernel node, else None
        self.extra = list(extra)   # a kernel's further outputs (primitives have exactly one)

    @property
    def outs(self):
        """Every value the node defines: `out` first, then a multi-output kernel's others."""
        return [self.out] + self.extra

    def __repr__(self) -> str:
        args = ", ".join("%" + v.name for v in self.inputs)
        return f"%{self.out.name} = {self.op}({args}) {self.attrs}"


_NAME_OK = re.compile(r"[^A-Za-z0-9_.]")


def sanitize(label: str) -> str:
    s = _NAME_OK.sub("_", label) or "v"
    return s


LEVELS = ("traced", "kernels", "planned")


@dataclass
class Graph:
    name: str = "graph"
    inputs: list = field(default_factory=list)
    nodes: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    updates: list = field(default_factory=list)   # [(state label, Value)]
    _names: set = field(default_factory=set, repr=False)
    _counter: int = field(default=0, repr=False)
    _level: "str | None" = field(default=None, repr=False)   # see `level`

    # ---- level ----------------------------------------------------------------------------
    @property
    def level(self) -> str:
        """Which of the three graphs this is: "traced" (primitive nodes, as traced and
        simplified), "kernels" (fusion has run: every node is a kernel with a body) or
        "planned" (the memory planner has given every kernel its `buffers`). Fusion and the
        pass manager's memory step set it; Graph.copy keeps it; a graph that was never told
        (parsed from text, built by hand) derives it from its nodes."""
        if self._level is not None:
            return self._level
        if self.nodes and all(n.op == "kernel" for n in self.nodes):
            return "planned" if all("buffers" in n.attrs for n in self.nodes) else "kernels"
        return "traced"

    @level.setter
    def level(self, value: str) -> None:
        if value not in LEVELS:
            raise ValueError(f"graph level must be one of {LEVELS}, got {value!r}")
        self._level = value

    @property
    def is_traced(self) -> bool:
        return self.level == "traced"

    @property
    def is_fused(self) -> bool:
        """Kernels (planned or not), no bare primitives."""
        return self.level in ("kernels", "planned")

    @property
    def is_planned(self) -> bool:
        return self.level == "planned"

    # ---- building -------------------------------------------------------------------------
    def fresh_name(self, hint: str | None = None) -> str:
        if hint is not None:
            base = sanitize(hint)
            name, k = base, 1
            while name in self._names:
                name = f"{base}_{k}"
                k += 1
        else:
            while str(self._counter) in self._names:
                self._counter += 1
            name = str(self._counter)
            self._counter += 1
        self._names.add(name)
        return name

    def reserve(self, names, counter: int | None = None) -> None:
        """Keep these names from fresh_name (and start its numbering at counter, if given)."""
        self._names.update(names)
        if counter is not None:
            self._counter = counter

    def reserve_names_of(self, old: "Graph") -> None:
        """A pass rebuilding `old` node by node: old's node names stay reserved (a kept node
        keeps its name) and fresh names continue old's numbering (never colliding)."""
        self.reserve({n.out.name for n in old.nodes}, counter=old._counter)

    def add_input(self, type: TensorType, kind: str = "arg", label: str | None = None,
                  name: str | None = None) -> Value:
        if kind not in ("arg", "state"):
            raise ValueError(f"graph input kind must be 'arg' or 'state', got {kind!r}")
        label = label if label is not None else f"in{len(self.inputs)}"
        v = Value(self.fresh_name(name or label), type, kind=kind, label=label)
        self.inputs.append(v)
        return v

    def add_node(self, op: str, inputs, attrs, type: TensorType, name: str | None = None,
                 loc: str | None = None, body: "Graph | None" = None) -> Value:
        out = Value(self.fresh_name(name), type)
        node = Node(op, inputs, attrs, out, loc, body)
        out.producer = node
        self.nodes.append(node)
        return out

    # ---- queries --------------------------------------------------------------------------
    def state_inputs(self):
        return [v for v in self.inputs if v.kind == "state"]

    def arg_inputs(self):
        return [v for v in self.inputs if v.kind == "arg"]

    def add_kernel(self, inputs, attrs, types, names, body, loc=None):
        """A kernel node defining one value per type (its body returns them in order)."""
        outs = [Value(self.fresh_name(nm), t) for nm, t in zip(names, types)]
        node = Node("kernel", inputs, attrs, outs[0], loc, body, outs[1:])
        for v in outs:
            v.producer = node
        self.nodes.append(node)
        return outs

    def kernels(self):
        return [n for n in self.nodes if n.op == "kernel"]

    def primitive_count(self) -> int:
        """Primitive nodes, counting those inside kernels."""
        return sum(n.body.primitive_count() if n.body is not None else 1 for n in self.nodes)

    def users(self) -> dict:
        """Value name -> list of nodes that read it (once per input slot)."""
        u = {}
        for n in self.nodes:
            for v in n.inputs:
                u.setdefault(v.name, []).append(n)
        return u

    def uses(self, v: Value) -> list:
        """The nodes that read v, each once, in graph order (outputs and updates not counted)."""
        return [n for n in self.nodes if any(i is v for i in n.inputs)]

    def is_used(self, v: Value) -> bool:
        """Does a node, an output or an update read v?"""
        return (any(o is v for o in self.outputs) or any(u is v for _, u in self.updates)
                or any(i is v for n in self.nodes for i in n.inputs))

    # ---- editing: what passes use instead of touching nodes / inputs directly --------------
    def make_node(self, op: str, inputs, attrs, type: TensorType, name: str | None = None,
                  loc: str | None = None, body: "Graph | None" = None) -> Node:
        """A new node (its value named fresh, or `name`, which the graph then reserves) that is
        not yet in the graph: place it with append, insert_before or insert_after."""
        if name is None:
            name = self.fresh_name()
        self._names.add(name)
        out = Value(name, type)
        node = Node(op, inputs, attrs, out, loc, body)
        out.producer = node
        return node

    def append(self, node: Node) -> Value:
        """Put a node made by make_node (or a fresh Node) at the end; its value."""
        self._names.update(v.name for v in node.outs)
        self.nodes.append(node)
        return node.out

    def _position(self, anchor: Node) -> int:
        for i, n in enumerate(self.nodes):
            if n is anchor:
                return i
        raise ValueError(f"%{anchor.out.name} is not a node of graph {self.name}")

    def insert_before(self, anchor: Node, node: Node) -> Value:
        """Put node right before anchor (its inputs must be defined above anchor); its value."""
        self._names.update(v.name for v in node.outs)
        self.nodes.insert(self._position(anchor), node)
        return node.out

    def insert_after(self, anchor: Node, node: Node) -> Value:
        self._names.update(v.name for v in node.outs)
        self.nodes.insert(self._position(anchor) + 1, node)
        return node.out

    def replace_all_uses(self, old: Value, new: Value, only=None) -> int:
        """Every read of old -- node inputs, outputs, updates -- reads new instead; with
        `only` (nodes), just those nodes' inputs. How many reads changed."""
        count = 0
        nodes = self.nodes if only is None else only
        for n in nodes:
            if any(i is old for i in n.inputs):
                count += sum(1 for i in n.inputs if i is old)
                n.inputs = [new if i is old else i for i in n.inputs]
        if only is None:
            count += sum(1 for o in self.outputs if o is old) + sum(1 for _, u in self.updates if u is old)
            self.outputs = [new if o is old else o for o in self.outputs]
            self.updates = [(lbl, new if u is old else u) for lbl, u in self.updates]
        return count

    def erase(self, node: Node) -> None:
        """Remove a node whose values nothing reads (refused otherwise)."""
        self.erase_all([node])

    def erase_all(self, nodes) -> None:
        """Remove these nodes at once; refused while a node, an output or an update that stays
        reads one of their values."""
        gone = {id(n) for n in nodes}
        dead = {id(v): v for n in nodes for v in n.outs}
        readers = [(n, i) for n in self.nodes if id(n) not in gone for i in n.inputs]
        readers += [(None, o) for o in self.outputs] + [(None, u) for _, u in self.updates]
        for n, v in readers:
            if id(v) in dead:
                who = f"%{n.out.name}" if n is not None else "an output or update"
                raise ValueError(f"cannot erase the node of %{v.name}: {who} reads it")
        self.nodes = [n for n in self.nodes if id(n) not in gone]

    def reorder(self, nodes) -> None:
        """The same nodes in a new order (a scheduler's): refused if it is not a permutation."""
        nodes = list(nodes)
        if len(nodes) != len(self.nodes) or {id(n) for n in nodes} != {id(n) for n in self.nodes}:
            raise ValueError("reorder: not a permutation of the graph's nodes")
        self.nodes = nodes

    def copy(self) -> "Graph":
        """A deep copy with the same names (values are new objects)."""
        g = Graph(self.name)
        env = {}
        for v in self.inputs:
            nv = g.add_input(v.type, v.kind, v.label, name=v.name)
            assert nv.name == v.name
            env[v.name] = nv
        for n in self.nodes:
            ins = [env[i.name] for i in n.inputs]
            if n.extra:
                outs = g.add_kernel(ins, n.attrs, [v.type for v in n.outs], [v.name for v in n.outs],
                                    n.body.copy(), loc=n.loc)
            else:
                outs = [g.add_node(n.op, ins, n.attrs, n.out.type, name=n.out.name, loc=n.loc,
                                   body=n.body.copy() if n.body is not None else None)]
            for v in outs:
                env[v.name] = v
        g._counter = self._counter
        g._level = self._level
        g.outputs = [env[v.name] for v in self.outputs]
        g.updates = [(lbl, env[v.name]) for lbl, v in self.updates]
        return g

    def __str__(self) -> str:
        return print_graph(self)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return structure(self) == structure(other)

    __hash__ = None
