"""Matmul kernels: TILE x TILE shared-memory tiles (grid: N tiles, M tiles, batch), honouring
transpose_a / transpose_b; the elementwise epilogue runs in the store. An epilogue that reads the
product other than element for element gets it through scratch and a second (pointwise) launch."""
from __future__ import annotations

from .. import kernels as _K
from .common import Launch
from .scalar import ELEMENTWISE, lit
from ..lower import expr as X
from .render import Renderer
from .source import Block, _nb, numel


class MatmulGen:
    """KernelGen's matmul kernels."""

    @staticmethod
    def _load_tile(kb, tile, src, base, d, limit, contiguous_d, ld, BM, BK, T, K, Z):
        """Emit the loop that loads one operand tile tile[kk, dd] (d: "i" for A's rows, "j" for
        B's columns), the threads walking memory's contiguous dim: d when contiguous_d, else k."""
        kb.emit(f"for e in range(t, {BM * BK}, {T * T}):")
        lb = kb.child()
        if contiguous_d:
            lb.emit(f"{d}{d} = e % {BM}")
            lb.emit(f"kk = e // {BM}")
        else:
            lb.emit(f"kk = e % {BK}")
            lb.emit(f"{d}{d} = e // {BK}")
        lb.emit(f"g{d} = {d}0 + {d}{d}")
        lb.emit("gk = k0 + kk")
        off = f"{base} + " + (f"gk * {ld} + g{d}" if contiguous_d else f"g{d} * {ld} + gk")
        lb.emit(f"{tile}[kk, {d}{d}] = {src}[{off}] if (g{d} < {limit} and gk < {K}) else {Z}")

    def _matmul(self):
        body, cfg = self.kernel.body, self.cfg
        ins, outs = self.bind_inputs()
        mm = next(n for n in body.nodes if n.op == "matmul")
        a, b = mm.inputs
        ta, tb = mm.attrs.get("transpose_a", False), mm.attrs.get("transpose_b", False)
        at, bt = a.type.shape, b.type.shape
        M, K = (at[-1], at[-2]) if ta else (at[-2], at[-1])
        N = bt[-2] if tb else bt[-1]
        batch_shape = tuple(mm.out.type.shape[:-2])
        nb = numel(batch_shape)
        T = cfg.tile
        # direct: the epilogue reads the product only element for element at the output index,
        # so it runs in the GEMM's store with the accumulator as the product's value there.
        # Otherwise (a transpose, broadcast, reshape, slice... anywhere downstream of the
        # product, not just right after it) the thread holding product [i, j] does not compute
        # output [i, j]: the product goes through scratch and the epilogue is a pointwise launch
        # over the output that reads it through the index maps (as the llvm backend does)
        direct = _K.epilogue_reads_product_pointwise(self.kernel, ELEMENTWISE)
        adt = mm.out.type.dtype
        an, bn = self.arg_of[a.name], self.arg_of[b.name]
        name = self.base if direct else self.base + "_gemm"
        scratch = None
        if direct:
            operands = ins + outs
        else:
            scratch = "scratch"
            operands = ins + [(("scratch", mm.out.type), "scratch")]
        self.header(name, operands)
        blk = Block(self.lines, 1, [0])
        R, BK = cfg.regs, cfg.tile_k
        BM = T * R                   # the block computes a BM x BM tile; each thread R x R of it,
        Z = lit(adt, 0)              # rows r*T + ty, columns c*T + tx (coalesced, conflict-free)
        blk.emit(f"sa = cuda.shared.array(({BK}, {BM}), {_nb(adt)})   # A tile, k-major")
        blk.emit(f"sb = cuda.shared.array(({BK}, {BM}), {_nb(adt)})   # B tile")
        blk.emit("tx = cuda.threadIdx.x")
        blk.emit("ty = cuda.threadIdx.y")
        blk.emit(f"t = ty * {T} + tx")
        blk.emit(f"i0 = cuda.blockIdx.y * {BM}")
        blk.emit(f"j0 = cuda.blockIdx.x * {BM}")
        blk.emit("z = cuda.blockIdx.z")
        sa_, sb_ = at[-2] * at[-1], bt[-2] * bt[-1]
        accs = [[f"acc{r}_{c}" for c in range(R)] for r in range(R)]
        for row in accs:
            blk.emit(" = ".join(row) + f" = {Z}")
        blk.emit(f"for k0 in range(0, {K}, {BK}):")
        kb = blk.child()
        # load A[i0:i0+BM, k0:k0+BK] (op(A)) and B[k0:k0+BK, j0:j0+BN], reading along memory's
        # contiguous dim: a is [K, M] when ta (contiguous along i), b is [K, N] unless tb
        self._load_tile(kb, "sa", an, f"z * {sa_}", "i", M, ta, at[-1], BM, BK, T, K, Z)
        self._load_tile(kb, "sb", bn, f"z * {sb_}", "j", N, not tb, bt[-1], BM, BK, T, K, Z)
        kb.emit("cuda.syncthreads()")
        kb.emit(f"for kk in range({BK}):")
        ib = kb.child()
        for r in range(R):
            ib.emit(f"ra{r} = sa[kk, {r * T} + ty]")
        for c in range(R):
            ib.emit(f"rb{c} = sb[kk, {c * T} + tx]")
        for r in range(R):
            for c in range(R):
                ib.emit(f"{accs[r][c]} += ra{r} * rb{c}")
        kb.emit("cuda.syncthreads()")
        grid = ((N + BM - 1) // BM or 1, (M + BM - 1) // BM or 1, nb or 1)
        bidx = X.delinearize(X.var("z"), batch_shape) if direct else ()
        top = Renderer(self, blk)
        top.bind(bidx)          # once, before the R x R stores that all read it
        out_arg = {o.name: a_ for o, (_, a_) in zip(body.outputs, outs)}
        for r in range(R):
            for c in range(R):
                blk.emit(f"i = i0 + {r * T} + ty")
                blk.emit(f"j = j0 + {c * T} + tx")
                blk.emit(f"if i < {M} and j < {N}:")
                sb = blk.child()
                if direct:
                    self._pointwise_body(sb, body.outputs, [out_arg[o.name] for o in body.outputs],
                                         tuple(mm.out.type.shape), {mm.out.name: accs[r][c]},
                                         bidx + (X.var("i"), X.var("j")), top)
                else:
                    sb.emit(f"scratch[z * {M * N} + i * {N} + j] = {accs[r][c]}")
        self.launches.append(Launch(name, [v for v, _ in operands], grid, (T, T)))
        if not direct:
            # epilogue: a pointwise launch reading the product from scratch
            self.arg_of[mm.out.name] = "scratch"
            shape = tuple(body.outputs[0].type.shape)
            n = numel(shape)
            ep = ins + [(("scratch", mm.out.type), "scratch")] + outs
            self.header(self.base + "_epilogue", ep)
            eb = Block(self.lines, 1, [0])
            eb.emit(f"for lin in range(cuda.grid(1), {n}, cuda.gridsize(1)):")
            self._pointwise_body(eb.child(), body.outputs, [a_ for _, a_ in outs], shape)
            self.launches.append(Launch(self.base + "_epilogue", [v for v, _ in ep], *cfg.grid1d(n)))
        self.scratch = mm.out.type if not direct else None
        if M * N * nb == 0:
            self.launches = []
