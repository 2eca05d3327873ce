"""Pointwise kernels: a grid-stride loop over the output's linear index `lin`, delinearised once
into `i0, i1, ...`; movement ops, gathers, constants and random numbers are index arithmetic
(no copies); every load of a point before any store (in-place safe). `_pointwise_body` is also
the store of a matmul's epilogue and a reduction's full-shape outputs."""
from __future__ import annotations

from .common import Launch
from .evaluator import Evaluator
from .source import Block, delinearize, linear, numel


class PointwiseGen:
    """KernelGen's pointwise kernels."""

    def _pointwise_body(self, blk, outs, out_args, shape, extra_fixed=None, idx=None):
        if idx is None:
            idx = delinearize(blk, "lin", shape) if shape else []
        ev = Evaluator(self, blk, extra_fixed)
        vals = [ev.at(o, idx) for o in outs]            # every load before any store (in place)
        lin = linear(idx, shape) if idx is not None else "lin"
        for o, a, val in zip(outs, out_args, vals):
            blk.emit(f"{a}[{lin}] = {val}")

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
