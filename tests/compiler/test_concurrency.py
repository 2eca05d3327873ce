"""Compiled functions under threads and fork(): concurrent first calls trace once per signature,
a forked child never deadlocks on a lock another thread held at the fork (every backend), and
numpy arrays passed to a compiled function are inputs read at every call (not constants frozen
into the trace)."""
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import graphc as gc

from repo_paths import ROOT  # noqa: E402
N_THREADS = 8


def _run_threads(n, target):
    """Run target(i) on n threads started together (a barrier); their results, in order."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def work(i):
        try:
            barrier.wait(timeout=60)
            results[i] = target(i)
        except BaseException as e:      # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    if errors:
        raise errors[0]
    return results


# ---- concurrent first calls --------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["llvm", "interp"])
def test_concurrent_first_calls_trace_once(backend):
    traced = []

    @gc.compile(backend=backend)
    def f(x, y):
        traced.append(threading.get_ident())     # Python side effect: runs only while tracing
        time.sleep(0.05)                         # a slow trace: the other threads arrive meanwhile
        return (x * y).tanh().sum(), x - y

    xs = [gc.tensor(np.linspace(-1, 1, 300) * (i + 1)) for i in range(N_THREADS)]
    y = gc.tensor(np.cos(np.arange(300.0)))
    got = _run_threads(N_THREADS, lambda i: f(xs[i], y))
    assert len(traced) == 1 and len(f.traces) == 1, f.explain()
    for x, (s, d) in zip(xs, got):
        np.testing.assert_allclose(s.item(), np.tanh(x.numpy() * y.numpy()).sum(), rtol=1e-12)
        np.testing.assert_array_equal(d.numpy(), x.numpy() - y.numpy())


def test_concurrent_first_calls_trace_once_per_signature():
    traced = []

    @gc.compile
    def f(x):
        traced.append(tuple(x.shape))
        return x.exp() * 2

    shapes = [(3,), (4, 2), (5,), (2, 2, 2)]
    xs = [gc.tensor(np.random.default_rng(i).standard_normal(shapes[i % 4])) for i in range(N_THREADS)]
    got = _run_threads(N_THREADS, lambda i: f(xs[i]))
    assert sorted(traced) == sorted(shapes) and len(f.traces) == 4, f.explain()
    for x, r in zip(xs, got):
        np.testing.assert_allclose(r.numpy(), np.exp(x.numpy()) * 2)


def test_concurrent_first_calls_with_a_nested_compiled_function():
    """A compiled function called while another is traced is inlined on the tracing thread (no
    lock to deadlock on); the other threads wait for the outer trace instead of inlining into it."""
    inner_traced, outer_traced = [], []

    @gc.compile
    def inner(x):
        inner_traced.append(1)
        return x.sin()

    @gc.compile
    def outer(x):
        outer_traced.append(1)
        return (inner(x) * x).sum()

    xs = [gc.tensor(np.linspace(0, 1, 50) + i) for i in range(N_THREADS)]
    got = _run_threads(N_THREADS, lambda i: outer(xs[i]))
    assert len(outer_traced) == 1 and inner_traced == [1] and inner.traces == []
    for x, loss in zip(xs, got):
        a = x.numpy()
        np.testing.assert_allclose(loss.item(), (np.sin(a) * a).sum())


def test_backward_of_a_compiled_call_is_built_once():
    @gc.compile
    def f(x):
        return (x.sin() * x).sum()

    xs = [gc.tensor(np.linspace(0, 1, 50) + i, requires_grad=True) for i in range(N_THREADS)]
    losses = [f(x) for x in xs]
    fn = f.entry(xs[0]).fn
    built = []
    real = fn._build_backward
    fn._build_backward = lambda *a: built.append(1) or real(*a)
    # the graph's backward requested by all threads at once (the eager engine's first step)
    node = losses[0].grad_fn
    got = _run_threads(N_THREADS, lambda i: fn.backward(node.outs, node.diff))
    assert built == [1] and all(g is got[0] for g in got)
    for x, loss in zip(xs, losses):
        loss.backward()
        a = x.detach().numpy()
        np.testing.assert_allclose(x.grad.numpy(), np.cos(a) * a + np.sin(a))


def test_warm_signature_is_not_held_up_by_another_signatures_trace():
    """Threads calling an already-traced signature keep running while a new one is traced."""
    started, release = threading.Event(), threading.Event()

    @gc.compile
    def f(x):
        if x.shape[0] == 7:          # the slow trace
            started.set()
            assert release.wait(60)
        return x * 3

    warm = gc.tensor(np.arange(4.0))
    f(warm)
    t = threading.Thread(target=lambda: f(gc.tensor(np.arange(7.0))))
    t.start()
    assert started.wait(60)
    try:
        r = f(warm)              # runs now: no wait for the other signature's trace
    finally:
        release.set()
        t.join(60)
    np.testing.assert_array_equal(r.numpy(), np.arange(4.0) * 3)
    assert len(f.traces) == 2


# ---- fork() while another thread holds a lock --------------------------------------------------------------
_FORK_SCRIPT = textwrap.dedent("""
    import os, signal, sys, threading, time
    import numpy as np
    import graphc as gc
    from graphc import compiler as C, tracing as T
    from graphc.ir.graph import Graph
    backend, mode = sys.argv[1], sys.argv[2]

    @gc.compile(backend=backend)
    def f(x):
        return (x * 2 + 1).sum()

    x = gc.tensor(np.arange(10.0))
    big = gc.tensor(np.ones(2_000_000))
    assert f(x).item() == 100

    if backend == "llvm":
        from graphc.backends.llvm.runtime import _EXECUTABLES as live
    elif backend == "interp":
        from graphc.backends.interpreter import _INSTANCES as live
    else:
        from graphc.backends.cuda.runtime import _EXECUTABLES as live
    held = threading.Event()

    def hold_locks():        # another thread, in the middle of a compiled call and of a trace
        locks = [e._lock for e in list(live)]
        assert locks, "no executable registered"
        for lk in locks:
            lk.acquire()
        with C._Tracing(), T.tracing(T.Trace(Graph("elsewhere"))):
            held.set()
            time.sleep(600)

    def busy():              # another thread really inside calls of f, in a loop
        while True:
            f(big)
            held.set()

    threading.Thread(target=hold_locks if mode == "held" else busy, daemon=True).start()
    assert held.wait(120)
    if mode == "busy":
        time.sleep(0.05)
    pid = os.fork()
    if pid == 0:
        try:
            ok = mode != "busy" or f(big).item() == 6_000_000  # the executable the thread was in
            ok = ok and f(x).item() == 100                     # the executable another thread held
            ok = ok and f(gc.tensor(np.arange(5.0))).item() == 25   # a new trace
        except BaseException as e:
            print("child:", repr(e), file=sys.stderr, flush=True)
            ok = False
        os._exit(0 if ok else 3)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            print("child exit", code, flush=True)
            os._exit(code)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    print("child deadlocked", flush=True)
    os._exit(9)
""")


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.parametrize("backend,mode", [("llvm", "held"), ("llvm", "busy"), ("interp", "held"),
                                          ("cuda", "held")])
def test_forked_child_does_not_deadlock_on_locks_held_at_fork(backend, mode):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if backend == "cuda":
        pytest.importorskip("numba")
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    if backend == "llvm":
        pytest.importorskip("llvmlite")
    r = subprocess.run([sys.executable, "-c", _FORK_SCRIPT, backend, mode], env=env, capture_output=True,
                       text=True, timeout=400)
    assert r.returncode == 0 and "child exit 0" in r.stdout, (r.returncode, r.stdout, r.stderr[-3000:])


# ---- numpy arrays are inputs --------------------------------------------------------------------------------
def test_numpy_array_argument_is_read_at_every_call():
    @gc.compile
    def f(a, t):
        return a * 2 + t

    a = np.arange(4.0)
    t = gc.tensor(np.ones(4))
    np.testing.assert_array_equal(f(a, t).numpy(), np.arange(4.0) * 2 + 1)
    a[:] = [10.0, 20.0, 30.0, 40.0]                 # mutated in place: new values come out
    np.testing.assert_array_equal(f(a, t).numpy(), [21.0, 41.0, 61.0, 81.0])
    np.testing.assert_array_equal(f(np.full(4, 5.0), t).numpy(), np.full(4, 11.0))   # another array
    assert len(f.traces) == 1, f.explain()
    g = f.graph(a, t, stage="traced")
    assert [v.kind for v in g.inputs] == ["arg", "arg"]


def test_numpy_arrays_of_other_shapes_or_dtypes_retrace():
    @gc.compile
    def f(a):
        return a.sum()

    assert f(np.ones(3)).item() == 3
    assert f(np.ones((2, 5))).item() == 10
    assert f(np.ones(3, dtype=np.float32)).item() == 3
    assert f(np.arange(4)).item() == 6               # int64
    assert f(np.ones(3)).item() == 3                 # cached
    assert len(f.traces) == 4, f.explain()
    assert "changed from tensor float64[3] to tensor float64[2, 5]" in f.explain()


def test_numpy_array_nested_and_as_keyword_and_with_tensors_of_the_same_signature():
    @gc.compile
    def f(xs, scale=None):
        return xs[0] * scale + xs[1]

    a, b, s = np.arange(3.0), np.ones(3), np.full(3, 2.0)
    np.testing.assert_array_equal(f([a, b], scale=s).numpy(), a * 2 + 1)
    b[:] = 7
    np.testing.assert_array_equal(f([a, b], scale=s).numpy(), a * 2 + 7)
    ta, tb, ts = (gc.tensor(v) for v in (a, b, s))
    np.testing.assert_array_equal(f([ta, tb], scale=ts).numpy(), a * 2 + 7)
    assert len(f.traces) == 1                          # a tensor and an array: the same signature


def test_in_place_update_of_a_numpy_argument_lands_in_the_array():
    @gc.compile
    def f(a):
        a.add_(1)
        return a.sum()

    a = np.zeros(5)
    assert f(a).item() == 5 and f(a).item() == 10
    np.testing.assert_array_equal(a, np.full(5, 2.0))


@pytest.mark.parametrize("dtype", [np.int32, np.float16, np.uint8, np.complex128])
def test_numpy_array_of_unsupported_dtype_is_refused_naming_the_argument(dtype):
    @gc.compile
    def f(x, y):
        return x + y

    with pytest.raises(TypeError, match=r"f: argument 'y' is a numpy array of dtype .*float32, float64, int64, bool"):
        f(gc.tensor(np.ones(3)), np.ones(3, dtype=dtype))


def test_eager_ops_in_another_thread_stay_eager_while_one_thread_traces():
    """The active trace is per thread: an eager op another thread runs while a function body is
    being traced is computed now, not recorded into that trace."""
    import threading
    import numpy as np
    import graphc as gc
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def other():
        inside.wait(10)
        a = gc.ones(3) * 2.0
        seen["value"] = a.numpy().tolist()
        done.set()

    @gc.compile(backend="interp")
    def f(x):
        inside.set()
        done.wait(10)
        return x + 1.0

    th = threading.Thread(target=other)
    th.start()
    out = f(gc.zeros(3))
    th.join(10)
    assert seen["value"] == [2.0, 2.0, 2.0]
    np.testing.assert_array_equal(out.numpy(), np.ones(3, np.float32))
