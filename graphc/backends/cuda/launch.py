"""Launching generated kernels with as little per-launch Python as numba allows.

numba's ordinary launch, `kernel[grid, block](*args)`, does on every call: build a launch
configuration (when not kept), type every argument and look the signature up in the
dispatcher's overloads (compiling on a miss), marshal every argument to kernel parameters
(five integers and a pointer per 1-D array), then launch. graphc pays the one-off parts once:

  Launcher        (eager ops: arguments change every call) the configured launch is built once;
                  after the first call compiles the kernel, later calls go straight to the
                  compiled kernel's `launch(args, grid, block, stream, 0)` -- no argument typing,
                  no overload lookup, no dispatcher. Parameter marshalling remains.
  PreparedLaunch  (compiled graphs: arguments never change, they are fixed views into the
                  graph's one device arena) the parameters are marshalled once as well, so a
                  launch is a single `cuda.core.launch(stream, config, kernel, *params)`.

Both fall back to numba's ordinary dispatch in the simulator (which has no compiled kernels)
and when GRAPHC_CUDA_LAUNCH=numba is set. `measure_launch_us()` times the ways side by side.
"""
from __future__ import annotations

import os
import time

from . import _numba


def _lean() -> bool:
    return not _numba.simulator() and os.environ.get("GRAPHC_CUDA_LAUNCH", "") != "numba"


def _argtypes(dispatcher, args):
    return tuple(dispatcher.typeof_pyval(a) for a in args)


class Launcher:
    """`launcher(*args)` == `dispatcher[grid, block](*args)`, minus the per-call dispatch."""

    __slots__ = ("configured", "kernel", "lean", "path")

    def __init__(self, dispatcher, grid, block):
        self.configured = dispatcher[grid, block]
        self.kernel = None
        self.lean = _lean()
        self.path = "numba dispatch"

    def __call__(self, *args):
        k = self.kernel
        if k is not None:
            c = self.configured
            k.launch(args, c.griddim, c.blockdim, c.stream, c.sharedmem)
            return
        self.configured(*args)           # the first call compiles (and checks) the kernel
        if self.lean:
            d = self.configured.dispatcher
            self.kernel = d.overloads.get(_argtypes(d, args))
            if self.kernel is not None:
                self.path = "compiled kernel"


class PreparedLaunch:
    """A launch whose arguments never change: parameters marshalled once, then one driver launch
    per call. Built from a Launcher after its first call; falls back to it on any surprise."""

    __slots__ = ("launcher", "args", "call", "path")

    def __init__(self, launcher, args):
        self.launcher, self.args = launcher, tuple(args)
        self.call = None
        self.path = launcher.path

    def __call__(self):
        if self.call is not None:
            self.call()
            return
        self.launcher(*self.args)
        if self.launcher.kernel is not None:
            try:
                self.call = _prepare(self.launcher, self.args)
                self.path = "prepared parameters"
            except Exception:          # noqa: BLE001 - numba internals moved: keep the ordinary path
                self.call = None


def _prepare(launcher, args):
    """A no-argument callable launching the compiled kernel with pre-marshalled parameters
    (numba-cuda's own `_Kernel.launch`, with the argument loop hoisted out)."""
    from numba.cuda.dispatcher import LaunchConfig, launch
    from numba.cuda._compat import CUDA_CORE_GE_1_0
    k, c = launcher.kernel, launcher.configured
    if k.debug or k.extensions:
        raise NotImplementedError("debug kernels and argument extensions need numba's launch")
    params, retr = [], []
    for t, v in zip(k.argument_types, args):
        k._prepare_args(t, v, c.stream, retr, params)
    if retr:
        raise NotImplementedError("arguments needing write-back need numba's launch")
    coop = {"is_cooperative" if CUDA_CORE_GE_1_0 else "cooperative_launch": k.cooperative}
    config = LaunchConfig(grid=c.griddim, block=c.blockdim, shmem_size=c.sharedmem, **coop)
    fn = k._codelibrary.get_cufunc().kernel
    stream = c.stream
    params = tuple(params)

    def call():
        launch(stream, config, fn, *params)
    return call


# ---- measuring ---------------------------------------------------------------------------------------
_SRC = '''
from numba import cuda


@cuda.jit
def graphc_probe(x, y):
    i = cuda.grid(1)
    if i < x.shape[0]:
        y[i] = x[i] + 1.0
'''


def measure_launch_us(n=2000, size=256) -> dict:
    """Microseconds per launch of a tiny kernel (host time, `n` back-to-back launches then one
    synchronize), three ways: numba's ordinary `kernel[grid, block](*args)`, graphc's eager
    `Launcher` (arguments passed per call) and graphc's `PreparedLaunch` (compiled graphs).
    Also reports which path each graphc launcher took. In the simulator the numbers measure
    the simulator, not a GPU."""
    import numpy as np
    cuda = _numba.cuda()
    ns = {}
    exec(compile(_SRC, "<graphc launch probe>", "exec"), ns)
    k = ns["graphc_probe"]
    x = cuda.to_device(np.zeros(size, np.float32))
    y = cuda.device_array(size, np.float32)
    grid, block = ((size + 127) // 128,), (128,)
    k[grid, block](x, y)              # compile outside the timings
    cuda.synchronize()

    def timed(fn):
        fn()
        cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        cuda.synchronize()
        return (time.perf_counter() - t0) / n * 1e6

    res = {"launches": n}
    res["numba_dispatch_us"] = timed(lambda: k[grid, block](x, y))
    cfg = k[grid, block]
    res["numba_configured_us"] = timed(lambda: cfg(x, y))
    ln = Launcher(k, grid, block)
    res["graphc_eager_us"] = timed(lambda: ln(x, y))
    pl = PreparedLaunch(Launcher(k, grid, block), (x, y))
    res["graphc_prepared_us"] = timed(pl)
    res["eager_path"], res["prepared_path"] = ln.path, pl.path
    want = np.ones(size, np.float32)
    res["correct"] = bool(np.array_equal(y.copy_to_host(), want))
    return res
