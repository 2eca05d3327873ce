"""gc.compile: trace a function once per input signature, run the passes, hand the graph to a
backend, and run the executable on later calls -- retracing (and saying why) when the
signature or a guard on captured state changes."""
from __future__ import annotations

import functools
import inspect
import os
import sys
import threading
import traceback

import numpy as np

from . import autograd as _ag
from . import backends as _backends
from . import dtypes as _dtypes
from .logs import compiled as _log_compiled, one_shot as _log_one_shot, recompile as _log_recompile
from . import pytree
from . import tracing as _tr
from .ir.graph import Graph
from .ir import print_graph
from .passes import manager as _pass_manager
from .tensor import Tensor


# ---- threads and fork -----------------------------------------------------------------------------
# The trace being recorded is process-wide (tracing.active()), so one thread traces at a time:
# _TRACE_LOCK is held while a compiled function is traced and compiled, and a thread that finds
# no entry for its signature takes it, looks again (another thread may have traced that very
# signature meanwhile: it then uses that entry) and only then traces. _TRACER names the thread
# tracing now: a compiled function called from inside a trace is inlined only on that thread;
# another thread waits for the trace instead of recording its calls into it.
_TRACE_LOCK = threading.RLock()
_TRACER = [None]                     # threading.get_ident() of the thread tracing now, or None
_ENTRIES_LOCK = threading.Lock()     # reordering / extending an entry list (never held while tracing)


class _Tracing:
    """Hold the process-wide trace lock and mark this thread as the one tracing."""

    def __enter__(self):
        self.lock = _TRACE_LOCK
        self.lock.acquire()
        self.prev = _TRACER[0]
        _TRACER[0] = threading.get_ident()

    def __exit__(self, *exc):
        _TRACER[0] = self.prev
        self.lock.release()
        return False


def _inline_here():
    """Is a trace being recorded by this thread (a compiled call inside it is inlined)?"""
    owner = _TRACER[0]
    return _tr.active() is not None and (owner is None or owner == threading.get_ident())


def _after_fork_in_child():
    """fork() copies a lock held by another thread as held, and that thread does not exist in
    the child: the child's first trace would wait forever. The child has one thread, so the
    locks start free; a trace that another thread was recording is abandoned."""
    global _TRACE_LOCK, _ENTRIES_LOCK
    _TRACE_LOCK, _ENTRIES_LOCK = threading.RLock(), threading.Lock()
    if _TRACER[0] is not None and _TRACER[0] != threading.get_ident():
        _TRACER[0] = None
        _tr._current[0] = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# ---- signatures ----------------------------------------------------------------------------------
def _arrays_as_tensors(leaves, name, fn, args, kwargs):
    """numpy arrays among the argument leaves as tensors (no copy), so that they are graph
    inputs like tensors: shape and dtype in the signature, values read at every call. Left as
    they were, an array would be captured into the trace as a constant (keyed by id): mutate it
    and the next call would still compute with the old values. Sharing memory, an in-place
    update by the compiled function lands in the caller's array (as with torch.from_numpy).
    Inside the function the argument is a graphc tensor."""
    out = None
    for i, x in enumerate(leaves):
        if isinstance(x, np.ndarray):
            out = out or list(leaves)
            a = np.asarray(x)               # a subclass (memmap, matrix) as a plain array view
            try:
                dt = _dtypes.from_numpy(a.dtype)
            except TypeError:
                labels = _arg_labels(fn, args, kwargs, None)
                lbl = labels[i] if i < len(labels) else f"arg{i}"
                raise TypeError(f"{name}: argument '{lbl}' is a numpy array of dtype {a.dtype}, which graphc "
                                "does not support (float32, float64, int64, bool); convert it first, "
                                "e.g. arr.astype(np.float32)") from None
            out[i] = Tensor._wrap(a, dtype=dt)
    return leaves if out is None else out


def _leaf_spec(x):
    if isinstance(x, Tensor):
        if x._value is not None:
            raise _tr.TraceError("a tracer escaped the compiled function that traced it and was passed "
                                 "to a compiled function as an argument; tracers have no data outside "
                                 "their trace: return the tensor instead of storing it")
        return ("T", tuple(x.shape), x.dtype.name, bool(x.requires_grad),
                bool(x.requires_grad and x.is_leaf))
    if x is None or isinstance(x, (bool, int, float, str, bytes, complex)):
        return ("S", type(x).__name__, x)
    return ("O", type(x).__name__, id(x))


def _fast_key(args):
    """For a call whose arguments are all eager tensors: a key equivalent to the full signature
    key ((args, {}) flattens to exactly these leaves); None otherwise."""
    specs = []
    for x in args:
        if x.__class__ is not Tensor or x._value is not None:
            return None
        rg = x.requires_grad
        specs.append((x._data.shape, x.dtype, rg, rg and x.grad_fn is None))
    return (tuple(specs), _ag.is_grad_enabled())


def _what_changed(a, b):
    if a[0] == b[0] == "T":
        what = [w for w, i in (("shape", 1), ("dtype", 2), ("requires_grad", 3)) if a[i] != b[i]]
        if a[3] == b[3] and a[4] != b[4]:
            what.append("is_leaf")
        return f" ({', '.join(what)} change)"
    if a[0] == b[0] == "S":
        return " (python scalar change: python values are static in the graph)"
    return ""


def _describe_leaf(spec):
    if spec[0] == "T":
        return f"tensor {spec[2]}{list(spec[1])}" + (
            "" if not spec[3] else " requiring grad" if spec[4] else " requiring grad (non-leaf)")
    if spec[0] == "S":
        return f"{spec[1]} {spec[2]!r}"
    return f"{spec[1]} object at {spec[2]:#x}"


def _arg_labels(fn, args, kwargs, treedef_leaves):
    """A readable label for each flattened argument leaf: x, batch[0], opts['lr']..."""
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        names = []
    labels = []

    def walk(obj, label):
        if isinstance(obj, (tuple, list)):
            for i, o in enumerate(obj):
                walk(o, f"{label}[{i}]")
        elif isinstance(obj, dict):
            for k, o in obj.items():
                walk(o, f"{label}[{k!r}]")
        else:
            labels.append(label)

    for i, a in enumerate(args):
        walk(a, names[i] if i < len(names) and not names[i].startswith("*") else f"arg{i}")
    for k, v in kwargs.items():
        walk(v, k)
    return labels


# ---- naming captured state ---------------------------------------------------------------------
def _scan_names(fn):
    """id(tensor) -> (label, guards) for tensors reachable by name from fn: its closure, its
    globals, modules' parameters and buffers, optimizers' state. `guards` are the
    (description, check) pairs that must hold for a trace capturing the tensor to stay valid:
    the global or closure variable still names the same object, the module attribute still
    holds the same tensor, the module is still in the same train/eval mode."""
    names = {}

    def add(t, label, guards):
        if isinstance(t, Tensor) and id(t) not in names:
            names[id(t)] = (label, guards)

    def walk(obj, label, guards):
        if isinstance(obj, type):      # a class (nn.Linear in a module's globals), not an instance
            return
        if isinstance(obj, Tensor):
            add(obj, label, guards)
        elif hasattr(obj, "named_parameters") and hasattr(obj, "named_buffers"):
            shown = label or type(obj).__name__
            modes = tuple(getattr(m, "training", None) for m in obj.modules())
            mode_guard = (f"module '{shown}' switched between train() and eval()",
                          lambda o=obj, m=modes: tuple(getattr(x, "training", None)
                                                       for x in o.modules()) == m)
            for kind, items in (("parameter", obj.named_parameters()), ("buffer", obj.named_buffers())):
                for n, p in items:
                    lbl = f"{label}.{n}" if label else n
                    attr_guard = (f"{kind} '{lbl}' was replaced by another tensor",
                                  lambda o=obj, n=n, p=p: _get_path(o, n) is p)
                    add(p, lbl, guards + [attr_guard, mode_guard])
        elif hasattr(obj, "param_groups") and hasattr(obj, "state"):
            if id(obj) not in names:            # the optimizer itself, for its guards' messages
                names[id(obj)] = (label or type(obj).__name__, guards)
            params = [p for g in obj.param_groups for p in g["params"]]
            for i, p in enumerate(params):
                for k, v in obj.state.get(p, {}).items():
                    add(v, f"{label}.{_param_name(names, p, i)}.{k}", guards)

    target = fn
    if hasattr(fn, "named_parameters"):
        walk(fn, "", [])
        target = getattr(type(fn), "forward", fn)
    owner = getattr(fn, "__self__", None)
    if owner is not None:
        walk(owner, "self" if not hasattr(owner, "named_parameters") else "", [])
        if not hasattr(owner, "named_parameters"):
            for name, v in list(getattr(owner, "__dict__", {}).items()):
                if isinstance(v, Tensor) or hasattr(v, "named_parameters") or hasattr(v, "param_groups"):
                    walk(v, f"self.{name}", [(f"attribute 'self.{name}' now refers to a different object",
                                              lambda o=owner, n=name, v=v: getattr(o, n, None) is v)])
    code_fn = inspect.unwrap(getattr(target, "__func__", target))
    code = getattr(code_fn, "__code__", None)
    if code is not None and code_fn.__closure__:
        for name, cell in zip(code.co_freevars, code_fn.__closure__):
            try:
                v = cell.cell_contents
            except ValueError:
                continue
            if isinstance(v, Tensor) or hasattr(v, "named_parameters") or hasattr(v, "param_groups"):
                walk(v, name, [(f"closure variable '{name}' now refers to a different object",
                                lambda c=cell, v=v: _cell(c) is v)])
    g = getattr(code_fn, "__globals__", {})
    for name, v in list(g.items()):
        if isinstance(v, Tensor) or hasattr(v, "named_parameters") or hasattr(v, "param_groups"):
            walk(v, name, [(f"global '{name}' now refers to a different object",
                            lambda g=g, name=name, v=v: g.get(name) is v)])
    return names


_STATIC_TYPES = (bool, int, float, complex, str, bytes, type(None))
_MISSING = object()


def _is_static(v, depth=0):
    if isinstance(v, _STATIC_TYPES):
        return True
    return isinstance(v, tuple) and depth < 2 and len(v) <= 16 and all(_is_static(x, depth + 1) for x in v)


def _same_value(a, b):
    return a is b or (type(a) is type(b) and a == b)


def _code_names(code):
    """The global names the code reads (not attribute names, which co_names also holds)."""
    import dis
    names = {ins.argval for ins in dis.get_instructions(code)
             if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(ins.argval, str)}
    for c in code.co_consts:
        if hasattr(c, "co_names"):          # nested functions, lambdas, comprehensions
            names |= _code_names(c)
    return names


class _PythonValues:
    """The guard on the Python values a trace read as constants: the scalar globals and closure
    variables the function (and the plain functions it calls, a few levels deep) refers to, and
    the scalar attributes of the object a bound method belongs to and of the modules it uses."""

    def __init__(self, fn):
        self.refs = []                      # (read() -> current value, what, value when traced)
        self.modules = []                   # (label, module, training flag of each submodule)
        self._seen = set()
        target = fn
        if hasattr(fn, "named_parameters"):
            self._object(fn, type(fn).__name__)
            target = getattr(type(fn), "forward", fn)
        owner = getattr(fn, "__self__", None)
        if owner is not None:
            self._object(owner, "self")
        self._function(inspect.unwrap(getattr(target, "__func__", target)), 0)

    def _function(self, f, depth):
        code = getattr(f, "__code__", None)
        if code is None or id(code) in self._seen:
            return
        self._seen.add(id(code))
        g = getattr(f, "__globals__", {})
        for name in sorted(_code_names(code)):
            if name in g:
                self._value(lambda g=g, n=name: g.get(n, _MISSING), f"global '{name}'", g[name], depth)
        for name, cell in zip(code.co_freevars, getattr(f, "__closure__", None) or ()):
            v = _cell(cell)
            self._value(lambda c=cell: _cell(c), f"closure variable '{name}'", v, depth)

    def _value(self, read, what, v, depth):
        if _is_static(v):
            self.refs.append((read, what, v))
        elif isinstance(v, type):
            return
        elif hasattr(v, "named_parameters") and hasattr(v, "modules"):
            self._object(v, what.split("'")[1])
        elif depth < 3 and inspect.isfunction(v) and not (v.__module__ or "").startswith("graphc"):
            self._function(v, depth + 1)

    def _object(self, obj, label):
        if id(obj) in self._seen:
            return
        self._seen.add(id(obj))
        objs = [(label, obj)]
        if hasattr(obj, "named_modules"):
            objs = [((f"{label}.{n}" if n else label), m) for n, m in obj.named_modules()]
            # every reachable module's train/eval mode, parameter-free ones (Dropout) included
            self.modules.append((label, obj, tuple(getattr(m, "training", None) for _, m in objs)))
        else:   # a plain object (the owner of a bound method): the modules it holds
            for name, v in list(getattr(obj, "__dict__", {}).items()):
                if hasattr(v, "named_modules") and not isinstance(v, type):
                    self._object(v, f"{label}.{name}")
        for lbl, o in objs:
            for name, v in list(getattr(o, "__dict__", {}).items()):
                if name != "training" and not name.startswith("__") and _is_static(v):
                    self.refs.append((lambda o=o, n=name: getattr(o, n, _MISSING),
                                      f"attribute '{lbl}.{name}'", v))

    def __call__(self):
        return all(_same_value(read(), v) for read, _, v in self.refs)

    def modes_unchanged(self):
        return all(tuple(getattr(m, "training", None) for m in obj.modules()) == modes
                   for _, obj, modes in self.modules)

    def describe_modes(self):
        for label, obj, modes in self.modules:
            for (n, m), was in zip(obj.named_modules(), modes):
                if getattr(m, "training", None) != was:
                    lbl = f"{label}.{n}" if n else label
                    now = "train()" if m.training else "eval()"
                    return (f"module '{lbl}' ({type(m).__name__}) switched between train() and eval() "
                            f"(now in {now} mode)")
            if tuple(getattr(m, "training", None) for m in obj.modules()) != modes:
                return f"module '{label}' changed its submodules or their train()/eval() mode"
        return "a module switched between train() and eval()"

    def describe(self):
        for read, what, v in self.refs:
            now = read()
            if not _same_value(now, v):
                now = "deleted" if now is _MISSING else repr(now)
                return f"{what} changed from {v!r} to {now} (python values are static in the graph)"
        return "a python value changed"


def _get_path(obj, path):
    for part in path.split("."):
        obj = getattr(obj, part, None)
    return obj


def _param_name(names, p, i):
    got = names.get(id(p))
    return got[0] if got else f"param{i}"


# ---- graphs as differentiable eager functions -------------------------------------------------------
class GraphFunction:
    """A traced graph compiled by a backend, callable on arrays; its backward (built lazily by
    the autodiff pass, one per set of outputs and inputs being differentiated) is another
    GraphFunction, so eager backward through a compiled call also works with create_graph=True.

    The backward recomputes the forward from the saved inputs rather than saving residuals:
    nothing is stored per call but references to the input tensors (checked against their
    version counters when the backward runs, as eager autograd checks saved tensors)."""

    def __init__(self, graph, compiler, nograd=frozenset(), one_shot=False):
        self.graph = graph                  # the graph as traced (the backward is built from it)
        self.compiler = compiler            # CompiledFunction: backend, passes, dump dir
        self.nograd = frozenset(nograd)     # values recorded with grad mode off
        self.one_shot = one_shot            # serves a single call (see `exe`)
        self._passes = None
        self._exe = None
        self._backend_exe = None
        self._requiring = {}
        self._reaching = {}
        self._backward = {}

    @property
    def passes(self):
        if self._passes is None:
            self._passes = self.compiler._run_passes(self.graph)
            _log_compiled(self._passes.final)
        return self._passes

    @property
    def exe(self):
        """What a call runs. Normally the backend's executable of the final graph. A one-shot
        graph (traced while the function created state: an optimizer's first step) serves one
        call, and building native code for it costs far more than running it, so with the llvm
        backend it runs on the reference interpreter, node by node over the traced graph, with
        no passes (unless IR dumps were asked for); cuda inputs still take the cuda backend."""
        if self._exe is None:
            if self.one_shot and self.compiler.backend == "llvm" and not self.compiler.dump:
                self._exe = _OneShot(self)
                _log_one_shot(self.graph)
            else:
                self._exe = self.backend_exe
        return self._exe

    @property
    def backend_exe(self):
        """The compile's backend's executable of the final graph (built on first use)."""
        if self._backend_exe is None:
            self._backend_exe = self.compiler._backend_compile(self.passes.final)
        return self._backend_exe

    def outputs_requiring_grad(self, diff_inputs):
        """Indices of the outputs that depend differentiably on the inputs `diff_inputs`."""
        key = tuple(diff_inputs)
        got = self._requiring.get(key)
        if got is None:
            from .ops.registry import PRIMITIVES
            g = self.graph
            req = {g.inputs[i].name for i in diff_inputs}
            for n in g.nodes:
                if (n.out.name not in self.nograd and n.out.type.dtype.is_floating_point
                        and PRIMITIVES[n.op].vjp is not None and any(i.name in req for i in n.inputs)):
                    req.add(n.out.name)
            got = self._requiring[key] = tuple(k for k, v in enumerate(g.outputs)
                                               if v.name in req and v.type.dtype.is_floating_point)
        return got

    def inputs_reaching(self, outs):
        """Indices of the graph inputs that the outputs `outs` depend on (through any node)."""
        key = tuple(outs)
        got = self._reaching.get(key)
        if got is None:
            g = self.graph
            need = {g.outputs[k].name for k in outs}
            for n in reversed(g.nodes):
                if n.out.name in need:
                    need.update(i.name for i in n.inputs)
            got = self._reaching[key] = frozenset(i for i, v in enumerate(g.inputs) if v.name in need)
        return got

    def backward(self, outs, diff_inputs):
        """(GraphFunction, used, where): the backward graph takes this graph's inputs then one
        cotangent per output in `outs`, and returns the gradients of the inputs `diff_inputs`
        that have one (`where[j]`: index of input j's gradient among its outputs, or None);
        `used`: the forward inputs it reads."""
        key = (tuple(outs), tuple(diff_inputs))
        got = self._backward.get(key)
        if got is None:
            with _Tracing():       # it is traced: one thread at a time, and once per key
                got = self._backward.get(key)
                if got is None:
                    got = self._backward[key] = self._build_backward(outs, diff_inputs)
        return got

    def _build_backward(self, outs, diff_inputs):
        from .passes.autodiff import backprop
        g = self.graph.copy()
        g.name = self.graph.name + "_backward"
        fwd_outs, g.outputs, g.updates = list(g.outputs), [], []
        n_in = len(g.inputs)
        trace = _tr.Trace(g)
        trace.nograd = set(self.nograd)
        with _tr.tracing(trace), _ag.enable_grad():      # recorded differentiable: double backward
            seeds = [trace.tracer(g.add_input(fwd_outs[k].type, "arg", label=f"grad_{fwd_outs[k].name}"))
                     for k in outs]
            grads = backprop(trace, [fwd_outs[k] for k in outs], seeds, [g.inputs[i] for i in diff_inputs])
        where = []
        for gr in grads:
            if gr is None:
                where.append(None)
            else:
                where.append(len(g.outputs))
                g.outputs.append(gr._value)
        fn = GraphFunction(g, self.compiler, trace.nograd)
        final = fn.passes.final
        read = {i.name for n in final.nodes for i in n.inputs} | {v.name for v in final.outputs}
        used = [i for i, v in enumerate(final.inputs[:n_in]) if v.name in read]
        return fn, used, where


class _OneShot:
    """A one-shot graph's executable (GraphFunction.exe): the reference Interpreter over the
    traced graph for host arrays; inputs in device memory take the backend path (FollowInputs)."""

    def __init__(self, fn):
        from .backends.interpreter import Interpreter
        self.fn = fn
        self.host = Interpreter(fn.graph)

    def __call__(self, arrays):
        if any(type(a) is not np.ndarray for a in arrays):
            from .backends.cuda.device_array import DeviceArray
            if DeviceArray in map(type, arrays):
                return self.fn.backend_exe(arrays)
        return self.host(arrays)


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
        from .ops import functional as F
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
        from .ops import functional as F
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
    from . import dtypes as _dt
    return _dt.float64 if any(t.dtype is _dt.float64 for t in types) else types[0].dtype


def _unpack(g, types):
    from .ops import functional as F
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


# ---- compiled entries ------------------------------------------------------------------------------
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
        self._plan_fixed = all(kind == "data" for kind, _ in self.state_slots)
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
        if self.update_slots or self.grad_clears:
            self._write_back(leaves, res[n_out:], ins, fresh)
        self.calls += 1
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


def _own(a, ins):
    """A result array as a fresh, writable array sharing memory with none of `ins`."""
    a = _fresh(a, ins)
    return a if a.flags.writeable else np.array(a, copy=True)


def _copy(a):
    """A copy of a result array (a numpy array, or a cuda tensor's DeviceArray)."""
    return np.array(a, copy=True) if type(a) is np.ndarray else a.copy()


def _fresh(a, others):
    """Copy a result that shares memory with an input (or an earlier result)."""
    if type(a) is not np.ndarray and hasattr(a, "shares_memory"):      # a cuda DeviceArray
        return a.copy() if any(a.shares_memory(o) for o in others) else a
    for o in others:
        if np.may_share_memory(a, o):
            return np.array(a, copy=True)
    return a


class CompiledFunction:
    """What gc.compile returns for a function: call it like the function."""

    def __init__(self, fn, backend=None, dump=None, explain=False, passes=None,
                 backend_options=None):
        backend = backend or _backends.default()
        self.fn = fn
        self.backend = backend
        self.dump = dump if dump is not None else os.environ.get("GRAPHC_DUMP") or None
        self.verbose_explain = explain
        self.pass_switches = dict(passes or {})
        self.backend_options = dict(backend_options or {})
        self.name = getattr(fn, "__name__", None) or type(fn).__name__
        self._cache = {}
        self._fast = {}          # _fast_key(args) -> the same entry list as _cache[key]
        self._log = []
        self._last_key = None
        functools.update_wrapper(self, fn, updated=()) if callable(fn) and hasattr(fn, "__name__") else None

    # ---- calling -----------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        if _inline_here():                 # called from inside another trace: inline it
            return self.fn(*args, **kwargs)
        leaves, entry = self._entry(args, kwargs)
        return entry.run(leaves)

    def _entry(self, args, kwargs):
        fast = None if kwargs else _fast_key(args)
        if fast is not None:     # every argument a plain tensor: skip flattening (the per-call path)
            entries = self._fast.get(fast)
            if entries:
                leaves = list(args)
                e = entries[0]
                if e.failed_guard(leaves) is None:
                    return leaves, e
        leaves, entry, key = self._slow_entry(args, kwargs)
        if fast is not None:
            self._fast[fast] = self._cache[key]
        return leaves, entry

    def _slow_entry(self, args, kwargs):
        leaves, treedef = pytree.flatten((args, kwargs))
        leaves = _arrays_as_tensors(leaves, self.name, self.fn, args, kwargs)
        key = (pytree.treedef_key(treedef), tuple(_leaf_spec(x) for x in leaves), _ag.is_grad_enabled())
        entry, reason = self._lookup(key, leaves)
        if entry is None:
            # one trace per signature: threads that miss together trace one at a time, and each
            # looks again once it holds the lock (see _TRACE_LOCK)
            with _Tracing():
                entry, reason = self._lookup(key, leaves)
                if entry is None:
                    if reason is None:
                        reason = self._why_new_key(key, args, kwargs)
                    entry = self._trace(args, kwargs, leaves, key, reason)
                    with _ENTRIES_LOCK:
                        self._cache.setdefault(key, []).insert(0, entry)
                    self._last_key = key
        return leaves, entry, key

    def _lookup(self, key, leaves):
        """(the cached entry for key whose guards hold, None), or (None, why none holds: the
        first failed guard, None when nothing is cached for key)."""
        entries = self._cache.get(key)
        reason = None
        for e in list(entries or ()):      # a copy: another thread may reorder the list
            failed = e.failed_guard(leaves)
            if failed is None:
                if entries[0] is not e:     # most recently used first
                    with _ENTRIES_LOCK:
                        if e in entries:
                            entries.remove(e)
                            entries.insert(0, e)
                return e, None
            if reason is None:
                reason = f"guard failed: {failed}"
        return None, reason

    def _why_new_key(self, key, args, kwargs):
        if self._last_key is None:
            return "first call"

        def distance(k):     # compare with the most similar signature traced before
            return ((k[0] != key[0]) * 1000 + (k[2] != key[2]) + abs(len(k[1]) - len(key[1]))
                    + sum(sum(p != q for p, q in zip(x, y)) if x[0] == y[0] else len(x)
                          for x, y in zip(k[1], key[1])))
        old = min([self._last_key] + list(self._cache), key=distance)
        reasons = []
        if old[0] != key[0]:
            reasons.append("the structure of the arguments changed")
        if old[2] != key[2]:
            reasons.append(f"grad mode changed: {'enabled' if key[2] else 'disabled (no_grad)'}")
        if old[0] == key[0]:
            labels = _arg_labels(self.fn, args, kwargs, None)
            for i, (a, b) in enumerate(zip(old[1], key[1])):
                if a != b:
                    lbl = labels[i] if i < len(labels) else f"leaf {i}"
                    reasons.append(f"argument '{lbl}' changed from {_describe_leaf(a)} to "
                                   f"{_describe_leaf(b)}{_what_changed(a, b)}")
        return "; ".join(reasons) or "new signature"

    # ---- tracing -----------------------------------------------------------------------------
    def _trace(self, args, kwargs, leaves, key, reason):
        n = sum(len(v) for v in self._cache.values())
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
                result = self.fn(*targs, **tkwargs)
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

        guards = self._guards(trace, names, arg_leaves) + list(trace.guards)
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
        entry.new_grads = frozenset(new_grads)
        # arguments that are neither tensors nor Python scalars are keyed by identity: hold them,
        # so that their id cannot be reused by another object while this entry is cached
        entry.static_refs = [x for x, spec in zip(leaves, key[1]) if spec[0] == "O"]
        if trace.created_state:
            entry_box.append(entry)
        return entry

    def _run_passes(self, graph):
        return _pass_manager.run_passes(graph, enabled=self.pass_switches, dump_dir=self.dump)

    def _backend_compile(self, graph):
        exe = _backends.get(self.backend)(graph, **self.backend_options)
        if self.dump and self.backend == "llvm":     # the native code next to the IR dumps
            os.makedirs(self.dump, exist_ok=True)
            for ext, attr in (("llvm.ll", "llvm_ir"), ("s", "asm")):
                with open(os.path.join(self.dump, f"{graph.name}.{ext}"), "w") as f:
                    f.write(getattr(exe, attr))
        from .backends.cuda.follow import FollowInputs     # cuda tensors in: runs on the cuda backend
        return FollowInputs(exe, graph, self.backend, self.backend_options)

    def _guards(self, trace, names, arg_leaves):
        guards = []
        for t, v in trace.state:
            shape, dtype, req = tuple(t.shape), t.dtype, t.requires_grad
            lbl = v.label
            guards.append((f"captured '{lbl}' changed shape, dtype or requires_grad",
                           lambda t=t, s=shape, d=dtype, r=req: tuple(t.shape) == s and t.dtype is d
                           and t.requires_grad == r))
        arg_index = {id(trace.arg_of[k]): (i, trace.arg_values[k].label)
                     for i, k in zip(arg_leaves, trace.arg_of)}
        for tid, (owner, was_none) in trace.grad_reads.items():
            now = 'a tensor' if was_none else 'None'
            then = 'None' if was_none else 'a tensor'
            if tid in arg_index:
                k, lbl = arg_index[tid]
                guards.append((f"argument '{lbl}.grad' was {then} when traced, now {now}",
                               _wants_leaves(lambda leaves, k=k, w=was_none: (leaves[k]._grad is None) == w)))
            else:
                lbl = trace.label_for(owner)
                guards.append((f"'{lbl}.grad' was {then} when traced, now {now}",
                               lambda o=owner, w=was_none: (o._grad is None) == w))
        seen = set()
        for tid, (label, more) in names.items():
            for desc, check in more or ():
                if id(check) not in seen:
                    seen.add(id(check))
                    guards.append((desc, check))
        return guards

    # ---- inspection --------------------------------------------------------------------------
    def entry(self, *args, **kwargs):
        """The compiled entry for these arguments (tracing them if needed, without running)."""
        return self._entry(args, kwargs)[1]

    def ir(self, *args, stage="final", locs=False, **kwargs):
        """The IR for this signature as text, after the pass named `stage` ("traced" first,
        "final" last; stage="all" gives every stage)."""
        passes = self.entry(*args, **kwargs).passes
        if stage == "all":
            return "\n\n".join(f"# ---- {n}\n{print_graph(g, locs=locs)}" for n, g in passes.stages)
        return print_graph(passes.stage(stage), locs=locs)

    def graph(self, *args, stage="final", **kwargs):
        return self.entry(*args, **kwargs).passes.stage(stage)

    def _native(self, attr, args, kwargs):
        if self.backend != "llvm":
            raise ValueError(f"{self.name}: .{attr}() needs backend='llvm' (this function is compiled "
                             f"with backend={self.backend!r})")
        return getattr(self.entry(*args, **kwargs).fn.backend_exe, attr)

    def llvm_ir(self, *args, **kwargs) -> str:
        """The optimised LLVM IR of this signature's executable (backend="llvm" only)."""
        return self._native("llvm_ir", args, kwargs)

    def asm(self, *args, **kwargs) -> str:
        """The native assembly of this signature's executable (backend="llvm" only)."""
        return self._native("asm", args, kwargs)

    def stages(self, *args, **kwargs):
        return [n for n, _ in self.entry(*args, **kwargs).passes.stages]

    def visualize(self, path, *args, stage="final", collapse=False, **kwargs):
        """Draw the IR of a stage to path (.svg, .png or .dot); see graphc/viz.py."""
        from .viz import visualize
        return visualize(self, path, *args, stage=stage, collapse=collapse, **kwargs)

    def report(self, path, *args, **kwargs):
        """Write the self-contained HTML report (every pass, kernels, memory plan) to path."""
        from .report import write_report
        return write_report(self, path, *args, **kwargs)

    def stats(self, *args, **kwargs) -> dict:
        """What the passes did for this signature, measured from its graphs.

        primitive_nodes    primitives entering fusion (after simplification)
        traced_nodes       primitives the trace recorded
        kernels            kernels after fusion (views, which run no code, not counted)
        bytes_moved        estimated memory traffic of the final graph (each kernel reads each
                           input buffer once and writes its outputs once)
        bytes_moved_unfused  the same, with every primitive its own kernel
        naive_bytes, arena_bytes, lower_bound_bytes, fresh_bytes   the memory plan's report
        pass_ms            milliseconds per pass"""
        from .passes.memory import memory_report
        from .passes.stats import bytes_moved, kernel_count
        passes = self.entry(*args, **kwargs).passes
        names = [n for n, _ in passes.stages]
        i = names.index("fusion") - 1 if "fusion" in names else len(names) - 1
        before = passes.stages[i][1]
        final = passes.final
        out = {"primitive_nodes": before.primitive_count(),
               "traced_nodes": passes.stages[0][1].primitive_count(),
               "kernels": kernel_count(final) if final.kernels() else len(final.nodes),
               "bytes_moved": bytes_moved(final),
               "bytes_moved_unfused": bytes_moved(before)}
        if any("buffers" in n.attrs for n in final.nodes):
            out.update(memory_report(final))
        else:
            out.update(naive_bytes=None, arena_bytes=None, lower_bound_bytes=None, fresh_bytes=None)
        out["pass_ms"] = dict(passes.times_ms)
        exe = self.entry(*args, **kwargs).fn._exe       # backend figures, once it has been built
        for key in ("compile_ms", "cache_hit"):
            if hasattr(exe, key):
                out[key] = getattr(exe, key)
        return out

    def explain(self) -> str:
        """Why each trace happened, in order."""
        lines = [f"{self.name}: {len(self._log)} trace(s)"]
        for i, (gname, reason) in enumerate(self._log):
            lines.append(f"  [{i}] {gname}: {reason}")
        return "\n".join(lines)

    @property
    def traces(self):
        return list(self._log)

    def __repr__(self):
        return f"<graphc.compile {self.name} backend={self.backend} traces={len(self._log)}>"


def _wants_leaves(check):
    check.wants_leaves = True      # called with the call's flattened arguments
    return check


def _cell(c):
    try:
        return c.cell_contents
    except ValueError:
        return None


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


class CompiledModule:
    """gc.compile(module): calls go through the compiled forward, attributes to the module."""

    def __init__(self, module, **options):
        object.__setattr__(self, "_orig_mod", module)
        object.__setattr__(self, "_compiled", CompiledFunction(module, **options))

    def __call__(self, *args, **kwargs):
        return self._compiled(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._orig_mod, name)

    def __setattr__(self, name, value):
        setattr(self._orig_mod, name, value)

    def ir(self, *a, **k):
        return self._compiled.ir(*a, **k)

    def stats(self, *a, **k):
        return self._compiled.stats(*a, **k)

    def llvm_ir(self, *a, **k):
        return self._compiled.llvm_ir(*a, **k)

    def asm(self, *a, **k):
        return self._compiled.asm(*a, **k)

    def visualize(self, *a, **k):
        return self._compiled.visualize(*a, **k)

    def report(self, *a, **k):
        return self._compiled.report(*a, **k)

    def graph(self, *a, **k):
        return self._compiled.graph(*a, **k)

    def explain(self):
        return self._compiled.explain()

    def __repr__(self):
        return f"CompiledModule({self._orig_mod!r})"


def compile(fn=None, *, backend=None, dump=None, explain=False, passes=None, **backend_options):
    """Compile a function or an nn.Module (as a decorator, with or without arguments). backend:
    "llvm" (native code, the default on CPU), "interp" (numpy, one call per fused kernel) or
    "cuda"; None means graphc.backends.default() (GRAPHC_BACKEND overrides)."""
    if fn is None:
        return lambda f: compile(f, backend=backend, dump=dump, explain=explain, passes=passes,
                                 **backend_options)
    backend = backend or _backends.default()
    _backends.get(backend)  # fail early on an unknown backend
    if (passes or {}).get("memory") is False and backend != "interp":
        raise ValueError(f"gc.compile: backend {backend!r} runs the kernels over the memory plan; "
                         "switching the memory pass off (passes={'memory': False}) needs backend='interp'")
    opts = dict(backend=backend, dump=dump, explain=explain, passes=passes,
                backend_options=backend_options)
    if hasattr(fn, "named_parameters") and hasattr(fn, "forward"):
        return CompiledModule(fn, **opts)
    return CompiledFunction(fn, **opts)
