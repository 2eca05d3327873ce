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

A kernel may write several outputs over the same iteration space (multi-output fusion): a
value needed by several kernels, or by the caller, is written by one of the kernels that
reads it instead of getting a kernel of its own -- softmax's shifted logits and its row
sums in one pass; a gradient, the momentum buffer and the new weight in one matmul epilogue.
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

OPAQUE = ("fold", "scatter_add")     # index primitives (their records have no fusion class)


def node_class(n) -> str:
    """The kind of kernel node n roots: its primitive's fusion class (ops/registry.py)."""
    p = PRIMITIVES.get(n.op)
    if p is not None and p.fusion is not None:
        return p.fusion
    return "opaque" if n.op in OPAQUE or n.op == "kernel" else "pointwise"


def _cheap(n) -> bool:
    """Recomputed per user instead of stored: constants, index remappings, and one-instruction
    elementwise ops (relu's mask is recomputed in the forward and the backward kernel rather
    than written to memory and read back)."""
    cat = PRIMITIVES[n.op].category if n.op in PRIMITIVES else None
    return cat == "constant" or (cat == "movement" and n.op != "unfold") or (cat is not None and PRIMITIVES[n.op].light)


def split_cheap(graph: Graph) -> Graph:
    """Give every cheap node (see _cheap) exactly one user, copying it per extra user -- except
    that the GEMMs reading it share one copy (a GEMM operand is written to memory anyway:
    copies would compute and store the same operand twice).

    One pass from the last node to the first: a copy made for a user is placed just before
    that user, and its own inputs are visited later, so chains of cheap nodes split too."""
    g = graph.copy()
    keep = {v.name for v in g.outputs} | {v.name for _, v in g.updates}
    users = g.users()
    out = list(g.nodes)
    pos = {id(n): i for i, n in enumerate(out)}
    extra_before = {}                    # id(user) -> copies to insert right before it
    for n in reversed(g.nodes):
        us = list({id(u): u for u in users.get(n.out.name, [])}.values())   # mul(x, x): one user
        if not _cheap(n) or len(us) + (n.out.name in keep) <= 1:
            continue
        share = [u for u in us if u.op == "matmul"]
        if len(share) >= 2:     # GEMM operands are materialised: one buffer serves every GEMM
            copies, mine = [u for u in us if u.op != "matmul"], share
        else:
            copies, mine = (us, []) if n.out.name in keep else (us[1:], us[:1])
        for u in copies:
            copy = g.make_node(n.op, n.inputs, n.attrs, n.out.type, loc=n.loc)
            g.replace_all_uses(n.out, copy.out, only=(u,))
            extra_before.setdefault(id(u), []).append(copy)
            for x in n.inputs:
                users.setdefault(x.name, []).append(copy)
        users[n.out.name] = mine
    for n in out:
        for c in _ordered(extra_before.get(id(n), []), extra_before):
            g.insert_before(n, c)
    return g


def _ordered(copies, extra_before):
    """Copies, each preceded by the copies made for it (a chain of cheap nodes)."""
    res = []
    for c in copies:
        res += _ordered(extra_before.get(id(c), []), extra_before)
        res.append(c)
    return res


class _Group:
    __slots__ = ("id", "root", "members", "outputs", "kind", "space")

    def __init__(self, gid, root):
        self.id = gid
        self.root = root
        self.members = [root]
        self.outputs = [root]          # values the kernel writes to memory, root first
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


def _row_aligned(p, g: _Group, users) -> bool:
    """Inside a reduction kernel, every value computed from the reduction p must be read at the
    outer position being computed: it has the full shape S, or the reduced shape (keepdim or
    not), and the only index maps applied to it are reshapes between those and broadcasts back
    over the reduced axes. Then a backend can run each outer position as one pass: reduce,
    then compute the epilogue -- never needing another row's result."""
    space = _reduction_space(p)
    shape, axes = space
    ok_shapes = _reduced_shapes(space)
    keep = tuple(1 if i in axes else n for i, n in enumerate(shape))
    members = {id(m) for m in g.members}
    todo, seen = [p], set()
    while todo:
        n = todo.pop()
        for u in users.get(n.out.name, []):
            if id(u) not in members or id(u) in seen:
                continue
            seen.add(id(u))
            if tuple(u.out.type.shape) not in ok_shapes:
                return False
            if u.op == "broadcast_to":
                if tuple(u.inputs[0].type.shape) != keep or tuple(u.out.type.shape) != shape:
                    return False
            elif u.op != "reshape" and PRIMITIVES[u.op].category == "movement":
                return False
            elif u.op == "take_along_axis" or node_class(u) == "matmul":
                return False
            todo.append(u)
    return True


def _can_join(p, g: _Group, feeds_matmul_operand: bool, users=None) -> bool:
    """May producer node p be fused into group g (all of p's users being in g)?"""
    cls = node_class(p)
    if cls == "reduction" and users is not None and not _row_aligned(p, g, users):
        return False
    if g.kind in ("opaque", "view") or cls == "opaque":
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
            return all(tuple(o.out.type.shape) in _reduced_shapes(space) for o in g.outputs)
        return False
    if cls == "matmul":
        return g.kind == "pointwise" and all(
            tuple(o.out.type.shape) == tuple(p.out.type.shape) for o in g.outputs)
    return False


def _can_output(p, g: _Group) -> bool:
    """May p be written as a further output of g: is its shape g's iteration space (the space
    g will have once p joins it)?"""
    shape = tuple(p.out.type.shape)
    if node_class(p) == "reduction" and g.kind == "pointwise":
        return shape in _reduced_shapes(_reduction_space(p))
    if g.kind == "reduction":
        return shape in _reduced_shapes(g.space)
    if g.kind in ("pointwise", "matmul"):
        return shape == tuple(g.root.out.type.shape)
    return False


def _join(p, g: _Group):
    g.members.append(p)
    cls = node_class(p)
    if cls == "reduction" and g.kind == "pointwise":
        g.kind, g.space = "reduction", _reduction_space(p)
    elif cls == "matmul":
        g.kind = "matmul"


def fuse(graph: Graph) -> Graph:
    """Group the graph's primitive nodes into kernel nodes (see the module docstring)."""
    g = split_cheap(graph)
    materialize = {v.name for v in g.outputs} | {v.name for _, v in g.updates}
    users = g.users()
    group_of = {}
    groups = []
    dag = nx.DiGraph()                      # group id -> group id, producer to consumer
    for n in reversed(g.nodes):
        us = users.get(n.out.name, [])
        user_groups = []
        for u in us:
            gu = group_of[u.out.name]
            if gu not in user_groups:
                user_groups.append(gu)
        operand = any(u.op == "matmul" for u in us)
        target, as_output = None, False
        if len(user_groups) == 1 and n.out.name not in materialize:
            if _can_join(n, user_groups[0], operand, users):
                target = user_groups[0]
        if target is None and user_groups and node_class(n) != "opaque":
            # written to memory anyway: make it a further output of one of its user kernels
            for cand in sorted(user_groups, key=lambda gr: gr.id, reverse=True):
                feeds = any(u.op == "matmul" and group_of[u.out.name] is cand for u in us)
                if not _can_join(n, cand, feeds, users) or not _can_output(n, cand):
                    continue
                others = [h for h in user_groups if h is not cand]
                if any(nx.has_path(dag, h.id, cand.id) for h in others):
                    continue        # h needs n, cand would need h: a cycle
                target, as_output = cand, True
                break
        if target is None:
            target = _Group(len(groups), n)
            groups.append(target)
            dag.add_node(target.id)
        else:
            _join(n, target)
            if as_output:
                target.outputs.append(n)
        group_of[n.out.name] = target
        for gu in user_groups:
            if gu is not target:
                dag.add_edge(target.id, gu.id)
    groups = _absorb_copies(groups, group_of, users, dag)
    for grp in groups:
        r = grp.root
        if (grp.members == [r] and r.op == "reshape" and r.inputs[0].producer is not None
                and r.out.name not in materialize):
            grp.kind = "view"
    return _build(g, groups, group_of)


def _absorb_copies(groups, group_of, users, dag):
    """A kernel that only re-lays out another kernel's output (a reshape producing a
    gradient, say) becomes one more output of that kernel: one pass over memory, not two."""
    keep = []
    for grp in groups:
        src = None
        if grp.kind == "pointwise" and all(_cheap(m) and node_class(m) == "pointwise"
                                           and PRIMITIVES[m.op].category == "movement" for m in grp.members):
            ext = {v.name for m in grp.members for v in m.inputs
                   if v.producer is not None and group_of[v.name] is not grp}
            if len(ext) == 1:
                src = group_of[next(iter(ext))]
        consumers = {group_of[u.out.name].id for m in grp.members for u in users.get(m.out.name, [])
                     if group_of[u.out.name] is not grp}
        ok = (src is not None and src.kind in ("pointwise", "reduction") and _can_output(grp.root, src)
              and not any(nx.has_path(dag, c, src.id) for c in consumers))
        if not ok:
            keep.append(grp)
            continue
        for m in grp.members:
            src.members.append(m)
            group_of[m.out.name] = src
        src.outputs.extend(grp.outputs)
        for c in consumers:
            dag.add_edge(src.id, c)
    return keep


def _written(grp, group_of, users, materialize):
    """The group's outputs that something reads: another kernel, the caller or a state update.
    A value fusion made an output that nothing outside reads any more is not written (it
    would be a dead buffer, and one more output to plan memory for)."""
    live = [o for o in grp.outputs if o.out.name in materialize
            or any(group_of[u.out.name] is not grp for u in users.get(o.out.name, []))]
    return live or grp.outputs[:1]


def _build(g: Graph, groups, group_of) -> Graph:
    order = {n.out.name: i for i, n in enumerate(g.nodes)}
    users = g.users()
    materialize = {v.name for v in g.outputs} | {v.name for _, v in g.updates}
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
        written = _written(grp, group_of, users, materialize)
        body.outputs = [benv[o.out.name] for o in written]
        outs = out.add_kernel(ins, {"kind": grp.kind}, [o.out.type for o in written],
                              [o.out.name for o in written], body, loc=grp.root.loc)
        for v in outs:
            env[v.name] = v
    out.outputs = [env[v.name] for v in g.outputs]
    out.updates = [(lbl, env[v.name]) for lbl, v in g.updates]
    out.level = "kernels"
    return out


def one_kernel_per_node(graph: Graph) -> Graph:
    """Every primitive its own kernel: what the graph looks like with fusion switched off."""
    g = graph.copy()
    groups, group_of = [], {}
    for n in g.nodes:
        grp = _Group(len(groups), n)
        groups.append(grp)
        group_of[n.out.name] = grp
    return _build(g, groups, group_of)
