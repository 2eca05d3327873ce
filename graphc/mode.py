"""The dispatch modes, one per thread: the active trace (or None: eager) and the state every
layer consults to decide how an op runs. A leaf: it imports nothing from graphc, so ops,
tensor, autograd and the backends can all ask `mode.active()` without importing tracing.

`apply` (graphc.tensor) is the single entry point that consults it: a trace records the op,
otherwise the inputs' device mode (graphc.device) or numpy runs it eagerly.
"""
from __future__ import annotations

import linecache
import os
import sys
import threading

_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep


class _ActiveTrace(threading.local):
    """The trace being recorded, per thread: while one thread runs a function body for a
    trace, eager tensor ops in other threads (a data loader, another model) stay eager."""
    trace = None

    def __getitem__(self, i):
        return self.trace

    def __setitem__(self, i, value):
        self.trace = value


_current = _ActiveTrace()
KNOWN_NAMES = {}   # id(tensor) -> label, for library-owned state such as the RNG


class TraceError(RuntimeError):
    """Something in the traced function cannot become a static graph."""


def active():
    """The Trace being recorded, or None."""
    return _current.trace


def is_tracing(tensors) -> bool:
    return _current.trace is not None


def user_frame():
    """The innermost frame outside graphc (the user's code)."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_HERE):
        f = f.f_back
    return f


def user_location(with_source: bool = True) -> str:
    f = user_frame()
    if f is None:
        return "<unknown>"
    loc = f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno}"
    if with_source:
        src = linecache.getline(f.f_code.co_filename, f.f_lineno).strip()
        if src:
            return f"{f.f_code.co_filename}:{f.f_lineno}: `{src}`"
        return f"{f.f_code.co_filename}:{f.f_lineno}"
    return loc


def escaped(t, what: str):
    """A tracer used outside the trace that made it (kept on self, a global, a list...)."""
    raise TraceError(
        f"a tracer escaped the compiled function: {what} at {user_location()} was given a tracer "
        f"(%{t._value.name}: {t._value.type}) that was kept from a trace and used after the compiled "
        "call returned. Tracers stand for values while a function is traced and have no data; "
        "return the tensor from the compiled function instead of storing it.")


def data_dependent(t, what: str, hint: str | None = None):
    if t._value is not None and _current.trace is not t._trace:
        escaped(t, what)
    raise TraceError(
        f"{what} needs the value of a traced tensor, which is not known while tracing, at "
        f"{user_location()}. Python control flow that depends on tensor data cannot be compiled; "
        + (hint or "select values with gc.where(condition, a, b) instead of an `if`, or move "
               "this code out of the compiled function."))


class tracing:
    """Context manager making `trace` the active one (nested traces are not allowed)."""

    def __init__(self, trace):
        self.trace = trace

    def __enter__(self):
        if _current.trace is not None:
            raise TraceError("nested tracing")
        _current.trace = self.trace
        return self.trace

    def __exit__(self, *exc):
        _current.trace = None
        return False


class suspended:
    """Run eagerly inside a traced function (e.g. to create optimizer state once)."""

    def __enter__(self):
        self.prev = _current.trace
        if self.prev is not None:
            # the function creates eager state (an optimizer's buffers) while being traced: the
            # trace holds for this first call only, the next call retraces with the state present
            self.prev.created_state = True
        _current.trace = None

    def __exit__(self, *exc):
        _current.trace = self.prev
        return False



# ---- the Trace factory -------------------------------------------------------------------------
# graphc.tracing registers its Trace class here when loaded, so that passes building graphs by
# tracing (passes.autodiff) make one without importing graphc.tracing (which imports them).
_trace_factory = None


def register_trace_factory(factory):
    global _trace_factory
    _trace_factory = factory


def new_trace(graph, namer=None):
    """A fresh Trace recording into `graph` (graphc.tracing.Trace)."""
    return _trace_factory(graph, namer)
