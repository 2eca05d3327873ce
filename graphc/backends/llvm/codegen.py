"""Planned kernel graph -> one LLVM module (llvmlite.ir).

Every kernel becomes an internal function

    void kN(ptr in0, ..., ptr out0, ..., ptr scratch, i64 lo, i64 hi)

whose outermost loop runs over [lo, hi) of its first parallel dimension (the output's first dim
for pointwise and matmul-epilogue loops, the first outer dim of a reduction). The entry calls a
small kernel with the whole range; a large one through `kN_par(data)` run by graphc's thread
pool (pool.py: graphc_pool_run), whose threads take chunks of the range (ModuleBuilder.parallel).

The entry function `graphc_main(ptr slots)` reads the pointer table slots = [arena, inputs...,
fresh outputs...], resolves every kernel operand from the memory plan (`buffers`: arena+N,
out, state:S, view) and calls the kernels in graph order. In checks mode (GRAPHC_BOUNDS_CHECK)
every load/store offset, gather/scatter index and integer divisor is checked; a failure sets
the global graphc_err and returns (KernelGen.check), and the entry returns after that kernel.

Inside a loop body, `Evaluator` computes a body value at an index by walking the body graph:
movement ops remap the index (indexing.py), elementwise ops combine their inputs' values at the
same index (scalar.py), body inputs are loads. Nothing is materialised between fused ops.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from ...ir.buffer import buffer_of, buffers_of
from ...ops.random import GOLDEN, MIX1, MIX2
from . import indexing as IX
from . import scalar as S
from .types import F32, F64, I1, I8, I32, I64, PTR, VOID, const, i64, is_bool, is_float, mem, reg

from ..kernels import MOVEMENT, OPAQUE_OPS, REDUCTIONS, SOURCES  # noqa: F401
from .. import kernels as _K

POINTWISE_OPS = set(S.ELEMENTWISE) | set(MOVEMENT) | set(SOURCES)
PREFETCH_BYTES = 16384        # of the next row, at the start of each row of a row reduction
GEMM_SPLIT_WORK = 1 << 21     # multiply-adds below which a GEMM stays on one thread
ENTRY = "graphc_main"
PROFILE = "graphc_prof"
ERRORS = "graphc_err"          # i64 check code (1-based, 0: none); graphc_err_value: the offending value
# A writable global in every module, so that every object has a writable data section: llvmlite's
# memory manager maps one contiguous block per object and gives it a writable part only when
# the object has writable data, and that part is where the runtime linker puts the GOT entries
# of calls to external functions (BLAS, libm, the pool) in the small code model (runtime.py,
# CODE_MODEL); without one, loading such an object aborts. The block is page-rounded, so the
# few dozen 8-byte entries fit beside it.
RW_ANCHOR = "graphc_rw_anchor"
POOL_RUN = "graphc_pool_run"    # void (kN_par, data, max workers): pool.py


def unsupported(kernel, op, why=""):
    return _K.unsupported("llvm", kernel, op, why)


def check_kernel(k):
    """Raise NotImplementedError naming the kernel and op for anything codegen cannot do."""
    _K.check_kernel(k, "llvm", S.ELEMENTWISE)


def kernel_extent(k):
    """The outer range [0, extent) a kernel function's [lo, hi) splits."""
    kind = k.attrs["kind"]
    body = k.body
    if kind == "reduction":
        shape, axes = _space(next(n for n in body.nodes if n.op in REDUCTIONS))
        outer = [s for d, s in enumerate(shape) if d not in axes]
        return outer[0] if outer else 1
    if kind == "opaque":       # fold, and scatter_add along another axis: images / rows are independent
        node = k.body.nodes[0]
        shape = node.out.type.shape
        if shape and (node.op == "fold" or node.attrs.get("axis") != 0):
            return shape[0]
        return 1
    shape = body.outputs[0].type.shape
    return shape[0] if shape else 1


def kernel_work(k):
    """Elements a kernel visits: its output (pointwise) or its reduced space (reduction)."""
    if k.attrs["kind"] == "reduction":
        shape, _ = _space(next(n for n in k.body.nodes if n.op in REDUCTIONS))
        return int(np.prod(shape, dtype=np.int64)) * max(1, len(k.body.outputs))
    return int(np.prod(k.body.outputs[0].type.shape, dtype=np.int64))


_space = _K.reduction_space


# ---- values at an index ------------------------------------------------------------------------------
class Evaluator:
    """Computes body values at an index inside the current loop body (one per point: its cache
    holds LLVM values that are only valid in this body)."""

    def __init__(self, kg, ptrs, fixed=None):
        self.kg = kg
        self.b = kg.b
        self.ptrs = ptrs            # body value name -> pointer to its buffer (inputs, matmul result)
        self.fixed = fixed or {}    # body value name -> LLVM scalar (a reduction at this position)
        self.unfold_parts = {}      # unfold output name -> (idx, (c, ki, kj, oy, ox)) of a factored nest
        self.flat = None            # (rows, cols): idx is a point of every value seen as [rows, cols] (_flat_space)
        self.cache = {}

    def at(self, v, idx):
        """v's LLVM value at idx (a list of i64 values), memoised per (value, index) for this
        point. Iterative (kernels.evaluate): _at is a generator that yields each operand it
        needs, so a chain of 10,000 fused ops does not recurse 10,000 deep."""
        return _K.evaluate(self._at, _key, self.cache, v, idx)

    def load(self, v, idx):
        t = v.type if self.flat is None else type(v.type)(self.flat, v.type.dtype)
        return self.kg.load(self.ptrs[v.name], t, idx, f"read of %{v.name}")

    def _at(self, v, idx):
        """A generator (see at): yields (operand, index) for every operand value it reads, in
        the order the instructions that use them are emitted; returns v's value at idx."""
        b = self.b
        if v.name in self.fixed:
            return self.fixed[v.name]
        if v.name in self.ptrs:
            return self.load(v, idx)
        p = v.producer
        if p is None:
            raise unsupported(self.kg.kernel, "input", f"no buffer for %{v.name}")
        op, ins, a = p.op, p.inputs, p.attrs
        if op in S.ELEMENTWISE:
            args = []
            for x in ins:
                args.append((yield x, idx))
            if op in ("floor_divide", "remainder") and self.kg.checks and not is_float(ins[1].type.dtype) \
                    and not is_bool(ins[1].type.dtype):
                self.kg.check(b.icmp_signed("!=", args[1], i64(0)), f"{op} (%{v.name})", 0, args[1], "div")
            return S.emit(b, op, ins[-1].type.dtype, v.type.dtype, args, a)
        if op == "broadcast_to":
            return (yield ins[0], IX.broadcast(idx, ins[0].type.shape, v.type.shape))
        if op == "reshape":
            if self.flat is not None:           # contiguous to contiguous: the same linear offset
                return (yield ins[0], idx)
            return (yield ins[0], IX.reshape(b, idx, ins[0].type.shape, v.type.shape))
        if op == "permute":
            return (yield ins[0], IX.permute(idx, a["perm"]))
        if op == "slice":
            return (yield ins[0], IX.slice_(b, idx, a["starts"], a["steps"]))
        if op == "pad":
            fill = const(v.type.dtype, a["value"])
            if ins[0].type.numel == 0:
                return fill
            j, ok = IX.pad(b, idx, ins[0].type.shape, a["lo"], a["interior"])
            return b.select(ok, (yield ins[0], j), fill)
        if op == "concat":
            axis, res = a["axis"], None
            for x, o, n in reversed(_K.concat_pieces(p)):
                j, ok = IX.concat_piece(b, idx, axis, o, n)
                val = yield x, j
                res = val if res is None else b.select(ok, val, res)
            return const(v.type.dtype, 0) if res is None else res     # every piece empty: never reached
        if op == "unfold":
            parts = self.unfold_parts.get(v.name)
            if parts is not None and parts[0] is idx:     # the loop nest is already factored
                j, ok = IX.unfold_parts(b, idx[0], parts[1], ins[0].type.shape, a["kernel"], a["stride"],
                                        a["padding"], a["dilation"])
            else:
                j, ok = IX.unfold(b, idx, ins[0].type.shape, a["kernel"], a["stride"], a["padding"],
                                  a["dilation"], v.type.shape)
            return b.select(ok, (yield ins[0], j), const(v.type.dtype, a["value"]))
        if op == "take_along_axis":
            j = list(idx)
            ax = a["axis"]
            j[ax] = yield ins[1], idx      # indices are assumed valid unless checks are on
            n = ins[0].type.shape[ax]
            self.kg.check_index(j[ax], n, f"take_along_axis index along axis {ax} (%{v.name})")
            return (yield ins[0], j)
        if op == "iota":
            i = idx[a["axis"]]
            return b.sitofp(i, reg(v.type.dtype)) if is_float(v.type.dtype) else i
        if op == "full":
            return const(v.type.dtype, a["value"])
        if op == "constant":
            g = self.kg.mb.constant_array(v.type.dtype, a["data"])
            p = b.gep(g, [IX.linear(b, idx, v.type.shape)], inbounds=True, source_etype=mem(v.type.dtype))
            x = b.load(p, typ=mem(v.type.dtype))
            return b.icmp_unsigned("!=", x, ir.Constant(I8, 0)) if is_bool(v.type.dtype) else x
        if op == "uniform":
            return (yield from self._uniform(v, ins[0], idx))
        raise unsupported(self.kg.kernel, op)

    def _uniform(self, v, state, idx):
        """splitmix64(seed, offset + i), bit for bit as graphc/ops/random.py."""
        b = self.b
        seed = yield state, [i64(0)]
        offset = yield state, [i64(1)]
        ctr = b.add(IX.linear(b, idx, v.type.shape), offset)
        bits = _mix64(b, b.add(_mix64(b, seed), b.mul(ctr, i64(int(GOLDEN)))))
        if v.type.dtype.np == np.float32:
            return b.fmul(b.uitofp(b.lshr(bits, i64(40)), F32), ir.Constant(F32, 2.0 ** -24))
        return b.fmul(b.uitofp(b.lshr(bits, i64(11)), F64), ir.Constant(F64, 2.0 ** -53))


def _key(v, idx):
    """Evaluator's memo key: an index is a list of LLVM values, compared by identity."""
    return v.name, tuple(map(id, idx))


def _mix64(b, x):
    x = b.xor(x, b.lshr(x, i64(30)))
    x = b.mul(x, i64(int(MIX1)))
    x = b.xor(x, b.lshr(x, i64(27)))
    x = b.mul(x, i64(int(MIX2)))
    return b.xor(x, b.lshr(x, i64(31)))


# ---- one kernel ------------------------------------------------------------------------------------------
class KernelGen:
    """Builds the function of one kernel node."""

    def __init__(self, mb, kernel, name, direct_matmul, part=None):
        self.mb = mb
        self.part = part                    # matmul kernels: "gemm" or "epilogue" only (parallel epilogue)
        self.kernel = kernel
        self.direct_matmul = direct_matmul
        self.checks = mb.checks
        self.label = f"%{kernel.out.name} ({kernel.attrs.get('kind')}, {name})"
        self.columns = kernel.out.name in mb.col_split     # a GEMM split by columns: [lo, hi) is dim 1
        self.range_dim = 1 if self.columns else 0
        body = kernel.body
        n_in, n_out = len(body.inputs), len(body.outputs)
        fnty = ir.FunctionType(VOID, [PTR] * (n_in + n_out + 1) + [I64, I64])
        self.fn = ir.Function(mb.module, fnty, name=name)
        self.fn.linkage = "internal"
        args = list(self.fn.args)
        self.in_ptrs = {v.name: p for v, p in zip(body.inputs, args[:n_in])}
        self.out_ptrs = args[n_in:n_in + n_out]
        self.scratch = args[n_in + n_out]
        self.lo, self.hi = args[-2], args[-1]
        # An input in the buffer an output is written to (an in-place update: p, momentum) is
        # read through the output's pointer argument: the same address, but now LLVM sees it,
        # so the runtime alias check it would add between the two arguments (which always
        # "finds" the overlap and takes the scalar loop) disappears and the loop vectorizes.
        for out, p in zip(kernel.outs, self.out_ptrs):
            where = mb.buffer(out)
            for v, x in zip(body.inputs, kernel.inputs):
                if mb.buffer(x) == where:
                    self.in_ptrs[v.name] = p
        self.entry = self.fn.append_basic_block("entry")
        start = self.fn.append_basic_block("start")
        self.b = ir.IRBuilder(start)

    def build(self):
        kind = self.kernel.attrs["kind"]
        getattr(self, "_" + kind)()
        self.b.ret_void()
        with self.b.goto_block(self.entry):
            self.b.branch(self.fn.blocks[1])
        return self.fn

    # -- helpers
    def alloca(self, t):
        with self.b.goto_block(self.entry):
            return self.b.alloca(t)

    def check(self, ok, what, limit, value, kind="index"):
        """Checks mode: unless `ok`, record (check code, value) in graphc_err and return from
        the kernel (the entry returns after it; Python raises naming the kernel and `what`)."""
        b = self.b
        fail = self.fn.append_basic_block("check.fail")
        cont = self.fn.append_basic_block("check.ok")
        b.cbranch(ok, cont, fail)
        b.position_at_end(fail)
        code = self.mb.add_check(self.label, what, limit, kind)
        b.store(i64(code), self.mb.errors())
        b.store(value, self.mb.errors(ERRORS + "_value"))
        b.ret_void()
        b.position_at_end(cont)

    def check_index(self, i, n, what):
        if self.checks:
            self.check(self.b.icmp_unsigned("<", i, i64(n)), what, n, i)

    def _offset(self, ttype, idx, what):
        off = IX.linear(self.b, idx, ttype.shape)
        if self.checks:
            self.check_index(off, ttype.numel, f"{what} {ttype}: linear offset")
        return off

    def load(self, ptr, ttype, idx, what="read"):
        b = self.b
        m = mem(ttype.dtype)
        p = b.gep(ptr, [self._offset(ttype, idx, what)], inbounds=True, source_etype=m)
        x = b.load(p, typ=m)
        return b.icmp_unsigned("!=", x, ir.Constant(I8, 0)) if is_bool(ttype.dtype) else x

    def store(self, ptr, ttype, idx, val, what="write"):
        b = self.b
        m = mem(ttype.dtype)
        p = b.gep(ptr, [self._offset(ttype, idx, what)], inbounds=True, source_etype=m)
        b.store(b.zext(val, I8) if is_bool(ttype.dtype) else val, p)

    def for_range(self, lo, hi, body, unroll=True):
        """A loop i in [lo, hi). unroll=False marks it llvm.loop.unroll.disable (a fully unrolled
        row loop lets GVN merge its loads with the next row loop's: dozens of live vectors,
        spills) and llvm.loop.interleave.count 4 (LLVM still vectorises it, with 4 partial sums
        for a reduction, which unroll.disable alone would drop to 1: latency-bound)."""
        b = self.b
        pre = b.block
        head = b.append_basic_block("for.head")
        blk = b.append_basic_block("for.body")
        done = b.append_basic_block("for.done")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(I64)
        i.add_incoming(lo, pre)
        b.cbranch(b.icmp_signed("<", i, hi), blk, done)
        b.position_at_end(blk)
        body(i)
        i.add_incoming(b.add(i, i64(1)), b.block)
        latch = b.branch(head)
        if not unroll:
            m = b.module
            flags = [m.add_metadata([ir.MetaDataString(m, "llvm.loop.unroll.disable")]),
                     m.add_metadata([ir.MetaDataString(m, "llvm.loop.interleave.count"), ir.Constant(I32, 4)])]
            loop_id = ir.values.MDValue(m, [], name=str(len(m.metadata)))   # !N = distinct !{!N, flags...}
            loop_id.operands = (loop_id, *flags)
            latch.set_metadata("llvm.loop", loop_id)
        b.position_at_end(done)

    def nest(self, extents, body, ranged=False, unroll=True):
        """Loops over `extents` (row-major, the last innermost); with ranged, the first loop runs
        over [lo, hi) instead of [0, extent) -- the split point for parallel execution.
        unroll=False: the innermost loop is never fully unrolled (for_range)."""
        def rec(k, idx):
            if k == len(extents):
                body(idx)
                return
            lo, hi = (self.lo, self.hi) if ranged and k == self.range_dim else (i64(0), i64(extents[k]))
            self.for_range(lo, hi, lambda i: rec(k + 1, idx + [i]), unroll or k < len(extents) - 1)
        rec(0, [])

    def evaluator(self, fixed=None, extra=None):
        ptrs = dict(self.in_ptrs)
        ptrs.update(extra or {})
        return Evaluator(self, ptrs, fixed)

    # -- kinds
    def extent(self):
        """The range the entry passes as [lo, hi)."""
        return kernel_extent(self.kernel)

    def _pointwise(self, extra=None, outputs=None):
        body = self.kernel.body
        outs = body.outputs if outputs is None else outputs
        ptrs = [self.out_ptrs[body.outputs.index(o)] for o in outs]
        shape = body.outputs[0].type.shape
        if len(outs) == 1 and outs[0].producer is not None and outs[0].producer.op == "unfold" \
                and outs[0].type.numel:
            return self._unfold_nest(outs[0], ptrs[0], extra)

        flat = self._flat_space(extra)

        def point(idx):
            idx = idx if shape else []
            ev = self.evaluator(extra=extra)
            ev.flat = flat
            vals = [ev.at(o, idx) for o in outs]       # every load before any store (in place)
            for o, p, val in zip(outs, ptrs, vals):
                self.store(p, o.type if flat is None else type(o.type)(flat, o.type.dtype), idx, val)
        self.nest(list(flat or shape) or [1], point, ranged=True)

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
        oh, ow = IX._out_size(h, kh, sh, ph, dh), IX._out_size(w, kw, sw, pw, dw)
        b = self.b

        def point(i):
            ni, ci, ki, kj, oy, ox = i
            ck = b.add(b.add(b.mul(ci, i64(kh * kw)), b.mul(ki, i64(kw))), kj)
            idx = [ni, ck, b.add(b.mul(oy, i64(ow)), ox)]
            ev = self.evaluator(extra=extra)
            ev.unfold_parts[o.name] = (idx, (ci, ki, kj, oy, ox))
            self.store(ptr, o.type, idx, ev.at(o, idx))
        self.nest([n, c, kh, kw, oh, ow], point, ranged=True)

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
            return full

        def position(oidx):
            oidx = oidx if outer else []
            self._prefetch_next_row(oidx, shape, axes, outer, drop)
            fixed = {}
            for r in reds:
                fixed[r.out.name] = self._reduce(r, oidx, combine, fixed, axes, shape)
            ev = self.evaluator(fixed)
            for o in red_outs:
                if tuple(o.type.shape) == keep:
                    it = iter(oidx)
                    idx = [i64(0) if d in axes else next(it) for d in range(len(shape))]
                else:
                    idx = list(oidx)
                self.store(self.out_ptrs[body.outputs.index(o)], o.type, idx, ev.at(o, idx))
            if full_outs:
                def point(ridx):
                    idx = combine(oidx, ridx)
                    ev2 = self.evaluator(fixed)
                    vals = [ev2.at(o, idx) for o in full_outs]
                    for o, val in zip(full_outs, vals):
                        self.store(self.out_ptrs[body.outputs.index(o)], o.type, idx, val)
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
        o = IX.linear(b, oidx, drop)
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

        def add(idx):
            o = [idx[d] for d in outer]
            ev = self.evaluator()
            x = ev.at(r.inputs[0], idx)
            vals = [ev.at(f, idx) for f in full_outs]       # full-shape outputs: stored in the same pass
            cur = self.load(acc, acc_t, o)
            self.store(acc, acc_t, o, b.fadd(cur, x) if is_float(dt) else b.add(cur, x))
            for f, val in zip(full_outs, vals):
                self.store(self.out_ptrs[self.kernel.body.outputs.index(f)], f.type, idx, val)
        over(list(range(len(shape))), add)
        for o in red_outs[1:]:                # same values, another shape (keepdim): same linear order
            ptr = self.out_ptrs[self.kernel.body.outputs.index(o)]
            over(outer, lambda oi, o=o, ptr=ptr: self.store(
                ptr, o.type, IX.delinearize(b, IX.linear(b, oi, drop), o.type.shape), self.load(acc, acc_t, oi)))
        return True

    def _reduce(self, r, oidx, combine, fixed, axes, shape):
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

        def step(ridx):
            x = self.evaluator(fixed).at(r.inputs[0], combine(oidx, ridx))
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
        oh, ow = IX._out_size(h, kh, sh, ph, dh), IX._out_size(w, kw, sw, pw, dw)
        out_t = node.out.type
        n, c = out_t.shape[:2]
        out = self.out_ptrs[0]
        b = self.b
        dt = out_t.dtype
        self.nest(list(out_t.shape), lambda i: self.store(out, out_t, i, const(dt, 0)), ranged=True)

        def add(i):
            ni, ci, ki, kj, oy, ox = i
            y = b.sub(b.add(b.mul(oy, i64(sh)), b.mul(ki, i64(dh))), i64(ph))
            x = b.sub(b.add(b.mul(ox, i64(sw)), b.mul(kj, i64(dw))), i64(pw))
            ok = b.and_(b.and_(b.icmp_signed(">=", y, i64(0)), b.icmp_signed("<", y, i64(h))),
                        b.and_(b.icmp_signed(">=", x, i64(0)), b.icmp_signed("<", x, i64(w))))
            with b.if_then(ok):
                ck = b.add(b.mul(ci, i64(kh * kw)), b.add(b.mul(ki, i64(kw)), kj))
                l = b.add(b.mul(oy, i64(ow)), ox)
                s = self.load(self.in_ptrs[cols.name], cols.type, [ni, ck, l])
                cur = self.load(out, out_t, [ni, ci, y, x])
                self.store(out, out_t, [ni, ci, y, x], b.fadd(cur, s) if is_float(dt) else b.add(cur, s))
        self.nest([n, c, kh, kw, oh, ow], add, ranged=True)     # image n only adds into image n


# ---- the module ------------------------------------------------------------------------------------------
class ModuleBuilder:
    """One LLVM module for one planned graph: a function per kernel, and the entry."""

    def __init__(self, graph, gemm_symbols, threads=1, checks=False, threshold=32768, epilogues=False,
                 blas_threads=None, profile=False, ldexp=False, fma=False):
        self.graph = graph
        self.gemm_symbols = gemm_symbols     # {"float32": name, "float64": name}
        self.ldexp = ldexp                   # the target scales by 2^n in one instruction (vecmath.py)
        self.fma = fma                       # the target has FMA: vecmath's llvm.fma is one instruction
        self.threads = threads               # > 1: large kernels run on the thread pool (pool.py)
        self.checks = checks                 # compile bounds / division checks (GRAPHC_BOUNDS_CHECK)
        self.threshold = threshold
        self.epilogues = epilogues           # also run large matmul epilogues in parallel (the GEMM stays serial)
        self.blas_threads = blas_threads     # (get, set) OpenBLAS thread-count symbols; None: never split a GEMM
        self.profile = profile               # count cycles per kernel into the global graphc_prof (GRAPHC_PROFILE)
        for k in graph.nodes:
            check_kernel(k)
        self.producer = {v.name: k for k in graph.nodes for v in k.outs}
        self.inputs = {v.name: i for i, v in enumerate(graph.inputs)}
        self.out_values = [v for k in graph.nodes for v, buf in zip(k.outs, buffers_of(k)) if buf.kind == "out"]
        self.scratch_bytes = 0
        self.direct = {}
        for k in graph.nodes:
            if k.attrs["kind"] == "matmul":
                self.direct[k.out.name] = d = self._direct_matmul(k)
                if not d:
                    mm = next(n for n in k.body.nodes if n.op == "matmul")
                    self.scratch_bytes = max(self.scratch_bytes, mm.out.type.nbytes)
        self.col_split = set()
        self.split = {k.out.name for k in graph.nodes if self._splittable(k)}
        self.col_split = {n for n in self.split if self._by_columns(self.producer[n])}
        self.parallel_names = [f"k{n}_{k.attrs['kind']}" + ("_epilogue" if k.attrs["kind"] == "matmul"
                                                            and k.out.name not in self.split else "")
                               for n, k in enumerate(graph.nodes) if self.parallel(k)]

    # -- parallel execution
    def parallel(self, k):
        """Run kernel k on the thread pool? Pointwise, reduction and matmul kernels whose outer
        range has at least 2 points and whose work (elements visited) reaches the threshold. Matmul kernels
        run their GEMM serially (OpenBLAS runs its own threads: no nesting) and only their
        elementwise epilogue in parallel; opaque kernels (fold, scatter_add) split over dim 0 where each
        index there only writes its own slice (fold: an image; scatter_add along another axis)."""
        kind = k.attrs["kind"]
        if self.threads <= 1 or kind not in ("pointwise", "reduction", "matmul", "opaque"):
            return False
        if kind == "matmul" and k.out.name in self.split:
            return True
        if kind == "matmul" and not (self.epilogues and self.epilogue_outputs(k)):
            return False
        if kernel_extent(k) < 2:
            return False
        return kernel_work(k) >= self.threshold

    def _splittable(self, k):
        """Run matmul kernel k as one parallel region where each thread computes the GEMM for its
        own rows (batches) of the output and then that block's epilogue, while it is still in
        cache? Only when it is big enough, the epilogue reads the GEMM result at the point it
        writes (elementwise only: no thread needs another's rows) and no output of the kernel
        overwrites a GEMM operand (a fast thread's epilogue would clobber what a slower
        thread's GEMM still reads)."""
        if self.threads <= 1 or self.blas_threads is None or k.attrs["kind"] != "matmul":
            return False
        mm = next(n for n in k.body.nodes if n.op == "matmul")
        a, c = mm.inputs
        if kernel_extent(k) < 2 or kernel_work(k) * self._gemm_depth(k) < GEMM_SPLIT_WORK:
            return False
        if not _K.epilogue_reads_product_pointwise(k, S.ELEMENTWISE):
            return False
        operands = [k.inputs[k.body.inputs.index(x)] for x in (a, c)]
        return not any(self._overlap(x, o) for x in operands for o in k.outs)

    def _by_columns(self, k):
        """Split a plain float GEMM by columns when op(B) is the wider operand (N > M): every
        ?gemm call packs the whole operand it is not split along, so the smaller one should be
        the one each thread packs again (the MLP's first layer: A 128x784, B 784x512)."""
        mm = next(n for n in k.body.nodes if n.op == "matmul")
        a, c = mm.inputs
        if len(a.type.shape) != 2 or not is_float(a.type.dtype):
            return False
        M, N = mm.out.type.shape
        return N > M and N >= 2 * self.threads

    @staticmethod
    def _gemm_depth(k):
        """K of a matmul kernel's GEMM (multiply-adds = output elements x K)."""
        mm = next(n for n in k.body.nodes if n.op == "matmul")
        a = mm.inputs[0].type.shape
        return a[-2] if mm.attrs.get("transpose_a", False) else a[-1]

    def _overlap(self, u, v):
        bu, bv = self.buffer(u), self.buffer(v)
        if bu[0] != "arena" or bv[0] != "arena":
            return bu == bv
        return bu[1] < bv[1] + v.type.nbytes and bv[1] < bu[1] + u.type.nbytes

    def epilogue_outputs(self, k):
        """The outputs a matmul kernel's elementwise epilogue stores (all but a direct GEMM result)."""
        mm = next(n for n in k.body.nodes if n.op == "matmul")
        direct = self.direct.get(k.out.name, False)
        return [o for o in k.body.outputs if not (o is mm.out and direct)]

    def _parallel_wrapper(self, fn, n_ptrs, extent, chunks=None):
        """void kN_par(ptr data): data = [ptr x n_ptrs, i64 counter]. The range [0, extent) is cut
        into chunks (about 4 per thread); each thread takes the next chunk with an atomic
        increment of the counter until none is left, so a thread the OS deschedules delays the
        region by one chunk at most. Which thread computes a row never changes its value."""
        w = ir.Function(self.module, ir.FunctionType(VOID, [PTR]), name=fn.name + "_par")
        w.linkage = "internal"
        b = ir.IRBuilder(w.append_basic_block("entry"))
        data = w.args[0]
        ptrs = [b.load(b.gep(data, [i64(i)], inbounds=True, source_etype=PTR), typ=PTR) for i in range(n_ptrs)]
        counter = b.gep(data, [i64(n_ptrs)], inbounds=True, source_etype=PTR)
        nchunks = min(extent, chunks or 4 * self.threads)
        chunk = -(-extent // nchunks)
        nchunks = -(-extent // chunk)
        head = w.append_basic_block("next")
        work = w.append_basic_block("work")
        done = w.append_basic_block("done")
        b.branch(head)
        b.position_at_end(head)
        c = b.atomic_rmw("add", counter, i64(1), "monotonic")
        b.cbranch(b.icmp_signed("<", c, i64(nchunks)), work, done)
        b.position_at_end(work)
        lo = b.mul(c, i64(chunk))
        hi = b.add(lo, i64(chunk))
        hi = b.select(b.icmp_signed("<", hi, i64(extent)), hi, i64(extent))
        b.call(fn, ptrs + [lo, hi])
        b.branch(head)
        b.position_at_end(done)
        b.ret_void()
        return w

    def profile_counter(self, n):
        """The global i64 graphc_prof_<n>: cycles spent in kernel n, summed over calls."""
        name = f"{PROFILE}_{n}"
        g = self.module.globals.get(name)
        if g is None:
            g = ir.GlobalVariable(self.module, I64, name=name)
            g.initializer = i64(0)
        return g

    # -- checks
    def add_check(self, kernel, what, limit, kind):
        self.check_table.append((kernel, what, limit, kind))
        return len(self.check_table)

    def errors(self, name=ERRORS):
        """The i64 globals graphc_err (check code, 0: none) and graphc_err_value (the offending value)."""
        g = self.module.globals.get(name)
        if g is None:
            g = ir.GlobalVariable(self.module, I64, name=name)
            g.initializer = i64(0)
        return g

    # -- buffers
    def buffer(self, v):
        """Where value v lives: ("in", index) | ("arena", offset) | ("out", index)."""
        while True:         # a view is its input's buffer (a loop: chains of views can be long)
            if v.name in self.inputs:
                return ("in", self.inputs[v.name])
            k = self.producer[v.name]
            buf = buffer_of(k, v)
            if buf.kind != "view":
                break
            v = k.inputs[0]
        if buf.kind == "arena":
            return ("arena", buf.offset)
        if buf.kind == "state":
            return ("in", self.inputs[buf.state])
        return ("out", self.out_values.index(v))

    def _direct_matmul(self, k):
        """May the GEMM write straight into the kernel's output? Not when that output overwrites
        one of the kernel's inputs (in-place), which the epilogue still has to read."""
        mm = next(n for n in k.body.nodes if n.op == "matmul")
        if mm.out not in k.body.outputs:
            return False
        v = k.outs[k.body.outputs.index(mm.out)]
        mine = self.buffer(v)
        return all(self.buffer(x) != mine for x in k.inputs)

    def constant_array(self, dtype, data):
        m = mem(dtype)
        if is_bool(dtype):
            vals = [ir.Constant(I8, int(bool(x))) for x in data]
        elif is_float(dtype):
            vals = [ir.Constant(m, float(np.asarray(x, dtype=dtype.np))) for x in data]
        else:
            vals = [i64(int(x)) for x in data]
        ty = ir.ArrayType(m, len(vals))
        g = ir.GlobalVariable(self.module, ty, name=f"const{self._consts}")
        self._consts += 1
        g.global_constant = True
        g.linkage = "internal"
        g.initializer = ir.Constant(ty, vals)
        return g

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

    # -- everything
    def build(self):
        """A fresh module (callable more than once: a disk-cache hit builds only on demand)."""
        g = self.graph
        self.module = ir.Module(name=g.name)
        self.module.graphc_ldexp = self.ldexp     # read by vecmath.py
        self.module.graphc_fma = self.fma
        anchor = ir.GlobalVariable(self.module, I64, name=RW_ANCHOR)
        anchor.initializer = i64(1)
        self._consts = 0
        self.check_table = []
        if self.checks:
            self.errors()
            self.errors(ERRORS + "_value")
        if self.profile:        # graphc_cycles(): the cycle counter, for calibrating it against a clock
            f = ir.Function(self.module, ir.FunctionType(I64, []), name=PROFILE + "_cycles")
            cb = ir.IRBuilder(f.append_basic_block("entry"))
            cb.ret(cb.call(S.function(self.module, "llvm.readcyclecounter", I64, []), []))
            for n, k in enumerate(g.nodes):
                if k.attrs["kind"] != "view":
                    self.profile_counter(n)
        fnty = ir.FunctionType(VOID, [PTR])
        main = ir.Function(self.module, fnty, name=ENTRY)
        self.hold_blas = self.blas_threads is not None and any(k.attrs["kind"] == "matmul" for k in g.nodes)
        if self.hold_blas:  # one thread pool: OpenBLAS at one thread, our threads split the big GEMMs
            run = ir.Function(self.module, fnty, name=ENTRY + "_run")
            run.linkage = "internal"
            b = ir.IRBuilder(main.append_basic_block("entry"))
            get = S.function(self.module, self.blas_threads[0], I32, [])
            put = S.function(self.module, self.blas_threads[1], VOID, [I32])
            prev = b.call(get, [])
            b.call(put, [ir.Constant(I32, 1)])
            b.call(run, [main.args[0]])
            b.call(put, [prev])
            b.ret_void()
            main = run
        b = ir.IRBuilder(main.append_basic_block("entry"))
        slots = main.args[0]

        def slot(i):
            return b.load(b.gep(slots, [i64(i)], inbounds=True, source_etype=PTR), typ=PTR)
        arena = slot(0)
        ins = [slot(1 + i) for i in range(len(g.inputs))]
        outs = [slot(1 + len(g.inputs) + j) for j in range(len(self.out_values))]
        scratch = b.gep(arena, [i64(self.scratch_offset())], inbounds=True, source_etype=I8)

        def ptr(v):
            where, i = self.buffer(v)
            if where == "in":
                return ins[i]
            if where == "out":
                return outs[i]
            return b.gep(arena, [i64(i)], inbounds=True, source_etype=I8)
        for n, k in enumerate(g.nodes):
            if k.attrs["kind"] == "view":
                continue
            name = f"k{n}_{k.attrs['kind']}"
            direct = self.direct.get(k.out.name, False)
            ptrs = [ptr(v) for v in k.inputs] + [ptr(v) for v in k.outs] + [scratch]
            extent = k.out.type.shape[-1] if k.out.name in self.col_split else kernel_extent(k)
            if self.profile:
                t0 = b.call(S.function(self.module, "llvm.readcyclecounter", I64, []), [])
            if not self.parallel(k):
                blas = self.hold_blas and self.threads > 1 and k.attrs["kind"] == "matmul" \
                    and kernel_work(k) * self._gemm_depth(k) >= GEMM_SPLIT_WORK
                if blas:     # a big GEMM we cannot split: OpenBLAS may use our threads for it
                    b.call(S.function(self.module, self.blas_threads[1], VOID, [I32]), [ir.Constant(I32, self.threads)])
                b.call(KernelGen(self, k, name, direct).build(), ptrs + [i64(0), i64(extent)])
                if blas:
                    b.call(S.function(self.module, self.blas_threads[1], VOID, [I32]), [ir.Constant(I32, 1)])
            else:
                chunks = None
                if k.out.name in self.split:        # GEMM + epilogue per block of rows, one block per thread
                    fn = KernelGen(self, k, name, direct).build()
                    # one block per thread: each ?gemm call packs its whole B operand, so more,
                    # smaller blocks cost more than they balance (measured: MLP step 1.83 vs 1.96 ms)
                    chunks = self.threads
                elif k.attrs["kind"] == "matmul":   # the GEMM on this thread (OpenBLAS threads it), then
                    b.call(KernelGen(self, k, name, direct, part="gemm").build(), ptrs + [i64(0), i64(extent)])
                    fn = KernelGen(self, k, name + "_epilogue", direct, part="epilogue").build()
                else:                               # the epilogue across the threads
                    fn = KernelGen(self, k, name, direct).build()
                wrapper = self._parallel_wrapper(fn, len(ptrs), extent, chunks)
                with b.goto_entry_block():
                    data = b.alloca(PTR, size=len(ptrs) + 1)
                for i, p in enumerate(ptrs):
                    b.store(p, b.gep(data, [i64(i)], inbounds=True, source_etype=PTR))
                b.store(i64(0), b.gep(data, [i64(len(ptrs))], inbounds=True, source_etype=PTR))   # chunk counter
                run = S.function(self.module, POOL_RUN, VOID, [PTR, PTR, I64])     # pool.py
                b.call(run, [wrapper, data, i64(self.threads - 1)])
            if self.profile:
                t1 = b.call(S.function(self.module, "llvm.readcyclecounter", I64, []), [])
                slot = self.profile_counter(n)
                b.store(b.add(b.load(slot, typ=I64), b.sub(t1, t0)), slot)
            if self.checks:
                code = b.load(self.errors(), typ=I64)
                with b.if_then(b.icmp_signed("!=", code, i64(0)), likely=False):
                    b.ret_void()
        b.ret_void()
        return self.module

    def scratch_offset(self):
        """Where the matmul scratch region starts: after the planned arena, aligned."""
        from ...passes.memory import ALIGN, arena_bytes
        return -(-arena_bytes(self.graph) // ALIGN) * ALIGN
