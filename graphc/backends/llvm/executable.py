"""LLVMExecutable: one compiled graph, called through one ctypes call per invocation, and the
errors the checks compiled in by GRAPHC_BOUNDS_CHECK=1 raise."""
from __future__ import annotations

import ctypes
import os
import threading
import time
import weakref

import numpy as np

from .cache import _cache_read, _cache_write
from .jit import cache_key, emit_assembly, load_object, optimise_and_emit
from .settings import _log, cache_dir


class LLVMRuntimeError(RuntimeError):
    """A check compiled in by GRAPHC_BOUNDS_CHECK=1 failed inside generated code."""


class BoundsError(LLVMRuntimeError, IndexError):
    """An index (gather/scatter index, computed offset) outside its buffer (GRAPHC_BOUNDS_CHECK=1)."""


class DivisionByZero(LLVMRuntimeError, ZeroDivisionError):
    """Integer division by zero (GRAPHC_BOUNDS_CHECK=1)."""


def _cycle_hz(cycles, _cache={}):
    """The rate of the cycle counter (llvm.readcyclecounter: the TSC on x86), measured once
    against time.perf_counter."""
    if "hz" not in _cache:        # 5 ms of counting against the clock (no sleep: it is in the first compile)
        c0, t0 = cycles(), time.perf_counter()
        t1 = t0
        while t1 - t0 < 0.005:
            t1 = time.perf_counter()
        c1 = cycles()
        _cache["hz"] = (c1 - c0) / (t1 - t0) if c1 > c0 else 1e9
    return _cache["hz"]


# ---- the executable -------------------------------------------------------------------------------------
_ENTRY_T = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_c_char, _addressof = ctypes.c_char, ctypes.addressof
_EXECUTABLES = weakref.WeakSet()      # live executables, whose call locks a forked child re-creates


def _after_fork_in_child():
    """fork() copies a lock held by another thread as held, and that thread does not exist in the
    child: its next call of the same executable would wait forever. The child has one thread,
    so every lock starts free. (target.init's lock likewise; the thread pool restarts itself:
    pool.py.)"""
    for exe in list(_EXECUTABLES):
        exe._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class LLVMExecutable:
    """callable(list of input arrays, in graph.inputs order) -> [outputs..., update values...].

    One ctypes call per invocation: the pointer table [arena, inputs..., fresh outputs...]
    (allocated once, refilled per call) is handed to the generated entry, which runs every
    kernel. `.llvm_ir` is the optimised module, `.llvm_ir_unoptimized` what codegen emitted,
    `.asm` the native assembly (the last two computed on first use). `.compile_ms` is what
    building this executable cost, `.cache_hit` whether its object code came from the disk
    cache, `.threads` / `.parallel_kernels` / `.checks` how it was generated."""

    def __init__(self, graph, builder, options):
        t0 = time.perf_counter()
        from ...ir import print_graph
        self.graph = graph
        self._builder = builder
        self.options = dict(options)
        self.threads = options["threads"]
        self.checks = options["checks"]
        self.cache_dir = cache_dir()
        self.cache_key = cache_key(print_graph(graph), options)
        obj = _cache_read(self.cache_dir, self.cache_key)
        self.cache_hit = obj is not None
        self._ir_text = self._ir_unopt = self._asm = None
        if obj is None or self.checks:     # checks: the build also makes the table of check messages
            module = builder.build()
            self._ir_unopt = str(module)
        if obj is None:
            obj, self._ir_text = optimise_and_emit(module)
            _cache_write(self.cache_dir, self.cache_key, obj, self._ir_text)
        self._engine = load_object(obj)
        from .codegen import ENTRY, ERRORS
        self._fn = _ENTRY_T(self._engine.get_function_address(ENTRY))
        self.parallel_kernels = builder.parallel_names
        self._err = None
        self._prof = None
        if options.get("profile"):
            from .codegen import PROFILE
            self._prof = {n: ctypes.c_int64.from_address(self._engine.get_global_value_address(f"{PROFILE}_{n}"))
                          for n, k in enumerate(graph.nodes) if k.attrs["kind"] != "view"}
            self._cycles = ctypes.CFUNCTYPE(ctypes.c_int64)(self._engine.get_function_address(PROFILE + "_cycles"))
        if self.checks:
            self._err = ctypes.c_int64.from_address(self._engine.get_global_value_address(ERRORS))
            self._err_value = ctypes.c_int64.from_address(self._engine.get_global_value_address(ERRORS + "_value"))
            self._check_table = builder.check_table
        size = builder.scratch_offset() + builder.scratch_bytes
        raw = np.zeros(size + 64, dtype=np.uint8)
        start = (-raw.ctypes.data) % 64
        self.arena = raw[start:start + size]
        self._n_in = len(graph.inputs)
        names = [v.name for v in graph.inputs]
        self._written = [names.index(n) for n, _ in graph.updates if n in names]
        self._in_types = [(tuple(v.type.shape), np.dtype(v.type.dtype.np)) for v in graph.inputs]
        # (shape, dtype, has bytes): an empty output has no buffer for from_buffer to take
        self._outs = [(tuple(v.type.shape), np.dtype(v.type.dtype.np), v.type.nbytes > 0) for v in builder.out_values]
        self._slots = (ctypes.c_void_p * (1 + self._n_in + len(self._outs)))()
        self._slots[0] = self.arena.ctypes.data
        self._slots_addr = ctypes.addressof(self._slots)
        self._last_in = [None] * (1 + self._n_in)     # input array objects whose pointers the slots hold
        self._lock = threading.Lock()                   # see __call__
        _EXECUTABLES.add(self)                          # its lock is reset in a forked child
        results = list(graph.outputs) + [v for _, v in graph.updates]
        self._results = [self._resolver(builder, v) for v in results]
        # which results are arrays made for this call alone (an output slot seen first, or an arena copy)
        seen, self.fresh_results = set(), []
        for v in results:
            where = builder.buffer(v)
            self.fresh_results.append(v.name not in builder.inputs and where[0] in ("out", "arena")
                                      and where not in seen)
            seen.add(where)
        self.compile_ms = (time.perf_counter() - t0) * 1e3
        _log.info("llvm %s: compiled in %.1f ms (%s), %d thread(s), %d parallel kernel(s)%s",
                  graph.name, self.compile_ms, "disk cache hit" if self.cache_hit else "cold",
                  self.threads, len(self.parallel_kernels), ", bounds checks on" if self.checks else "")

    # -- text, on demand
    @property
    def llvm_ir(self):
        """The optimised module as LLVM IR text."""
        if self._ir_text is None:
            text = _cache_read(self.cache_dir, self.cache_key, ".ll")
            self._ir_text = text.decode() if text is not None else optimise_and_emit(self._builder.build())[1]
        return self._ir_text

    @property
    def llvm_ir_unoptimized(self):
        if self._ir_unopt is None:
            self._ir_unopt = str(self._builder.build())
        return self._ir_unopt

    @property
    def asm(self):
        """Native assembly of the optimised module."""
        if self._asm is None:
            self._asm = emit_assembly(self.llvm_ir)
        return self._asm

    def _resolver(self, builder, v):
        where, i = builder.buffer(v)
        shape, dt = tuple(v.type.shape), v.type.dtype.np
        if v.name in builder.inputs:
            return lambda ins, outs, i=i: ins[i]
        if where == "in":          # state written in place (maybe through a view)
            return lambda ins, outs, i=i: ins[i] if ins[i].shape == shape else ins[i].reshape(shape)
        if where == "out":
            return lambda ins, outs, i=i: outs[i] if outs[i].shape == shape else outs[i].reshape(shape)
        nbytes = v.type.nbytes
        return lambda ins, outs, i=i: self.arena[i:i + nbytes].view(dt).reshape(shape).copy()

    def __call__(self, arrays):
        # one arena and one pointer table per executable, and the native call releases the GIL:
        # a second Python thread calling the same graph waits for the first (different graphs
        # run at the same time)
        with self._lock:
            return self._call(arrays)

    def _call(self, arrays):
        if len(arrays) != self._n_in:
            raise ValueError(f"{self.graph.name}: expected {self._n_in} inputs, got {len(arrays)}")
        slots = self._slots
        last = self._last_in
        ins, fixups = [], None
        k = 1
        for a, (shape, dt) in zip(arrays, self._in_types):
            if a.__class__ is not np.ndarray:
                a = np.asarray(a)
            if a.shape != shape or (a.dtype is not dt and a.dtype != dt):
                self._bad_input(k - 1, a)
            if not a.flags.c_contiguous:
                c = np.ascontiguousarray(a)
                (fixups := fixups or []).append((a, c))
                slots[k] = c.ctypes.data
                last[k] = None
                a = c
            elif a is not last[k]:   # the same array object as last call: its slot already holds its pointer
                slots[k] = a.ctypes.data
                last[k] = a          # held: its buffer cannot be freed or resized while cached
            ins.append(a)
            k += 1
        outs = []
        for s, d, nonempty in self._outs:
            o = np.empty(s, dtype=d)
            # the address of a fresh array: from_buffer costs half of what o.ctypes.data does
            slots[k] = _addressof(_c_char.from_buffer(o)) if nonempty else o.ctypes.data
            outs.append(o)
            k += 1
        self._fn(self._slots_addr)
        if self._err is not None and self._err.value:
            self._raise()
        res = [r(ins, outs) for r in self._results]
        if fixups:   # non-contiguous inputs ran on copies: write state back, return the caller's arrays
            written = {id(ins[i]) for i in self._written}
            for a, c in fixups:
                if id(c) in written:      # read-only inputs (a broadcast view) are not written back
                    a[...] = c
            swap = {id(c): a for a, c in fixups}
            res = [swap.get(id(r), r) for r in res]
        return res

    def kernel_profile(self, reset=False):
        """Seconds spent in each kernel over all calls so far (GRAPHC_PROFILE=1 / profile=True):
        [{"kernel", "kind", "ops", "seconds"}] in schedule order, views left out."""
        if self._prof is None:
            raise RuntimeError(f"{self.graph.name}: compiled without profiling; set GRAPHC_PROFILE=1 "
                               "or compile with profile=True")
        hz = _cycle_hz(self._cycles)
        rows = []
        for n, k in enumerate(self.graph.nodes):
            if k.attrs["kind"] == "view":
                continue
            rows.append({"kernel": f"k{n}_{k.attrs['kind']}", "kind": k.attrs["kind"],
                         "ops": [m.op for m in k.body.nodes], "seconds": self._prof[n].value / hz})
            if reset:
                self._prof[n].value = 0
        return rows

    def _bad_input(self, k, a):
        g = self.graph
        raise ValueError(f"{g.name}: input %{g.inputs[k].name} expects {g.inputs[k].type}, "
                         f"got {a.dtype}{list(a.shape)}")

    def _raise(self):
        code, detail = self._err.value, self._err_value.value
        self._err.value = self._err_value.value = 0
        kernel, what, limit, kind = self._check_table[code - 1]
        if kind == "div":
            raise DivisionByZero(f"llvm backend (GRAPHC_BOUNDS_CHECK): kernel {kernel}: {what}: "
                                 "integer division by zero")
        raise BoundsError(f"llvm backend (GRAPHC_BOUNDS_CHECK): kernel {kernel}: {what}: "
                          f"index {detail} out of bounds [0, {limit})")
