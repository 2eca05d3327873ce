"""The reference backend: run a Graph node by node with each primitive's numpy implementation.

Every other backend is tested against this one.
"""
from __future__ import annotations

import os
import threading
import weakref

import numpy as np

from ..ir.buffer import buffer_of
from ..ops.registry import PRIMITIVES
from . import register


_INSTANCES = weakref.WeakSet()


def _after_fork_in_child():
    """A lock held by another thread at fork() stays held in the child, where that thread does
    not exist: re-create every interpreter's call lock (the child has one thread)."""
    for it in list(_INSTANCES):
        it._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Interpreter:
    """Executes a Graph; subclass and override run_node to observe or change execution."""

    def __init__(self, graph):
        self.graph = graph
        self.plan = [(_impl(n), n, [i.name for i in n.inputs]) for n in graph.nodes]
        self._last_use = self._last_uses()
        self._lock = threading.Lock()     # one call at a time: a planned arena and _inputs are per instance
        _INSTANCES.add(self)              # its lock is reset in a forked child

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
        """The node's output arrays, one per value it defines."""
        outs = impl(*args, **node.attrs)
        if node.op != "kernel":
            outs = [outs]
        res = []
        for v, out in zip(node.outs, outs):
            if not isinstance(out, np.ndarray) or out.dtype != v.type.dtype.np:
                out = np.asarray(out, dtype=v.type.dtype.np)
            res.append(out)
        return res

    def __call__(self, arrays):
        with self._lock:
            return self._run(arrays)

    def _run(self, arrays):
        g = self.graph
        if len(arrays) != len(g.inputs):
            raise ValueError(f"{g.name}: expected {len(g.inputs)} inputs, got {len(arrays)}")
        env = {}
        for v, a in zip(g.inputs, arrays):
            if tuple(a.shape) != v.type.shape or a.dtype != v.type.dtype.np:
                raise ValueError(f"{g.name}: input %{v.name} expects {v.type}, got {a.dtype}{list(a.shape)}")
            env[v.name] = a
        self._inputs = dict(env)    # inputs stay reachable after their last use (state buffers)
        with np.errstate(all="ignore"):
            for (impl, node, names), drop in zip(self.plan, self._last_use):
                for v, a in zip(node.outs, self.run_node(impl, node, [env[n] for n in names])):
                    env[v.name] = self.place(node, v, a, env)
                for name in drop:
                    env.pop(name, None)
        return [env[v.name] for v in g.outputs] + [env[v.name] for _, v in g.updates]

    def place(self, node, value, array, env):
        """Where a computed array lives; the plain interpreter keeps numpy's own."""
        return array


class PlannedInterpreter(Interpreter):
    """Runs a memory-planned graph: every intermediate is a view into one arena allocated once,
    state updates planned in place are written into the state's own buffer, so a wrong memory
    plan gives a wrong result here, without any native code."""

    def __init__(self, graph):
        super().__init__(graph)
        from ..passes.memory import arena_bytes
        self.arena = np.zeros(arena_bytes(graph), dtype=np.uint8)

    def place(self, node, value, array, env):
        where = buffer_of(node, value)
        t = value.type
        if where.kind == "arena":
            off = where.offset
            dst = self.arena[off:off + t.nbytes].view(t.dtype.np).reshape(t.shape)
        elif where.kind == "state":
            dst = self._inputs[where.state]   # env may have dropped it after its last read
        elif where.kind == "view":
            return array
        else:   # "out": a fresh buffer, never a view of the arena or of an input
            return np.array(array, copy=True)
        np.copyto(dst, array)
        return dst


def _impl(node):
    """A primitive's numpy implementation, or for a kernel node, its body run by an Interpreter."""
    if node.op != "kernel":
        p = PRIMITIVES.get(node.op)
        if p is None or p.impl is None:
            raise NotImplementedError(f"interp backend: op {node.op!r} has no numpy implementation"
                                      + (f" (at {node.loc})" if node.loc else ""))
        return p.impl
    inner = Interpreter(node.body)
    return lambda *arrays, **attrs: inner(list(arrays))


def compile(graph, **options):
    return PlannedInterpreter(graph) if graph.is_planned else Interpreter(graph)


register("interp", compile)
register("interpreter", compile)
