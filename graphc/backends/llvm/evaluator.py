"""A kernel body's values at an index, inside the current loop body of a kernel function.

`Evaluator` walks the body graph from the value asked for: movement ops remap the index
(indexing.py), elementwise ops combine their inputs' values at the same index (scalar.py),
sources (iota, full, constant, uniform) are computed, body inputs are loads. Nothing is
materialised between fused ops.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from ...ops.random import GOLDEN, MIX1, MIX2
from . import indexing as IX
from . import scalar as S
from .common import unsupported
from .types import F32, F64, I8, const, i64, is_bool, is_float, mem, reg

from .. import kernels as _K


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
