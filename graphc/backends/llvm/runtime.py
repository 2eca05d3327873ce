"""JIT compilation (MCJIT, native CPU), the BLAS symbols, and the executable.

BLAS: numpy's wheel bundles OpenBLAS built with 64-bit integers and a `scipy_` symbol prefix
(numpy.libs/libscipy_openblas64_*.so: scipy_cblas_sgemm64_, scipy_cblas_dgemm64_). We dlopen
it with RTLD_GLOBAL and hand the addresses to LLVM with add_symbol, so generated code calls it
directly. libm symbols (tanhf, erff, ...) resolve from the process.
"""
from __future__ import annotations

import ctypes
import glob
import os
import threading

import numpy as np

_LOCK = threading.Lock()
_STATE = {}
GEMM = {"float32": "scipy_cblas_sgemm64_", "float64": "scipy_cblas_dgemm64_"}


def _openblas_path():
    base = os.path.dirname(os.path.dirname(np.__file__))
    for pat in ("numpy.libs/libscipy_openblas64_*.so*", "numpy.libs/libopenblas64_*.so*",
                "numpy/.dylibs/libscipy_openblas64_*"):
        hits = sorted(glob.glob(os.path.join(base, pat)))
        if hits:
            return hits[0]
    return None


def init():
    """Initialise LLVM once; the native target machine, and the BLAS/libm symbols."""
    with _LOCK:
        if _STATE:
            return _STATE
        import llvmlite.binding as llvm
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        path = _openblas_path()
        if path is None:
            raise NotImplementedError("llvm backend: numpy's bundled OpenBLAS (scipy_cblas_?gemm64_) was not found")
        lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        for sym in GEMM.values():
            llvm.add_symbol(sym, ctypes.cast(getattr(lib, sym), ctypes.c_void_p).value)
        libm = ctypes.CDLL("libm.so.6")
        for sym in ("tanh", "tanhf", "erf", "erff", "exp", "expf", "log", "logf", "sin", "sinf",
                    "cos", "cosf", "pow", "powf", "fmod", "fmodf", "floor", "floorf"):
            llvm.add_symbol(sym, ctypes.cast(getattr(libm, sym), ctypes.c_void_p).value)
        _STATE.update(llvm=llvm, blas=path, libs=(lib, libm))
        return _STATE


def target_machine():
    """A native target machine (host CPU and features). One per JIT: the MCJIT engine takes
    ownership of the target machine it is given, so none is shared."""
    llvm = init()["llvm"]
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                        features=llvm.get_host_cpu_features().flatten(),
                                        opt=3, codemodel="jitdefault")


def jit(ir_module, entry):
    """Optimise (O3 pipeline) and JIT-compile; (engine, entry address, optimised IR, assembly)."""
    llvm = init()["llvm"]
    tm = target_machine()
    ir_module.triple = llvm.get_process_triple()
    ir_module.data_layout = str(tm.target_data)
    mod = llvm.parse_assembly(str(ir_module))
    mod.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    text, asm = str(mod), tm.emit_assembly(mod)
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    addr = engine.get_function_address(entry)
    return engine, addr, text, asm


_ENTRY_T = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class LLVMExecutable:
    """callable(list of input arrays, in graph.inputs order) -> [outputs..., update values...].

    One ctypes call per invocation: the pointer table [arena, inputs..., fresh outputs...] is
    filled in Python and the generated entry runs every kernel. `.llvm_ir` is the optimised
    module, `.llvm_ir_unoptimized` what codegen emitted, `.asm` the native assembly."""

    def __init__(self, graph, builder, ir_module):
        self.graph = graph
        self.llvm_ir_unoptimized = str(ir_module)
        self._engine, addr, self.llvm_ir, self.asm = jit(ir_module, builder_entry())
        self._fn = _ENTRY_T(addr)
        size = builder.scratch_offset() + builder.scratch_bytes
        raw = np.zeros(size + 64, dtype=np.uint8)
        start = (-raw.ctypes.data) % 64
        self.arena = raw[start:start + size]
        self._arena_ptr = self.arena.ctypes.data
        self._n_in = len(graph.inputs)
        self._in_types = [(tuple(v.type.shape), v.type.dtype.np) for v in graph.inputs]
        self._outs = [(tuple(v.type.shape), v.type.dtype.np) for v in builder.out_values]
        self._slots_t = ctypes.c_void_p * (1 + self._n_in + len(self._outs))
        self._results = [self._resolver(builder, v) for v in
                         list(graph.outputs) + [v for _, v in graph.updates]]
        self._written = sorted({i for k in graph.nodes for b in k.attrs["buffers"] if b.startswith("state:")
                                for i, v in enumerate(graph.inputs) if v.name == b[6:]})

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
        g = self.graph
        if len(arrays) != self._n_in:
            raise ValueError(f"{g.name}: expected {self._n_in} inputs, got {len(arrays)}")
        ins, fixups = [], []
        for k, (a, (shape, dt)) in enumerate(zip(arrays, self._in_types)):
            if not isinstance(a, np.ndarray):
                a = np.asarray(a)
            if a.shape != shape or a.dtype != dt:
                raise ValueError(f"{g.name}: input %{g.inputs[k].name} expects {g.inputs[k].type}, "
                                 f"got {a.dtype}{list(a.shape)}")
            if not a.flags.c_contiguous:
                c = np.ascontiguousarray(a)
                fixups.append((a, c))
                a = c
            ins.append(a)
        outs = [np.empty(s, dtype=d) for s, d in self._outs]
        slots = self._slots_t(self._arena_ptr, *[a.ctypes.data for a in ins], *[o.ctypes.data for o in outs])
        self._fn(ctypes.addressof(slots))
        res = [r(ins, outs) for r in self._results]
        if fixups:   # non-contiguous inputs ran on copies: write state back, return the caller's arrays
            for a, c in fixups:
                a[...] = c
            swap = {id(c): a for a, c in fixups}
            res = [swap.get(id(r), r) for r in res]
        return res


def builder_entry():
    from .codegen import ENTRY
    return ENTRY
