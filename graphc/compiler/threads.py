"""One trace at a time: the process-wide trace lock, the thread tracing now, and the locks
made anew in a child after fork()."""
from __future__ import annotations

import os
import threading

from .. import tracing as _tr


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
