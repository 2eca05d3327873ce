"""Opaque kernels: scatter_add (copy the input, then add each source element at its index) and
fold (zero, then add each column element into its image pixel), split over dim 0 where each
index there writes only its own slice."""
from __future__ import annotations

from ..lower import expr as X
from ..lower import maps as M
from .types import const, is_float


class OpaqueGen:
    """KernelGen's opaque kernels."""

    def _opaque(self):
        node = self.kernel.body.nodes[0]
        getattr(self, "_" + node.op)(node)

    def _scatter_add(self, node):
        x, idx, src = node.inputs
        out = self.out_ptrs[0]
        axis = node.attrs["axis"]
        b = self.b
        ranged = axis != 0 and bool(x.type.shape)    # rows [lo, hi) of dim 0 only touch their own rows
        self.nest(list(x.type.shape) or [1], lambda i: self.store(
            out, x.type, i if x.type.shape else [], self.load(self.in_ptrs[x.name], x.type, i if x.type.shape else [])),
            ranged=ranged)

        def add(i):
            j = list(i)
            j[axis] = self.load(self.in_ptrs[idx.name], idx.type, i)
            self.check_index(j[axis], x.type.shape[axis], f"scatter_add index along axis {axis} (%{node.out.name})")
            s = self.load(self.in_ptrs[src.name], src.type, i)
            cur = self.load(out, x.type, j)
            self.store(out, x.type, j, b.fadd(cur, s) if is_float(x.type.dtype) else b.add(cur, s))
        self.nest(list(idx.type.shape), add, ranged=ranged)

    def _fold(self, node):
        cols = node.inputs[0]
        a = node.attrs
        (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (a["output_size"], a["kernel"], a["stride"],
                                                          a["padding"], a["dilation"])
        oh, ow = M.out_size(h, kh, sh, ph, dh), M.out_size(w, kw, sw, pw, dw)
        out_t = node.out.type
        n, c = out_t.shape[:2]
        out = self.out_ptrs[0]
        b = self.b
        dt = out_t.dtype
        self.nest(list(out_t.shape), lambda i: self.store(out, out_t, i, const(dt, 0)), ranged=True)

        parts = tuple(X.var(f"u{d}") for d in range(6))
        ni, ci, ki, kj, oy, ox = parts
        y, x = M.window_pixel(ki, kj, oy, ox, (sh, sw), (ph, pw), (dh, dw))
        col = M.unfold_column(ni, ci, ki, kj, oy, ox, (kh, kw), ow)
        exprs = [M.inside(y, x, (h, w)), X.linear(col, cols.type.shape), X.linear((ni, ci, y, x), out_t.shape)]

        def add(i):
            ok, src, dst = self.renderer(dict(zip(parts, i))).render(exprs)
            with b.if_then(ok):
                s = self.load_at(self.in_ptrs[cols.name], dt, src, cols.type.numel, f"read {cols.type}: linear offset")
                cur = self.load_at(out, dt, dst, out_t.numel, f"read {out_t}: linear offset")
                self.store_at(out, dt, dst, b.fadd(cur, s) if is_float(dt) else b.add(cur, s))
        self.nest([n, c, kh, kw, oh, ow], add, ranged=True)     # image n only adds into image n
