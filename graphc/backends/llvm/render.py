"""The lowering IR (backends/lower) as LLVM instructions in the current loop body of a kernel
function.

A `Renderer` lives for one loop body: its memo maps each node to its LLVM value (every node is
emitted once there; hash-consing made equal subexpressions one node), seeded with the loop
counters bound to the IR's index variables. Rendering is iterative (operands first, from an
explicit stack), so a 10,000-op chain does not recurse."""
from __future__ import annotations

from llvmlite import ir

from ..lower import expr as X
from . import scalar as S
from .types import F32, F64, I1, const, i64, is_bool, reg

_ICMP = {"lt": "<", "ge": ">=", "eq": "==", "ne": "!="}
_BINARY = {"add": "add", "sub": "sub", "mul": "mul", "div": "udiv", "mod": "urem", "uadd": "add",
           "umul": "mul", "xor": "xor", "shr": "lshr", "and": "and_"}


class Renderer:
    """LLVM values of lowering IR for kernel generator kg's builder.

      ptrs   body value name -> pointer to its buffer (`load` nodes)
      bind   index variable (an Expr `var`) -> LLVM value (a loop counter)
      given  body value name -> LLVM value (`given` nodes: a reduction's result here)
    """

    def __init__(self, kg, ptrs, bind=None, given=None):
        self.kg, self.b = kg, kg.b
        self.ptrs = ptrs
        self.given = given or {}
        self.memo = dict(bind or {})

    def __call__(self, e):
        return self.render([e])[0]

    def render(self, roots):
        for n in X.postorder(roots, self.memo):
            self.memo[n] = self._node(n, [self.memo[a] for a in n.args])
        return [self.memo[r] for r in roots]

    def _node(self, e, a):
        b, op, dt = self.b, e.op, e.dtype
        if op == "var":
            raise KeyError(f"llvm render: index variable {e.attr!r} is not bound to a loop counter "
                           f"(kernel {self.kg.label})")
        if op == "const":
            if dt in (X.INDEX, X.U64):
                return i64(e.attr)
            return ir.Constant(I1, int(e.attr)) if dt == X.PRED else const(dt, e.attr)
        if op in _BINARY:
            return getattr(b, _BINARY[op])(a[0], a[1])
        if op in _ICMP:
            return b.icmp_signed(_ICMP[op], a[0], a[1])
        if op == "select":
            return b.select(a[0], a[1], a[2])
        if op == "load":
            buf, size, what, table = e.attr
            if table is not None:
                ptr = self.kg.mb.constant_array(*table)
                return self.kg.load_at(ptr, dt, a[0])           # in bounds by construction
            return self.kg.load_at(self.ptrs[buf], dt, a[0], size, what)
        if op == "op":
            prim, in_dt, attrs = e.attr
            return S.emit(b, prim, in_dt, dt, a, attrs)
        if op == "cast":
            if dt.is_floating_point:
                return b.sitofp(a[0], reg(dt))
            return b.icmp_signed("!=", a[0], i64(0)) if is_bool(dt) else a[0]
        if op == "given":
            return self.given[e.attr]
        if op == "check":
            what, limit, kind = e.attr
            if self.kg.checks:
                self.kg.check(a[1], what, limit, a[0], kind)
            return a[0]
        if op == "u64":
            return a[0]
        if op == "unit":
            if dt.np.name == "float32":
                return b.fmul(b.uitofp(b.lshr(a[0], i64(40)), F32), ir.Constant(F32, 2.0 ** -24))
            return b.fmul(b.uitofp(b.lshr(a[0], i64(11)), F64), ir.Constant(F64, 2.0 ** -53))
        raise NotImplementedError(f"llvm backend: kernel {self.kg.label}: no rendering of lowering node {op!r}")

