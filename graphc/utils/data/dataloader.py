"""DataLoader: batches from a map-style dataset, in the main process or in worker processes.

With num_workers > 0, each worker gets its own pair of pipes: tasks (epoch, batch number,
indices) go out round-robin, at most prefetch_factor * num_workers ahead; results come back as
numpy payloads and are put back in order by batch number. The parent never blocks without
bound on the pool's own account: it waits on the result pipes together with the workers'
process sentinels, so a worker that dies is reported instead of waited for, and `timeout`
bounds the wait for a slow one. Workers are shut down when an epoch ends, when an iterator
is dropped (early break), or at garbage collection / interpreter exit (weakref.finalize).
"""
from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection as mpc
import time
import weakref

from ...ops import creation as _creation
from ...tensor import Tensor
from .collate import default_collate, default_convert
from .sampler import BatchSampler, RandomSampler, SequentialSampler
from .worker import fetch, from_transport, worker_loop

_POLL_S = 1.0       # the longest single wait before re-checking worker liveness and timeout
_SHUTDOWN_S = 5.0   # how long workers get to exit cleanly before they are terminated


class DataLoader:
    """Iterate over a dataset in batches (torch.utils.data.DataLoader's arguments and
    defaults; pin_memory and pin_memory_device are accepted and ignored: graphc is CPU-only)."""

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False, pin_memory_device=""):
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to "
                             "disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing. "
                             "Let num_workers > 0 to enable multiprocessing, otherwise set "
                             "prefetch_factor to None.")
        if prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.dataset = dataset
        self.batch_size, self.drop_last = batch_size, drop_last
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self.num_workers, self.timeout = num_workers, timeout
        self.prefetch_factor = (2 if prefetch_factor is None else prefetch_factor) if num_workers else None
        self.persistent_workers = persistent_workers
        self.worker_init_fn, self.generator = worker_init_fn, generator
        self.multiprocessing_context = multiprocessing_context
        self.pin_memory = pin_memory
        self.collate_fn = collate_fn or (default_collate if self._auto_collation else default_convert)
        self._pool = None

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __len__(self) -> int:
        return len(self._index_sampler)

    def __iter__(self):
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        if not self.persistent_workers:
            return _MultiProcessIter(self, None)
        if self._pool is None or self._pool.broken:
            return _MultiProcessIter(self, None, keep_pool=True)
        return _MultiProcessIter(self, self._pool)

    def _base_seed(self) -> int:
        # drawn for every epoch, workers or not, so the generator's stream (and so the
        # shuffle order) is the same for any num_workers -- as in torch
        gen = self.generator if self.generator is not None else _creation.default_generator
        return int(_creation.randint(0, 2 ** 62, (1,), generator=gen).item())

    def _mp_context(self):
        ctx = self.multiprocessing_context
        if ctx is None:
            # fork: workers inherit the dataset instead of unpickling it, and no __main__ guard
            # is needed; spawn where fork does not exist
            return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else None)
        return mp.get_context(ctx) if isinstance(ctx, str) else ctx


class _SingleProcessIter:
    """num_workers=0: load and collate each batch now, in this process."""

    def __init__(self, loader):
        self._loader = loader
        loader._base_seed()
        self._tasks = iter(loader._index_sampler)

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._loader)

    def __next__(self):
        ld = self._loader
        return fetch(ld.dataset, next(self._tasks), ld._auto_collation, ld.collate_fn)


def _plain_index(i):
    """Indices cross to workers as Python values, never as graphc Tensors."""
    if isinstance(i, Tensor):
        return i.item()
    if isinstance(i, list):
        return [_plain_index(j) for j in i]
    return i


class _MultiProcessIter:
    """One epoch over a worker pool; batches come back in sampler order."""

    def __init__(self, loader, pool, keep_pool=False):
        self._loader = loader
        seed = loader._base_seed()
        self._owns_pool = pool is None and not keep_pool
        if pool is None:
            pool = _WorkerPool(loader, seed)
            if keep_pool:
                loader._pool = pool
        self._pool = pool
        pool.epoch += 1
        self._epoch = pool.epoch
        self._tasks = iter(loader._index_sampler)
        self._sent = self._rcvd = self._next_worker = 0
        self._buffer = {}
        self._tasks_done = self._done = False
        try:
            for _ in range(max(1, loader.prefetch_factor * loader.num_workers)):
                self._put_task()
        except BaseException:
            self._finish()
            raise

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._loader)

    def _put_task(self):
        if self._tasks_done:
            return
        try:
            indices = next(self._tasks)
        except StopIteration:
            self._tasks_done = True
            return
        wid = self._next_worker
        self._next_worker = (wid + 1) % self._pool.num_workers
        self._pool.send(wid, (self._epoch, self._sent, _plain_index(indices)))
        self._sent += 1

    def __next__(self):
        if self._done:
            raise StopIteration
        if self._pool.epoch != self._epoch:
            raise RuntimeError("this DataLoader iterator was superseded: with persistent_workers=True "
                               "only the most recent iterator of a DataLoader can be used")
        try:
            while True:
                if self._rcvd in self._buffer:
                    payload, err = self._buffer.pop(self._rcvd)
                    self._rcvd += 1
                    self._put_task()
                    if err is not None:
                        err.reraise()
                    return from_transport(payload)
                if self._rcvd >= self._sent:
                    self._finish()
                    raise StopIteration
                epoch, n, payload, err = self._pool.recv(self._loader.timeout)
                if epoch == self._epoch:  # anything else is left over from an abandoned epoch
                    self._buffer[n] = (payload, err)
        except RuntimeError as e:
            if self._pool.broken:
                self._finish()
            raise e

    def _finish(self):
        self._done = True
        if self._owns_pool or self._pool.broken:
            self._pool.shutdown()

    def __del__(self):
        # an early `break`: a non-persistent pool goes away with its iterator
        if getattr(self, "_owns_pool", False):
            self._pool.shutdown()


class _WorkerPool:
    """The worker processes and their pipes."""

    def __init__(self, loader, base_seed):
        ctx = loader._mp_context()
        self.num_workers = loader.num_workers
        self.workers, self.task_conns, self.result_conns = [], [], []
        self.epoch = 0
        self._opts = {"grace": _SHUTDOWN_S, "done": ctx.Event()}
        self._finalizer = weakref.finalize(self, _shutdown, self.workers, self.task_conns,
                                           self.result_conns, self._opts)
        self.broken = False
        try:
            for wid in range(self.num_workers):
                task_r, task_w = ctx.Pipe(duplex=False)
                res_r, res_w = ctx.Pipe(duplex=False)
                p = ctx.Process(target=worker_loop, daemon=True, name=f"graphc-DataLoader-worker-{wid}",
                                args=(wid, self.num_workers, loader.dataset, loader.collate_fn,
                                      loader._auto_collation, base_seed + wid, loader.worker_init_fn,
                                      task_r, res_w, self._opts["done"]))
                p.start()
                # the parent keeps only its own ends, so a dead worker's result pipe reads EOF
                task_r.close()
                res_w.close()
                self.workers.append(p)
                self.task_conns.append(task_w)
                self.result_conns.append(res_r)
        except BaseException:
            self.shutdown()
            raise

    def send(self, wid, task):
        try:
            self.task_conns[wid].send(task)
        except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
            self._raise_dead(only_if_dead=False)

    def recv(self, timeout):
        """The next (epoch, n, payload, error) from any worker."""
        deadline = time.monotonic() + timeout if timeout else None
        sentinels = [p.sentinel for p in self.workers]
        while True:
            wait_s = _POLL_S if deadline is None else max(0.0, min(_POLL_S, deadline - time.monotonic()))
            ready = mpc.wait(self.result_conns + sentinels, wait_s)
            for conn in self.result_conns:  # drain results before believing a worker is gone
                if conn in ready or (ready and conn.poll(0)):
                    try:
                        return conn.recv()
                    except (EOFError, OSError):
                        pass
            if ready:
                self._raise_dead(only_if_dead=True)
            if deadline is not None and time.monotonic() >= deadline:
                self.broken = True
                raise RuntimeError(f"DataLoader timed out after {timeout} seconds waiting for a batch "
                                   "from its workers")

    def _raise_dead(self, only_if_dead):
        dead = [(i, p) for i, p in enumerate(self.workers) if p.exitcode is not None]
        if not dead and only_if_dead:
            return
        self.broken = True
        what = ", ".join(f"worker {i} (pid {p.pid}) exited with code {p.exitcode}" for i, p in dead)
        raise RuntimeError(f"DataLoader worker process died unexpectedly: {what or 'its pipe closed'}")

    @property
    def broken(self) -> bool:
        return self._broken

    @broken.setter
    def broken(self, value: bool):
        self._broken = value
        if value:  # a dead or stuck pool is not worth waiting for at shutdown
            self._opts["grace"] = 0.2

    def shutdown(self):
        self._finalizer()


def _shutdown(workers, task_conns, result_conns, opts):
    """Ask workers to stop, drain what they are still sending, then terminate stragglers."""
    opts["done"].set()  # workers skip tasks still queued for them
    for c in task_conns:
        try:
            c.send(None)
        except Exception:
            pass
    live = list(result_conns)
    deadline = time.monotonic() + opts["grace"]
    while time.monotonic() < deadline:
        running = [p.sentinel for p in workers if p.exitcode is None]
        if not running:
            break
        for r in mpc.wait(live + running, 0.1):
            if r in live:
                try:
                    r.recv()
                except Exception:
                    live.remove(r)
    for p in workers:
        if p.exitcode is None:
            p.terminate()
        p.join(1.0)
        if p.exitcode is None:
            p.kill()
            p.join(1.0)
    for c in task_conns + result_conns:
        try:
            c.close()
        except Exception:
            pass
