"""The llvm backend's runtime, one idea a module, re-exported here (`from .runtime import X` and
`runtime.X` keep working for every name this module had, and setting `runtime.X` -- a test's
monkeypatch -- sets X in the module that uses it):

    settings.py    GRAPHC_* settings read when an executable is built; the `kernels` log channel
    blas.py        numpy's bundled OpenBLAS (or a private copy with faster kernels) for the GEMMs
    target.py      init (LLVM, the native target, BLAS/libm symbols), target_machine, has_fma, ...
    jit.py         the O3 pipeline and object emission, cache_key, load_object, cached_object
    cache.py       the disk cache: verified entries in a private directory, CacheWarning
    executable.py  LLVMExecutable and the errors of GRAPHC_BOUNDS_CHECK=1

A compiled graph's life: target.init once per process; codegen builds the module; jit
optimises it to an object (or the disk cache has it); executable.LLVMExecutable loads and calls it.
"""
from __future__ import annotations

import sys
import types

from . import blas, cache, executable, jit, settings, target
from .blas import (AVX512_CORE, BLAS_THREADS, GEMM, _AVX512, _blas_instance,  # noqa: F401
                   _corename, _load_private_blas, _openblas_path)
from .cache import (_MAGIC, _WARNED, CacheWarning, _cache_read, _cache_write,  # noqa: F401
                    _digest, _pack, _reject, _unpack, _unsafe, _usable_dir)
from .executable import (_ENTRY_T, _EXECUTABLES, BoundsError, DivisionByZero,  # noqa: F401
                         LLVMExecutable, LLVMRuntimeError, _addressof, _c_char, _cycle_hz)
from .jit import (CODEGEN_VERSION, cache_key, cached_object, codegen_sources,  # noqa: F401
                  emit_assembly, load_object, optimise_and_emit)
from .settings import (PAR_THRESHOLD, _Log, _log, bounds_check, cache_dir,  # noqa: F401
                       num_threads, par_threshold, parallel_epilogues, profiling)
from .target import (_STATE, _SYS_FUTEX, CODE_MODEL, has_fma, has_scalef, init,  # noqa: F401
                     pool_supported, target_machine)

# each re-exported name -> the modules holding it (the one defining it and those importing it)
_HOMES = {}
for _m in (settings, blas, target, cache, jit, executable):
    for _name, _v in vars(_m).items():
        if (not _name.startswith("__") and _name != "annotations" and globals().get(_name) is _v
                and not isinstance(_v, types.ModuleType)):
            _HOMES.setdefault(_name, []).append(_m)
del _m, _name, _v


class _Runtime(types.ModuleType):
    """Setting a re-exported name also sets it in the modules holding it, so that patching
    `runtime._WARNED` (tests do) reaches the cache code that reads `_WARNED`."""

    def __setattr__(self, name, value):
        for m in _HOMES.get(name, ()):
            setattr(m, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Runtime
