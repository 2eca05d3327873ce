"""Reduction kernels: one block per outer position (row): each thread reduces a strided slice of
the row, a shared-memory tree combines the partials (sum / max / argmax, one tree per reduction,
in order: layer_norm's variance reads its mean; the last 32 by warp shuffles on a GPU), then the
threads run the epilogue over the row; thread 0 writes the reduced-shape outputs."""
from __future__ import annotations

import math

from ..kernels import REDUCTIONS
from .common import Launch, _space
from ..lower import expr as X
from .render import Renderer
from .scalar import NP, _isf, lit
from .source import Block, _nb, numel


class ReductionGen:
    """KernelGen's reduction kernels."""

    def _reduction(self):
        body, cfg = self.kernel.body, self.cfg
        ins, outs = self.bind_inputs()
        out_arg = {o.name: a for o, (_, a) in zip(body.outputs, outs)}
        reds = [n for n in body.nodes if n.op in REDUCTIONS]
        shape, axes = _space(reds[0])
        outer = [d for d in range(len(shape)) if d not in axes]
        keep = tuple(1 if d in axes else s for d, s in enumerate(shape))
        rshape = [shape[d] for d in axes]
        oshape = [shape[d] for d in outer]
        R, O = numel(rshape), numel(oshape)
        full_outs = [o for o in body.outputs if tuple(o.type.shape) == shape]
        red_outs = [o for o in body.outputs if tuple(o.type.shape) != shape]
        B = cfg.red_block
        self.header(self.base, ins + outs)
        blk = Block(self.lines, 1, [0])
        blk.emit("tid = cuda.threadIdx.x")
        for j, r in enumerate(reds):
            dt = r.out.type.dtype
            blk.emit(f"sh{j} = cuda.shared.array({B}, {_nb(dt if r.op != 'argmax' else r.inputs[0].type.dtype)})")
            if r.op == "argmax":
                blk.emit(f"sx{j} = cuda.shared.array({B}, int64)")
        blk.emit(f"for row in range(cuda.blockIdx.x, {O}, cuda.gridDim.x):")
        rb = blk.child()
        oidx = X.delinearize(X.var("row"), oshape)
        row = Renderer(self, rb)
        row.bind(oidx)
        low = self.lowering()

        def full_index(ridx):
            res, oi, ri = [], iter(oidx), iter(ridx)
            for d in range(len(shape)):
                res.append(next(ri) if d in axes else next(oi))
            return res
        fixed = {}
        for j, r in enumerate(reds):
            idt = r.inputs[0].type.dtype
            acc_dt = r.out.type.dtype if r.op == "sum" else idt
            init = (lit(acc_dt, 0) if r.op == "sum" else
                    lit(idt, -math.inf) if _isf(idt) else lit(idt, -(1 << 63)))
            rb.emit(f"a{j} = {init}")
            if r.op == "argmax":
                rb.emit(f"b{j} = np.int64(0)")
            rb.emit(f"for r in range(tid, {R}, cuda.blockDim.x):")
            lb = rb.child()
            ridx = X.delinearize(X.var("r"), rshape)
            x = Renderer(self, lb, fixed, row)(low.at(r.inputs[0], full_index(ridx)))
            if r.op == "sum":
                lb.emit(f"a{j} += {x}" if acc_dt is idt else f"a{j} += {NP[acc_dt.np.name]}({x})")
            else:
                take = (f"{x} > a{j} or ({x} != {x} and a{j} == a{j})" if _isf(idt) else f"{x} > a{j}")
                if r.op == "max" and _isf(idt):
                    take = f"{x} > a{j} or {x} != {x}"
                lb.emit(f"if {take}:")
                lb.child().emit(f"a{j} = {x}")
                if r.op == "argmax":
                    lb.child().emit(f"b{j} = np.int64(r)")
            # tree
            rb.emit(f"sh{j}[tid] = a{j}")
            if r.op == "argmax":
                rb.emit(f"sx{j}[tid] = b{j}")
            rb.emit("cuda.syncthreads()")
            warp = cfg.warp_shuffle and r.op != "argmax" and B >= 64
            rb.emit(f"s = {B // 2}")
            rb.emit("while s >= 32:" if warp else "while s > 0:")   # warp: the last 32 by shuffles
            wb = rb.child()
            wb.emit("if tid < s:")
            tb = wb.child()
            if r.op == "sum":
                tb.emit(f"sh{j}[tid] += sh{j}[tid + s]")
            else:
                tb.emit(f"tp{j}, tq{j} = sh{j}[tid], sh{j}[tid + s]")
                if r.op == "max":
                    tb.emit(f"if tq{j} > tp{j} or tq{j} != tq{j}:" if _isf(idt) else f"if tq{j} > tp{j}:")
                    tb.child().emit(f"sh{j}[tid] = tq{j}")
                else:
                    tb.emit(f"tpi{j}, tqi{j} = sx{j}[tid], sx{j}[tid + s]")
                    if _isf(idt):
                        tb.emit(f"if tq{j} > tp{j} or (tq{j} != tq{j} and tp{j} == tp{j}) or ((tq{j} == tp{j} or (tq{j} != tq{j} and tp{j} != tp{j})) and tqi{j} < tpi{j}):")
                    else:
                        tb.emit(f"if tq{j} > tp{j} or (tq{j} == tp{j} and tqi{j} < tpi{j}):")
                    tb.child().emit(f"sh{j}[tid] = tq{j}")
                    tb.child().emit(f"sx{j}[tid] = tqi{j}")
            wb.emit("cuda.syncthreads()")
            wb.emit("s = s // 2")
            if warp:    # 32 partials left in sh: warp 0 combines them in registers, no barriers
                rb.emit("if tid < 32:")
                sb = rb.child()
                sb.emit(f"v{j} = sh{j}[tid]")
                for off in (16, 8, 4, 2, 1):
                    sb.emit(f"w{j} = cuda.shfl_down_sync(0xFFFFFFFF, v{j}, {off})")
                    if r.op == "sum":
                        sb.emit(f"v{j} += w{j}")
                    else:
                        sb.emit(f"if w{j} > v{j} or w{j} != w{j}:" if _isf(idt) else f"if w{j} > v{j}:")
                        sb.child().emit(f"v{j} = w{j}")
                sb.emit("if tid == 0:")
                sb.child().emit(f"sh{j}[0] = v{j}")
                rb.emit("cuda.syncthreads()")
            rb.emit(f"red{j} = {'sx' if r.op == 'argmax' else 'sh'}{j}[0]")
            rb.emit("cuda.syncthreads()")   # everyone has read the result before the next row reuses sh
            fixed[r.out.name] = f"red{j}"
            low.given[r.out.name] = r.out.type.dtype
        if red_outs:
            rb.emit("if tid == 0:")
            zb = rb.child()
            ev = Renderer(self, zb, fixed, row)
            for o in red_outs:
                if tuple(o.type.shape) == keep:
                    it = iter(oidx)
                    idx = [X.ZERO if d in axes else next(it) for d in range(len(shape))]
                else:
                    idx = list(oidx)
                val, off = ev.render([low.at(o, idx), X.linear(idx, o.type.shape)])
                zb.emit(f"{out_arg[o.name]}[{off}] = {val}")
        if full_outs:
            rb.emit(f"for r in range(tid, {R}, cuda.blockDim.x):")
            lb = rb.child()
            idx = full_index(X.delinearize(X.var("r"), rshape))
            self._pointwise_body(lb, full_outs, [out_arg[o.name] for o in full_outs], shape, fixed, idx, row)
        self.launches.append(Launch(self.base, [v for v, _ in ins + outs], (min(O, cfg.max_blocks) or 1,), (B,)))
        self.grid_rows = O
