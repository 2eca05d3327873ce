"""Pointwise kernels: a grid-stride loop over the output's linear index `lin`; the body's values
at the point are lowered (backends/lower) and rendered (render.py): movement ops, gathers,
constants and random numbers are index arithmetic (no copies); every load of a point before any
store (in-place safe). `_pointwise_body` is also the store of a matmul's epilogue and a
reduction's full-shape outputs."""
from __future__ import annotations

from ..lower import expr as X
from .common import Launch
from .render import Renderer
from .source import Block, numel


class PointwiseGen:
    """KernelGen's pointwise kernels."""

    def _pointwise_body(self, blk, outs, out_args, shape, given=None, idx=None, parent=None):
        """Store every output at index idx (default: `lin` delinearised over shape); given: body
        value name -> source of a value the kernel supplies there."""
        if idx is None:
            idx = X.delinearize(X.var("lin"), shape)
        low = self.lowering(given or ())
        r = Renderer(self, blk, given, parent)
        vals = r.render([low.at(o, idx) for o in outs] + [X.linear(idx, shape)])   # loads before stores
        for a, val in zip(out_args, vals):
            blk.emit(f"{a}[{vals[-1]}] = {val}")

    def _pointwise(self):
        body = self.kernel.body
        ins, outs = self.bind_inputs()
        shape = tuple(body.outputs[0].type.shape)
        n = numel(shape)
        self.header(self.base, ins + outs)
        blk = Block(self.lines, 1, [0])
        blk.emit(f"for lin in range(cuda.grid(1), {n}, cuda.gridsize(1)):")
        self._pointwise_body(blk.child(), body.outputs, [a for _, a in outs], shape)
        self.launches.append(Launch(self.base, [v for v, _ in ins + outs], *self.cfg.grid1d(n)))
