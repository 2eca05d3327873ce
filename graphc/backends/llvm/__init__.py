"""The LLVM backend: a planned kernel graph -> one LLVM module -> native code (llvmlite).

    exe = graphc.backends.get("llvm")(planned_graph)
    exe([x, w, ...]) -> [outputs..., update values...]     # the interpreter's contract
    exe.llvm_ir, exe.asm                                     # what runs
    exe.compile_ms, exe.cache_hit, exe.threads               # how it was built

Settings read when an executable is built: GRAPHC_NUM_THREADS (default: the CPUs available),
GRAPHC_BOUNDS_CHECK=1 (checked loads/stores/indices/division), GRAPHC_CACHE_DIR (object-code
cache, default ~/.cache/graphc/llvm; "off" disables), GRAPHC_PAR_THRESHOLD (elements of work
below which a kernel stays serial, default 32768), GRAPHC_PAR_EPILOGUES=1 (matmul epilogues in
parallel too), GRAPHC_PROFILE=1 (count the time spent in each kernel: exe.kernel_profile()).
Keyword options threads=, checks=, profile= override.

See docs/llvm.md. Modules: types (dtypes as LLVM types), scalar (elementwise math),
render (the kernel lowering IR of backends/lower as LLVM values), codegen (kernels -> functions,
the entry), runtime
(JIT, BLAS/libm symbols, the disk cache, the executable), pool (the threads parallel kernels run on).
"""
from __future__ import annotations

from .. import register


def compile(graph, threads=None, checks=None, profile=None, **options):
    """Compile a fused, memory-planned graph; NotImplementedError (naming the kernel and op)
    for anything it cannot run exactly."""
    from . import runtime as R
    from .codegen import ModuleBuilder
    if not graph.nodes or any("buffers" not in n.attrs for n in graph.nodes):
        if graph.nodes:
            raise NotImplementedError("llvm backend: the graph is not memory-planned (a node has no "
                                      "`buffers`); run the pass pipeline first")
    from . import pool
    st = R.init()
    threads = R.num_threads() if threads is None else max(1, int(threads))
    if threads > 1 and not pool.ensure(threads - 1):     # no pool here (not Linux): serial kernels
        threads = 1
    checks = R.bounds_check() if checks is None else bool(checks)
    threshold = R.par_threshold()
    epilogues = R.parallel_epilogues()
    profile = R.profiling() if profile is None else bool(profile)
    split = st["blas_threads"]      # GEMMs split across our threads need OpenBLAS held at one thread
    ldexp = R.has_scalef()
    fma = R.has_fma()
    mb = ModuleBuilder(graph, R.GEMM, threads=threads, checks=checks, threshold=threshold, epilogues=epilogues,
                       blas_threads=R.BLAS_THREADS if split else None, profile=profile, ldexp=ldexp, fma=fma)
    opts = {"threads": threads, "checks": checks, "threshold": threshold, "epilogues": epilogues,
            "split_gemm": split, "profile": profile, "ldexp": ldexp, "fma": fma}
    return R.LLVMExecutable(graph, mb, opts)


def prepare():
    """Once per process: the codegen's modules, LLVM and BLAS (runtime.init), and the thread pool
    for the default thread count (its workers are started here, not in the first compile)."""
    from . import codegen, pool, runtime  # noqa: F401
    runtime.init()
    pool.ensure(runtime.num_threads() - 1)


register("llvm", compile, prepare)
