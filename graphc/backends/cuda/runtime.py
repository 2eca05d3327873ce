"""The executable: one device arena, kernels compiled and launch configurations bound once.

Device memory is ONE numba device array of uint8, laid out as

    [ planned arena (the memory plan's arena+N offsets) | matmul scratch | inputs | fresh outputs ]

(each region 256-byte aligned). Every buffer a kernel touches is a flat typed view
`arena[off:off + nbytes].view(dtype)` made once at compile time, so a call is: copy the host
inputs into their slots, run the pre-configured launches in schedule order, copy outputs back,
and copy every state input the graph updated in place back into the caller's array.

Two ways to call it:
  exe(host arrays)             host numpy arrays in and out (the backend contract): inputs copied
                               host -> device each call, outputs and updated state copied back
  exe.run_on_device(arrays)    cuda tensors' storage (DeviceArray) in and out, no host copies:
                               captured state bound in place, arguments copied device -> device
                               into their slots, outputs returned as fresh DeviceArrays
                               (resident.py)

Launches go through `launch.PreparedLaunch`: kernel compiled and parameters marshalled once, then
one driver call per launch (numba's ordinary dispatch in the simulator).
"""
from __future__ import annotations

import linecache
import os
import threading
import time
import weakref

import numpy as np

from ...ir.buffer import buffer_of, buffers_of
from . import _numba
from .codegen import Config, generate
from .launch import Launcher, PreparedLaunch

ALIGN = 256
_MODULES = {}      # generated source -> its namespace: the same graph compiles its kernels once


def _module(source, name):
    ns = _MODULES.get(source)
    if ns is None:
        fname = f"<graphc-cuda {name} {len(_MODULES)}>"
        linecache.cache[fname] = (len(source), None, source.splitlines(True), fname)
        ns = {}
        exec(compile(source, fname, "exec"), ns)
        _MODULES[source] = ns
    return ns


_EXECUTABLES = weakref.WeakSet()


def _after_fork_in_child():
    """A call lock held by another thread at fork() stays held in the child, where that thread
    does not exist: re-create them all (the child has one thread)."""
    for exe in list(_EXECUTABLES):
        exe._lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _align(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


class CudaExecutable:
    """callable(list of host arrays in graph.inputs order) -> [outputs..., update values...]."""

    def __init__(self, graph, cfg: Config | None = None):
        from ...passes.memory import arena_bytes
        cuda = _numba.cuda()
        self.graph = graph
        self.cfg = cfg or Config(simulator=_numba.simulator())
        gens, self.source = generate(graph, self.cfg)
        t0 = time.perf_counter()
        ns = _module(self.source, graph.name)
        self.producer = {v.name: k for k in graph.nodes for v in k.outs}
        self.input_index = {v.name: i for i, v in enumerate(graph.inputs)}
        # layout
        off = _align(arena_bytes(graph))
        scratch = max([kg.scratch.nbytes for _, kg in gens if getattr(kg, "scratch", None) is not None] or [0])
        self._scratch_off, off = off, _align(off + scratch)
        self._in_off = []
        for v in graph.inputs:
            self._in_off.append(off)
            off = _align(off + v.type.nbytes)
        self.out_values = [v for k in graph.nodes if k.op == "kernel"
                           for v, b in zip(k.outs, buffers_of(k)) if b.kind == "out"]
        self._out_off = {}
        for v in self.out_values:
            self._out_off[v.name] = off
            off = _align(off + v.type.nbytes)
        self.nbytes = max(off, ALIGN)
        self.arena = cuda.device_array(self.nbytes, dtype=np.uint8)
        self._lock = threading.RLock()      # see __call__
        _EXECUTABLES.add(self)              # its lock is reset in a forked child
        self._in_views = [self._view(o, v.type) for o, v in zip(self._in_off, graph.inputs)]
        # launches, bound once; each operand also as ("in", i) or a fixed view, for resident calls
        self.launches = []
        self.launch_specs = []         # (name, kernel, grid, block, operands)
        for k, kg in gens:
            for ln in kg.launches:
                args = [self._view(self._scratch_off, v[1]) if isinstance(v, tuple) else self.device_view(v)
                        for v in ln.operands]
                fn = ns[ln.name]
                self.launches.append((ln.name, PreparedLaunch(Launcher(fn, ln.grid, ln.block), args), args))
                specs = [a if isinstance(v, tuple) or self.where(v)[0] != "in" else self.where(v)
                         for v, a in zip(ln.operands, args)]
                self.launch_specs.append((ln.name, fn, ln.grid, ln.block, specs))
        self.compile_seconds = time.perf_counter() - t0
        self._resident = None
        self._results = [self._result(v) for v in list(graph.outputs) + [v for _, v in graph.updates]]
        self._written = sorted({self.input_index[b.state] for k in graph.nodes if k.op == "kernel"
                                for b in buffers_of(k) if b.kind == "state"})

    # -- buffers
    def _view(self, off, t):
        flat = self.arena[off:off + max(t.nbytes, t.dtype.itemsize)]
        return flat.view(t.dtype.np)[:t.numel] if t.numel else flat.view(t.dtype.np)[:0]

    def where(self, v):
        """("in", i) | ("arena", byte offset) | ("out", byte offset) for graph value v."""
        if v.name in self.input_index:
            return ("in", self.input_index[v.name])
        k = self.producer[v.name]
        buf = buffer_of(k, v)
        if buf.kind == "view":
            return self.where(k.inputs[0])
        if buf.kind == "arena":
            return ("arena", buf.offset)
        if buf.kind == "state":
            return ("in", self.input_index[buf.state])
        return ("out", self._out_off[v.name])

    def device_view(self, v):
        kind, x = self.where(v)
        off = self._in_off[x] if kind == "in" else x
        return self._view(off, v.type)

    def _result(self, v):
        kind, x = self.where(v)
        shape, t = tuple(v.type.shape), v.type
        if kind == "in":     # an input returned, or state updated in place: the caller's array
            return lambda ins, i=x: ins[i] if ins[i].shape == shape else ins[i].reshape(shape)
        view = self._view(self._in_off[x] if kind == "in" else x, t)
        return lambda ins: view.copy_to_host().reshape(shape) if t.numel else np.empty(shape, t.dtype.np)

    # -- running
    def __call__(self, arrays):
        with self._lock:         # one device arena per executable: one call at a time
            return self._call(arrays)

    def _call(self, arrays):
        g = self.graph
        if len(arrays) != len(g.inputs):
            raise ValueError(f"{g.name}: expected {len(g.inputs)} inputs, got {len(arrays)}")
        ins = []
        for k, (a, v) in enumerate(zip(arrays, g.inputs)):
            a = a if isinstance(a, np.ndarray) else np.asarray(a)
            if tuple(a.shape) != v.type.shape or a.dtype != v.type.dtype.np:
                raise ValueError(f"{g.name}: input %{v.name} expects {v.type}, got {a.dtype}{list(a.shape)}")
            if a.size:
                self._in_views[k].copy_to_device(np.ascontiguousarray(a).reshape(-1))
            ins.append(a)
        self.run_device()
        for i in self._written:          # state updated in place on the device -> caller's array
            a = ins[i]
            if a.size:
                host = self._in_views[i].copy_to_host()
                if a.flags.c_contiguous:
                    a.reshape(-1)[...] = host
                else:
                    a[...] = host.reshape(a.shape)
        return [r(ins) for r in self._results]

    def run_device(self):
        """Every launch, in schedule order, on the data already on the device (no copies)."""
        if self.cfg.simulator:
            with np.errstate(all="ignore"):     # the simulator's numpy scalars warn where a GPU wraps
                for _, launch, _ in self.launches:
                    launch()
            return
        for _, launch, _ in self.launches:
            launch()

    @property
    def launch_paths(self):
        """{launch name: how it launches} ("prepared parameters" on a GPU after the first call)."""
        return {name: launch.path for name, launch, _ in self.launches}

    # -- device-resident calls (cuda tensors in and out): resident.py
    def run_on_device(self, arrays, labels=None):
        """Inputs already on the device (DeviceArray; 0-d numpy values allowed) -> [outputs...,
        update values...] as DeviceArrays; state updated in place in the caller's arrays."""
        with self._lock:
            return self._run_on_device(arrays, labels)

    def _run_on_device(self, arrays, labels=None):
        if self._resident is None:
            from .resident import ResidentCall
            self._resident = ResidentCall(self)
        return self._resident(arrays, labels)

    @property
    def fresh_device_results(self):
        """Per output, then per update value: True where run_on_device returns an array
        allocated for that call alone (the compiler then skips its aliasing checks)."""
        g = self.graph
        return [self.where(v)[0] != "in" for v in list(g.outputs) + [v for _, v in g.updates]]

    def synchronize(self):
        _numba.cuda().synchronize()

    def cuda_source(self) -> str:
        return self.source


def ptx(graph, cfg: Config | None = None, cc=(9, 0)):
    """{launch name: PTX} for every kernel of a planned graph, compiled for compute capability
    `cc` without a GPU (numba-cuda needs NVVM: pip install "numba-cuda[cu13]"). Checks that the
    generated source types and compiles for the real target, where the simulator cannot."""
    cuda = _numba.cuda()
    from numba import types
    cfg = cfg or Config(simulator=False)
    gens, source = generate(graph, cfg)
    ns = {}
    exec(compile(source, f"<graphc-cuda {graph.name} ptx>", "exec"), ns)
    scalar = {"float32": types.float32, "float64": types.float64, "int64": types.int64, "bool": types.boolean}
    res = {}
    for _, kg in gens:
        for ln in kg.launches:
            sig = []
            for v in ln.operands:
                t = v[1] if isinstance(v, tuple) else v.type
                sig.append(types.Array(scalar[t.dtype.np.name], 1, "C"))
            res[ln.name], _ = cuda.compile_ptx(ns[ln.name].py_func, tuple(sig), cc=cc)
    return res
