"""What every LLVM codegen module shares: the generated module's symbol names and tuning
constants, the check that codegen supports a kernel, and a kernel's outer range and work (the
range [lo, hi) its function splits; what decides whether it runs on the thread pool)."""
from __future__ import annotations

import numpy as np

from . import scalar as S

from ..kernels import MOVEMENT, REDUCTIONS, SOURCES
from .. import kernels as _K

POINTWISE_OPS = set(S.ELEMENTWISE) | set(MOVEMENT) | set(SOURCES)
PREFETCH_BYTES = 16384        # of the next row, at the start of each row of a row reduction
GEMM_SPLIT_WORK = 1 << 21     # multiply-adds below which a GEMM stays on one thread
ENTRY = "graphc_main"
PROFILE = "graphc_prof"
ERRORS = "graphc_err"          # i64 check code (1-based, 0: none); graphc_err_value: the offending value
# A writable global in every module, so that every object has a writable data section: llvmlite's
# memory manager maps one contiguous block per object and gives it a writable part only when
# the object has writable data, and that part is where the runtime linker puts the GOT entries
# of calls to external functions (BLAS, libm, the pool) in the small code model (runtime.py,
# CODE_MODEL); without one, loading such an object aborts. The block is page-rounded, so the
# few dozen 8-byte entries fit beside it.
RW_ANCHOR = "graphc_rw_anchor"
POOL_RUN = "graphc_pool_run"    # void (kN_par, data, max workers): pool.py


def unsupported(kernel, op, why=""):
    return _K.unsupported("llvm", kernel, op, why)


def check_kernel(k):
    """Raise NotImplementedError naming the kernel and op for anything codegen cannot do."""
    _K.check_kernel(k, "llvm", S.ELEMENTWISE)


def kernel_extent(k):
    """The outer range [0, extent) a kernel function's [lo, hi) splits."""
    kind = k.attrs["kind"]
    body = k.body
    if kind == "reduction":
        shape, axes = _space(next(n for n in body.nodes if n.op in REDUCTIONS))
        outer = [s for d, s in enumerate(shape) if d not in axes]
        return outer[0] if outer else 1
    if kind == "opaque":       # fold, and scatter_add along another axis: images / rows are independent
        node = k.body.nodes[0]
        shape = node.out.type.shape
        if shape and (node.op == "fold" or node.attrs.get("axis") != 0):
            return shape[0]
        return 1
    shape = body.outputs[0].type.shape
    return shape[0] if shape else 1


def kernel_work(k):
    """Elements a kernel visits: its output (pointwise) or its reduced space (reduction)."""
    if k.attrs["kind"] == "reduction":
        shape, _ = _space(next(n for n in k.body.nodes if n.op in REDUCTIONS))
        return int(np.prod(shape, dtype=np.int64)) * max(1, len(k.body.outputs))
    return int(np.prod(k.body.outputs[0].type.shape, dtype=np.int64))


_space = _K.reduction_space
