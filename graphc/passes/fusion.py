"""Operator fusion: group primitive nodes into kernels, each a `kernel` node whose body is
the fused subgraph.

Kernel kinds (what a backend generates for each):
  pointwise  every output element computed from its inputs at mapped indices: elementwise
             ops, and movement ops (broadcast, reshape, permute, slice, pad, concat, unfold),
             gathers, constants and random numbers folded into index maps -- no copies
  reduction  a loop over outer indices; inside, one or more reductions over the same axes R of
             the same shape S (softmax: max then sum; layer_norm: mean then variance) with
             their elementwise producers, then an elementwise epilogue over S or over the
             reduced shape
  matmul     one matmul with an elementwise epilogue over its output (bias, activation,
             residual add)
  opaque     one primitive run as it is (fold, scatter_add)
  view       a reshape of a materialised buffer: no code runs, the output aliases the input

Legality: a node joins a kernel only if every user of it is in that kernel, so no value is
needed before the kernel that makes it finishes, and the kernel graph stays acyclic
(checked with networkx). Constants and movement ops are first split per user, so each user
kernel reads the underlying buffer through its own index map.
"""
from __future__ import annotations

import networkx as nx

from ..ir.graph import Graph
from ..ops.registry import PRIMITIVES

REDUCTIONS = ("sum", "max", "argmax")
OPAQUE = ("fold", "scatter_add")


def node_class(n) -> str:
    if n.op in REDUCTIONS:
        return "reduction"
    if n.op == "matmul":
        return "matmul"
    if n.op in OPAQUE or n.op == "kernel":
        return "opaque"
    return "pointwise"


LIGHT = ("lt", "le", "gt", "ge", "eq", "ne", "logical_not", "logical_and", "logical_or", "cast", "neg")


def _cheap(n) -> bool:
    """Recomputed per user instead of stored: constants, index remappings, and one-instruction
    elementwise ops (relu's mask is recomputed in the forward and the backward kernel rather
    than written to memory and read back)."""
    cat = PRIMITIVES[n.op].category if n.op in PRIMITIVES else None
    return cat == "constant" or (cat == "movement" and n.op != "unfold") or n.op in LIGHT


def split_cheap(graph: Graph) -> Graph:
    """Give every constant and movement node exactly one user, copying it per extra user."""
    g = graph.copy()
    keep = {v.name for v in g.outputs} | {v.name for _, v in g.updates}
    changed = True
    while changed:
        changed = False
        users = g.users()
        new_nodes = []
        for n in g.nodes:
            new_nodes.append(n)
        for n in reversed(list(g.nodes)):
            us = users.get(n.out.name, [])
            if not _cheap(n) or len(us) + (n.out.name in keep) <= 1:
                continue
            # the first user (or the graph output) keeps n; every other user gets a copy
            extra = us if n.out.name in keep else us[1:]
            for u in extra:
                copy = g.add_node(n.op, n.inputs, n.attrs, n.out.type, loc=n.loc)
                node = g.nodes.pop()            # add_node appended it; place it before u
                g.nodes.insert(g.nodes.index(u), node)
                u.inputs = [copy if v is n.out else v for v in u.inputs]
            changed = True
            break
    return g


class _Group:
    __slots__ = ("id", "root", "members", "kind", "space")

    def __init__(self, gid, root):
        self.id = gid
        self.root = root
        self.members = [root]
        cls = node_class(root)
        self.kind = {"pointwise": "pointwise", "reduction": "reduction", "matmul": "matmul"}.get(cls, "opaque")
        self.space = _reduction_space(root) if cls == "reduction" else None


def _reduction_space(n):
    axes = (n.attrs["axis"],) if n.op == "argmax" else tuple(n.attrs["axes"])
    return (tuple(n.inputs[0].type.shape), axes)


def _reduced_shapes(space):
    shape, axes = space
    keep = tuple(1 if i in axes else s for i, s in enumerate(shape))
    drop = tuple(s for i, s in enumerate(shape) if i not in axes)
    return {shape, keep, drop}


def _can_join(p, g: _Group, feeds_matmul_operand: bool) -> bool:
    """May producer node p be fused into group g (all of p's users being in g)?"""
    cls = node_class(p)
    if g.kind == "opaque" or cls == "opaque":
        return False
    if g.kind == "matmul" and feeds_matmul_operand:
        return False     # a GEMM reads real buffers; its operands are materialised
    if cls == "pointwise":
        return True
    if cls == "reduction":
        space = _reduction_space(p)
        if g.kind == "reduction":
            return g.space == space
        if g.kind == "pointwise":
            return tuple(g.root.out.type.shape) in _reduced_shapes(space)
        return False
    if cls == "matmul":
        return g.kind == "pointwise" and tuple(g.root.out.type.shape) == tuple(p.out.type.shape)
    return False


def _join(p, g: _Group):
    g.members.append(p)
    cls = node_class(p)
    if cls == "reduction" and g.kind == "pointwise":
        g.kind, g.space = "reduction", _reduction_space(p)
    elif cls == "matmul":
        g.kind = "matmul"


def fuse(graph: Graph) -> Graph:
    """Group the graph's primitive nodes into kernel nodes."""
    g = split_cheap(graph)
    materialize = {v.name for v in g.outputs} | {v.name for _, v in g.updates}
    users = g.users()
    group_of = {}
    groups = []
    for n in reversed(g.nodes):
        us = users.get(n.out.name, [])
        target = None
        if us and n.out.name not in materialize:
            gs = {id(group_of[u.out.name]) for u in us}
            if len(gs) == 1:
                cand = group_of[us[0].out.name]
                operand = any(u.op == "matmul" for u in us)
                if _can_join(n, cand, operand):
                    target = cand
        if target is None:
            target = _Group(len(groups), n)
            groups.append(target)
        else:
            _join(n, target)
        group_of[n.out.name] = target
    for grp in groups:
        r = grp.root
        if (grp.members == [r] and r.op == "reshape" and r.inputs[0].producer is not None
                and r.out.name not in materialize):
            grp.kind = "view"
    return _build(g, groups, group_of)


def _build(g: Graph, groups, group_of) -> Graph:
    order = {n.out.name: i for i, n in enumerate(g.nodes)}
    dag = nx.DiGraph()
    for grp in groups:
        dag.add_node(grp.id)
        for m in grp.members:
            for v in m.inputs:
                if v.producer is not None and group_of[v.name] is not grp:
                    dag.add_edge(group_of[v.name].id, grp.id)
    if not nx.is_directed_acyclic_graph(dag):
        raise AssertionError("fusion produced a cycle between kernels")
    by_id = {grp.id: grp for grp in groups}
    # kernels in a topological order that follows the original node order where it can
    kernel_order = list(nx.lexicographical_topological_sort(dag, key=lambda i: order[by_id[i].root.out.name]))

    out = Graph(g.name)
    env = {}
    for v in g.inputs:
        env[v.name] = out.add_input(v.type, v.kind, v.label, name=v.name)
    for k, gid in enumerate(kernel_order):
        grp = by_id[gid]
        members = sorted(grp.members, key=lambda n: order[n.out.name])
        inside = {m.out.name for m in members}
        body = Graph(f"k{k}")
        benv, ins = {}, []
        for m in members:
            for v in m.inputs:
                if v.name not in inside and v.name not in benv:
                    benv[v.name] = body.add_input(v.type, "arg", v.name, name=v.name)
                    ins.append(env[v.name])
            benv[m.out.name] = body.add_node(m.op, [benv[v.name] for v in m.inputs], m.attrs,
                                             m.out.type, name=m.out.name, loc=m.loc)
        body.outputs = [benv[grp.root.out.name]]
        root = grp.root
        env[root.out.name] = out.add_node("kernel", ins, {"kind": grp.kind}, root.out.type,
                                          name=root.out.name, loc=root.loc, body=body)
    out.outputs = [env[v.name] for v in g.outputs]
    out.updates = [(lbl, env[v.name]) for lbl, v in g.updates]
    return out
