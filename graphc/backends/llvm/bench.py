"""Measurements of the llvm backend (docs/llvm.md, "Measured"):

    python -m graphc.backends.llvm.bench overhead     # per-call overhead, 1-element one-kernel graph
    python -m graphc.backends.llvm.bench mlp          # 784-512-256-10 b128 SGD-momentum step, 1 vs N threads
    python -m graphc.backends.llvm.bench compile      # cold vs warm (disk cache) compile, subprocesses

Every figure is a median; `mlp` interleaves the thread counts in rounds within one process
(threads= is a build option, so both executables live side by side).
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np


def _rounds_us(fn, n=20000, rounds=7):
    """Mean microseconds per call in each of `rounds` rounds of n calls."""
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        out.append((time.perf_counter() - t) / n * 1e6)
    return out


def _median_us(fn, n=20000, rounds=7):
    return float(np.median(_rounds_us(fn, n, rounds)))


def overhead():
    import graphc as gc
    x = gc.randn(1)
    f = gc.compile(lambda x: x * 2 + 1, backend="llvm")
    f(x)
    exe = f.entry(x).exe
    arr = [x.numpy()]
    e, c = _rounds_us(lambda: exe(arr)), _rounds_us(lambda: f(x), n=5000, rounds=11)
    r = {"exe(list) us": float(np.median(e)), "exe(list) best round us": float(min(e)),
         "compiled fn call us": float(np.median(c)), "compiled fn call best round us": float(min(c)),
         "kernels": len([k for k in f.graph(x).nodes if k.attrs.get("kind") != "view"])}
    print(json.dumps(r))
    return r


def _mlp_setup(threads):
    import graphc as gc
    import graphc.nn as nn
    import graphc.nn.functional as F
    gc.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = gc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = gc.randn(128, 784), gc.randint(0, 10, (128,))

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    f = gc.compile(step, backend="llvm", threads=threads)
    f(x, y)
    f(x, y)       # the second call retraces once (optimizer state created)
    return f, x, y


def mlp(threads=(1, 2), rounds=10, calls=10):
    fs = {t: _mlp_setup(t) for t in threads}
    times = {t: [] for t in threads}
    exe_times = {t: [] for t in threads}
    for t, (f, x, y) in fs.items():
        for _ in range(3):
            f(x, y)
    for _ in range(rounds):
        for t, (f, x, y) in fs.items():
            e = f.entry(x, y)
            ins = [a.copy() for a in _entry_inputs(e, x, y)]
            for _ in range(calls):
                s = time.perf_counter()
                f(x, y)
                times[t].append(time.perf_counter() - s)
            for _ in range(calls):
                s = time.perf_counter()
                e.exe(ins)
                exe_times[t].append(time.perf_counter() - s)
    r = {f"threads={t}": {"step median ms": float(np.median(times[t]) * 1e3),
                          "step min ms": float(np.min(times[t]) * 1e3),
                          "exe median ms": float(np.median(exe_times[t]) * 1e3),
                          "parallel kernels": len(fs[t][0].entry(fs[t][1], fs[t][2]).exe.parallel_kernels)}
         for t in threads}
    print(json.dumps(r))
    return r


def _entry_inputs(e, x, y):
    from graphc.tensor import Tensor
    leaves = [x, y]
    ts = [leaves[i] for i in e.arg_leaves]
    for kind, t in e.state_slots:
        ts.append(t if kind == "data" else t._grad)
    return [t._data if isinstance(t, Tensor) else t for t in ts]


_COMPILE = """
import json, time
t0 = time.perf_counter()
from graphc.backends.llvm import bench
f, x, y = bench._mlp_setup(None)
exe = f.entry(x, y).exe
print(json.dumps({"compile_ms": exe.compile_ms, "cache_hit": exe.cache_hit}))
"""


def compile_times():
    """The mlp step's executable built in fresh processes on one new disk cache: cold, then warm."""
    from graphc.bench.compile_time import fresh_processes
    res = fresh_processes(_COMPILE, runs=3)
    r = {"cold ms (step graph)": res[0]["compile_ms"], "cold hit": res[0]["cache_hit"],
         "warm ms": float(np.median([x["compile_ms"] for x in res[1:]])), "warm hit": res[1]["cache_hit"]}
    print(json.dumps(r))
    return r


if __name__ == "__main__":
    what = sys.argv[1:] or ["overhead", "mlp", "compile"]
    for w in what:
        {"overhead": overhead, "mlp": mlp, "compile": compile_times}[w]()
