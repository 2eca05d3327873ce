"""graphc's thread pool: how a parallel kernel runs on several cores.

A parallel kernel is a wrapper `kN_par(data)` that takes chunks of its range from an atomic
counter inside `data` until none is left (codegen.ModuleBuilder._parallel_wrapper). Generated
code runs it with `graphc_pool_run(kN_par, data, max_workers)`: the calling thread publishes
the job, wakes sleeping workers and runs the wrapper itself; workers that arrive while the job
is open join it and run the wrapper too. When its wrapper returns (no chunk left), the caller
closes the job and waits only for the workers that joined -- each is awake and on its last
chunk. A worker that has not started yet (asleep, or its vCPU descheduled by the host) is
never waited for: it finds the job closed and goes back to waiting.

That is the difference from libgomp's GOMP_parallel, which the backend used before: its
region ends at a barrier that every team thread must reach, so a worker that had gone to sleep
between kernels delayed every region by the time it took to wake -- on this 2-vCPU VM up to
milliseconds (the MLP b32 training step: 6.5 ms median with two threads, 2.4 ms with one).

Idle workers spin (`pause`) for GRAPHC_SPIN_US microseconds (default 2000: the gaps between
the parallel kernels of one step) and then sleep on a futex; the caller wakes them with
FUTEX_WAKE when one sleeps (the sleeper count and the job word are seq_cst, so a wakeup is
never lost). The pool is one LLVM module, JIT-compiled once per process, whose entry points are
registered with LLVM (`graphc_pool_run`) before any graph is loaded; its workers are pthreads
created through ctypes. A busy pool (another Python thread is running a graph) or a process
without workers (a forked child before they are restarted) runs the wrapper on the caller
alone: always correct, never waiting.

Linux only (futex); elsewhere kernels run serially. The job word (one i64):

    epoch (bits 32-63) | closed (bit 31) | worker limit (bits 16-30) | workers joined (0-15)
"""
from __future__ import annotations

import ctypes
import os
import platform
import threading

from llvmlite import ir

from . import runtime as R
from .runtime import _SYS_FUTEX, pool_supported as supported  # noqa: F401  (pool.supported())
from .types import I32, I64, PTR, VOID

RUN = "graphc_pool_run"
WORKER = "graphc_pool_worker"
PREFIX = "graphc_pool_"
CLOSED = 1 << 31
LIMIT_SHIFT = 16
JOINED = 0xFFFF
MAX_WORKERS = 0x7FFF
SPIN_US = 2000
FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE = 128, 129

_FN_T = ir.FunctionType(VOID, [PTR])
_LOCK = threading.Lock()
_POOL = {}


def spin_us() -> int:
    v = os.environ.get("GRAPHC_SPIN_US", "").strip()
    if not v:
        return SPIN_US
    try:
        return max(0, int(v))
    except ValueError:
        raise ValueError(f"GRAPHC_SPIN_US={v!r}: expected microseconds, a whole number >= 0") from None


# ---- the module -----------------------------------------------------------------------------------------
def build_module() -> ir.Module:
    m = ir.Module(name="graphc_pool")
    sys_futex = _SYS_FUTEX[platform.machine().lower()]

    def glob(name, ty, init=0):
        g = ir.GlobalVariable(m, ty, name=PREFIX + name)
        g.initializer = ir.Constant(ty, init)
        g.align = 64                       # each on a cache line of its own
        return g
    job, finished, epoch = glob("job", I64), glob("finished", I64), glob("epoch", I64)
    fn, data = glob("fn", PTR, None), glob("data", PTR, None)
    busy, sleepers, futex_word = glob("busy", I32), glob("sleepers", I32), glob("futex", I32)
    spin = glob("spin_cycles", I64)
    jobs, joins = glob("jobs", I64), glob("joins", I64)     # counters for pool.stats()

    syscall = ir.Function(m, ir.FunctionType(I64, [I64], var_arg=True), name="syscall")
    pause = ir.Function(m, ir.FunctionType(VOID, []), name="llvm.x86.sse2.pause") \
        if platform.machine().lower() in ("x86_64", "amd64") else None
    cycles = ir.Function(m, ir.FunctionType(I64, []), name="llvm.readcyclecounter")

    def c64(v):
        return ir.Constant(I64, v)

    def c32(v):
        return ir.Constant(I32, v)

    def relax(b):
        if pause is not None:
            b.call(pause, [])

    def futex(b, op, val):
        b.call(syscall, [c64(sys_futex), futex_word, c64(op), val, ir.Constant(PTR, None)])

    def epoch_of(b, w):
        return b.lshr(w, c64(32))

    # void graphc_pool_run(fn, data, i64 max_workers)
    run = ir.Function(m, ir.FunctionType(VOID, [ir.PointerType(_FN_T), PTR, I64]), name=RUN)
    f, d, maxw = run.args
    b = ir.IRBuilder(run.append_basic_block("entry"))
    alone, tryb, publish = (run.append_basic_block(n) for n in ("alone", "try", "publish"))
    b.cbranch(b.icmp_signed("<=", maxw, c64(0)), alone, tryb)
    b.position_at_end(alone)
    b.call(f, [d])
    b.ret_void()
    b.position_at_end(tryb)
    got = b.cmpxchg(busy, c32(0), c32(1), "acquire", "monotonic")
    b.cbranch(b.extract_value(got, 1), publish, alone)
    b.position_at_end(publish)
    b.store(b.bitcast(f, PTR), fn)
    b.store(d, data)
    b.store_atomic(c64(0), finished, "monotonic", 8)
    e = b.add(b.load(epoch, typ=I64), c64(1))
    b.store(e, epoch)
    lim = b.select(b.icmp_signed(">", maxw, c64(MAX_WORKERS)), c64(MAX_WORKERS), maxw)
    b.store_atomic(b.or_(b.shl(e, c64(32)), b.shl(lim, c64(LIMIT_SHIFT))), job, "seq_cst", 8)
    b.atomic_rmw("add", futex_word, c32(1), "seq_cst")
    b.atomic_rmw("add", jobs, c64(1), "monotonic")
    with b.if_then(b.icmp_signed(">", b.load_atomic(sleepers, "seq_cst", 4, typ=I32), c32(0))):
        futex(b, FUTEX_WAKE_PRIVATE, c64(0x7FFFFFFF))
    b.call(f, [d])
    old = b.atomic_rmw("or", job, c64(CLOSED), "acq_rel")
    k = b.and_(old, c64(JOINED))
    wait, waited = run.append_basic_block("wait"), run.append_basic_block("waited")
    b.branch(wait)
    b.position_at_end(wait)
    done = b.icmp_signed(">=", b.load_atomic(finished, "acquire", 8, typ=I64), k)
    spinb = run.append_basic_block("spin")
    b.cbranch(done, waited, spinb)
    b.position_at_end(spinb)
    relax(b)
    b.branch(wait)
    b.position_at_end(waited)
    b.store_atomic(c32(0), busy, "release", 4)
    b.ret_void()

    # ptr graphc_pool_worker(ptr): join every job it sees open, forever
    wk = ir.Function(m, ir.FunctionType(PTR, [PTR]), name=WORKER)
    entry = wk.append_basic_block("entry")
    idle, spinning, spun, sleep, gone, nap, check, join, cas, joined = (
        wk.append_basic_block(n) for n in ("idle", "spinning", "spun", "sleep", "gone", "nap", "check", "join",
                                           "cas", "joined"))
    b = ir.IRBuilder(entry)
    seen_slot = b.alloca(I64)
    w_slot = b.alloca(I64)
    b.store(epoch_of(b, b.load_atomic(job, "acquire", 8, typ=I64)), seen_slot)   # jobs before start: not ours
    b.branch(idle)
    # idle: spin for spin_cycles, watching the job word
    b.position_at_end(idle)
    t0 = b.call(cycles, [])
    budget = b.load_atomic(spin, "monotonic", 8, typ=I64)
    b.branch(spinning)
    b.position_at_end(spinning)
    w = b.load_atomic(job, "acquire", 8, typ=I64)
    b.store(w, w_slot)
    new = b.icmp_unsigned("!=", epoch_of(b, w), b.load(seen_slot, typ=I64))
    b.cbranch(new, check, spun)
    b.position_at_end(spun)
    relax(b)
    b.cbranch(b.icmp_signed("<", b.sub(b.call(cycles, []), t0), budget), spinning, sleep)
    # sleep: announce, look once more (a job published before the announcement is seen here;
    # one published after it finds sleepers > 0 and wakes us), then wait on the futex word
    b.position_at_end(sleep)
    fw = b.load_atomic(futex_word, "seq_cst", 4, typ=I32)
    b.atomic_rmw("add", sleepers, c32(1), "seq_cst")
    w = b.load_atomic(job, "seq_cst", 8, typ=I64)
    b.store(w, w_slot)
    new = b.icmp_unsigned("!=", epoch_of(b, w), b.load(seen_slot, typ=I64))
    b.cbranch(new, gone, nap)
    b.position_at_end(gone)
    b.atomic_rmw("sub", sleepers, c32(1), "seq_cst")
    b.branch(check)
    b.position_at_end(nap)
    futex(b, FUTEX_WAIT_PRIVATE, b.zext(fw, I64))
    b.atomic_rmw("sub", sleepers, c32(1), "seq_cst")
    b.branch(idle)
    # check: a job with a new epoch -- join it if it is open and not full
    b.position_at_end(check)
    w = b.load(w_slot, typ=I64)
    b.store(epoch_of(b, w), seen_slot)
    count = b.and_(w, c64(JOINED))
    limit = b.and_(b.lshr(w, c64(LIMIT_SHIFT)), c64(MAX_WORKERS))
    closed = b.icmp_unsigned("!=", b.and_(w, c64(CLOSED)), c64(0))
    full = b.icmp_unsigned(">=", count, limit)
    b.cbranch(b.or_(closed, full), idle, cas)
    b.position_at_end(cas)
    res = b.cmpxchg(job, w, b.add(w, c64(1)), "acq_rel", "acquire")
    b.store(b.extract_value(res, 0), w_slot)
    b.cbranch(b.extract_value(res, 1), joined, join)
    b.position_at_end(join)          # lost a race: same job (another worker joined) or a newer one
    b.branch(check)
    b.position_at_end(joined)
    b.atomic_rmw("add", joins, c64(1), "monotonic")
    target = b.load(fn, typ=ir.PointerType(_FN_T))
    b.call(target, [b.load(data, typ=PTR)])
    b.atomic_rmw("add", finished, c64(1), "release")
    b.branch(idle)

    # i64 graphc_pool_cycles(): the counter the spin budget is measured in (calibrated in _start)
    cy = ir.Function(m, ir.FunctionType(I64, []), name=PREFIX + "cycles")
    b = ir.IRBuilder(cy.append_basic_block("entry"))
    b.ret(b.call(cycles, []))
    return m


# ---- the process-wide pool ------------------------------------------------------------------------------
def ensure(workers: int) -> bool:
    """Make sure the pool exists with at least `workers` worker threads (the caller is the
    other participant). False where there is no pool (not Linux, no libc pthreads)."""
    if workers <= 0:
        return bool(_POOL)
    with _LOCK:
        if not _POOL:
            if not supported():
                return False
            _start()
        while _POOL["started"] < workers:
            _spawn()
        return True


def _start():
    st = R.init()
    llvm = st["llvm"]
    libc = ctypes.CDLL(None)
    llvm.add_symbol("syscall", ctypes.cast(libc.syscall, ctypes.c_void_p).value)
    obj = R.cached_object("pool", build_module)
    engine = R.load_object(obj)
    # never freed, not even while the interpreter shuts down: the workers run this code until
    # the process is gone
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(engine))
    addr = {n: engine.get_global_value_address(PREFIX + n) for n in ("spin_cycles", "jobs", "joins", "job",
                                                                     "busy", "sleepers", "finished")}
    counter = ctypes.CFUNCTYPE(ctypes.c_int64)(engine.get_function_address(PREFIX + "cycles"))
    ctypes.c_int64.from_address(addr["spin_cycles"]).value = int(spin_us() * 1e-6 * R._cycle_hz(counter))
    run = engine.get_function_address(RUN)
    llvm.add_symbol(RUN, run)
    _POOL.update(engine=engine, libc=libc, addr=addr, run=run, worker=engine.get_function_address(WORKER),
                 started=0)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork)


def _spawn():
    libc = _POOL["libc"]
    tid = ctypes.c_ulong()
    rc = libc.pthread_create(ctypes.byref(tid), None, ctypes.c_void_p(_POOL["worker"]), None)
    if rc != 0:
        raise OSError(rc, "graphc thread pool: pthread_create failed")
    libc.pthread_detach(tid)
    _POOL["started"] += 1


def _after_fork():
    """A forked child has the pool's memory but none of its threads: clear what a job in
    flight at the fork left behind and start the workers again."""
    if not _POOL:
        return
    n = _POOL["started"]
    a = _POOL["addr"]
    ctypes.c_int32.from_address(a["busy"]).value = 0
    ctypes.c_int32.from_address(a["sleepers"]).value = 0
    ctypes.c_int64.from_address(a["job"]).value |= CLOSED
    _POOL["started"] = 0
    for _ in range(n):
        _spawn()


def stats() -> dict:
    """Workers started, jobs published to the pool, and worker joins, since the process began."""
    if not _POOL:
        return {"workers": 0, "jobs": 0, "joins": 0}
    a = _POOL["addr"]
    return {"workers": _POOL["started"], "jobs": ctypes.c_int64.from_address(a["jobs"]).value,
            "joins": ctypes.c_int64.from_address(a["joins"]).value}
