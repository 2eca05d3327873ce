"""CompiledFunction: what gc.compile returns for a function. The cache of entries (signature key
-> entries, most recently used first, each with its guards), the per-call fast path, one trace
per signature across threads, why a new signature was traced, the passes and backend it
compiles with, and the inspection methods (.ir, .graph, .stats, .explain, .llvm_ir, ...)."""
from __future__ import annotations

import functools
import os
import warnings

from .. import autograd as _ag
from .. import backends as _backends
from .. import pytree
from ..ir import print_graph
from ..passes import manager as _pass_manager
from . import threads as _threads
from .limit import EagerCall, RecompileWarning, limit_message, resolve_limit
from .signature import _arg_labels, _grad_agnostic, _arrays_as_tensors, _describe_leaf, _fast_key, _leaf_spec, _what_changed
from .threads import _Tracing, _inline_here
from .tracecall import _TraceCall


class CompiledFunction(_TraceCall):
    """What gc.compile returns for a function: call it like the function."""

    def __init__(self, fn, backend=None, dump=None, explain=False, passes=None,
                 backend_options=None, recompile_limit=None):
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
        self._relaxed = {}       # _grad_agnostic(key) -> entries with relaxed arguments
        self._log = []
        self._last_key = None
        self.recompile_limit = recompile_limit   # None: GRAPHC_RECOMPILE_LIMIT or limit.DEFAULT_...
        self._eager_calls = 0                    # calls past the limit, run eagerly
        self._limit_reason = None                # the first variant refused by the limit
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
        if fast is not None and key in self._cache:
            self._fast[fast] = self._cache[key]
        return leaves, entry

    def _slow_entry(self, args, kwargs):
        leaves, treedef = pytree.flatten((args, kwargs))
        leaves = _arrays_as_tensors(leaves, self.name, self.fn, args, kwargs)
        key = (pytree.treedef_key(treedef), tuple(_leaf_spec(x) for x in leaves), _ag.is_grad_enabled())
        entry, reason = self._lookup(key, leaves)
        if entry is None and self._relaxed:
            entry = self._lookup_relaxed(key, leaves)
        if entry is None:
            # one trace per signature: threads that miss together trace one at a time, and each
            # looks again once it holds the lock (see threads._TRACE_LOCK)
            with _Tracing():
                entry, reason = self._lookup(key, leaves)
                if entry is None:
                    if reason is None:
                        reason = self._why_new_key(key, args, kwargs)
                    if self._over_limit(reason):
                        targs, tkwargs = pytree.unflatten(treedef, leaves)
                        return leaves, EagerCall(self.fn, targs, tkwargs), key
                    entry = self._trace(args, kwargs, leaves, key, reason)
                    with _threads._ENTRIES_LOCK:
                        self._cache.setdefault(key, []).insert(0, entry)
                        if entry.relaxed:
                            self._relaxed.setdefault(_grad_agnostic(key), []).append(entry)
                    self._last_key = key
        return leaves, entry, key

    def _over_limit(self, reason):
        """Past the recompile limit: warn the first time, and say to run this call eagerly."""
        limit = resolve_limit(self.recompile_limit)
        if limit <= 0 or len(self._log) < limit:
            return False
        self._eager_calls += 1
        if self._limit_reason is None:
            self._limit_reason = reason
            warnings.warn(limit_message(self.name, limit, self._log, reason), RecompileWarning, stacklevel=5)
        return True

    def _lookup_relaxed(self, key, leaves):
        """An entry traced for a signature that differs from key only in the requires_grad of
        arguments the graph only detaches (Entry.relaxed); cached under key too when found."""
        for e in list(self._relaxed.get(_grad_agnostic(key), ())):
            if all(a == b or i in e.relaxed for i, (a, b) in enumerate(zip(e.key[1], key[1]))) \
                    and e.failed_guard(leaves) is None:
                with _threads._ENTRIES_LOCK:
                    self._cache.setdefault(key, []).append(e)
                return e
        return None

    def _lookup(self, key, leaves):
        """(the cached entry for key whose guards hold, None), or (None, why none holds: the
        first failed guard, None when nothing is cached for key)."""
        entries = self._cache.get(key)
        reason = None
        for e in list(entries or ()):      # a copy: another thread may reorder the list
            failed = e.failed_guard(leaves)
            if failed is None:
                if entries[0] is not e:     # most recently used first
                    with _threads._ENTRIES_LOCK:
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

    def _run_passes(self, graph):
        return _pass_manager.run_passes(graph, enabled=self.pass_switches, dump_dir=self.dump)

    def _backend_compile(self, graph):
        _refuse_graph_ops(graph, self.backend)
        exe = _backends.get(self.backend)(graph, **self.backend_options)
        if self.dump and self.backend == "llvm":     # the native code next to the IR dumps
            os.makedirs(self.dump, exist_ok=True)
            for ext, attr in (("llvm.ll", "llvm_ir"), ("s", "asm")):
                with open(os.path.join(self.dump, f"{graph.name}.{ext}"), "w") as f:
                    f.write(getattr(exe, attr))
        from ..backends.cuda.follow import FollowInputs     # cuda tensors in: runs on the cuda backend
        return FollowInputs(exe, graph, self.backend, self.backend_options)

    # ---- inspection --------------------------------------------------------------------------
    def entry(self, *args, **kwargs):
        """The compiled entry for these arguments (tracing them if needed, without running)."""
        e = self._entry(args, kwargs)[1]
        if isinstance(e, EagerCall):
            raise RuntimeError(f"{self.name}: these arguments are a new variant past the recompile limit "
                               f"({resolve_limit(self.recompile_limit)} traces): they run eagerly and have "
                               "no graph to inspect; see .explain()")
        return e

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
        from ..viz import visualize
        return visualize(self, path, *args, stage=stage, collapse=collapse, **kwargs)

    def report(self, path, *args, **kwargs):
        """Write the self-contained HTML report (every pass, kernels, memory plan) to path."""
        from ..report import write_report
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
        from ..passes.memory import memory_report
        from ..passes.stats import bytes_moved, kernel_count
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
        if final.is_planned:
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
        if self._limit_reason is not None:
            lines.append(f"  recompile limit ({resolve_limit(self.recompile_limit)}) reached: "
                         f"{self._eager_calls} call(s) of new variants ran eagerly; the first "
                         f"because {self._limit_reason}")
        return "\n".join(lines)

    @property
    def traces(self):
        return list(self._log)

    def __repr__(self):
        return f"<graphc.compile {self.name} backend={self.backend} traces={len(self._log)}>"


def _refuse_graph_ops(graph, backend):
    """A graph-level op (a `grad` placeholder) reaching a backend means the pass that expands
    it did not run on this graph: a bug, refused here rather than as a backend's unknown op."""
    from ..ops.registry import GRAPH_OPS
    for n in graph.nodes:
        op = GRAPH_OPS.get(n.op)
        if op is not None:
            raise RuntimeError(
                f"backend {backend!r} was given graph {graph.name} with a `{n.op}` node (%{n.out.name}"
                + (f", from {n.loc}" if n.loc else "") + f"): a graph-level op that the {op.expanded_by} "
                "pass expands before any backend runs; no backend lowers it")
