"""Counts a person can compare across passes: primitives, kernels, estimated bytes moved.

bytes_moved estimates memory traffic: each kernel reads each distinct input buffer once and
writes its output once (a broadcast or transposed read counts the buffer's own size, since
fusion turned it into an index map). A graph before fusion counts every primitive as its own
kernel, so movement ops count as copies there, as they would run eagerly."""
from __future__ import annotations

from ..ir.graph import Graph


def _is_kernel(n) -> bool:
    return n.op == "kernel"


def kernel_count(g: Graph) -> int:
    return sum(1 for n in g.nodes if not (_is_kernel(n) and n.attrs.get("kind") == "view"))


def bytes_moved(g: Graph) -> int:
    total = 0
    for n in g.nodes:
        if _is_kernel(n) and n.attrs.get("kind") == "view":
            continue
        seen = set()
        for v in n.inputs:
            if v.name not in seen:
                seen.add(v.name)
                total += v.type.nbytes
        total += n.out.type.nbytes
    return total


def graph_stats(g: Graph) -> dict:
    return {"primitive_nodes": g.primitive_count(), "kernels": kernel_count(g),
            "bytes_moved": bytes_moved(g)}
