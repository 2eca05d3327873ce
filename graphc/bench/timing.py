"""Timing in one process: every implementation's median over interleaved rounds, and the CPU
threads every framework may use."""
from __future__ import annotations

import os
import statistics
import sys
import time

SETTLE_S = 0.3       # idle workers spin after a call before they sleep: OpenBLAS ~0.1 s, OpenMP runtimes up to 0.2 s
_THREADS = None      # set by limit_threads


def thread_env(n) -> dict:
    """The environment that caps every framework's CPU threads at n: OpenMP (torch, graphc's
    llvm runtime), OpenBLAS / MKL (numpy, graphc eager), GRAPHC_NUM_THREADS (llvm executables)
    and XLA (jax). Read when each library loads, so set it before importing them."""
    n = int(n)
    flags = os.environ.get("XLA_FLAGS", "")
    xla = f"--xla_cpu_multi_thread_eigen={'true' if n > 1 else 'false'} intra_op_parallelism_threads={n}"
    return {"OMP_NUM_THREADS": str(n), "OPENBLAS_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n),
            "GRAPHC_NUM_THREADS": str(n), "XLA_FLAGS": f"{flags} {xla}".strip()}


def limit_threads(n):
    """Cap every framework at n CPU threads, as far as this process still allows: sets
    thread_env(n) (for libraries not loaded yet, and for compile_times' subprocesses), limits
    the BLAS/OpenMP pools already loaded (threadpoolctl, when installed) and torch's pool (when
    something already imported it). Oversubscribed spinning worker threads (OpenBLAS, OpenMP)
    of several frameworks in one process on a small shared machine turn into slowdowns of 10x
    and more; with one thread each the columns are stable and compare like with like."""
    global _THREADS
    _THREADS = int(n)
    os.environ.update(thread_env(n))
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=int(n))
    except ImportError:
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(n))


def threads():
    """The cap limit_threads set, or "default"."""
    return _THREADS or "default"


def time_interleaved(calls: dict, repeat, warmup=2, block=5, settle=SETTLE_S) -> dict:
    """Median ms per call of each callable over `repeat` timed calls, taken in rounds: in each
    round every callable (in a rotating order) waits `settle` seconds -- so the worker threads
    the previous framework left spinning (OpenBLAS's, OpenMP's) have gone to sleep instead of
    competing for the cores -- makes one untimed call (a cold cache, its own pool waking up),
    then up to `block` timed calls. `warmup` untimed calls each come first. Slow drifts of a
    shared machine thus hit every column alike."""
    for f in calls.values():
        for _ in range(warmup):
            f()
    names = list(calls)
    ts = {n: [] for n in names}
    r = 0
    while len(ts[names[0]]) < repeat:
        k = r % len(names)
        for n in names[k:] + names[:k]:
            f = calls[n]
            if settle and len(names) > 1:
                time.sleep(settle)
            f()
            for _ in range(min(block, repeat - len(ts[n]))):
                t0 = time.perf_counter()
                f()
                ts[n].append((time.perf_counter() - t0) * 1e3)
        r += 1
    return {n: statistics.median(v) for n, v in ts.items()}
