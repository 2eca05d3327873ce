"""The one body walker: a kernel body's value at an index, as lowering IR.

`Lowering.at(v, idx)` walks the body graph from v back to its inputs: movement ops remap the
index (maps.py), elementwise ops become `op` nodes over their operands at the same index,
sources (iota, full, constant, uniform) are computed, body inputs are loads, values the backend
supplies (a reduction's result, a GEMM product in registers) are `given`. Nothing is
materialised between fused ops. Iterative (kernels.evaluate): a chain of 10,000 fused ops does
not recurse 10,000 deep.
"""
from __future__ import annotations

from ...ops.random import GOLDEN, MIX1, MIX2
from .. import kernels as _K
from . import expr as X
from . import maps as M

_STRUCTURAL = set(_K.STRUCTURAL)


class Lowering:
    """Body values of one kernel at indices (tuples of Expr), memoised per (value, index).

      buffers  body value name -> the TensorType it is read as from memory (body inputs; a
               matmul's product when it is materialised)
      given    body value name -> dtype of a value the backend supplies (may grow between calls:
               a reduction's result, once computed)
      checks   wrap integer divisors and gathered indices in `check` nodes
      flat     (rows, cols): every value has the output's element count and is reached only
               through elementwise ops and contiguous reshapes, and an index is a point of
               every value seen as [rows, cols] (the llvm backend's vectorisable flat space)
      hints    unfold output name -> (idx, (c, ki, kj, oy, ox)): a loop nest that already
               factored the window position and pixel
    """

    def __init__(self, kernel, buffers, given=None, checks=False, flat=None):
        self.kernel = kernel
        self.buffers = buffers
        self.given = {} if given is None else given
        self.checks = checks
        self.flat = tuple(flat) if flat is not None else None
        self.hints = {}
        self.cache = {}

    def at(self, v, idx):
        return _K.evaluate(self._at, _key, self.cache, v, tuple(idx))

    def load(self, v, idx):
        t = self.buffers[v.name]
        if self.flat is not None:
            t = type(t)(self.flat, t.dtype)
        return X.load(v.name, X.linear(idx, t.shape), t.dtype, t.numel, f"read of %{v.name} {t}: linear offset")

    def _unsupported(self, op, why=""):
        return _K.unsupported("lowering", self.kernel, op, why)

    def _at(self, v, idx):
        """A generator (kernels.evaluate): yields (operand, index) for every operand it reads;
        returns v's value at idx."""
        if v.name in self.given:
            return X.given(v.name, self.given[v.name])
        if v.name in self.buffers:
            return self.load(v, idx)
        p = v.producer
        if p is None:
            raise self._unsupported("input", f"no buffer for %{v.name}")
        op, ins, a, dt = p.op, p.inputs, p.attrs, v.type.dtype
        if op not in _STRUCTURAL:                       # elementwise: the scalar rule tables
            args = []
            for x in ins:
                args.append((yield x, idx))
            ddt = ins[1].type.dtype if len(ins) > 1 else None
            if op in ("floor_divide", "remainder") and self.checks and ddt is not None \
                    and not ddt.is_floating_point and ddt.name != "bool":
                args[1] = X.check(args[1], X.cmp("ne", args[1], X.const(0, ddt)), f"{op} (%{v.name})", 0, "div")
            return X.scalar(op, ins[-1].type.dtype, dt, args, a)
        if op == "broadcast_to":
            return (yield ins[0], M.broadcast(idx, ins[0].type.shape, v.type.shape))
        if op == "reshape":
            if self.flat is not None:           # contiguous to contiguous: the same linear offset
                return (yield ins[0], idx)
            return (yield ins[0], M.reshape(idx, ins[0].type.shape, v.type.shape))
        if op == "permute":
            return (yield ins[0], M.permute(idx, a["perm"]))
        if op == "slice":
            return (yield ins[0], M.slice_(idx, a["starts"], a["steps"]))
        if op == "pad":
            fill = X.const(a["value"], dt)
            if ins[0].type.numel == 0:
                return fill
            j, ok = M.pad(idx, ins[0].type.shape, a["lo"], a["interior"])
            return X.select(ok, (yield ins[0], j), fill)
        if op == "concat":
            res = None
            for x, o, n in reversed(_K.concat_pieces(p)):
                j, ok = M.concat_piece(idx, a["axis"], o, n)
                val = yield x, j
                res = val if res is None else X.select(ok, val, res)
            return X.const(0, dt) if res is None else res     # every piece empty: never reached
        if op == "unfold":
            hint = self.hints.get(v.name)
            geo = (ins[0].type.shape, a["kernel"], a["stride"], a["padding"], a["dilation"])
            if hint is not None and hint[0] == idx:           # the loop nest is already factored
                j, ok = M.unfold_parts(idx[0], hint[1], *geo)
            else:
                j, ok = M.unfold(idx, *geo)
            return X.select(ok, (yield ins[0], j), X.const(a["value"], dt))
        if op == "take_along_axis":
            ax, n = a["axis"], ins[0].type.shape[a["axis"]]
            i = yield ins[1], idx      # indices are assumed valid unless checks are on
            if self.checks:
                ok = X.and_(X.cmp("ge", i, 0), X.cmp("lt", i, n))
                i = X.check(i, ok, f"take_along_axis index along axis {ax} (%{v.name})", n, "index")
            j = list(idx)
            j[ax] = i
            return (yield ins[0], tuple(j))
        if op == "iota":
            i = idx[a["axis"]] if v.type.shape else X.ZERO
            return i if dt.name == "int64" else X.cast(i, dt)
        if op == "full":
            return X.const(a["value"], dt)
        if op == "constant":
            return X.load(f"const %{v.name}", X.linear(idx, v.type.shape), dt, v.type.numel,
                          f"constant %{v.name}", table=(dt, a["data"]))
        if op == "uniform":
            seed = yield ins[0], (X.ZERO,)
            offset = yield ins[0], (X.ONE,)
            return uniform(X.linear(idx, v.type.shape), seed, offset, dt)
        raise self._unsupported(op)


def _key(v, idx):
    """The memo key: indices are tuples of hash-consed Exprs (equal is identical)."""
    return v.name, idx


def mix64(x):
    """splitmix64's finalizer on uint64 (graphc/ops/random.py: mix64)."""
    x = X.uop("xor", x, X.uop("shr", x, 30))
    x = X.uop("umul", x, int(MIX1))
    x = X.uop("xor", x, X.uop("shr", x, 27))
    x = X.uop("umul", x, int(MIX2))
    return X.uop("xor", x, X.uop("shr", x, 31))


def uniform(counter, seed, offset, dtype):
    """uniform's value at linear position `counter`: mix64(mix64(seed) + (offset + counter) *
    GOLDEN) to [0, 1), bit for bit as graphc/ops/random.py."""
    ctr = X.uop("uadd", X.u64(counter), X.u64(offset))
    bits = mix64(X.uop("uadd", mix64(X.u64(seed)), X.uop("umul", ctr, int(GOLDEN))))
    return X.unit(bits, dtype)
