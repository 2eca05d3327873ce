"""Pointwise kernels: a loop nest over the output, every output's value at each point (every load of
a point before any store: in-place safe). Where every value has the output's element count and
only elementwise ops and contiguous reshapes connect them, the nest is [rows, cols] (one long
vectorisable row); an unfold output loops over its window and pixel directly."""
from __future__ import annotations

import numpy as np

from ..lower import expr as X
from ..lower import maps as M
from . import scalar as S


class PointwiseGen:
    """KernelGen's pointwise loops (also a matmul kernel's epilogue)."""

    def _pointwise(self, extra=None, outputs=None):
        body = self.kernel.body
        outs = body.outputs if outputs is None else outputs
        ptrs = [self.out_ptrs[body.outputs.index(o)] for o in outs]
        shape = body.outputs[0].type.shape
        if len(outs) == 1 and outs[0].producer is not None and outs[0].producer.op == "unfold" \
                and outs[0].type.numel:
            return self._unfold_nest(outs[0], ptrs[0], extra)

        flat = self._flat_space(extra)
        space = tuple(flat or shape)
        low = self.lowering(extra, flat)
        idx = tuple(X.var(f"i{d}") for d in range(len(space)))

        def point(counters):
            r = self.renderer(dict(zip(idx, counters)) if space else {}, extra=extra)
            vals = r.render([low.at(o, idx) for o in outs])     # every load before any store (in place)
            for o, p, val in zip(outs, ptrs, vals):
                self.store_expr(r, p, o.type if flat is None else type(o.type)(flat, o.type.dtype), idx, val)
        self.nest(list(space) or [1], point, ranged=True)

    def _flat_space(self, extra):
        """(rows, cols) when a pointwise kernel may loop over its output as [rows, cols]
        instead of its own shape: every value it reads, computes or writes has the output's
        element count and is reached only through elementwise ops and reshapes (contiguous to
        contiguous: a point's linear offset is the same in every value). Then short inner dims
        ([64, 16, 28, 28]) become one long contiguous row that LLVM vectorises, instead of a
        fully unrolled 28-loop whose outer loop it vectorises with gathers and scatters
        (a ReLU mask in the CNN backward: 0.74 ms). rows stays the output's first dim, the
        dim [lo, hi) splits across threads. None when the kernel is not of that form."""
        body = self.kernel.body
        shape = tuple(body.outputs[0].type.shape)
        n = int(np.prod(shape, dtype=np.int64))
        if self.range_dim != 0 or len(shape) < 3 or n == 0:
            return None
        given = set(extra or ())
        for v in body.inputs:
            if v.type.numel != n:
                return None
        for node in body.nodes:
            if node.out.name in given:
                continue
            if node.out.type.numel != n or not (node.op in S.ELEMENTWISE or node.op in ("reshape", "full")):
                return None
        return (shape[0], n // shape[0])

    def _unfold_nest(self, o, ptr, extra):
        """A kernel whose output is an unfold [N, C*kh*kw, OH*OW] loops over [N, C, kh, kw, OH, OW]:
        the window position and pixel come straight from the loop counters (no division per
        element) and the innermost loop walks a row of the image."""
        a = o.producer.attrs
        n, c, h, w = o.producer.inputs[0].type.shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = a["kernel"], a["stride"], a["padding"], a["dilation"]
        oh, ow = M.out_size(h, kh, sh, ph, dh), M.out_size(w, kw, sw, pw, dw)
        low = self.lowering(extra)
        parts = tuple(X.var(f"u{d}") for d in range(6))
        ni, ci, ki, kj, oy, ox = parts
        idx = M.unfold_column(ni, ci, ki, kj, oy, ox, (kh, kw), ow)
        low.hints[o.name] = (idx, (ci, ki, kj, oy, ox))

        def point(counters):
            r = self.renderer(dict(zip(parts, counters)), extra=extra)
            self.store_expr(r, ptr, o.type, idx, r(low.at(o, idx)))
        self.nest([n, c, kh, kw, oh, ow], point, ranged=True)
