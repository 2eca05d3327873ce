"""What runs inside a DataLoader worker process, and how batches cross the process boundary.

Batches travel as plain numpy arrays inside ordinary containers: a Tensor is replaced by a
_TensorPayload holding its array before sending and rebuilt in the parent, so no graphc-specific
state (autograd nodes, version counters, tracing) is ever pickled. Errors travel as text (the
worker's formatted traceback) plus the exception class, so the parent can re-raise them.
"""
from __future__ import annotations

import collections.abc
import os
import random
import sys
import traceback

import numpy as np

from ...tensor import Tensor

_POLL_S = 1.0  # how often an idle worker checks that its parent is still alive


class WorkerInfo:
    """What get_worker_info() returns inside a worker: id, num_workers, seed, dataset."""

    def __init__(self, id, num_workers, seed, dataset):
        self.id, self.num_workers, self.seed, self.dataset = id, num_workers, seed, dataset

    def __repr__(self):
        return f"WorkerInfo(id={self.id}, num_workers={self.num_workers}, seed={self.seed})"


_worker_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """The WorkerInfo of the current DataLoader worker, or None in the main process."""
    return _worker_info


# ---- transport ------------------------------------------------------------------------------------
class _TensorPayload:
    """A tensor in transit: just its numpy array."""
    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array

    def __reduce__(self):
        return (_TensorPayload, (self.array,))


def to_transport(x):
    """Replace every Tensor in a (nested) batch by a _TensorPayload of its numpy data."""
    if isinstance(x, Tensor):
        if x._data is None:
            raise RuntimeError("a DataLoader worker produced a traced tensor; it can't be sent")
        return _TensorPayload(np.ascontiguousarray(x._data))
    return _map_containers(x, to_transport)


def from_transport(x):
    """Rebuild the Tensors of a batch received from a worker (fresh, writable arrays)."""
    if isinstance(x, _TensorPayload):
        arr = x.array if x.array.flags.writeable else x.array.copy()
        return Tensor._wrap(arr)
    return _map_containers(x, from_transport)


def _map_containers(x, fn):
    if isinstance(x, (str, bytes, np.ndarray, np.generic)) or x is None:
        return x
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(fn(e) for e in x))
    if isinstance(x, (list, tuple)):
        try:
            return type(x)(fn(e) for e in x)
        except TypeError:
            return [fn(e) for e in x]
    if type(x) is dict:
        return {k: fn(v) for k, v in x.items()}
    if isinstance(x, collections.abc.MutableMapping):
        try:
            out = type(x)()
            out.update((k, fn(v)) for k, v in x.items())
            return out
        except TypeError:
            return {k: fn(v) for k, v in x.items()}
    return x  # anything else is pickled as it is


class WorkerError:
    """An exception raised in a worker, carried to the parent as text."""

    def __init__(self, worker_id: int, where: str):
        exc_type, exc, _ = sys.exc_info()
        self.worker_id = worker_id
        self.type_name = exc_type.__name__
        self.text = "".join(traceback.format_exception(exc_type, exc, exc.__traceback__))
        self.where = where
        # the class travels by reference (module + name); a class pickle can't find stays None
        import pickle
        try:
            pickle.loads(pickle.dumps(exc_type))
            self.exc_type = exc_type
        except Exception:
            self.exc_type = None

    def reraise(self):
        where = f" {self.where}" if self.where else ""
        msg = (f"Caught {self.type_name}{where} in DataLoader worker process {self.worker_id}.\n"
               f"Original Traceback (most recent call last):\n"
               + self.text.split("Traceback (most recent call last):\n", 1)[-1])
        exc = None
        if self.exc_type is not None and self.exc_type is not KeyError:
            try:
                exc = self.exc_type(msg)
            except Exception:
                exc = None
        if self.exc_type is KeyError:
            exc = KeyError(_KeyErrorMessage(msg))
        raise exc if isinstance(exc, BaseException) else RuntimeError(msg)


class _KeyErrorMessage(str):
    """KeyError repr()s its argument; this keeps the traceback text readable."""

    def __repr__(self):
        return str(self)


# ---- the worker loop -------------------------------------------------------------------------------
def fetch(dataset, indices, auto_collation, collate_fn):
    """Load one batch (a list of indices) or, without auto-collation, one sample."""
    if auto_collation:
        getitems = getattr(dataset, "__getitems__", None)
        samples = getitems(indices) if getitems else [dataset[i] for i in indices]
        return collate_fn(samples)
    return collate_fn(dataset[indices])


def worker_loop(worker_id, num_workers, dataset, collate_fn, auto_collation, seed,
                worker_init_fn, task_conn, result_conn, done_event):
    """Serve (epoch, batch_number, indices) tasks until told None (or done_event is set, or
    the parent dies).

    Results go back as (epoch, batch_number, payload, error) over this worker's own pipe;
    Connection.send pickles synchronously, so an unpicklable batch becomes an error reply
    instead of a silent loss in a feeder thread.
    """
    global _worker_info
    try:
        from ...ops import creation
        random.seed(seed)
        np.random.seed(seed % 2 ** 32)
        creation.default_generator.manual_seed(seed)
        _worker_info = WorkerInfo(worker_id, num_workers, seed, dataset)
        init_error = None
        if worker_init_fn is not None:
            try:
                worker_init_fn(worker_id)
            except Exception:
                init_error = WorkerError(worker_id, "in worker_init_fn")
        parent = os.getppid()
        while True:
            if not task_conn.poll(_POLL_S):
                if os.getppid() != parent:
                    return  # orphaned: the parent died without shutting us down
                continue
            task = task_conn.recv()
            if task is None or done_event.is_set():
                return
            epoch, n, indices = task
            if init_error is not None:
                result_conn.send((epoch, n, None, init_error))
                continue
            try:
                payload = to_transport(fetch(dataset, indices, auto_collation, collate_fn))
                result_conn.send((epoch, n, payload, None))
            except Exception:
                result_conn.send((epoch, n, None, WorkerError(worker_id, "")))
    except (KeyboardInterrupt, EOFError, BrokenPipeError, ConnectionResetError):
        return  # the parent is going away; exit quietly
