"""The IR's data model: a typed SSA graph of primitive nodes.

A Graph has inputs (each an argument of the traced function or a piece of captured state),
nodes in a valid order, outputs (what the function returns, flattened) and updates: state
slots (a captured tensor's data, or its .grad) that the call writes back afterwards.
"""
from __future__ import annotations

import operator
import re
from collections import Counter
from dataclasses import dataclass

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
    `body` is a Graph (its inputs are this node's inputs, in order; its one output is `out`).

    `graph` is the Graph the node is in (None until appended). Assigning `inputs` updates that
    graph's use-lists; mutate the list in place and they go stale (Graph.check_uses says so)."""
    __slots__ = ("op", "_inputs", "attrs", "out", "loc", "body", "extra", "graph")

    def __init__(self, op: str, inputs, attrs, out: Value, loc=None, body=None, extra=()):
        self.op = op
        self._inputs = list(inputs)
        self.attrs = dict(attrs)
        self.out = out
        self.loc = loc             # "file.py:12" of the user code that made it, if known
        self.body = body           # the fused Graph of a kernel node, else None
        self.extra = list(extra)   # a kernel's further outputs (primitives have exactly one)
        self.graph = None

    def _set_inputs(self, values) -> None:
        g = self.graph
        if g is None:
            self._inputs = list(values)
            return
        g._drop_reads(self)
        self._inputs = list(values)
        g._add_reads(self)

    # read through a C getter (passes read inputs very often), assigned through _set_inputs
    inputs = property(operator.attrgetter("_inputs"), _set_inputs,
                      doc="The values the node reads; assign (do not mutate) to change them.")

    @property
    def outs(self):
        """Every value the node defines: `out` first, then a multi-output kernel's others."""
        return [self.out] + self.extra

    def __repr__(self) -> str:
        args = ", ".join("%" + v.name for v in self._inputs)
        return f"%{self.out.name} = {self.op}({args}) {self.attrs}"


_NAME_OK = re.compile(r"[^A-Za-z0-9_.]")


def sanitize(label: str) -> str:
    s = _NAME_OK.sub("_", label) or "v"
    return s


LEVELS = ("traced", "kernels", "planned")


class UseListError(AssertionError):
    """The use-lists a Graph keeps disagree with a fresh scan of its nodes (a bug: a node's
    inputs or the node list were mutated in place, bypassing the edit methods)."""


class Graph:
    """Inputs, nodes in a valid order, outputs and updates -- and, kept up to date by every
    edit (add_node, append, insert_*, erase*, reorder, replace_all_uses, assigning `nodes` or
    a node's `inputs`), which nodes read each value: `uses` and `users` answer from these
    use-lists without scanning the graph (as torch.fx keeps Node.users)."""

    def __init__(self, name: str = "graph", inputs=None, nodes=None, outputs=None, updates=None):
        self.name = name
        self.inputs = list(inputs or [])
        self.outputs = list(outputs or [])
        self.updates = list(updates or [])   # [(state label, Value)]
        self._names = set()
        self._counter = 0
        self._level = None                   # see `level`
        self._nodes = []
        self._readers = {}                   # Value -> the nodes reading it, once per input slot
        self._pos = None                     # Node -> index in _nodes, rebuilt when needed
        if nodes:
            self.nodes = nodes

    def __repr__(self) -> str:
        return (f"Graph(name={self.name!r}, inputs={self.inputs!r}, nodes={self._nodes!r}, "
                f"outputs={self.outputs!r}, updates={self.updates!r})")

    # ---- the node list and its use-lists ----------------------------------------------------
    @property
    def nodes(self) -> list:
        """The nodes in order. Assign a new list to replace them all (use-lists follow); do not
        mutate it in place: use append / insert_* / erase* / reorder."""
        return self._nodes

    @nodes.setter
    def nodes(self, nodes) -> None:
        nodes = list(nodes)
        for n in self._nodes:
            self._release(n)
        for n in nodes:
            self._adopt(n)
        self._nodes = nodes
        self._pos = None

    def _adopt(self, node: Node) -> None:
        if node.graph is not None and node.graph is not self:
            raise ValueError(f"%{node.out.name} is already a node of graph {node.graph.name}: "
                             f"make a new node (make_node) for graph {self.name}")
        node.graph = self
        self._add_reads(node)

    def _release(self, node: Node) -> None:
        self._drop_reads(node)
        node.graph = None

    def _add_reads(self, node: Node) -> None:
        readers = self._readers
        for v in node._inputs:
            r = readers.get(v)
            if r is None:
                readers[v] = [node]
            else:
                r.append(node)

    def _drop_reads(self, node: Node) -> None:
        readers = self._readers
        for v in node._inputs:
            r = readers[v]
            r.remove(node)              # identity: Node has no __eq__
            if not r:
                del readers[v]

    def _positions(self) -> dict:
        if self._pos is None:
            self._pos = {n: i for i, n in enumerate(self._nodes)}
        return self._pos

    def _place(self, i, node: Node, named: bool = False) -> Value:
        """Put node at index i (None: the end), its value names reserved unless `named` says
        fresh_name already did."""
        if not named:
            self._names.add(node.out.name)
            if node.extra:
                self._names.update(v.name for v in node.extra)
        if node.graph is not None:
            self._adopt(node)
        else:                       # the common case, inlined: graphs are built node by node
            node.graph = self
            self._add_reads(node)
        if i is None:
            if self._pos is not None:
                self._pos[node] = len(self._nodes)
            self._nodes.append(node)
        else:
            self._nodes.insert(i, node)
            self._pos = None
        return node.out

    def check_uses(self) -> None:
        """Raise UseListError unless the kept use-lists equal a fresh scan of the nodes (kernel
        bodies included) and every node knows it is in this graph. A debug check for tests and
        the verifier: the edit methods keep this true."""
        fresh = {}
        for n in self._nodes:
            if n.graph is not self:
                raise UseListError(f"graph {self.name}: %{n.out.name} is in its node list but "
                                   f"belongs to {getattr(n.graph, 'name', None)!r}")
            for v in n._inputs:
                fresh.setdefault(v, []).append(n)
        tally = lambda r: Counter(map(id, r or ()))          # noqa: E731 (order does not matter)
        bad = sorted({v.name for v in set(fresh) | set(self._readers)
                      if tally(fresh.get(v)) != tally(self._readers.get(v))})
        if bad:
            raise UseListError(f"graph {self.name}: the kept use-lists of {', '.join('%' + b for b in bad)} "
                               f"differ from a fresh scan (inputs or nodes mutated in place?)")
        for n in self._nodes:
            if n.body is not None:
                n.body.check_uses()

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
        return self._place(None, node, named=True)

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
        self._place(None, node, named=True)
        return outs

    def kernels(self):
        return [n for n in self.nodes if n.op == "kernel"]

    def primitive_count(self) -> int:
        """Primitive nodes, counting those inside kernels."""
        return sum(n.body.primitive_count() if n.body is not None else 1 for n in self.nodes)

    def users(self) -> dict:
        """Value name -> list of nodes that read it (once per input slot, in graph order); a
        new dict of new lists, the caller's to change."""
        pos = self._positions().__getitem__
        return {v.name: sorted(r, key=pos) for v, r in self._readers.items()}

    def uses(self, v: Value) -> list:
        """The nodes that read v, each once, in graph order (outputs and updates not counted)."""
        r = self._readers.get(v)
        if not r:
            return []
        if len(r) == 1:
            return list(r)
        return sorted(dict.fromkeys(r), key=self._positions().__getitem__)

    def is_used(self, v: Value) -> bool:
        """Does a node, an output or an update read v?"""
        return (v in self._readers or any(o is v for o in self.outputs)
                or any(u is v for _, u in self.updates))

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
        return self._place(None, node)

    def _position(self, anchor: Node) -> int:
        if anchor.graph is self:
            return self._positions()[anchor]
        raise ValueError(f"%{anchor.out.name} is not a node of graph {self.name}")

    def insert_before(self, anchor: Node, node: Node) -> Value:
        """Put node right before anchor (its inputs must be defined above anchor); its value."""
        return self._place(self._position(anchor), node)

    def insert_after(self, anchor: Node, node: Node) -> Value:
        return self._place(self._position(anchor) + 1, node)

    def replace_all_uses(self, old: Value, new: Value, only=None) -> int:
        """Every read of old -- node inputs, outputs, updates -- reads new instead; with
        `only` (nodes), just those nodes' inputs. How many reads changed."""
        count = 0
        readers = list(dict.fromkeys(self._readers.get(old, ()))) if only is None else only
        for n in readers:
            k = sum(1 for i in n.inputs if i is old)
            if k:
                count += k
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
        gone = {n for n in nodes if n.graph is self}
        for n in gone:
            for v in n.outs:
                staying = [r for r in self._readers.get(v, ()) if r not in gone]
                if staying:
                    who = min(staying, key=self._positions().__getitem__)
                    raise ValueError(f"cannot erase the node of %{v.name}: %{who.out.name} reads it")
        dead = {id(v) for n in gone for v in n.outs}
        for v in list(self.outputs) + [u for _, u in self.updates]:
            if id(v) in dead:
                raise ValueError(f"cannot erase the node of %{v.name}: an output or update reads it")
        for n in gone:
            self._release(n)
        self._nodes = [n for n in self._nodes if n not in gone]
        self._pos = None

    def reorder(self, nodes) -> None:
        """The same nodes in a new order (a scheduler's): refused if it is not a permutation."""
        nodes = list(nodes)
        if len(nodes) != len(self._nodes) or set(nodes) != set(self._nodes):
            raise ValueError("reorder: not a permutation of the graph's nodes")
        self._nodes = nodes
        self._pos = None

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
