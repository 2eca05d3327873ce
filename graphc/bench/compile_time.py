"""Compile time: fresh subprocesses sharing a new, empty GRAPHC_CACHE_DIR -- the first is cold,
the later ones find the executables in the disk cache (warm). In each, compile time = the time
of the calls that traced (a training step traces twice: .grad is None on the first call) minus
as many steady-state calls. Each process first loads the backend (`graphc.backends.prepare`:
for llvm its modules, LLVM's native target, the BLAS symbols), a cost it pays once whatever it
compiles; that is timed on its own and reported as "backend init", not in the compile time."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from .workloads import WORKLOADS

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fresh_processes(code, args=(), runs=3, timeout=600) -> list:
    """Run the Python source `code` (with `args` as sys.argv[1:]) in `runs` fresh processes one
    after the other, sharing a new, empty GRAPHC_CACHE_DIR; each prints a JSON object as its
    last line: the list of them."""
    with tempfile.TemporaryDirectory(prefix="graphc-bench-cache-") as d:
        env = dict(os.environ, GRAPHC_CACHE_DIR=d)
        env["PYTHONPATH"] = _ROOT + os.pathsep + env.get("PYTHONPATH", "")
        res = []
        for _ in range(runs):
            p = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                               text=True, timeout=timeout)
            if p.returncode:
                raise RuntimeError(f"fresh process {' '.join(args)} failed:\n{p.stderr[-2000:]}")
            res.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return res


def compile_probe(name, backend="llvm", steady=5) -> dict:
    """In this (fresh) process: build the compiled graphc step and time its first calls. The calls
    that traced cost `compile_ms` more than a steady-state call."""
    from .. import backends
    t0 = time.perf_counter()
    backends.prepare(backend)      # once per process, whatever is compiled: reported on its own
    init_ms = (time.perf_counter() - t0) * 1e3
    w = WORKLOADS[name]
    im = w.impl("compiled", w.init(), backend)
    f = getattr(im.fn, "_compiled", im.fn)
    ts, traced = [], []
    for _ in range(4 + steady):
        n = len(f.traces)
        t0 = time.perf_counter()
        im.call()
        ts.append((time.perf_counter() - t0) * 1e3)
        traced.append(len(f.traces) > n)
    k = max(i for i, t in enumerate(traced) if t) + 1        # calls up to the last trace
    later = statistics.median(ts[k:])
    out = {"compile_ms": sum(ts[:k]) - k * later, "first_calls_ms": ts[:k], "steady_ms": later,
           "traces": k, "backend_init_ms": init_ms}
    st = f.stats(*im.args)
    for key in ("compile_ms", "cache_hit"):
        if key in st:
            out["backend_" + key] = st[key]
    return out


_PROBE = ("import json, sys; from graphc.bench.compile_time import compile_probe; "
          "print(json.dumps(compile_probe(sys.argv[1], sys.argv[2])))")


def compile_times(name, backend="llvm", warm_runs=2) -> dict:
    """Cold and warm compile time of workload `name` (ms): fresh subprocesses sharing a new, empty
    GRAPHC_CACHE_DIR -- the first is cold, the next `warm_runs` hit the disk cache (median)."""
    res = fresh_processes(_PROBE, (name, backend), runs=1 + warm_runs)
    cold, warm = res[0], res[1:]
    r = {"compile_cold_ms": cold["compile_ms"],
         "compile_warm_ms": statistics.median(x["compile_ms"] for x in warm),
         "backend_init_cold_ms": cold["backend_init_ms"],
         "backend_init_warm_ms": statistics.median(x["backend_init_ms"] for x in warm)}
    if "backend_compile_ms" in cold:
        r.update(backend_compile_cold_ms=cold["backend_compile_ms"],
                 backend_compile_warm_ms=statistics.median(x["backend_compile_ms"] for x in warm),
                 cold_cache_hit=cold.get("backend_cache_hit"),
                 warm_cache_hit=all(x.get("backend_cache_hit") for x in warm))
    return r
