"""The lowering IR (backends/lower) as numba.cuda source lines in one Block.

Index arithmetic and predicates used once are written inline (parenthesised), those used more
than once, and every value (loads, elementwise rules, the random hash), are bound to a fresh
temporary; the memo maps each node to its source, so a node is written once per block. A
child block's renderer starts from its parent's memo (the parent's temporaries are defined
before the child's lines).
"""
from __future__ import annotations

from ...ops.random import GOLDEN, MIX1, MIX2
from ..lower import expr as X
from . import scalar as S
from .scalar import NP, lit
from .source import MAX_NESTING, _nesting

_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "//", "mod": "%", "lt": "<", "ge": ">=", "eq": "==",
          "ne": "!=", "and": "and", "uadd": "+", "umul": "*", "xor": "^", "shr": ">>"}
_U64_NAMES = {30: "U30", 27: "U27", 31: "U31", 40: "U40", 11: "U11", int(GOLDEN): "GOLDEN", int(MIX1): "MIX1",
              int(MIX2): "MIX2"}


class Renderer:
    """Source for lowering IR in Block `blk` of kernel generator `gen` (buffers: gen.arg_of).
    given: name -> source of a value the kernel supplies (`given` nodes)."""

    def __init__(self, gen, blk, given=None, parent=None):
        self.gen, self.blk = gen, blk
        self.given = dict(given or {})
        self.memo = dict(parent.memo) if parent is not None else {}
        self.tables = parent.tables if parent is not None else {}

    def __call__(self, e):
        return self.render([e])[0]

    def render(self, roots):
        """The source of each root, after the lines that compute them."""
        nodes = X.postorder(roots, self.memo)
        uses = {}
        for n in nodes:
            for a in n.args:
                uses[a] = uses.get(a, 0) + 1
        for n in nodes:
            self.memo[n] = self._node(n, uses.get(n, 0))
        return [self.memo[r] for r in roots]

    def bind(self, roots):
        """render(roots), each root bound to a temporary unless it is a name or a literal: for
        values a nested block reuses (a row's index inside its loops)."""
        out = []
        for e, s in zip(roots, self.render(roots)):
            if not s.isidentifier() and not s.lstrip("-").isdigit():
                s = self.memo[e] = self.blk.tmp(s, "i")
            out.append(s)
        return out

    def _node(self, e, uses):
        blk, op, dt = self.blk, e.op, e.dtype
        a = [self.memo[x] for x in e.args]
        if op == "var":
            return e.attr
        if op == "const":
            if dt == X.INDEX:
                return str(e.attr) if e.attr >= 0 else f"({e.attr})"
            if dt == X.PRED:
                return repr(e.attr)
            if dt == X.U64:
                return _U64_NAMES.get(e.attr) or f"np.uint64({e.attr})"
            return lit(dt, e.attr)
        if dt in (X.INDEX, X.PRED) and op in _INFIX:
            s = f"({a[0]} {_INFIX[op]} {a[1]})"
            return blk.tmp(s, "i") if uses > 1 or _nesting(s) > MAX_NESTING else s
        if op == "select":
            s = f"({a[1]} if {a[0]} else {a[2]})"
            if dt in (X.INDEX, X.PRED) and uses <= 1 and _nesting(s) <= MAX_NESTING:
                return s
            return blk.tmp(s, "i" if dt in (X.INDEX, X.PRED) else "v")
        if op == "load":
            buf, _, _, table = e.attr
            if table is not None:
                name = self.tables.get(buf)
                if name is None:
                    name = self.tables[buf] = self.gen.constant(*table)
            else:
                name = self.gen.arg_of[buf]
            return blk.tmp(f"{name}[{a[0]}]", "x")
        if op == "op":
            prim, in_dt, attrs = e.attr
            return S.emit(blk, prim, in_dt, dt, a, attrs, self.gen.kernel)
        if op == "cast":
            return f"{NP[dt.np.name]}({a[0]})"
        if op == "given":
            return self.given[e.attr]
        if op == "check":           # the cuda backend compiles no runtime checks
            return a[0]
        if op == "u64":
            return blk.tmp(f"np.uint64({a[0]})", "r")
        if op in ("uadd", "umul", "xor", "shr"):
            return blk.tmp(f"{a[0]} {_INFIX[op]} {a[1]}", "m")
        if op == "unit":
            if dt.np.name == "float32":
                return blk.tmp(f"np.float32({a[0]} >> U40) * np.float32({2.0 ** -24!r})", "v")
            return blk.tmp(f"np.float64({a[0]} >> U11) * np.float64({2.0 ** -53!r})", "v")
        raise S.unsupported(self.gen.kernel, op, "no cuda rendering of this lowering node")
