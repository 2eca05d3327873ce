"""Planned kernel graph -> one LLVM module (llvmlite.ir).

Every kernel becomes an internal function

    void kN(ptr in0, ..., ptr out0, ..., ptr scratch, i64 lo, i64 hi)

whose outermost loop runs over [lo, hi) of its first parallel dimension (the output's first dim
for pointwise and matmul-epilogue loops, the first outer dim of a reduction). The entry calls a
small kernel with the whole range; a large one through `kN_par(data)` run by graphc's thread
pool (pool.py: graphc_pool_run), whose threads take chunks of the range (ModuleBuilder.parallel).

The entry function `graphc_main(ptr slots)` reads the pointer table slots = [arena, inputs...,
fresh outputs...], resolves every kernel operand from the memory plan (`buffers`: arena+N,
out, state:S, view) and calls the kernels in graph order. In checks mode (GRAPHC_BOUNDS_CHECK)
every load/store offset, gather/scatter index and integer divisor is checked; a failure sets
the global graphc_err and returns (KernelGen.check), and the entry returns after that kernel.

Inside a loop body, a body value at an index is lowered once by the backend-neutral walker
(backends/lower: movement ops remap the index, elementwise ops combine their inputs' values at
the same index, body inputs are loads) and rendered to LLVM instructions (render.py, the
elementwise rules in scalar.py). Nothing is materialised between fused ops.

This module is the codegen's front: it re-exports the pieces, one idea a module --
  common.py     symbol names, tuning constants, supported kernels, a kernel's range and work
  render.py     Renderer: lowering IR -> LLVM values in one loop body
  kernel.py     KernelGen: one kernel's function (arguments, loads/stores, loops, checks)
  pointwise.py, reduction.py, matmul.py, opaque.py: the loops of each kernel kind
  module.py     ModuleBuilder: the module, the entry, buffers, parallel regions
"""
from __future__ import annotations

from ..kernels import MOVEMENT, OPAQUE_OPS, REDUCTIONS, SOURCES
from .common import (ENTRY, ERRORS, GEMM_SPLIT_WORK, POINTWISE_OPS, POOL_RUN, PREFETCH_BYTES, PROFILE,
                     RW_ANCHOR, check_kernel, kernel_extent, kernel_work, unsupported)
from .kernel import KernelGen
from .module import ModuleBuilder
from .render import Renderer

__all__ = ["ENTRY", "ERRORS", "GEMM_SPLIT_WORK", "POINTWISE_OPS", "POOL_RUN", "PREFETCH_BYTES", "PROFILE",
           "RW_ANCHOR", "check_kernel", "kernel_extent", "kernel_work", "unsupported", "Renderer",
           "KernelGen", "ModuleBuilder", "MOVEMENT", "OPAQUE_OPS", "REDUCTIONS", "SOURCES"]
