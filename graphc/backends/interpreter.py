"""The reference backend: run a Graph node by node with each primitive's numpy implementation.

Every other backend is tested against this one.
"""
from __future__ import annotations

import numpy as np

from ..ops.registry import PRIMITIVES
from . import register


class Interpreter:
    """Executes a Graph; subclass and override run_node to observe or change execution."""

    def __init__(self, graph):
        self.graph = graph
        self.plan = [(_impl(n), n, [i.name for i in n.inputs]) for n in graph.nodes]
        self._last_use = self._last_uses()

    def _last_uses(self):
        keep = {v.name for v in self.graph.outputs} | {v.name for _, v in self.graph.updates}
        last = {}
        for k, n in enumerate(self.graph.nodes):
            for i in n.inputs:
                last[i.name] = k
        drop = [[] for _ in self.graph.nodes]
        for name, k in last.items():
            if name not in keep:
                drop[k].append(name)
        return drop

    def run_node(self, impl, node, args):
        out = impl(*args, **node.attrs)
        if not isinstance(out, np.ndarray) or out.dtype != node.out.type.dtype.np:
            out = np.asarray(out, dtype=node.out.type.dtype.np)
        return out

    def __call__(self, arrays):
        g = self.graph
        if len(arrays) != len(g.inputs):
            raise ValueError(f"{g.name}: expected {len(g.inputs)} inputs, got {len(arrays)}")
        env = {}
        for v, a in zip(g.inputs, arrays):
            if tuple(a.shape) != v.type.shape or a.dtype != v.type.dtype.np:
                raise ValueError(f"{g.name}: input %{v.name} expects {v.type}, got {a.dtype}{list(a.shape)}")
            env[v.name] = a
        with np.errstate(all="ignore"):
            for (impl, node, names), drop in zip(self.plan, self._last_use):
                env[node.out.name] = self.run_node(impl, node, [env[n] for n in names])
                for name in drop:
                    env.pop(name, None)
        return [env[v.name] for v in g.outputs] + [env[v.name] for _, v in g.updates]


def _impl(node):
    """A primitive's numpy implementation, or for a kernel node, its body run by an Interpreter."""
    if node.op != "kernel":
        return PRIMITIVES[node.op].impl
    inner = Interpreter(node.body)
    return lambda *arrays, **attrs: inner(list(arrays))[0]


def compile(graph, **options):
    return Interpreter(graph)


register("interp", compile)
register("interpreter", compile)
