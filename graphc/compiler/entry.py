"""Entry: one traced signature of a compiled function. A call binds its arguments and captured
state to the graph's inputs, runs the executable, writes the updates back into captured
tensors, arguments and .grad slots, and returns fresh tensors (with a backward node on those
that need one)."""
from __future__ import annotations

import numpy as np

from .. import pytree
from ..ir.graph import Graph
from ..tensor import Tensor
from .backward import _MISSING_PLAN, _attach_backward, _backward_plan, _snapshot
from .results import _copy, _fresh


class Entry:
    """One traced signature: its stages, executable and how to bind/unbind Python state."""

    def __init__(self, key, fn, arg_leaves, state_slots, update_slots, grad_clears,
                 out_treedef, out_leaves, guards, retrace_reason, written_inputs=()):
        self.key = key
        self.fn = fn                        # the GraphFunction
        self.arg_leaves = arg_leaves        # leaf index of each arg input of the graph
        self.state_slots = state_slots      # ("data", tensor) | ("grad", owner) per state input
        self.update_slots = update_slots    # ("data", tensor) | ("arg", leaf index) | ("grad", owner)
        self.grad_clears = grad_clears      # owners whose .grad the call sets to None
        self.out_treedef = out_treedef
        self.out_leaves = out_leaves        # ("out", k) | ("static", value) per returned leaf
        self.guards = guards                # [(description, check() -> bool)]
        self.reason = retrace_reason
        self.written_inputs = tuple(written_inputs)   # graph inputs the call updates in place
        self.calls = 0
        self._n_out = None
        self.new_grads = frozenset()        # update indices whose .grad becomes a new tensor
        self._plan = _MISSING_PLAN          # the backward plan, when it is the same every call
        self.relaxed = frozenset()          # leaf indices whose requires_grad the graph ignores

    @property
    def passes(self):
        return self.fn.passes

    @property
    def exe(self):
        return self.fn.exe

    @property
    def graph(self) -> Graph:
        return self.passes.final

    def failed_guard(self, leaves):
        for desc, check in self.guards:
            if not (check(leaves) if getattr(check, "wants_leaves", False) else check()):
                return desc() if callable(desc) else desc
        return None

    def _first_run(self):
        """What a call needs that is the same for every call of this entry."""
        g = self.fn.graph
        self._n_out = len(g.outputs)
        self._out_dtypes = [v.type.dtype for v in g.outputs]
        # whether each input requires grad is part of the signature (arguments) or guarded
        # (captured tensors), except for .grad tensors read as inputs: then the backward plan
        # is computed per call
        # nor for an entry serving arguments whose requires_grad varies (relaxed, see tracecall)
        self._plan_fixed = all(kind == "data" for kind, _ in self.state_slots) and not self.relaxed
        self._single = self.out_treedef[0] == "leaf" and self.out_leaves == [("out", 0)]

    def run(self, leaves):
        tensors = [leaves[i] for i in self.arg_leaves]
        for kind, t in self.state_slots:
            tensors.append(t if kind == "data" else t._grad if kind == "grad" else leaves[t]._grad)
        if self._n_out is None:
            self._first_run()
        if self._plan_fixed:
            plan = self._plan
            if plan is _MISSING_PLAN:
                plan = self._plan = _backward_plan(self.fn, tensors, self.written_inputs)
        else:
            plan = _backward_plan(self.fn, tensors, self.written_inputs)
        before = _snapshot(tensors, plan[2]) if plan is not None and plan[2] else None
        ins = [t._data for t in tensors]
        exe = self.exe
        res = exe(ins)
        n_out = self._n_out
        # results the backend allocated for this call alone
        fresh = getattr(exe, "fresh_results", None)
        # results first: one that is (a view of) an input -- the old value of a captured tensor
        # the call also updates -- is copied before the write-back overwrites that input
        seen = []
        out_tensors = []
        for k in range(n_out):
            a = res[k]
            if fresh is None or not fresh[k]:
                a = _fresh(a, ins + seen)
                if not a.flags.writeable:          # a broadcast view: results are fresh, writable tensors
                    a = np.array(a, copy=True)
            seen.append(a)
            out_tensors.append(Tensor._wrap(a, dtype=self._out_dtypes[k]))
        if self.update_slots or self.grad_clears:
            self._write_back(leaves, res[n_out:], ins, fresh)
        self.calls += 1
        if plan is not None:
            _attach_backward(self.fn, tensors, out_tensors, self.written_inputs, plan, before)
        if self._single:
            return out_tensors[0]
        vals = [out_tensors[k] if kind == "out" else k for kind, k in self.out_leaves]
        return pytree.unflatten(self.out_treedef, vals)

    def _write_back(self, leaves, ups, ins, fresh):
        """Updates into captured tensors, arguments and .grad slots."""
        n_out = self._n_out
        targets = [(leaves[t] if kind == "arg" else t) if kind in ("data", "arg") else None
                   for kind, t in self.update_slots]
        # an update the backend already wrote into its target's own buffer needs no copy; any
        # other that shares memory with an input is copied first, before any write-back lands
        ups = [a if (tgt is not None and a is tgt._data) or (fresh is not None and fresh[n_out + j])
               else _fresh(a, ins) for j, (tgt, a) in enumerate(zip(targets, ups))]
        new_grads = self.new_grads
        for j, ((kind, t), tgt, a) in enumerate(zip(self.update_slots, targets, ups)):
            if tgt is not None:
                if a is not tgt._data:
                    tgt._data[...] = a
                tgt._version[0] += 1
            else:
                owner = t if kind == "grad" else leaves[t]
                g = owner._grad
                if j in new_grads:     # the trace set it anew (zero_grad, backward): a new tensor
                    owner._grad = Tensor._wrap(a if fresh is not None and fresh[n_out + j] else _copy(a))
                elif g is not None and tuple(g.shape) == a.shape and not g.requires_grad and g._data.flags.writeable:
                    g._data[...] = a
                    g._version[0] += 1
                else:
                    owner._grad = Tensor._wrap(_copy(a))
        for kind, t in self.grad_clears:
            (t if kind == "grad" else leaves[t])._grad = None
