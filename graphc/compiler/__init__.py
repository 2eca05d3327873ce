"""gc.compile: trace a function once per input signature, run the passes, hand the graph to a
backend, and run the executable on later calls -- retracing (and saying why) when the
signature or a guard on captured state changes.

The package, in import order (each module imports only those above it):
    threads         one trace at a time: the trace lock, the tracing thread, fork()
    limit           the recompile limit: past it, new variants run eagerly (RecompileWarning)
    signature       arguments as leaves, the cache key, which argument changed
    guards          captured state by name, and what must hold to reuse a trace
    results         result arrays that alias an input are copied
    graph_function  GraphFunction: a graph, its passes, executable and lazy backward graphs
    backward        the autograd bridge: CompiledFunctionBackward
    entry           Entry: one traced signature; a call and its write-backs
    tracecall       tracing a call into a new Entry
    function        CompiledFunction: the cache of entries, calling, inspection
    __init__        the public decorator, compile(), and CompiledModule"""
from __future__ import annotations

from .. import backends as _backends
from ..passes import manager as _pass_manager
from .backward import CompiledFunctionBackward  # noqa: F401
from .entry import Entry  # noqa: F401
from .function import CompiledFunction
from .graph_function import GraphFunction  # noqa: F401
from .limit import RecompileWarning  # noqa: F401
from .threads import _Tracing  # noqa: F401


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


def compile(fn=None, *, backend=None, dump=None, explain=False, passes=None, recompile_limit=None,
            **backend_options):
    """Compile a function or an nn.Module (as a decorator, with or without arguments). backend:
    "llvm" (native code, the default on CPU), "interp" (numpy, one call per fused kernel) or
    "cuda"; None means graphc.backends.default() (GRAPHC_BACKEND overrides). recompile_limit:
    traces after which new variants run eagerly, with a RecompileWarning (see limit.py)."""
    if fn is None:
        return lambda f: compile(f, backend=backend, dump=dump, explain=explain, passes=passes,
                                 recompile_limit=recompile_limit, **backend_options)
    backend = backend or _backends.default()
    _backends.get(backend)  # fail early on an unknown backend
    _pass_manager.check_required(passes)   # and on autodiff switched off
    if (passes or {}).get("memory") is False and backend != "interp":
        raise ValueError(f"gc.compile: backend {backend!r} runs the kernels over the memory plan; "
                         "switching the memory pass off (passes={'memory': False}) needs backend='interp'")
    opts = dict(backend=backend, dump=dump, explain=explain, passes=passes,
                backend_options=backend_options, recompile_limit=recompile_limit)
    if hasattr(fn, "named_parameters") and hasattr(fn, "forward"):
        return CompiledModule(fn, **opts)
    return CompiledFunction(fn, **opts)
