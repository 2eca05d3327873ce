"""`KernelGen`: the LLVM function of one kernel node.

    void kN(ptr in0, ..., ptr out0, ..., ptr scratch, i64 lo, i64 hi)

Its outermost loop runs over [lo, hi) of its first parallel dimension (the output's first dim
for pointwise and matmul-epilogue loops, the first outer dim of a reduction). This module holds
what every kind of kernel uses: the arguments, loads and stores (checked in checks mode:
`check` records a failure in graphc_err and returns), loop nests, and the body's values at a
point: lowered once (backends/lower: `lowering`) and rendered per loop body (`renderer`,
render.py). The loops of each kind come from pointwise.py, reduction.py, matmul.py and opaque.py.
"""
from __future__ import annotations

from llvmlite import ir

from ..lower import Lowering
from ..lower import expr as X
from .common import ERRORS, kernel_extent
from .matmul import MatmulGen
from .opaque import OpaqueGen
from .pointwise import PointwiseGen
from .reduction import ReductionGen
from .render import Renderer
from .types import I8, I32, I64, PTR, VOID, i64, is_bool, mem


class KernelGen(PointwiseGen, ReductionGen, MatmulGen, OpaqueGen):
    """Builds the function of one kernel node."""

    def __init__(self, mb, kernel, name, direct_matmul, part=None):
        self.mb = mb
        self.part = part                    # matmul kernels: "gemm" or "epilogue" only (parallel epilogue)
        self.kernel = kernel
        self.direct_matmul = direct_matmul
        self.checks = mb.checks
        self.label = f"%{kernel.out.name} ({kernel.attrs.get('kind')}, {name})"
        self.columns = kernel.out.name in mb.col_split     # a GEMM split by columns: [lo, hi) is dim 1
        self.range_dim = 1 if self.columns else 0
        body = kernel.body
        n_in, n_out = len(body.inputs), len(body.outputs)
        fnty = ir.FunctionType(VOID, [PTR] * (n_in + n_out + 1) + [I64, I64])
        self.fn = ir.Function(mb.module, fnty, name=name)
        self.fn.linkage = "internal"
        args = list(self.fn.args)
        self.in_ptrs = {v.name: p for v, p in zip(body.inputs, args[:n_in])}
        self.out_ptrs = args[n_in:n_in + n_out]
        self.scratch = args[n_in + n_out]
        self.lo, self.hi = args[-2], args[-1]
        # An input in the buffer an output is written to (an in-place update: p, momentum) is
        # read through the output's pointer argument: the same address, but now LLVM sees it,
        # so the runtime alias check it would add between the two arguments (which always
        # "finds" the overlap and takes the scalar loop) disappears and the loop vectorizes.
        for out, p in zip(kernel.outs, self.out_ptrs):
            where = mb.buffer(out)
            for v, x in zip(body.inputs, kernel.inputs):
                if mb.buffer(x) == where:
                    self.in_ptrs[v.name] = p
        self.entry = self.fn.append_basic_block("entry")
        start = self.fn.append_basic_block("start")
        self.b = ir.IRBuilder(start)

    def build(self):
        kind = self.kernel.attrs["kind"]
        getattr(self, "_" + kind)()
        self.b.ret_void()
        with self.b.goto_block(self.entry):
            self.b.branch(self.fn.blocks[1])
        return self.fn

    # -- helpers
    def alloca(self, t):
        with self.b.goto_block(self.entry):
            return self.b.alloca(t)

    def check(self, ok, what, limit, value, kind="index"):
        """Checks mode: unless `ok`, record (check code, value) in graphc_err and return from
        the kernel (the entry returns after it; Python raises naming the kernel and `what`)."""
        b = self.b
        fail = self.fn.append_basic_block("check.fail")
        cont = self.fn.append_basic_block("check.ok")
        b.cbranch(ok, cont, fail)
        b.position_at_end(fail)
        code = self.mb.add_check(self.label, what, limit, kind)
        b.store(i64(code), self.mb.errors())
        b.store(value, self.mb.errors(ERRORS + "_value"))
        b.ret_void()
        b.position_at_end(cont)

    def check_index(self, i, n, what):
        if self.checks:
            self.check(self.b.icmp_unsigned("<", i, i64(n)), what, n, i)

    def offset(self, idx, shape):
        """The linear offset in a buffer of `shape` of an index of LLVM values (loop counters),
        through the lowering IR's index algebra."""
        vs = [X.var(f"_{d}") for d in range(len(idx))]
        return Renderer(self, {}, dict(zip(vs, idx)))(X.linear(vs, shape))

    def _offset(self, ttype, idx, what):
        off = self.offset(idx, ttype.shape)
        if self.checks:
            self.check_index(off, ttype.numel, f"{what} {ttype}: linear offset")
        return off

    def load_at(self, ptr, dtype, off, size=None, what=None):
        """Element `off` of a buffer of `dtype` (checked against `size` in checks mode; a bool is
        a byte in memory, an i1 in registers)."""
        if self.checks and size is not None:
            self.check_index(off, size, what)
        b = self.b
        m = mem(dtype)
        x = b.load(b.gep(ptr, [off], inbounds=True, source_etype=m), typ=m)
        return b.icmp_unsigned("!=", x, ir.Constant(I8, 0)) if is_bool(dtype) else x

    def store_at(self, ptr, dtype, off, val):
        b = self.b
        m = mem(dtype)
        b.store(b.zext(val, I8) if is_bool(dtype) else val, b.gep(ptr, [off], inbounds=True, source_etype=m))

    def load(self, ptr, ttype, idx, what="read"):
        return self.load_at(ptr, ttype.dtype, self._offset(ttype, idx, what))

    def store(self, ptr, ttype, idx, val, what="write"):
        self.store_at(ptr, ttype.dtype, self._offset(ttype, idx, what), val)

    def store_expr(self, r, ptr, ttype, idx, val, what="write"):
        """Store val at idx (lowering IR, rendered by r) of a buffer of type ttype."""
        off = r(X.linear(idx, ttype.shape))
        if self.checks:
            self.check_index(off, ttype.numel, f"{what} {ttype}: linear offset")
        self.store_at(ptr, ttype.dtype, off, val)

    def for_range(self, lo, hi, body, unroll=True):
        """A loop i in [lo, hi). unroll=False marks it llvm.loop.unroll.disable (a fully unrolled
        row loop lets GVN merge its loads with the next row loop's: dozens of live vectors,
        spills) and llvm.loop.interleave.count 4 (LLVM still vectorises it, with 4 partial sums
        for a reduction, which unroll.disable alone would drop to 1: latency-bound)."""
        b = self.b
        pre = b.block
        head = b.append_basic_block("for.head")
        blk = b.append_basic_block("for.body")
        done = b.append_basic_block("for.done")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(I64)
        i.add_incoming(lo, pre)
        b.cbranch(b.icmp_signed("<", i, hi), blk, done)
        b.position_at_end(blk)
        body(i)
        i.add_incoming(b.add(i, i64(1)), b.block)
        latch = b.branch(head)
        if not unroll:
            m = b.module
            flags = [m.add_metadata([ir.MetaDataString(m, "llvm.loop.unroll.disable")]),
                     m.add_metadata([ir.MetaDataString(m, "llvm.loop.interleave.count"), ir.Constant(I32, 4)])]
            loop_id = ir.values.MDValue(m, [], name=str(len(m.metadata)))   # !N = distinct !{!N, flags...}
            loop_id.operands = (loop_id, *flags)
            latch.set_metadata("llvm.loop", loop_id)
        b.position_at_end(done)

    def nest(self, extents, body, ranged=False, unroll=True):
        """Loops over `extents` (row-major, the last innermost); with ranged, the first loop runs
        over [lo, hi) instead of [0, extent) -- the split point for parallel execution.
        unroll=False: the innermost loop is never fully unrolled (for_range)."""
        def rec(k, idx):
            if k == len(extents):
                body(idx)
                return
            lo, hi = (self.lo, self.hi) if ranged and k == self.range_dim else (i64(0), i64(extents[k]))
            self.for_range(lo, hi, lambda i: rec(k + 1, idx + [i]), unroll or k < len(extents) - 1)
        rec(0, [])

    def lowering(self, extra=None, flat=None):
        """The body's values at a point (backends/lower): loads from the body inputs and the
        values in `extra` (name -> pointer: a matmul's product), with this build's checks."""
        body = self.kernel.body
        types = {v.name: v.type for v in body.inputs}
        types.update((n.out.name, n.out.type) for n in body.nodes if n.out.name in (extra or ()))
        return Lowering(self.kernel, types, checks=self.checks, flat=flat)

    def renderer(self, bind, given=None, extra=None):
        """A Renderer for the current loop body: bind maps index variables to loop counters."""
        ptrs = dict(self.in_ptrs)
        ptrs.update(extra or {})
        return Renderer(self, ptrs, bind, given)

    # -- kinds
    def extent(self):
        """The range the entry passes as [lo, hi)."""
        return kernel_extent(self.kernel)
