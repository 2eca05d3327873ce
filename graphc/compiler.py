"""gc.compile: trace a function once per input signature, run the passes, hand the graph to a
backend, and run the executable on later calls -- retracing (and saying why) when the
signature or a guard on captured state changes."""
from __future__ import annotations

import functools
import inspect
import os
import sys
import traceback

import numpy as np

from . import autograd as _ag
from . import backends as _backends
from . import pytree
from . import tracing as _tr
from .ir.graph import Graph
from .ir import print_graph
from .passes.manager import run_passes
from .tensor import Tensor


# ---- signatures ----------------------------------------------------------------------------------
def _leaf_spec(x):
    if isinstance(x, Tensor):
        if x._value is not None:
            raise _tr.TraceError("a tracer was passed to a compiled function from outside its trace")
        return ("T", tuple(x.shape), x.dtype.name, bool(x.requires_grad))
    if x is None or isinstance(x, (bool, int, float, str, bytes, complex)):
        return ("S", type(x).__name__, x)
    return ("O", type(x).__name__, id(x))


def _describe_leaf(spec):
    if spec[0] == "T":
        return f"tensor {spec[2]}{list(spec[1])}" + (" requiring grad" if spec[3] else "")
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
    """id(tensor) -> (label, guard) for tensors reachable by name from fn: its closure, its
    globals, modules' parameters and buffers, optimizers' state."""
    names = {}

    def add(t, label, guard=None):
        if isinstance(t, Tensor) and id(t) not in names:
            names[id(t)] = (label, guard)

    def walk(obj, label, guard):
        if isinstance(obj, type):      # a class (nn.Linear in a module's globals), not an instance
            return
        if isinstance(obj, Tensor):
            add(obj, label, guard)
        elif hasattr(obj, "named_parameters") and hasattr(obj, "named_buffers"):
            for n, p in obj.named_parameters():
                add(p, f"{label}.{n}" if label else n)
            for n, b in obj.named_buffers():
                add(b, f"{label}.{n}" if label else n)
        elif hasattr(obj, "param_groups") and hasattr(obj, "state"):
            params = [p for g in obj.param_groups for p in g["params"]]
            for i, p in enumerate(params):
                for k, v in obj.state.get(p, {}).items():
                    add(v, f"{label}.{_param_name(names, p, i)}.{k}")

    target = fn
    if hasattr(fn, "named_parameters"):
        walk(fn, "", None)
        target = getattr(type(fn), "forward", fn)
    owner = getattr(fn, "__self__", None)
    if owner is not None:
        walk(owner, "self" if not hasattr(owner, "named_parameters") else "", None)
    code_fn = inspect.unwrap(getattr(target, "__func__", target))
    code = getattr(code_fn, "__code__", None)
    if code is not None and code_fn.__closure__:
        for name, cell in zip(code.co_freevars, code_fn.__closure__):
            try:
                v = cell.cell_contents
            except ValueError:
                continue
            walk(v, name, ("closure", cell, v) if isinstance(v, Tensor) else None)
    for name, v in list(getattr(code_fn, "__globals__", {}).items()):
        if isinstance(v, Tensor):
            walk(v, name, ("global", code_fn.__globals__, name, v))
        elif hasattr(v, "named_parameters") or hasattr(v, "param_groups"):
            walk(v, name, None)
    return names


def _param_name(names, p, i):
    got = names.get(id(p))
    return got[0] if got else f"param{i}"


# ---- compiled entries ------------------------------------------------------------------------------
class Entry:
    """One traced signature: its stages, executable and how to bind/unbind Python state."""

    def __init__(self, key, passes, exe, arg_leaves, state_slots, update_slots, grad_clears,
                 out_treedef, out_leaves, guards, retrace_reason):
        self.key = key
        self.passes = passes
        self.exe = exe
        self.arg_leaves = arg_leaves        # leaf index of each arg input of the graph
        self.state_slots = state_slots      # ("data", tensor) | ("grad", owner) per state input
        self.update_slots = update_slots    # ("data", tensor) | ("arg", leaf index) | ("grad", owner)
        self.grad_clears = grad_clears      # owners whose .grad the call sets to None
        self.out_treedef = out_treedef
        self.out_leaves = out_leaves        # ("out", k) | ("static", value) per returned leaf
        self.guards = guards                # [(description, check() -> bool)]
        self.reason = retrace_reason
        self.calls = 0

    @property
    def graph(self) -> Graph:
        return self.passes.final

    def failed_guard(self):
        for desc, check in self.guards:
            if not check():
                return desc
        return None

    def run(self, leaves):
        ins = [leaves[i]._data for i in self.arg_leaves]
        for kind, t in self.state_slots:
            ins.append(t._data if kind == "data" else t._grad._data)
        res = self.exe(ins)
        n_out = len(self.graph.outputs)
        outs, ups = res[:n_out], res[n_out:]
        ups = [_fresh(a, ins) for a in ups]
        for (kind, t), a in zip(self.update_slots, ups):
            if kind == "data" or kind == "arg":
                tgt = leaves[t] if kind == "arg" else t
                tgt._data[...] = a
                tgt._version[0] += 1
            else:
                g = t._grad
                if g is not None and tuple(g.shape) == a.shape and not g.requires_grad and g._data.flags.writeable:
                    g._data[...] = a
                    g._version[0] += 1
                else:
                    t._grad = Tensor._wrap(np.array(a, copy=True))
        for owner in self.grad_clears:
            owner._grad = None
        self.calls += 1
        seen = []
        out_tensors = []
        for a in outs:
            a = _fresh(a, ins + seen)
            seen.append(a)
            out_tensors.append(Tensor._wrap(a))
        vals = [out_tensors[k] if kind == "out" else k for kind, k in self.out_leaves]
        return pytree.unflatten(self.out_treedef, vals)


def _fresh(a, others):
    """Copy a result that shares memory with an input (or an earlier result)."""
    for o in others:
        if np.may_share_memory(a, o):
            return np.array(a, copy=True)
    return a


class CompiledFunction:
    """What gc.compile returns for a function: call it like the function."""

    def __init__(self, fn, backend="interp", dump=None, explain=False, passes=None,
                 backend_options=None):
        self.fn = fn
        self.backend = backend
        self.dump = dump if dump is not None else os.environ.get("GRAPHC_DUMP") or None
        self.verbose_explain = explain
        self.pass_switches = dict(passes or {})
        self.backend_options = dict(backend_options or {})
        self.name = getattr(fn, "__name__", None) or type(fn).__name__
        self._cache = {}
        self._log = []
        self._last_key = None
        functools.update_wrapper(self, fn, updated=()) if callable(fn) and hasattr(fn, "__name__") else None

    # ---- calling -----------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        if _tr.active() is not None:       # called from inside another trace: inline it
            return self.fn(*args, **kwargs)
        leaves, entry = self._entry(args, kwargs)
        return entry.run(leaves)

    def _entry(self, args, kwargs):
        leaves, treedef = pytree.flatten((args, kwargs))
        key = (pytree.treedef_key(treedef), tuple(_leaf_spec(x) for x in leaves), _ag.is_grad_enabled())
        entries = self._cache.get(key)
        reason = None
        if entries:
            for e in entries:
                failed = e.failed_guard()
                if failed is None:
                    return leaves, e
                reason = f"guard failed: {failed}"
        else:
            reason = self._why_new_key(key, args, kwargs)
        entry = self._trace(args, kwargs, leaves, key, reason)
        self._cache.setdefault(key, []).append(entry)
        self._last_key = key
        return leaves, entry

    def _why_new_key(self, key, args, kwargs):
        if self._last_key is None:
            return "first call"
        old = self._last_key
        if old[0] != key[0]:
            return "the structure of the arguments changed"
        if old[2] != key[2]:
            return f"grad mode changed: {'enabled' if key[2] else 'disabled (no_grad)'}"
        labels = _arg_labels(self.fn, args, kwargs, None)
        diffs = []
        for i, (a, b) in enumerate(zip(old[1], key[1])):
            if a != b:
                lbl = labels[i] if i < len(labels) else f"leaf {i}"
                diffs.append(f"argument '{lbl}' changed from {_describe_leaf(a)} to {_describe_leaf(b)}")
        return "; ".join(diffs) or "new signature"

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

        # state write-backs: captured data, arguments updated in place, .grad slots
        update_slots, grad_clears = [], []
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
                if owner._grad is not None or tid in trace.grad_reads:
                    grad_clears.append(owner)
                continue
            if owner._grad is not None and trace.current.get(id(owner._grad)) is v:
                continue  # read but not changed
            graph.updates.append((trace.label_for(owner, ".grad"), v))
            update_slots.append(("grad", owner))

        state_slots = []
        grad_objs = {id(o._grad): o for o in trace.keep.values() if isinstance(o, Tensor) and o._grad is not None}
        for t, v in trace.state:
            owner = grad_objs.get(id(t))
            state_slots.append(("grad", owner) if owner is not None and v.label.endswith(".grad") else ("data", t))

        guards = self._guards(trace, names)
        passes = run_passes(graph, enabled=self.pass_switches,
                            dump_dir=self.dump)
        exe = _backends.get(self.backend)(passes.final, **self.backend_options)
        self._log.append((graph.name, reason))
        if self.verbose_explain:
            print(f"graphc: tracing {self.name} ({graph.name}): {reason}", file=sys.stderr)
        return Entry(key, passes, exe, arg_leaves, state_slots, update_slots, grad_clears,
                     out_treedef, out_leaves, guards, reason)

    def _guards(self, trace, names):
        guards = []
        for t, v in trace.state:
            shape, dtype, req = tuple(t.shape), t.dtype, t.requires_grad
            lbl = v.label
            guards.append((f"captured '{lbl}' changed shape, dtype or requires_grad",
                           lambda t=t, s=shape, d=dtype, r=req: tuple(t.shape) == s and t.dtype is d
                           and t.requires_grad == r))
        for tid, (owner, was_none) in trace.grad_reads.items():
            lbl = trace.label_for(owner)
            guards.append((f"'{lbl}.grad' was {'None' if was_none else 'a tensor'} when traced, now "
                           f"{'a tensor' if was_none else 'None'}",
                           lambda o=owner, w=was_none: (o._grad is None) == w))
        for tid, (label, src) in names.items():
            if src is None:
                continue
            if src[0] == "global":
                _, g, name, t = src
                guards.append((f"global '{name}' now refers to a different object",
                               lambda g=g, name=name, t=t: g.get(name) is t))
            elif src[0] == "closure":
                _, cell, t = src
                guards.append((f"closure variable '{label}' now refers to a different object",
                               lambda c=cell, t=t: _cell(c) is t))
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

    def stages(self, *args, **kwargs):
        return [n for n, _ in self.entry(*args, **kwargs).passes.stages]

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


def _cell(c):
    try:
        return c.cell_contents
    except ValueError:
        return None


def _user_tb_location(e):
    here = _tr._HERE
    loc = None
    for fs in traceback.extract_tb(e.__traceback__):
        if not fs.filename.startswith(here):
            loc = f"{fs.filename}:{fs.lineno}: `{(fs.line or '').strip()}`"
    return loc


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

    def explain(self):
        return self._compiled.explain()

    def __repr__(self):
        return f"CompiledModule({self._orig_mod!r})"


def compile(fn=None, *, backend="interp", dump=None, explain=False, passes=None, **backend_options):
    """Compile a function or an nn.Module (as a decorator, with or without arguments)."""
    if fn is None:
        return lambda f: compile(f, backend=backend, dump=dump, explain=explain, passes=passes,
                                 **backend_options)
    _backends.get(backend)  # fail early on an unknown backend
    opts = dict(backend=backend, dump=dump, explain=explain, passes=passes,
                backend_options=backend_options)
    if hasattr(fn, "named_parameters") and hasattr(fn, "forward"):
        return CompiledModule(fn, **opts)
    return CompiledFunction(fn, **opts)
