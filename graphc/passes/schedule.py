"""Scheduling: a deterministic order of the kernels that keeps peak live memory low.

Greedy list scheduling over the kernel DAG (networkx): among the kernels whose inputs are
ready, run the one that frees the most bytes net of what it allocates; ties go to the earlier
kernel in the incoming order. Readers of a piece of state are put before the kernel that
computes the state's new value, where that keeps the graph acyclic, so the memory planner can
write the new value in place."""
from __future__ import annotations

import networkx as nx

from ..ir.graph import Graph


def _dependency_graph(g: Graph):
    dag = nx.DiGraph()
    idx = {v.name: i for i, n in enumerate(g.nodes) for v in n.outs}
    for i, n in enumerate(g.nodes):
        dag.add_node(i)
        for v in n.inputs:
            if v.name in idx:
                dag.add_edge(idx[v.name], i)
    # state readers before the state's writer (enables in-place updates)
    state = {v.label: v for v in g.inputs if v.kind == "state"}
    users = g.users()
    for lbl, v in g.updates:
        s = state.get(lbl)
        if s is None or v.name not in idx:
            continue
        w = idx[v.name]
        for r in _readers(s.name, users, idx):
            if r != w and not nx.has_path(dag, w, r):
                dag.add_edge(r, w)
    return dag, idx


def _readers(name, users, idx):
    """Kernels that read value `name`, directly or through view kernels."""
    out = []
    for u in users.get(name, []):
        out.append(idx[u.out.name])
        if u.op == "kernel" and u.attrs.get("kind") == "view":
            out += _readers(u.out.name, users, idx)
    return out


def _nbytes(n, keep=()):
    if n.attrs.get("kind") == "view":
        return 0
    return sum(v.type.nbytes for v in n.outs if v.name not in keep)


def peak_live_bytes(nodes, keep) -> int:
    """The largest sum of bytes of intermediates alive at any step of this order."""
    last = {}
    for t, n in enumerate(nodes):
        for v in n.inputs:
            last[v.name] = t
    live, peak, ends = 0, 0, {}
    for t, n in enumerate(nodes):
        if n.attrs.get("kind") != "view":
            for v in n.outs:
                if v.name not in keep:
                    live += v.type.nbytes
                    ends.setdefault(last.get(v.name, t), []).append(v.type.nbytes)
        peak = max(peak, live)
        live -= sum(ends.pop(t, []))
    return peak


def schedule(graph: Graph) -> Graph:
    """The lower-peak of two deterministic orders: greedy memory-aware list scheduling, and the
    incoming (trace) order made consistent with the state-reader edges."""
    g = graph.copy()
    dag, idx = _dependency_graph(g)
    keep = {v.name for v in g.outputs} | {v.name for _, v in g.updates}
    candidates = [_greedy(g.nodes, dag, keep),
                  list(nx.lexicographical_topological_sort(dag))]
    best = min(candidates, key=lambda order: peak_live_bytes([g.nodes[i] for i in order], keep))
    g.reorder([g.nodes[i] for i in best])
    return g


def _greedy(nodes, dag, keep):
    remaining_users = {i: dag.out_degree(i) for i in dag}
    indeg = {i: dag.in_degree(i) for i in dag}
    ready = sorted(i for i in dag if indeg[i] == 0)
    order = []
    while ready:
        def score(i):
            freed = sum(_nbytes(nodes[p], keep) for p in dag.predecessors(i) if remaining_users[p] == 1)
            return (-(freed - _nbytes(nodes[i], keep)), i)
        best = min(ready, key=score)
        ready.remove(best)
        order.append(best)
        for p in dag.predecessors(best):
            remaining_users[p] -= 1
        for s in dag.successors(best):
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    return order
