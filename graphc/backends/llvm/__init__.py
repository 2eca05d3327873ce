"""The LLVM backend: a planned kernel graph -> one LLVM module -> native code (llvmlite MCJIT).

    exe = graphc.backends.get("llvm")(planned_graph)
    exe([x, w, ...]) -> [outputs..., update values...]     # the interpreter's contract
    exe.llvm_ir, exe.asm                                     # what runs

See docs/llvm.md. Modules: types (dtypes as LLVM types), scalar (elementwise math),
indexing (index maps of movement ops), codegen (kernels -> functions, the entry), runtime
(JIT, BLAS symbols, the executable).
"""
from __future__ import annotations

from .. import register


def compile(graph, **options):
    """Compile a fused, memory-planned graph; NotImplementedError (naming the kernel and op)
    for anything it cannot run exactly."""
    from .codegen import ModuleBuilder
    from .runtime import GEMM, LLVMExecutable
    if not graph.nodes or any("buffers" not in n.attrs for n in graph.nodes):
        if graph.nodes:
            raise NotImplementedError("llvm backend: the graph is not memory-planned (a node has no "
                                      "`buffers`); run the pass pipeline first")
    mb = ModuleBuilder(graph, GEMM)
    module = mb.build()
    return LLVMExecutable(graph, mb, module)


register("llvm", compile)
