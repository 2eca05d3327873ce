"""The process-wide LLVM initialisation and what the host target is: `init` (native target,
BLAS/libm symbols registered with LLVM, triple/CPU/features), `target_machine`, and the feature
queries codegen asks (has_fma, has_scalef, pool_supported)."""
from __future__ import annotations

import ctypes
import os
import platform
import threading

from .blas import BLAS_THREADS, GEMM, _blas_instance, _openblas_path

_LOCK = threading.Lock()
_STATE = {}


def _after_fork_in_child():
    """fork() copies a lock held by another thread as held, and that thread does not exist in the
    child: its first init would wait forever. The child has one thread, so the lock starts free."""
    global _LOCK
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# the futex syscall numbers the thread pool (pool.py, built on this module) needs, per machine
_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}


def pool_supported() -> bool:
    """Can graphc's thread pool run here (Linux futexes)? (pool.supported())"""
    return platform.system() == "Linux" and platform.machine().lower() in _SYS_FUTEX


def init():
    """Initialise LLVM once; the native target, and the BLAS/libm symbols. The process-wide
    state: llvm (llvmlite.binding), the BLAS path, core and libraries, triple, CPU, features."""
    with _LOCK:
        if _STATE:
            return _STATE
        import llvmlite
        import llvmlite.binding as llvm
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        path = _openblas_path()
        if path is None:
            raise NotImplementedError("llvm backend: numpy's bundled OpenBLAS (scipy_cblas_?gemm64_) was not found")
        cpu, features = llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
        lib, core = _blas_instance(path, features)
        for sym in GEMM.values():
            llvm.add_symbol(sym, ctypes.cast(getattr(lib, sym), ctypes.c_void_p).value)
        blas_threads = all(hasattr(lib, sym) for sym in BLAS_THREADS)
        for sym in BLAS_THREADS if blas_threads else ():
            llvm.add_symbol(sym, ctypes.cast(getattr(lib, sym), ctypes.c_void_p).value)
        libm = ctypes.CDLL("libm.so.6")
        for sym in ("tanh", "tanhf", "erf", "erff", "exp", "expf", "log", "logf", "sin", "sinf",
                    "cos", "cosf", "pow", "powf", "fmod", "fmodf", "floor", "floorf"):
            llvm.add_symbol(sym, ctypes.cast(getattr(libm, sym), ctypes.c_void_p).value)
        _STATE.update(llvm=llvm, blas=path, blas_core=core, libs=(lib, libm), pool=pool_supported(),
                      blas_threads=blas_threads,
                      triple=llvm.get_process_triple(), cpu=cpu, features=features,
                      versions=f"llvmlite {llvmlite.__version__} llvm {llvm.llvm_version_info}")
        return _STATE


def has_fma() -> bool:
    """Does the host have FMA, so that vecmath's polynomials use llvm.fma (one rounding, one
    instruction)? Without it they multiply then add, each rounded (docs/numerics.md)."""
    return "+fma" in init()["features"].split(",")


def has_scalef() -> bool:
    """Does the host have AVX-512F, so that llvm.ldexp on vectors is one vscalef instruction
    (without it LLVM calls libm's ldexp per element)? GRAPHC_LLVM_LDEXP=0/1 overrides (tests)."""
    v = os.environ.get("GRAPHC_LLVM_LDEXP", "").strip()
    if v:
        return v.lower() in ("1", "true", "yes", "on")
    return "+avx512f" in init()["features"].split(",")


# The small code model: constants are addressed relative to the instruction pointer, often as a
# broadcast memory operand (`vfmadd213ps .LCPI0_3(%rip){1to16}, ...`). The JIT default (large)
# needs a movabsq into a register for every constant-pool address, and a loop that runs out of
# registers does that inside the loop (ln_gelu's output loop: 15 of its 57 instructions). It is
# safe because llvmlite's memory manager (use_lmm=True in load_object) maps each object's code,
# read-only and writable sections as one contiguous block, so every RIP-relative offset inside
# an object fits in 32 bits; calls to BLAS/libm/the pool, anywhere in memory, go through the
# stubs the runtime linker makes for PLT32 relocations.
CODE_MODEL = "small"


def target_machine():
    """A native target machine (host CPU and features). One per JIT: the MCJIT engine takes
    ownership of the target machine it is given, so none is shared."""
    st = init()
    llvm = st["llvm"]
    target = llvm.Target.from_triple(st["triple"])
    return target.create_target_machine(cpu=st["cpu"], features=st["features"], opt=3, reloc="pic", codemodel=CODE_MODEL)
