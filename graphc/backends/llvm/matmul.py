"""Matmul kernels: the GEMM (cblas ?gemm for floats, loops for int64) over the rows, batches or
columns [lo, hi) of the output, then the elementwise epilogue as a pointwise loop reading the
product (straight from the output when the GEMM may write it there, else from scratch)."""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from . import scalar as S
from .types import I32, I64, PTR, VOID, const, i64, is_float, mem, reg


class MatmulGen:
    """KernelGen's matmul kernel: the GEMM call for its range, then the epilogue."""

    def _matmul(self):
        body = self.kernel.body
        mm = next(n for n in body.nodes if n.op == "matmul")
        outs = body.outputs
        if self.direct_matmul:
            target = self.out_ptrs[outs.index(mm.out)]
        else:
            target = self.scratch
        a, c = mm.inputs
        rows = (self.lo, self.hi)
        if mm.out.type.shape[:1] != outs[0].type.shape[:1]:
            # [lo, hi) is the output's first dim (kernel_extent), which is the product's only when
            # the epilogue keeps its shape: a transpose of a [3, 5] product gives 5 rows, and a
            # GEMM over 5 rows of it would write past its buffer. Such a kernel is never split
            # by blocks (ModuleBuilder._splittable), so its GEMM computes the whole product here.
            rows = (i64(0), i64(mm.out.type.shape[0]))
        if self.part != "epilogue":     # the GEMM for the rows (batches) [lo, hi) of the output's first dim
            self.mb.gemm(self, self.in_ptrs[a.name], self.in_ptrs[c.name], target, a.type, c.type,
                         mm.attrs.get("transpose_a", False), mm.attrs.get("transpose_b", False),
                         rows=rows, columns=self.columns)
        epi = [o for o in outs if not (o is mm.out and self.direct_matmul)]
        if epi and self.part != "gemm":
            self._pointwise(extra={mm.out.name: target}, outputs=epi)


class GemmBuilder:
    """ModuleBuilder's GEMM calls: C = op(A) @ op(B) for a range of rows, batches or columns."""

    def gemm(self, kg, pa, pb, pc, at, bt, ta, tb, rows, columns=False):
        """C[batch] = op(A) @ op(B) for the output's first dim restricted to rows = [lo, hi) (LLVM
        values): rows of C for a plain matrix product, batches for a batched one -- or, with
        columns, the columns [lo, hi) of a plain float product. cblas ?gemm (row-major, 64-bit
        ints) for floats, loops for int64."""
        b = kg.b
        dt = at.dtype
        M, K = (at.shape[-1], at.shape[-2]) if ta else (at.shape[-2], at.shape[-1])
        N = bt.shape[-2] if tb else bt.shape[-1]
        batch = int(np.prod(at.shape[:-2], dtype=np.int64))
        m = mem(dt)
        if batch * M * N == 0:
            return
        lo, hi = rows
        sa, sb, sc = at.shape[-2] * at.shape[-1], bt.shape[-2] * bt.shape[-1], M * N
        lda, ldb = at.shape[-1], bt.shape[-1]
        if columns:                 # columns [lo, hi) of C: column j of op(B) starts at j (or j*ldb when tb)
            b_ = b.gep(pb, [b.mul(lo, i64(ldb if tb else 1))], source_etype=m)
            c_ = b.gep(pc, [lo], source_etype=m)
            self._gemm_call(kg, dt, pa, b_, c_, i64(M), b.sub(hi, lo), K, lda, ldb, ta, tb, ldc=N)
            return
        if len(at.shape) == 2:      # rows [lo, hi) of C: row i of op(A) starts at i*lda (or column i when ta)
            a_ = b.gep(pa, [b.mul(lo, i64(1 if ta else lda))], source_etype=m)
            c_ = b.gep(pc, [b.mul(lo, i64(N))], source_etype=m)
            self._gemm_call(kg, dt, a_, pb, c_, b.sub(hi, lo), N, K, lda, ldb, ta, tb)
            return
        inner = batch // at.shape[0]     # batches per index of the first dim

        def one(bi):
            a_ = b.gep(pa, [b.mul(bi[0], i64(sa))], source_etype=m)
            b_ = b.gep(pb, [b.mul(bi[0], i64(sb))], source_etype=m)
            c_ = b.gep(pc, [b.mul(bi[0], i64(sc))], source_etype=m)
            self._gemm_call(kg, dt, a_, b_, c_, i64(M), N, K, lda, ldb, ta, tb)
        kg.for_range(b.mul(lo, i64(inner)), b.mul(hi, i64(inner)), lambda i: one([i]))

    def _gemm_call(self, kg, dt, a_, b_, c_, M, N, K, lda, ldb, ta, tb, ldc=None):
        """C[M, N] = op(A) @ op(B), M an LLVM value (the rows this call computes); N an int, or
        an LLVM value (the columns a column block computes) with C's row stride ldc."""
        b = kg.b
        ldc = N if ldc is None else ldc
        n = N if isinstance(N, ir.Value) else i64(N)
        if K == 0:
            kg.for_range(i64(0), M, lambda i: kg.for_range(i64(0), n, lambda j: b.store(
                const(dt, 0), b.gep(c_, [b.add(b.mul(i, i64(ldc)), j)], source_etype=mem(dt)))))
            return
        if not is_float(dt):
            self._int_gemm(kg, a_, b_, c_, M, N, K, lda, ldb, ta, tb)
            return
        t = reg(dt)
        fn = S.function(self.module, self.gemm_symbols[dt.name], VOID,
                        [I32, I32, I32, I64, I64, I64, t, PTR, I64, PTR, I64, t, PTR, I64])
        i32 = lambda n: ir.Constant(I32, n)  # noqa: E731
        with b.if_then(b.and_(b.icmp_signed(">", M, i64(0)), b.icmp_signed(">", n, i64(0)))):
            b.call(fn, [i32(101), i32(112 if ta else 111), i32(112 if tb else 111), M, n, i64(K),
                        ir.Constant(t, 1.0), a_, i64(lda), b_, i64(ldb), ir.Constant(t, 0.0), c_, i64(ldc)])

    def _int_gemm(self, kg, pa, pb, pc, M, N, K, lda, ldb, ta, tb):
        b = kg.b
        acc = kg.alloca(I64)

        def ij(i, j):
            b.store(i64(0), acc)

            def kk(ks):
                k = ks[0]
                ai = b.add(b.mul(k, i64(lda)), i) if ta else b.add(b.mul(i, i64(lda)), k)
                bi = b.add(b.mul(j, i64(ldb)), k) if tb else b.add(b.mul(k, i64(ldb)), j)
                x = b.load(b.gep(pa, [ai], source_etype=I64), typ=I64)
                y = b.load(b.gep(pb, [bi], source_etype=I64), typ=I64)
                b.store(b.add(b.load(acc, typ=I64), b.mul(x, y)), acc)
            kg.nest([K], kk)
            b.store(b.load(acc, typ=I64), b.gep(pc, [b.add(b.mul(i, i64(N)), j)], source_etype=I64))
        kg.for_range(i64(0), M, lambda i: kg.for_range(i64(0), i64(N), lambda j: ij(i, j)))
