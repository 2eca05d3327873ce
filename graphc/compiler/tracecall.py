"""Tracing a call: run the function on tracers for its tensor arguments (captured tensors are
lifted to state inputs as the trace touches them), turn what it wrote into write-back slots,
gather the guards and build the Entry. A user error raised while tracing gets a note naming
the user's line."""
from __future__ import annotations

import os
import sys
import traceback

import numpy as np

from .. import pytree
from .. import tracing as _tr
from ..ir.graph import Graph
from ..logs import recompile as _log_recompile
from ..tensor import Tensor
from .entry import Entry
from .graph_function import GraphFunction
from .guards import _PythonValues, _scan_names, _trace_guards
from .signature import _arg_labels


class _TraceCall:
    """CompiledFunction's tracing half: _trace makes the Entry for a new signature (its caller
    holds the trace lock, see threads.py). It reads the compiled function's fn, name,
    verbose_explain and cache of entries (_cache), and appends to its trace log (_log)."""

    def _trace(self, args, kwargs, leaves, key, reason):
        n = len(self._log)
        graph = Graph(self.name if n == 0 else f"{self.name}_{n}")
        names = {}
        namer_cache = []

        def namer(t):
            if not namer_cache:
                namer_cache.append(_scan_names(self.fn))
            got = namer_cache[0].get(id(t))
            if got:
                names[id(t)] = got
                return got[0]
            return None

        trace = _tr.Trace(graph, namer)
        # the .grad of every captured tensor as it is on entry (see Trace.snapshot_grads)
        namer_cache.append(_scan_names(self.fn))
        trace.snapshot_grads(namer_cache[0].tensors)
        labels = _arg_labels(self.fn, args, kwargs, None)
        arg_leaves = []
        traced_leaves = list(leaves)
        for i, x in enumerate(leaves):
            if isinstance(x, Tensor):
                v = graph.add_input(x._type(), "arg", label=labels[i] if i < len(labels) else f"arg{i}")
                tr = trace.tracer(v, x.requires_grad)
                trace.arg_of[id(tr)] = x
                trace.labels.setdefault(id(x), v.label)   # its .grad slot is "<arg>.grad"
                trace.arg_values[id(tr)] = v
                trace.keep[id(tr)] = tr
                traced_leaves[i] = tr
                arg_leaves.append(i)
        (targs, tkwargs) = pytree.unflatten(pytree.flatten((args, kwargs))[1], traced_leaves)
        arg_tracers = [traced_leaves[i] for i in arg_leaves]
        try:
            with _tr.tracing(trace):
                try:
                    result = self.fn(*targs, **tkwargs)
                except BaseException:
                    trace.restore_grads()
                    raise
                trace.finish()
                out_leaves_raw, out_treedef = pytree.flatten(result)
                out_leaves = []
                for x in out_leaves_raw:
                    if isinstance(x, Tensor):
                        out_leaves.append(("out", len(graph.outputs)))
                        graph.outputs.append(trace.value_of(x))
                    else:
                        out_leaves.append(("static", x))
        except _tr.TraceError:
            raise
        except Exception as e:
            loc = _user_tb_location(e)
            if loc:
                e.add_note(f"(graphc: raised while tracing '{self.name}', at {loc})")
            if isinstance(e, (ValueError, TypeError)) and ("read-only" in str(e) or "item assignment" in str(e)):
                e.add_note("(graphc: if this wrote a .grad's storage directly (p._grad._data[...] = 0, as "
                           "nn.Module.zero_grad(set_to_none=False) does), the trace cannot record it: use "
                           "opt.zero_grad(set_to_none=False), p.grad.zero_() or zero_grad(set_to_none=True))")
            raise

        # state write-backs: captured data, arguments updated in place, .grad slots. The .grad
        # of an argument is bound per call (("arg_grad", leaf index)), of a captured tensor to it.
        arg_index = {id(leaves[i]): i for i in arg_leaves}

        def grad_slot(owner):
            i = arg_index.get(id(owner))
            return ("arg_grad", i) if i is not None else ("grad", owner)

        update_slots, grad_clears, new_grads = [], [], set()
        for tid, t in trace.written.items():
            graph.updates.append((trace.label_for(t), trace.current[tid]))
            update_slots.append(("data", t))
        for i, tr in zip(arg_leaves, arg_tracers):
            if tr._value is not trace.arg_values[id(tr)]:
                graph.updates.append((trace.arg_values[id(tr)].label, tr._value))
                update_slots.append(("arg", i))
        for tid, v in trace.grads.items():
            owner = trace.keep.get(tid)
            if owner is None:
                continue
            if v is None:
                grad_clears.append(grad_slot(owner))    # None at the end: clear it, whatever it was
                continue
            if owner._grad is not None and trace.current.get(id(owner._grad)) is v:
                continue  # read but not changed
            graph.updates.append((trace.label_for(owner, ".grad"), v))
            update_slots.append(grad_slot(owner))
            read = trace.grad_reads.get(tid)
            if read is None or read[1]:     # the .grad it had before the call was never read:
                new_grads.add(len(update_slots) - 1)    # a new tensor, as eagerly (zero_grad + backward)

        state_slots = []
        for t, v in trace.state:
            owner = trace.grad_inputs.get(v.name)
            state_slots.append(grad_slot(owner) if owner is not None else ("data", t))

        # graph inputs (args first, then state, as Entry.run binds them) the call updates in place
        written = []
        for slot in update_slots:
            if slot[0] == "arg":
                written.append(arg_leaves.index(slot[1]))
            else:
                for j, s in enumerate(state_slots):
                    if s[0] == slot[0] and s[1] is slot[1]:
                        written.append(len(arg_leaves) + j)

        guards = (_trace_guards(trace, names, arg_leaves) + list(namer_cache[0].none_guards)
                  + list(trace.guards))
        python_values = _PythonValues(self.fn)   # read after the trace: what it left behind
        if python_values.refs:
            guards.append((python_values.describe, python_values))
        if python_values.modules:
            guards.append((python_values.describe_modes, python_values.modes_unchanged))
        entry_box = []
        one_shot = trace.created_state and not any(getattr(e, "created_state", False)
                                                   for e in self._cache.get(key, ()))
        if one_shot:
            guards.append(("the function created new state while it was traced (an optimizer's "
                           "buffers): the trace was only for that first call",
                           lambda b=entry_box: not b or b[0].calls == 0))
        fn = GraphFunction(graph, self, trace.nograd, one_shot=one_shot)
        _log_recompile(self.name, graph.name, reason)
        fn.exe  # passes and backend now, so errors surface at the first call (a one-shot graph: the interpreter)
        self._log.append((graph.name, reason))
        if self.verbose_explain:
            print(f"graphc: tracing {self.name} ({graph.name}): {reason}", file=sys.stderr)
        entry = Entry(key, fn, arg_leaves, state_slots, update_slots, grad_clears,
                      out_treedef, out_leaves, guards, reason, written)
        entry.created_state = trace.created_state
        entry.relaxed = _grad_free_args(graph, trace, arg_leaves, arg_tracers, update_slots)
        entry.new_grads = frozenset(new_grads)
        # arguments that are neither tensors nor Python scalars are keyed by identity: hold them,
        # so that their id cannot be reused by another object while this entry is cached
        entry.static_refs = [x for x, spec in zip(leaves, key[1]) if spec[0] == "O"]
        if trace.created_state:
            entry_box.append(entry)
        return entry


def _grad_free_args(graph, trace, arg_leaves, arg_tracers, update_slots):
    """Leaf indices of the tensor arguments whose requires_grad / is_leaf the graph does not
    depend on: every use of the argument is a detach (stop_gradient), it is not returned or
    updated, and its .grad is not touched -- a recurrent state the function detaches. Such an
    entry serves calls that differ from its signature only in those flags (see
    CompiledFunction._lookup_relaxed). A Python branch on x.requires_grad is not seen."""
    updated = {i for kind, i in update_slots if kind == "arg"}
    used_by = {}
    for node in graph.nodes:
        for v in node.inputs:
            used_by.setdefault(v.name, set()).add(node.op)
    ends = {v.name for v in graph.outputs} | {v.name for _, v in graph.updates}
    out = []
    for i, tr in zip(arg_leaves, arg_tracers):
        v = trace.arg_values[id(tr)]
        arg = trace.arg_of[id(tr)]
        if (i in updated or v.name in ends or id(arg) in trace.grad_reads or id(arg) in trace.grads
                or tr._value is not v):
            continue
        if used_by.get(v.name, set()) <= {"stop_gradient"}:
            out.append(i)
    return frozenset(out)


_LIBRARY_DIRS = tuple({os.path.dirname(os.__file__) + os.sep,
                       os.path.dirname(np.__file__) + os.sep})


def _user_tb_location(e):
    """The innermost frame of the traceback in user code (not graphc, numpy or the stdlib)."""
    here = _tr._HERE
    loc = fallback = None
    for fs in traceback.extract_tb(e.__traceback__):
        if not fs.filename.startswith(here):
            fallback = f"{fs.filename}:{fs.lineno}: `{(fs.line or '').strip()}`"
            if not fs.filename.startswith(_LIBRARY_DIRS):
                loc = fallback
    return loc or fallback
