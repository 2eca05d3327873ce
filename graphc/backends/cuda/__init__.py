"""The CUDA backend: a planned kernel graph -> generated numba.cuda kernels on one device arena.

    exe = graphc.backends.get("cuda")(planned_graph)
    exe([x, w, ...]) -> [outputs..., update values...]     # the interpreter's contract
    exe.cuda_source()                                       # the generated Python source

Modules: _numba (import numba.cuda, the numpy shim), codegen (kernels -> source),
runtime (device arena, compiled launches, the executable), launch (the low-overhead launch path),
resident (calls on cuda tensors: state bound in place), follow (a compiled graph runs where its
inputs are), device_array (a cuda tensor's storage), eager (eager GPU mode: cached single-op
kernels). See docs/cuda.md. Runs in numba's CUDA simulator when NUMBA_ENABLE_CUDASIM=1 is set
before numba is first imported.
"""
from __future__ import annotations

from .. import register


def compile(graph, **options):
    """Compile a fused, memory-planned graph; NotImplementedError (naming the kernel and op)
    for anything it cannot run. Options: block, red_block, tile, max_blocks (launch shapes)."""
    from . import _numba
    from .codegen import Config
    from .runtime import CudaExecutable
    check_planned(graph)
    cfg = Config(simulator=_numba.simulator(), **options)
    return CudaExecutable(graph, cfg)


def check_planned(graph):
    if graph.nodes and any("buffers" not in n.attrs for n in graph.nodes):
        raise NotImplementedError("cuda backend: the graph is not memory-planned (a node has no "
                                  "`buffers`); run the pass pipeline first")


register("cuda", compile)
