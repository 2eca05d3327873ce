"""graphc's thread pool (graphc/backends/llvm/pool.py): the protocol of graphc_pool_run driven
directly through ctypes, and graphs on it from several Python threads, after fork(), and with
workers that sleep at once."""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

pytest.importorskip("llvmlite")

import graphc as gc  # noqa: E402
from graphc.backends.llvm import pool  # noqa: E402

from repo_paths import ROOT  # noqa: E402
pytestmark = pytest.mark.skipif(not pool.supported(), reason="graphc's pool needs Linux (futex)")

_JOB = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _run_fn():
    assert pool.ensure(1)
    return ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(pool._POOL["run"])


def test_caller_returns_only_after_every_worker_that_joined_has_finished():
    run = _run_fn()
    state = {"started": 0, "finished": 0, "threads": set()}
    lock = threading.Lock()
    main = threading.get_ident()

    def job(_):
        me = threading.get_ident()
        with lock:
            state["started"] += 1
            state["threads"].add(me)
        if me != main:
            time.sleep(0.005)           # a worker is slow: the caller must still wait for it
        with lock:
            state["finished"] += 1
    cb = _JOB(job)
    joined_runs = 0
    deadline = time.monotonic() + 20        # a loaded machine may deschedule the worker for a while
    n = 0
    while (joined_runs < 5 or n < 40) and time.monotonic() < deadline:
        before = pool.stats()["joins"]
        run(cb, None, 1)
        n += 1
        joined_runs += pool.stats()["joins"] > before
        with lock:                      # every run that started has finished when the call returns
            assert state["started"] == state["finished"]
    assert main in state["threads"]
    assert joined_runs >= 5 and len(state["threads"]) == 2, f"the worker joined {joined_runs} of {n} jobs"


def test_a_limit_of_zero_workers_runs_on_the_caller_alone():
    run = _run_fn()
    who = []
    cb = _JOB(lambda _: who.append(threading.get_ident()))
    before = pool.stats()["jobs"]
    for _ in range(10):
        run(cb, None, 0)
    assert who == [threading.get_ident()] * 10 and pool.stats()["jobs"] == before


def _parallel_fn():
    """A graph whose kernel runs on the pool (threads=2), and its float64 reference."""
    f = gc.compile(lambda x: (x * 1.5).tanh() + x.exp() * 0.25, backend="llvm", threads=2)
    x = np.random.default_rng(0).standard_normal((256, 512)).astype(np.float32)
    ref = np.tanh(x.astype(np.float64) * 1.5) + np.exp(x.astype(np.float64)) * 0.25
    return f, x, ref


@pytest.mark.parametrize("same", [False, True], ids=["two graphs", "one graph"])
def test_graphs_from_two_python_threads_at_once(same):
    """Two graphs from two threads: the pool serves one job at a time, and a thread that finds it
    busy runs its kernel on its own core, alone. One graph from two threads: its executable has
    one arena, so the second call waits for the first. All numbers right either way."""
    fs = [_parallel_fn()]
    fs.append(fs[0] if same else _parallel_fn())
    x, ref = fs[0][1], fs[0][2]
    xt = gc.tensor(x)
    assert fs[0][0].entry(xt).exe.parallel_kernels
    errors = []

    def worker(f):
        try:
            for _ in range(60):
                np.testing.assert_allclose(f(xt).numpy(), ref, rtol=2e-6, atol=2e-6)
        except Exception as e:     # noqa: BLE001 -- reported below
            errors.append(e)
    ts = [threading.Thread(target=worker, args=(f,)) for f, _, _ in fs]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in ts)


_CHILD = textwrap.dedent("""
    import json, os, sys, numpy as np
    import graphc as gc
    from graphc.backends.llvm import pool
    f = gc.compile(lambda x: (x * 1.5).tanh() + x.exp() * 0.25, backend="llvm", threads=2)
    x = gc.tensor(np.random.default_rng(0).standard_normal((256, 512)).astype(np.float32))
    want = f(x).numpy()                       # the parent ran the pool first
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        ok = all(np.array_equal(f(x).numpy(), want) for _ in range(50))
        os.write(w, json.dumps({"ok": ok, "stats": pool.stats()}).encode())
        os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    print(os.read(r, 10000).decode())
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_forked_child_runs_parallel_kernels_and_restarts_the_workers():
    """fork() keeps the pool's memory but none of its threads: the child closes what a job in
    flight left, starts its workers again (os.register_at_fork) and computes the same numbers
    (libgomp, which the backend used before, could hang there)."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["ok"] and r["stats"]["workers"] == 1 and r["stats"]["jobs"] >= 50, r


_SLEEPY = textwrap.dedent("""
    import ctypes, json
    from graphc.backends.llvm import pool
    pool.ensure(1)
    run = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(pool._POOL["run"])
    job = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _: None)
    for _ in range(500):
        run(job, None, 1)
    print(json.dumps(pool.stats()))
""")


def test_the_caller_does_not_wait_for_a_sleeping_worker():
    """GRAPHC_SPIN_US=0: the worker sleeps on the futex after every job. A tiny job is over
    before the woken worker gets there; the caller has closed it and returned, so there are
    jobs the worker never joined (GOMP_parallel would have waited for it at every one)."""
    env = dict(os.environ, GRAPHC_SPIN_US="0",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", _SLEEPY], capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout.strip().splitlines()[-1])
    assert s["jobs"] == 500 and s["joins"] < s["jobs"], s


def test_spin_setting_is_checked():
    os.environ["GRAPHC_SPIN_US"] = "soon"
    try:
        with pytest.raises(ValueError, match="GRAPHC_SPIN_US"):
            pool.spin_us()
    finally:
        del os.environ["GRAPHC_SPIN_US"]
