"""Simplification passes over the IR."""
from __future__ import annotations

from ..ir.graph import Graph


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
    g.nodes = [n for n in g.nodes if n.out.name in kept]
    return g
