"""The autograd bridge: the eager autograd node of a compiled call (CompiledFunctionBackward),
which runs the GraphFunction's backward graph on the saved inputs, and what a call decides
about it (which inputs and outputs are differentiated, which inputs to snapshot)."""
from __future__ import annotations

from .. import autograd as _ag
from ..tensor import Tensor
from .results import _own


class CompiledFunctionBackward:
    """The eager autograd node of a compiled call (the engine's interface: next, apply,
    release, freed, retained, name). Its cotangent is one output's gradient, or when several
    outputs require grad the concatenation of all of them (see _OutputBackward)."""
    __slots__ = ("fn", "outs", "diff", "next", "saved", "versions", "written", "freed", "retained",
                 "out_types", "__weakref__")

    def __init__(self, fn, outs, diff, inputs, written, before=None):
        self.fn = fn
        self.outs = tuple(outs)                 # output indices whose gradient this node takes
        self.diff = tuple(diff)                 # input indices that require grad
        self.next = tuple(_ag.edge_of(inputs[i]) for i in diff)
        self.saved = list(inputs)
        # inputs the call updated in place but the recomputed forward reads (the generator
        # state): their values from before the call, snapshotted by Entry.run
        for i, t in (before or {}).items():
            self.saved[i] = t
        self.versions = [t._version[0] for t in self.saved]
        self.written = frozenset(written) - frozenset(before or ())   # updated by the call itself
        self.out_types = tuple(fn.graph.outputs[k].type for k in outs)
        self.freed = False
        self.retained = None

    @property
    def name(self):
        return "CompiledFunctionBackward"

    def __repr__(self):
        return f"<{self.name} ({self.fn.graph.name})>"

    def apply(self, g):
        if self.freed:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Saved intermediate values of the "
                "graph are freed when you call .backward() or autograd.grad(). Specify "
                "retain_graph=True if you need to backward through the graph a second time.")
        bwd, used, where = self.fn.backward(self.outs, self.diff)
        for i in used:
            t = self.saved[i]
            if i in self.written or t._version[0] != self.versions[i]:
                lbl = self.fn.graph.inputs[i].label
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by an "
                    f"inplace operation: [{t.dtype!r} {list(t.shape)}] '{lbl}', which is saved by "
                    f"{self.name} (graph {self.fn.graph.name})"
                    + (", was updated by the compiled call itself" if i in self.written else
                       f", is at version {t._version[0]}; expected version {self.versions[i]} instead")
                    + ". Hint: the backward of a compiled function recomputes its forward from its "
                    "inputs; do not modify them in place before calling backward().")
        from ..ops import functional as F
        cts = _unpack(g, self.out_types) if len(self.outs) > 1 else [g]
        cts = [F.reshape(F.cast(c, t.dtype), t.shape) for c, t in zip(cts, self.out_types)]
        ins = list(self.saved) + cts
        if _ag.is_grad_enabled() and any(t.requires_grad for t in ins):
            outs = _call_graph_fn(bwd, ins)     # create_graph: the gradients are differentiable
        else:
            arrays = [t._data for t in ins]
            outs = [Tensor._wrap(_own(a, arrays)) for a in bwd.exe(arrays)]
        return tuple(None if w is None else outs[w] for w in where)

    def release(self):
        self.saved = None
        self.freed = True


class _OutputBackward:
    """When several outputs of one compiled call require grad, each gets one of these: it places
    its gradient in that output's segment of a flat vector, which the engine sums over the
    outputs into the shared CompiledFunctionBackward's cotangent."""
    __slots__ = ("next", "k", "types", "freed", "retained", "__weakref__")

    def __init__(self, shared, k, types):
        self.next = (shared,)
        self.k = k
        self.types = types
        self.freed = False
        self.retained = None

    @property
    def name(self):
        return "CompiledFunctionOutputBackward"

    def __repr__(self):
        return f"<{self.name} [{self.k}]>"

    def apply(self, g):
        from ..ops import functional as F
        dt = _pack_dtype(self.types)
        parts = []
        for j, t in enumerate(self.types):
            if j == self.k:
                parts.append(F.reshape(F.cast(g, dt), (-1,)))
            else:
                parts.append(F.zeros(t.numel, dtype=dt, device=F._device_of(g, None)))
        return (F.cat(parts) if len(parts) > 1 else parts[0],)

    def release(self):
        self.freed = True


def _pack_dtype(types):
    from .. import dtypes as _dt
    return _dt.float64 if any(t.dtype is _dt.float64 for t in types) else types[0].dtype


def _unpack(g, types):
    from ..ops import functional as F
    out, at = [], 0
    for t in types:
        part = F.reshape(F.narrow(g, 0, at, t.numel), t.shape)
        out.append(F.cast(part, t.dtype))
        at += t.numel
    return out


_MISSING_PLAN = object()


def _call_graph_fn(fn, tensors):
    """Run a (backward) GraphFunction on tensors, attaching a backward node when needed."""
    ins = [t._data for t in tensors]
    outs = [Tensor._wrap(_own(a, ins)) for a in fn.exe(ins)]
    _attach_backward(fn, tensors, outs, written=())
    return outs


def _backward_plan(fn, inputs, written):
    """(diff, req, snapshot) for a call about to run: the inputs requiring grad, the outputs that
    will need a grad_fn, and the inputs that the call updates in place, that the outputs depend
    on and that do not require grad themselves (the generator state a dropout reads): the
    backward recomputes the forward, so those must be saved as they are before the call."""
    if not _ag.is_grad_enabled():
        return None
    diff = [i for i, t in enumerate(inputs) if t.requires_grad and t.dtype.is_floating_point]
    if not diff:
        return None
    req = fn.outputs_requiring_grad(diff)
    if not req:
        return None
    snapshot = ()
    if written:
        reach = fn.inputs_reaching(req)
        snapshot = [i for i in written if i in reach and not inputs[i].requires_grad]
    return diff, req, snapshot


def _snapshot(inputs, idx):
    return {i: Tensor._wrap(inputs[i]._data.copy(), dtype=inputs[i].dtype) for i in idx}


def _attach_backward(fn, inputs, outs, written, plan=_MISSING_PLAN, before=None):
    """Give the outputs that need it a grad_fn running fn's backward (grad mode on only)."""
    if plan is _MISSING_PLAN:
        plan = _backward_plan(fn, inputs, ())
    if plan is None:
        return
    diff, req, _ = plan
    node = CompiledFunctionBackward(fn, req, diff, inputs, written, before)
    types = node.out_types
    for j, k in enumerate(req):
        t = outs[k]
        t.requires_grad = True
        t.grad_fn = node if len(req) == 1 else _OutputBackward(node, j, types)
