"""Compiling a module to native code and loading it: the module is optimised (O3 pipeline),
lowered to an object file with a native target machine (tm.emit_object) and the object is
loaded into an MCJIT engine (add_object_file, `load_object`). The object is cached on disk
(cache.py) under a key hashing everything that decides the code (`cache_key`), so a second
process only loads it; `cached_object` does that for runtime modules (the thread pool)."""
from __future__ import annotations

import glob
import hashlib
import os

from .blas import GEMM
from .cache import _cache_read, _cache_write
from .settings import cache_dir
from .target import init, target_machine

CODEGEN_VERSION = "graphc-llvm-21"    # bump when what a cached object means changes outside the sources below


def codegen_source_files():
    """The files whose text decides the object code: every module of this package, the kernel
    lowering and helpers it shares with the CUDA backend, and graphc/ops, whose records hold
    the decompositions codegen expands."""
    here = os.path.dirname(os.path.abspath(__file__))
    backends = os.path.dirname(here)
    ops = os.path.join(os.path.dirname(backends), "ops")
    return (sorted(glob.glob(os.path.join(here, "*.py")))
            + sorted(glob.glob(os.path.join(backends, "lower", "*.py")))
            + [os.path.join(backends, "kernels.py")]
            + sorted(glob.glob(os.path.join(ops, "**", "*.py"), recursive=True)))


def codegen_sources(_memo={}):
    """sha256 of codegen_source_files(): an edited codegen never loads an object that an
    older one compiled, even when nobody bumped CODEGEN_VERSION (it happened: objects that a
    reverted experiment had cached under a version string were loaded when the string was
    reused, and computed a wrong sigmoid)."""
    if "sha" not in _memo:
        h = hashlib.sha256()
        for f in codegen_source_files():
            with open(f, "rb") as fh:
                h.update(fh.read())
        _memo["sha"] = h.hexdigest()
    return _memo["sha"]


def cache_key(graph_text, options):
    """sha256 of what decides the object code: the printed planned graph, the codegen options
    (threads, checks, threshold), the target (triple, CPU, features), llvmlite/LLVM versions, the
    BLAS symbols, CODEGEN_VERSION and the codegen's source (codegen_sources)."""
    st = init()
    h = hashlib.sha256()
    for part in (CODEGEN_VERSION, codegen_sources(), st["versions"], st["triple"], st["cpu"], st["features"],
                 repr(sorted(options.items())), repr(sorted(GEMM.items())), graph_text):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def optimise_and_emit(ir_module):
    """O3 pipeline, then native object code; (object bytes, optimised IR text)."""
    st = init()
    llvm = st["llvm"]
    tm = target_machine()
    ir_module.triple = st["triple"]
    ir_module.data_layout = str(tm.target_data)
    mod = llvm.parse_assembly(str(ir_module))
    mod.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return tm.emit_object(mod), str(mod)


def cached_object(name, build):
    """Object code of a runtime module (`build()` -> ir.Module, e.g. the thread pool), from the
    disk cache when this codegen, LLVM and target built it before."""
    key = cache_key(f"runtime module {name}", {})
    d = cache_dir()
    obj = _cache_read(d, key)
    if obj is None:
        obj, text = optimise_and_emit(build())
        _cache_write(d, key, obj, text)
    return obj


def load_object(obj):
    """An MCJIT engine holding the object code (relocated against the registered symbols)."""
    st = init()
    llvm = st["llvm"]
    tm = target_machine()
    empty = llvm.parse_assembly(f'target triple = "{st["triple"]}"\n')
    engine = llvm.create_mcjit_compiler(empty, tm, use_lmm=True)
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    return engine


def emit_assembly(ir_text):
    st = init()
    mod = st["llvm"].parse_assembly(ir_text)
    return target_machine().emit_assembly(mod)
