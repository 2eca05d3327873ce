"""Source for a kernel body's values at an index, emitted into one Block: movement ops remap the
index expressions, elementwise ops combine their inputs' values (scalar.py), sources (iota,
full, constant, uniform) are computed, body inputs are loads. Nothing is materialised between
fused ops."""
from __future__ import annotations

import numpy as np

from .. import kernels as _K
from . import scalar as S
from .common import unsupported
from .scalar import ELEMENTWISE, NP, _isf, lit
from .source import MAX_NESTING, _mul, _nesting, delinearize, linear


class Evaluator:
    """Source for body values at an index, emitted into one Block (its cache is valid there)."""

    def __init__(self, gen, blk, fixed=None):
        self.gen, self.blk = gen, blk
        self.fixed = fixed or {}
        self.cache = {}

    def at(self, v, idx):
        """Source of v's value at idx (index expressions), memoised per (value, index) in this
        block. Iterative (kernels.evaluate): _at is a generator that yields each operand it
        needs, so a chain of 10,000 fused ops does not recurse 10,000 deep."""
        return _K.evaluate(self._at, _key, self.cache, v, idx)

    def _at(self, v, idx):
        """A generator (see at): yields (operand, index) for every operand value it reads, in
        the order the lines that use them are emitted; returns v's value at idx."""
        blk, gen = self.blk, self.gen
        if v.name in self.fixed:
            return self.fixed[v.name]
        if v.name in gen.arg_of:
            return blk.tmp(f"{gen.arg_of[v.name]}[{linear(idx, v.type.shape)}]", "x")
        p = v.producer
        if p is None:
            raise unsupported(gen.kernel, "input", f"no buffer for %{v.name}")
        op, ins, a = p.op, p.inputs, p.attrs
        dt = v.type.dtype
        if op in ELEMENTWISE:
            args = []
            for x in ins:
                args.append((yield x, idx))
            return S.emit(blk, op, ins[-1].type.dtype, dt, args, a, gen.kernel)
        if op == "broadcast_to":
            lead = len(v.type.shape) - len(ins[0].type.shape)
            return (yield ins[0], ["0" if n == 1 else idx[d + lead] for d, n in enumerate(ins[0].type.shape)])
        if op == "reshape":
            s_in, s_out = ins[0].type.shape, v.type.shape
            if [n for n in s_in if n != 1] == [n for n in s_out if n != 1]:
                src = iter(i for i, n in zip(idx, s_out) if n != 1)
                j = ["0" if n == 1 else next(src) for n in s_in]
            else:
                j = delinearize(blk, blk.tmp(linear(idx, s_out), "l"), s_in)
            return (yield ins[0], j)
        if op == "permute":
            j = [None] * len(a["perm"])
            for i, pp in enumerate(a["perm"]):
                j[pp] = idx[i]
            return (yield ins[0], j)
        if op == "slice":
            j = []
            for i, st, sp in zip(idx, a["starts"], a["steps"]):
                e = _mul(i, sp)
                e = e if st == 0 else f"({e} + {st})"
                if _nesting(e) > MAX_NESTING:     # a long chain of slices (see MAX_NESTING)
                    e = blk.tmp(e, "i")
                j.append(e)
            return (yield ins[0], j)
        if op == "pad":
            fill = lit(dt, a["value"])
            if ins[0].type.numel == 0:
                return fill
            j, conds = [], []
            for i, n, lo, it in zip(idx, ins[0].type.shape, a["lo"], a["interior"]):
                t = blk.tmp(f"{i} - {lo}" if lo else i, "p")
                conds.append(f"{t} >= 0")
                if it:
                    conds.append(f"{t} % {it + 1} == 0")
                    t = blk.tmp(f"{t} // {it + 1}", "p")
                conds.append(f"{t} < {n}")
                j.append(t)
            ok = blk.tmp(" and ".join(conds), "ok")
            j = [blk.tmp(f"{t} if {ok} else 0", "p") for t in j]
            val = yield ins[0], j
            return blk.tmp(f"{val} if {ok} else {fill}", "v")
        if op == "concat":
            axis, res = a["axis"], None
            for x, o, n in reversed(_K.concat_pieces(p)):
                t = blk.tmp(f"{idx[axis]} - {o}" if o else idx[axis], "c")
                ok = blk.tmp(f"{t} >= 0 and {t} < {n}", "ok")
                j = list(idx)
                j[axis] = blk.tmp(f"{t} if {ok} else 0", "c")
                val = yield x, j
                res = val if res is None else blk.tmp(f"{val} if {ok} else {res}", "v")
            return res
        if op == "unfold":
            n_, ck, l_ = idx
            (kh, kw), (sh, sw), (ph, pw), (dh, dw) = a["kernel"], a["stride"], a["padding"], a["dilation"]
            h, w = ins[0].type.shape[2:]
            ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
            c = blk.tmp(f"{ck} // {kh * kw}", "u")
            r = blk.tmp(f"{ck} % {kh * kw}", "u")
            y = blk.tmp(f"({l_} // {ow}) * {sh} + ({r} // {kw}) * {dh} - {ph}", "u")
            x = blk.tmp(f"({l_} % {ow}) * {sw} + ({r} % {kw}) * {dw} - {pw}", "u")
            ok = blk.tmp(f"{y} >= 0 and {y} < {h} and {x} >= 0 and {x} < {w}", "ok")
            j = [n_, c, blk.tmp(f"{y} if {ok} else 0", "u"), blk.tmp(f"{x} if {ok} else 0", "u")]
            val = yield ins[0], j
            return blk.tmp(f"{val} if {ok} else {lit(dt, a['value'])}", "v")
        if op == "take_along_axis":
            j = list(idx)
            j[a["axis"]] = yield ins[1], idx      # indices assumed in range (as the llvm backend)
            return (yield ins[0], j)
        if op == "iota":
            i = idx[a["axis"]] if v.type.shape else "0"
            return f"{NP[dt.np.name]}({i})" if _isf(dt) else f"np.int64({i})"
        if op == "full":
            return lit(dt, a["value"])
        if op == "constant":
            name = gen.constant(dt, a["data"])
            return blk.tmp(f"{name}[{linear(idx, v.type.shape)}]", "k")
        if op == "uniform":
            seed = yield ins[0], ["0"]
            off = yield ins[0], ["1"]
            ctr = blk.tmp(f"np.uint64({linear(idx, v.type.shape)}) + np.uint64({off})", "r")
            key = _mix64(blk, f"np.uint64({seed})")
            bits = _mix64(blk, f"{key} + {ctr} * GOLDEN")
            if dt.np == np.float32:
                return blk.tmp(f"np.float32({bits} >> U40) * np.float32({2.0 ** -24!r})", "v")
            return blk.tmp(f"np.float64({bits} >> U11) * np.float64({2.0 ** -53!r})", "v")
        raise unsupported(gen.kernel, op)


def _key(v, idx):
    """Evaluator's memo key: an index is a list of source expressions."""
    return v.name, tuple(idx)


def _mix64(blk, x):
    """splitmix64's finalizer on a uint64 expression (wrapping uint64 arithmetic)."""
    x = blk.tmp(x, "m")
    blk.emit(f"{x} = {x} ^ ({x} >> U30)")
    blk.emit(f"{x} = {x} * MIX1")
    blk.emit(f"{x} = {x} ^ ({x} >> U27)")
    blk.emit(f"{x} = {x} * MIX2")
    blk.emit(f"{x} = {x} ^ ({x} >> U31)")
    return x
