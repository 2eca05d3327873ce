"""Tracing: while a compiled function runs on tracer tensors, every primitive is recorded
into an ir.Graph instead of computed.

Tensors the function reads from its closure or globals (parameters, optimizer state) are
lifted into the graph as `state` inputs; in-place updates of them and of their .grad become
`update`s that the compiled call writes back. Python scalars and shapes are static.
"""
from __future__ import annotations

import numpy as np

from . import autograd as ag
from . import mode as _mode
from .ir.graph import Graph
from .mode import (KNOWN_NAMES, TraceError, _HERE, _ActiveTrace, _current,  # noqa: F401  (re-exported)
                   active, data_dependent, escaped, is_tracing, suspended, tracing, user_frame,
                   user_location)
from .ops import functional as F
from .passes.autodiff import gradients, has_gradient
from .tensor import Tensor, apply


class Trace:
    """The state of one tracing run: the graph so far and the captured-state bookkeeping."""

    def __init__(self, graph: Graph, namer=None):
        self.graph = graph
        self.namer = namer            # tensor -> label for captured state, or None
        self.current = {}             # id(concrete tensor) -> its current Value
        self.keep = {}                # id -> tensor (keeps ids valid while tracing)
        self.state = []               # [(tensor, Value)] lifted state inputs, in order
        self.written = {}             # id -> tensor whose data the trace updates in place
        self.grads = {}               # id(tensor) -> Value | None: the traced .grad
        self.grad_reads = {}          # id(tensor) -> (tensor, was_none) for guards
        self.arg_of = {}              # id(arg tracer) -> concrete arg tensor
        self.arg_values = {}          # id(arg tracer) -> its graph input Value
        self.labels = {}              # id(tensor) -> label
        self.nograd = set()           # names of values recorded with grad mode off: the
                                      # autodiff pass does not propagate through them
        self.grad_tracers = {}        # id(tracer read from x.grad) -> id(x)
        self.grad_inputs = {}         # name of a state input holding x.grad -> x
        self.created_state = False    # did the function create eager state (suspended())?
        self.guards = []              # [(description, check() -> bool)] added by library code
        self._guard_keys = {}         # key -> index in self.guards
        self.entry_grads = {}         # id(owner) -> (owner, its .grad when the call began)
        self._mirror = {}             # id(owner) -> what the trace last saw in or put into owner._grad
        self._frozen = []             # entry .grad arrays made read-only while tracing

    # ---- guards --------------------------------------------------------------------------------
    def add_guard(self, description, check, key=None):
        """Make the compiled entry being traced depend on check() -> bool, evaluated before the
        cached trace is reused (a False retraces). `description` (a string, or a callable giving
        one when the guard fails) becomes explain()'s reason. A guard with the `key` of one
        added earlier in this trace replaces it (an optimizer stepped twice: the last wins)."""
        if key is not None and key in self._guard_keys:
            self.guards[self._guard_keys[key]] = (description, check)
            return
        if key is not None:
            self._guard_keys[key] = len(self.guards)
        self.guards.append((description, check))

    def object_label(self, obj):
        """The name by which the traced function reaches obj (a global, closure variable or
        attribute), or None."""
        return self.namer(obj) if self.namer else None

    # ---- values --------------------------------------------------------------------------------
    def tracer(self, value, requires_grad=False):
        return Tensor._tracer(self, value, requires_grad)

    def label_for(self, t, suffix: str = "") -> str:
        base = self.labels.get(id(t))
        if base is None:
            base = ((self.namer(t) if self.namer else None) or KNOWN_NAMES.get(id(t))
                    or f"c{len(self.labels)}")
            used = set(self.labels.values())
            label, k = base, 1
            while label in used:
                label, k = f"{base}_{k}", k + 1
            self.labels[id(t)] = base = label
        return base + suffix

    def lift(self, t):
        """The Value a concrete tensor has in the graph, adding it as state on first use."""
        v = self.current.get(id(t))
        if v is None:
            v = self.graph.add_input(t._type(), "state", label=self.label_for(t))
            self.current[id(t)] = v
            self.keep[id(t)] = t
            self.state.append((t, v))
        return v

    def value_of(self, t):
        if t._value is not None:
            if t._trace is not self:
                raise TraceError("a tracer from another trace was used: a tensor from inside a "
                                 "compiled function escaped (was it stored on self or a global?)")
            return t._value
        return self.lift(t)

    def record(self, prim, inputs, attrs):
        vals = [self.value_of(t) for t in inputs]
        out_type = prim.infer(*[v.type for v in vals], **attrs)
        v = self.graph.add_node(prim.name, vals, attrs, out_type, loc=user_location(False))
        if not ag.is_grad_enabled():
            self.nograd.add(v.name)
        req = (prim.vjp is not None and out_type.dtype.is_floating_point and ag.is_grad_enabled()
               and any(t.requires_grad for t in inputs))
        out = self.tracer(v, req)
        if prim.category == "movement" and len(inputs) == 1:
            base = inputs[0]
            out._base = base._base if base._base is not None else base
        return out

    def detach(self, t):
        with ag.no_grad():
            return apply("stop_gradient", t)

    # ---- the eager .grad slots while tracing ----------------------------------------------------
    # Library code may set p._grad directly (nn.Module.zero_grad), bypassing read_grad and
    # write_grad. So that the guards describe the state on ENTRY and such writes are not lost,
    # each owner's _grad slot mirrors its traced .grad while the trace runs (a tracer, or None);
    # a slot found holding anything else was written eagerly, and the write is taken into the
    # trace (_sync). finish() restores every slot to its entry value: the compiled call's
    # write-back, not the trace, updates the real .grad.
    def snapshot_grads(self, tensors):
        """Record the entry .grad of tensors an eager write could reach before the trace does."""
        for t in tensors:
            if isinstance(t, Tensor) and t._value is None and id(t) not in self._mirror:
                self.entry_grads[id(t)] = (t, t._grad)
                self._mirror[id(t)] = t._grad
                self.keep[id(t)] = t
                a = getattr(t._grad, "_data", None)
                # read-only while tracing: an eager write into it (p._grad._data[...] = 0) would
                # change this call's values but not the graph's, so it fails at the user's line
                if type(a) is np.ndarray and a.flags.writeable:
                    a.flags.writeable = False
                    self._frozen.append(a)

    def _sync(self, owner):
        key = id(owner)
        if key not in self._mirror:
            self.snapshot_grads([owner])
            return
        now = owner._grad
        if now is self._mirror[key]:
            return
        self._mirror[key] = now
        if now is None:
            self.grads[key] = None
        elif isinstance(now, Tensor) and tuple(now.shape) == tuple(owner.shape):
            self.grads[key] = self.value_of(now)
        else:
            raise TraceError(f".grad of a captured tensor was set to {type(now).__name__} "
                             f"{list(getattr(now, 'shape', []))} while tracing, at {user_location()}")

    def _show_grad(self, owner):
        """Put the traced .grad of owner into its eager slot (see above)."""
        key = id(owner)
        v = self.grads.get(key)
        shown = None if v is None else self._grad_tracer(key, v)
        owner._grad = self._mirror[key] = shown

    def finish(self):
        """After the function ran: take in eager writes not yet seen, restore the entry .grads."""
        try:
            for key, (owner, _) in list(self.entry_grads.items()):
                self._sync(owner)
        finally:
            self.restore_grads()

    def restore_grads(self):
        for owner, was in self.entry_grads.values():
            owner._grad = was
        for a in self._frozen:
            a.flags.writeable = True
        self._frozen = []

    # ---- in-place updates and grads -------------------------------------------------------------
    def inplace(self, t, fn, args):
        if t._value is not None:
            if t._base is not None:
                raise TraceError(
                    f"an in-place update of a view (the result of reshape, permute, slice, "
                    f"indexing, ...) is not supported while tracing, at {user_location()}; use the "
                    "out-of-place form")
            if ag.is_grad_enabled() and t.requires_grad and self._is_leaf_tracer(t):
                raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                                   "operation. (Wrap parameter updates in `with gc.no_grad():`.)")
            new = fn(t, *args)
            _check_inplace_result(t, new)
            key = self.grad_tracers.get(id(t))
            key = key if key is not None and self.grads.get(key) is t._value else None
            t._value = new._value
            t.requires_grad = new.requires_grad
            if key is not None:
                self.grads[key] = new._value
                if key in self._mirror:
                    self._show_grad(self.keep[key])
            return t
        if ag.is_grad_enabled() and t.requires_grad and t.is_leaf:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                               "operation. (Wrap parameter updates in `with gc.no_grad():`.)")
        new = fn(t, *args)
        _check_inplace_result(t, new)
        self.lift(t)
        self.current[id(t)] = new._value
        self.written[id(t)] = t
        return t

    def _is_leaf_tracer(self, t):
        """Would t be a leaf eagerly: an argument that is a leaf, or x.detach().requires_grad_()."""
        arg = self.arg_of.get(id(t))
        if arg is not None:
            return arg.is_leaf
        p = t._value.producer
        return p is None or p.op == "stop_gradient"

    def _grad_owner(self, t):
        """The concrete tensor whose .grad slot t stands for, or None for an intermediate."""
        if t._value is None:
            return t
        return self.arg_of.get(id(t))

    def read_grad(self, t):
        owner = self._grad_owner(t)
        if owner is None:
            return None
        key = id(owner)
        self._sync(owner)
        if key in self.grads:
            v = self.grads[key]
            return None if v is None else self._grad_tracer(key, v)
        self.grad_reads.setdefault(key, (owner, owner._grad is None))
        self.keep[key] = owner
        if owner._grad is None:
            return None
        v = self.current.get(id(owner._grad))
        if v is None:
            v = self.graph.add_input(owner._grad._type(), "state", label=self.label_for(owner, ".grad"))
            self.current[id(owner._grad)] = v
            self.keep[id(owner._grad)] = owner._grad
            self.state.append((owner._grad, v))
            self.labels[id(owner._grad)] = self.label_for(owner, ".grad")
            self.grad_inputs[v.name] = owner
        self.grads[key] = v
        return self._grad_tracer(key, v)

    def _grad_tracer(self, key, v):
        # remembered so that an in-place update of it (w.grad.zero_(), p.grad.mul_(c)) updates
        # the traced .grad slot, as it updates the .grad tensor eagerly
        t = self.tracer(v)
        self.grad_tracers[id(t)] = key
        self.keep[id(t)] = t
        return t

    def write_grad(self, t, value):
        owner = self._grad_owner(t)
        if owner is None:
            raise TraceError("assigning .grad of an intermediate (non-leaf) tensor while tracing is not supported")
        self.keep[id(owner)] = owner
        self._sync(owner)
        # a write before any read: the trace does not depend on what .grad held, so no guard
        if value is None:
            self.grads[id(owner)] = None
        else:
            if tuple(value.shape) != tuple(owner.shape):
                raise RuntimeError(f"assigned grad has data of a different size: {list(value.shape)} vs {list(owner.shape)}")
            self.grads[id(owner)] = self.value_of(value)
        self._show_grad(owner)

    def leaves_requiring_grad(self):
        """Tensors whose .grad a traced backward() fills, with their *current* Value: captured
        leaves and argument tensors. (After an in-place update under no_grad a leaf's current
        Value is the update's result, which the autodiff pass treats as a fresh leaf, as eager
        autograd does.)"""
        out = []
        for t, v in self.state:
            if t.requires_grad and t.is_leaf:
                out.append((t, self.current.get(id(t), v)))
        for tid, arg in self.arg_of.items():
            if arg.requires_grad and arg.is_leaf:
                tr = self.keep.get(tid)
                out.append((arg, tr._value if tr is not None else self.arg_values[tid]))
        return out

    def nonleaf_args_requiring_grad(self):
        """Arguments that require grad but are not leaves: their history is eager, outside the graph."""
        out = []
        for tid, arg in self.arg_of.items():
            if arg.requires_grad and not arg.is_leaf:
                tr = self.keep.get(tid)
                out.append((arg, tr._value if tr is not None else self.arg_values[tid]))
        return out

    # ---- backward() and autograd.grad while tracing ------------------------------------------------
    def backward(self, tensors, grad_tensors, create_graph):
        """loss.backward() while tracing: record the gradients of the captured leaves (`grad`
        placeholders the autodiff pass expands; with create_graph=True the backward nodes
        themselves) and accumulate them into their .grad slots."""
        tr = self
        for t in tensors:
            if not t.requires_grad:
                raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        seeds = ag._default_grads(tensors, grad_tensors)
        leaves = tr.leaves_requiring_grad()
        nonleaf = tr.nonleaf_args_requiring_grad()
        outs = [tr.value_of(t) for t in tensors]
        reaches = has_gradient(tr.graph.nodes, outs, [v for _, v in nonleaf], tr.nograd) if nonleaf else ()
        for (_, v), reached in zip(nonleaf, reaches):
            if reached:
                raise TraceError(
                    f"backward() inside a compiled function reaches argument '{v.label}', a non-leaf "
                    "tensor that requires grad: its history is eager, outside the compiled graph, so the "
                    f"gradient cannot flow into it ({user_location()}). Pass it detached (x.detach()) "
                    "or call backward() outside the compiled function.")
        with ag.set_grad_enabled(create_graph):
            grads = gradients(tr, outs, seeds, [v for _, v in leaves], create_graph)
            for (leaf, _), g in zip(leaves, grads):
                if g is None:
                    continue
                old = tr.read_grad(leaf)
                tr.grads[id(leaf)] = (g if old is None else F.add(old, g))._value
                tr._show_grad(leaf)

    def grad(self, outputs, inputs, grad_outputs, allow_unused, create_graph=False):
        """autograd.grad while tracing: gradients as new traced values (placeholders for the
        autodiff pass), differentiable (the backward recorded now, with grad mode on) only
        under create_graph=True, as eagerly."""
        tr = self
        for t in outputs:
            if not t.requires_grad:
                raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        for i, t in enumerate(inputs):
            if not t.requires_grad:
                raise RuntimeError(f"autograd.grad: input {i} does not require grad")
        seeds = ag._default_grads(outputs, grad_outputs)
        wrt = [tr.value_of(t) for t in inputs]
        outs = [tr.value_of(t) for t in outputs]
        if not allow_unused:
            for i, reached in enumerate(has_gradient(tr.graph.nodes, outs, wrt, tr.nograd)):
                if not reached:
                    raise RuntimeError(f"One of the differentiated Tensors (input {i}) appears to not have been "
                                       "used in the graph. Set allow_unused=True if this is the desired behavior.")
        with ag.set_grad_enabled(create_graph):
            grads = gradients(tr, outs, seeds, wrt, create_graph)
        for g in grads:
            if g is not None:
                g.requires_grad = bool(create_graph)
        return tuple(grads)


def _check_inplace_result(t, new):
    if new._dtype is not t._dtype:
        raise RuntimeError(f"result type {new._dtype.name} can't be cast to the desired output type {t._dtype.name}")
    if tuple(new.shape) != tuple(t.shape):
        raise RuntimeError(f"output with shape {list(t.shape)} doesn't match the broadcast shape {list(new.shape)}")


# ---- module-level entry points used by Tensor ----------------------------------------------------
def read_grad(t):
    return _current.trace.read_grad(t)


def write_grad(t, value):
    return _current.trace.write_grad(t, value)


def reset_grads(params, set_to_none=True):
    """Module.zero_grad and Optimizer.zero_grad: every param's .grad to None, or to zeros. It
    goes through the .grad property, never the slot, so inside a compiled step a traced
    gradient gets a new (zero) value instead of an in-place write into an array the trace has
    already read."""
    for p in params:
        if set_to_none:
            p.grad = None              # no read first: a traced step then does not depend on it
            continue
        grad = p.grad
        if grad is None:
            continue
        if grad.is_tracer:             # while tracing: a new value for the .grad slot
            with ag.no_grad():
                p.grad = F.zeros_like(grad)
            continue
        if grad.grad_fn is not None or grad.requires_grad:
            grad.detach_()
        try:
            with ag.no_grad():
                grad.zero_()
        except RuntimeError:            # e.g. a read-only (broadcast) gradient array
            with suspended(), ag.no_grad():
                p.grad = F.zeros_like(p)


def inplace(t, fn, args):
    return _current.trace.inplace(t, fn, args)


def trace_backward(tensors, grad_tensors, create_graph):
    return _current.trace.backward(tensors, grad_tensors, create_graph)


def trace_grad(outputs, inputs, grad_outputs, allow_unused, create_graph=False):
    return _current.trace.grad(outputs, inputs, grad_outputs, allow_unused, create_graph)


_mode.register_trace_factory(Trace)
