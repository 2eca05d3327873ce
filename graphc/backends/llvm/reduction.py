"""Reduction kernels: a loop over the outer positions (the first one ranged [lo, hi)); at each,
every sum / max / argmax in body order (layer_norm's variance reads its mean), the reduced-shape
outputs, then the full-shape outputs over the row. Rows are prefetched; a sum keeping the
innermost dim walks its input in memory order instead (_column_sum)."""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from ..lower import expr as X
from . import scalar as S
from .common import PREFETCH_BYTES, REDUCTIONS, _space, unsupported
from .types import I1, I8, I32, I64, PTR, VOID, const, i64, is_bool, is_float, reg


class ReductionGen:
    """KernelGen's reduction loops."""

    def _reduction(self):
        body = self.kernel.body
        reds = [n for n in body.nodes if n.op in REDUCTIONS]
        shape, axes = _space(reds[0])
        outer = [d for d in range(len(shape)) if d not in axes]
        keep = tuple(1 if d in axes else s for d, s in enumerate(shape))
        drop = tuple(s for d, s in enumerate(shape) if d not in axes)
        full_outs = [o for o in body.outputs if tuple(o.type.shape) == shape]
        red_outs = [o for o in body.outputs if tuple(o.type.shape) != shape]
        for o in red_outs:
            if tuple(o.type.shape) not in (keep, drop):
                raise unsupported(self.kernel, "reduction", f"output {o.type} is neither {shape} nor reduced")

        if self._column_sum(reds, shape, axes, outer, full_outs, red_outs, drop):
            return

        def combine(oidx, ridx):
            full, oi, ri = [None] * len(shape), iter(oidx), iter(ridx)
            for d in range(len(shape)):
                full[d] = next(ri) if d in axes else next(oi)
            return tuple(full)

        low = self.lowering()
        ovars = tuple(X.var(f"o{k}") for k in range(len(outer)))
        rvars = tuple(X.var(f"r{k}") for k in range(len(axes)))

        def position(counters):
            bind = dict(zip(ovars, counters)) if outer else {}
            self._prefetch_next_row(list(counters) if outer else [], shape, axes, outer, drop)
            fixed = {}
            for r in reds:
                fixed[r.out.name] = self._reduce(r, low, bind, combine(ovars, rvars), fixed, axes, shape)
                low.given[r.out.name] = r.out.type.dtype
            ev = self.renderer(bind, fixed)
            for o in red_outs:
                if tuple(o.type.shape) == keep:
                    it = iter(ovars)
                    idx = [X.ZERO if d in axes else next(it) for d in range(len(shape))]
                else:
                    idx = list(ovars)
                self.store_expr(ev, self.out_ptrs[body.outputs.index(o)], o.type, idx, ev(low.at(o, idx)))
            if full_outs:
                def point(rc):
                    idx = combine(ovars, rvars)
                    ev2 = self.renderer({**bind, **dict(zip(rvars, rc))}, fixed)
                    vals = ev2.render([low.at(o, idx) for o in full_outs])
                    for o, val in zip(full_outs, vals):
                        self.store_expr(ev2, self.out_ptrs[body.outputs.index(o)], o.type, idx, val)
                self.nest([shape[d] for d in axes], point, unroll=not axes or shape[tuple(axes)[-1]] < 128)
        self.nest([shape[d] for d in outer] or [1], position, ranged=True)

    def _prefetch_next_row(self, oidx, shape, axes, outer, drop):
        """Row reductions over the trailing dims (layer norm, softmax) read each row several
        times: once from memory, then from L1. While the later passes run, no load misses,
        so the hardware prefetcher stops running ahead and every row starts with cold misses
        (layer norm took 2x a copy of the same bytes). So each row starts by prefetching the
        next row of every input read point for point (its first PREFETCH_BYTES; the next
        row of the last one is this row again: no address outside the input is formed)."""
        body = self.kernel.body
        row = int(np.prod([shape[d] for d in axes], dtype=np.int64))
        if not outer or tuple(axes) != tuple(range(len(outer), len(shape))):
            return
        users = {}
        for n in body.nodes:
            for x in n.inputs:
                users.setdefault(x.name, []).append(n.op)
        ins = [v for v in body.inputs if tuple(v.type.shape) == tuple(shape) and row * v.type.dtype.np.itemsize >= 1024
               and all(op in S.ELEMENTWISE or op in REDUCTIONS for op in users.get(v.name, ()))]
        if not ins:
            return
        b = self.b
        rows = int(np.prod(drop, dtype=np.int64))
        o = self.offset(oidx, drop)
        nxt = b.add(o, i64(1))
        nxt = b.select(b.icmp_signed("<", nxt, i64(rows)), nxt, o)
        fn = S.function(self.mb.module, "llvm.prefetch.p0", VOID, [PTR, I32, I32, I32])
        for v in ins:
            size = v.type.dtype.np.itemsize
            nbytes = min(row * size, PREFETCH_BYTES)
            start = b.gep(self.in_ptrs[v.name], [b.mul(nxt, i64(row * size))], source_etype=I8)
            self.for_range(i64(0), i64(-(-nbytes // 64)), lambda j, start=start: b.call(fn, [
                b.gep(start, [b.mul(j, i64(64))], source_etype=I8),
                ir.Constant(I32, 0), ir.Constant(I32, 3), ir.Constant(I32, 1)]), unroll=False)

    def _column_sum(self, reds, shape, axes, outer, full_outs, red_outs, drop):
        """A single sum whose innermost dim is kept (a bias gradient: [batch, features] summed
        over the batch) walks its input in memory order, adding each row into the output row:
        contiguous, vectorised, instead of one strided column at a time. Each output element
        still adds its terms in order; full-shape outputs are stored in the same pass (every load
        of a point before its stores, as in a pointwise loop). Returns False when the kernel is
        not of that form."""
        r = reds[0]
        if len(reds) != 1 or r.op != "sum" or not outer or outer[-1] != len(shape) - 1 \
                or is_bool(r.inputs[0].type.dtype):
            return False
        after = {r.out.name}                  # full-shape outputs must not need the sum
        for n in self.kernel.body.nodes:
            if any(x.name in after for x in n.inputs):
                after.add(n.out.name)
        if any(f.name in after for f in full_outs):
            return False
        for o in red_outs:                    # outputs: the sum itself, or reshapes of it
            v = o
            while v is not r.out and v.producer is not None and v.producer.op == "reshape":
                v = v.producer.inputs[0]
            if v is not r.out:
                return False
        k = self.kernel
        acc_v = k.outs[k.body.outputs.index(red_outs[0])]
        if any(self.mb._overlap(x, acc_v) for x in k.inputs):
            return False      # zeroed before the pass: it must not be planned over an input it reads
        b = self.b
        dt = r.inputs[0].type.dtype
        acc_t = type(red_outs[0].type)(drop, dt)
        acc = self.out_ptrs[self.kernel.body.outputs.index(red_outs[0])]

        def over(dims, point, k=0, idx=()):     # row-major over `dims`, the first outer dim ranged
            if k == len(dims):
                point(list(idx))
                return
            d = dims[k]
            lo, hi = (self.lo, self.hi) if d == outer[0] else (i64(0), i64(shape[d]))
            self.for_range(lo, hi, lambda i: over(dims, point, k + 1, idx + (i,)))
        over(outer, lambda o: self.store(acc, acc_t, o, const(dt, 0)))

        low = self.lowering()
        ivars = tuple(X.var(f"i{d}") for d in range(len(shape)))

        def add(idx):
            o = [idx[d] for d in outer]
            ev = self.renderer(dict(zip(ivars, idx)))
            vals = ev.render([low.at(r.inputs[0], ivars)] + [low.at(f, ivars) for f in full_outs])
            x, vals = vals[0], vals[1:]                     # full-shape outputs: stored in the same pass
            cur = self.load(acc, acc_t, o)
            self.store(acc, acc_t, o, b.fadd(cur, x) if is_float(dt) else b.add(cur, x))
            for f, val in zip(full_outs, vals):
                self.store_expr(ev, self.out_ptrs[self.kernel.body.outputs.index(f)], f.type, ivars, val)
        over(list(range(len(shape))), add)
        for o in red_outs[1:]:                # same values, another shape (keepdim): same linear order
            ptr = self.out_ptrs[self.kernel.body.outputs.index(o)]
            over(outer, lambda oi, o=o, ptr=ptr: self.store_at(
                ptr, o.type.dtype, self.offset(oi, drop), self.load(acc, acc_t, oi)))
        return True

    def _reduce(self, r, low, bind, idx, fixed, axes, shape):
        """r's value at the current outer position: a loop over the reduced axes, the input at
        idx (lowering IR over the outer and reduced variables; bind: the outer ones' counters)."""
        b = self.b
        # Short sums (< 64 terms) add in order: vectorising them gains nothing, and the order
        # then does not depend on whether LLVM vectorises (checks mode keeps data-dependent
        # index checks in the loop, which stops it), so both builds agree bit for bit.
        long_row = int(np.prod([shape[d] for d in axes], dtype=np.int64)) >= 64
        dt = r.inputs[0].type.dtype
        t = reg(dt)
        acc = self.alloca(t)
        if r.op == "sum":
            init = const(dt, 0)
        elif is_float(dt):
            init = ir.Constant(t, float("-inf"))
        elif is_bool(dt):
            init = ir.Constant(I1, 0)
        else:
            init = i64(-(1 << 63))
        b.store(init, acc)
        best = None
        if r.op == "argmax":
            best = self.alloca(I64)
            b.store(i64(0), best)

        rvars = tuple(X.var(f"r{k}") for k in range(len(axes)))

        def step(ridx):
            x = self.renderer({**bind, **dict(zip(rvars, ridx))}, fixed)(low.at(r.inputs[0], idx))
            a = b.load(acc, typ=t)
            if r.op == "sum":
                if is_float(dt):
                    s = b.fadd(a, x)
                    if long_row:                  # lets LLVM vectorise: partial sums, then a tree
                        s.flags.append("reassoc")
                else:
                    s = b.add(a, x)
                b.store(s, acc)
                return
            if is_float(dt):
                isnan_x = b.fcmp_unordered("uno", x, x)
                if r.op == "max":
                    take = b.or_(b.fcmp_ordered(">", x, a), isnan_x)
                else:   # argmax: the first NaN wins, as numpy
                    take = b.or_(b.fcmp_ordered(">", x, a), b.and_(isnan_x, b.fcmp_ordered("ord", a, a)))
            elif is_bool(dt):
                take = b.icmp_unsigned(">", x, a)
            else:
                take = b.icmp_signed(">", x, a)
            b.store(b.select(take, x, a), acc)
            if best is not None:
                bi = b.load(best, typ=I64)
                b.store(b.select(take, ridx[0], bi), best)
        # long rows: vectorised and interleaved, never fully unrolled (see for_range)
        self.nest([shape[d] for d in axes], step, unroll=not axes or shape[tuple(axes)[-1]] < 128)
        return b.load(best, typ=I64) if best is not None else b.load(acc, typ=t)
