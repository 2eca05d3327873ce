"""Opaque kernels: scatter_add (copy, then cuda.atomic.add at each index) and fold (zero, then
cuda.atomic.add of each column element into its image pixel)."""
from __future__ import annotations

from .common import Launch
from .scalar import lit
from .source import Block, delinearize, linear, numel


class OpaqueGen:
    """KernelGen's opaque kernels."""

    def _opaque(self):
        node = self.kernel.body.nodes[0]
        ins, outs = self.bind_inputs()
        dt = node.out.type.dtype
        if node.op == "scatter_add":
            x, idx, src = node.inputs
            axis = node.attrs["axis"]
            self.header(self.base + "_copy", ins + outs)
            b = Block(self.lines, 1, [0])
            n = x.type.numel
            b.emit(f"for lin in range(cuda.grid(1), {n}, cuda.gridsize(1)):")
            b.child().emit(f"out0[lin] = {self.arg_of[x.name]}[lin]")
            self.launches.append(Launch(self.base + "_copy", [v for v, _ in ins + outs], *self.cfg.grid1d(n)))
            self.header(self.base, ins + outs)
            b = Block(self.lines, 1, [0])
            m = idx.type.numel
            b.emit(f"for lin in range(cuda.grid(1), {m}, cuda.gridsize(1)):")
            c = b.child()
            ii = delinearize(c, "lin", idx.type.shape)
            j = list(ii)
            j[axis] = c.tmp(f"{self.arg_of[idx.name]}[lin]", "t")
            c.emit(f"cuda.atomic.add(out0, {linear(j, x.type.shape)}, {self.arg_of[src.name]}[lin])")
            self.launches.append(Launch(self.base, [v for v, _ in ins + outs], *self.cfg.grid1d(m)))
            return
        # fold (col2im)
        a = node.attrs
        (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (a["output_size"], a["kernel"], a["stride"],
                                                          a["padding"], a["dilation"])
        oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        out_shape = node.out.type.shape
        n_, c_ = out_shape[:2]
        self.header(self.base + "_zero", outs)
        b = Block(self.lines, 1, [0])
        b.emit(f"for lin in range(cuda.grid(1), {numel(out_shape)}, cuda.gridsize(1)):")
        b.child().emit(f"out0[lin] = {lit(dt, 0)}")
        self.launches.append(Launch(self.base + "_zero", [v for v, _ in outs], *self.cfg.grid1d(numel(out_shape))))
        self.header(self.base, ins + outs)
        b = Block(self.lines, 1, [0])
        space = (n_, c_, kh, kw, oh, ow)
        b.emit(f"for lin in range(cuda.grid(1), {numel(space)}, cuda.gridsize(1)):")
        c = b.child()
        ni, ci, ki, kj, oy, ox = delinearize(c, "lin", space)
        y = c.tmp(f"{oy} * {sh} + {ki} * {dh} - {ph}", "y")
        x = c.tmp(f"{ox} * {sw} + {kj} * {dw} - {pw}", "x")
        c.emit(f"if {y} >= 0 and {y} < {h} and {x} >= 0 and {x} < {w}:")
        d = c.child()
        col = linear([ni, f"({ci} * {kh * kw} + {ki} * {kw} + {kj})", f"({oy} * {ow} + {ox})"],
                     node.inputs[0].type.shape)
        d.emit(f"cuda.atomic.add(out0, {linear([ni, ci, y, x], out_shape)}, in0[{col}])")
        self.launches.append(Launch(self.base, [v for v, _ in ins + outs], *self.cfg.grid1d(numel(space))))
