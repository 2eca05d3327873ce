"""Opaque kernels: scatter_add (copy, then cuda.atomic.add at each index) and fold (zero, then
cuda.atomic.add of each column element into its image pixel); their index arithmetic is
lowering IR (backends/lower), rendered by render.py."""
from __future__ import annotations

from ..lower import expr as X
from ..lower import maps as M
from .common import Launch
from .render import Renderer
from .scalar import lit
from .source import Block, numel


class OpaqueGen:
    """KernelGen's opaque kernels."""

    def _opaque(self):
        node = self.kernel.body.nodes[0]
        ins, outs = self.bind_inputs()
        dt = node.out.type.dtype
        lin = X.var("lin")
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
            j = list(X.delinearize(lin, idx.type.shape))
            j[axis] = X.load(idx.name, lin, idx.type.dtype, m, f"scatter_add index %{idx.name}")
            off = Renderer(self, b.child())(X.linear(j, x.type.shape))
            b.child().emit(f"cuda.atomic.add(out0, {off}, {self.arg_of[src.name]}[lin])")
            self.launches.append(Launch(self.base, [v for v, _ in ins + outs], *self.cfg.grid1d(m)))
            return
        # fold (col2im)
        a = node.attrs
        (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (a["output_size"], a["kernel"], a["stride"],
                                                          a["padding"], a["dilation"])
        oh, ow = M.out_size(h, kh, sh, ph, dh), M.out_size(w, kw, sw, pw, dw)
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
        ni, ci, ki, kj, oy, ox = X.delinearize(lin, space)
        y, x = M.window_pixel(ki, kj, oy, ox, (sh, sw), (ph, pw), (dh, dw))
        col = M.unfold_column(ni, ci, ki, kj, oy, ox, (kh, kw), ow)
        r = Renderer(self, c)
        ok, dst, src = r.render([M.inside(y, x, (h, w)), X.linear((ni, ci, y, x), out_shape),
                                 X.linear(col, node.inputs[0].type.shape)])
        c.emit(f"if {ok}:")
        c.child().emit(f"cuda.atomic.add(out0, {dst}, in0[{src}])")
        self.launches.append(Launch(self.base, [v for v, _ in ins + outs], *self.cfg.grid1d(numel(space))))
