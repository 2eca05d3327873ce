"""Elementwise primitives as numba.cuda source: one expression per (primitive, dtype).

RULES maps a primitive's name to its rule, registered with @rule("name", ...):

    rule(blk, op, dt, out_dt, a, attrs, kernel) -> source expression

where blk is the Block the kernel body is emitted into (a rule may emit lines there, as
integer pow's loop does), op the primitive's name (one function may serve several), dt the
dtype of the last operand, out_dt the result's, a the operands' source expressions, attrs the
node's static attributes, and kernel the kernel node (for error messages). The expression is
bound to a fresh temporary, unless the rule returns a Bound name (already a variable).
A primitive with no rule here is not lowered by the cuda backend (kernels.check_kernel: its
decomposition is expanded, or compiling fails naming it).

Float add/sub/mul are libdevice's _rn forms, FADD/FSUB/FMUL/DADD/DMUL (codegen.PRELUDE,
docs/numerics.md): never contracted into an FMA.
"""
from __future__ import annotations

import math

import numpy as np

from .. import kernels as _K

NP = {"float32": "np.float32", "float64": "np.float64", "int64": "np.int64", "bool": "np.bool_"}

RULES, rule = _K.rule_table("cuda")   # primitive name -> rule(blk, op, dt, out_dt, a, attrs, kernel)
ELEMENTWISE = RULES     # the elementwise primitives this backend lowers (codegen, check_kernel)


class Bound(str):
    """A rule's result that is already a variable: used as it is, not bound to a temporary."""


def emit(blk, op, dt, out_dt, a, attrs, kernel):
    """The variable holding elementwise primitive `op` applied to operand expressions `a`
    (operand dtype dt), its lines emitted into blk."""
    fn = RULES.get(op)
    if fn is None:
        raise unsupported(kernel, op, "no scalar rule")
    r = fn(blk, op, dt, out_dt, a, attrs, kernel)
    return r if isinstance(r, Bound) else blk.tmp(r, "v")


def unsupported(kernel, op, why=""):
    return _K.unsupported("cuda", kernel, op, why)


def lit(dtype, x):
    """A literal of `dtype` as source text (float32 stays float32 inside numba)."""
    name = dtype.np.name
    if name == "bool":
        return "True" if bool(x) else "False"
    if name.startswith("int"):
        x = int(x)
        return "np.int64(-9223372036854775807 - 1)" if x == -(1 << 63) else f"np.int64({x})"
    x = float(x)
    r = "INF" if x == math.inf else "-INF" if x == -math.inf else "NAN" if x != x else repr(x)
    return f"{NP[name]}({r})"


def _isf(dt):
    return dt.is_floating_point


def _isb(dt):
    return dt.np == np.bool_


# ---- unary ----------------------------------------------------------------------------------
@rule("stop_gradient")
def _identity(blk, op, dt, out_dt, a, attrs, kernel):
    return a[0]


@rule("logical_not")
def _logical_not(blk, op, dt, out_dt, a, attrs, kernel):
    return f"not {a[0]}"


@rule("cast")
def _cast(blk, op, dt, out_dt, a, attrs, kernel):
    x, o = a[0], out_dt.np.name
    if out_dt is dt:
        return x
    if o == "bool":
        return f"{x} != {lit(dt, 0)}"
    if _isb(dt):
        return f"{lit(out_dt, 1)} if {x} else {lit(out_dt, 0)}"
    return f"{NP[o]}({x})"


@rule("neg")
def _neg(blk, op, dt, out_dt, a, attrs, kernel):
    return f"-{a[0]}"


@rule("abs")
def _abs(blk, op, dt, out_dt, a, attrs, kernel):
    return a[0] if _isb(dt) else f"abs({a[0]})"


@rule("sign")
def _sign(blk, op, dt, out_dt, a, attrs, kernel):
    x, zero = a[0], lit(dt, 0)
    if _isb(dt):
        return x
    return f"{lit(dt, 1)} if {x} > {zero} else ({lit(dt, -1)} if {x} < {zero} else {zero})"   # NaN, -0: 0


def _float_only(fn):
    """A rule for floating-point operands only."""
    def checked(blk, op, dt, out_dt, a, attrs, kernel):
        if not _isf(dt):
            raise unsupported(kernel, op, f"on {dt.name}")
        return fn(blk, op, dt, out_dt, a, attrs, kernel)
    return checked


@rule("exp", "log", "sqrt", "tanh", "sin", "cos", "erf")
@_float_only
def _math(blk, op, dt, out_dt, a, attrs, kernel):
    return f"{NP[dt.np.name]}(math.{op}({a[0]}))"


@rule("rsqrt")
@_float_only
def _rsqrt(blk, op, dt, out_dt, a, attrs, kernel):
    return f"{lit(dt, 1)} / {NP[dt.np.name]}(math.sqrt({a[0]}))"


@rule("sigmoid")
@_float_only
def _sigmoid(blk, op, dt, out_dt, a, attrs, kernel):
    x, T, one, zero = a[0], NP[dt.np.name], lit(dt, 1), lit(dt, 0)
    return (f"{one} / ({one} + {T}(math.exp(-{x}))) if {x} >= {zero} else "
            f"{T}(math.exp({x})) / ({one} + {T}(math.exp({x})))")


@rule("floor")
@_float_only
def _floor(blk, op, dt, out_dt, a, attrs, kernel):
    x = a[0]
    return f"{NP[dt.np.name]}({x} if ({x} != {x} or abs({x}) >= 4503599627370496.0) else math.floor({x}))"


# ---- binary ---------------------------------------------------------------------------------
@rule("add", "sub", "mul")
def _arith(blk, op, dt, out_dt, a, attrs, kernel):
    x, y = a
    if _isf(dt):          # rounded per op, never fused into an FMA (see codegen.PRELUDE)
        if dt.np == np.float32:
            return f"F{op.upper()}({x}, {y})"
        return f"DADD({x}, -({y}))" if op == "sub" else f"D{op.upper()}({x}, {y})"
    s = {"add": "+", "sub": "-", "mul": "*"}[op]
    return f"{x} {s} {y}"


@rule("div")
def _div(blk, op, dt, out_dt, a, attrs, kernel):
    x, y = a
    return f"{x} / {y}" if _isf(dt) else f"np.float64({x}) / np.float64({y})"


@rule("pow")
def _pow(blk, op, dt, out_dt, a, attrs, kernel):
    x, y = a
    if _isf(dt):
        return f"{NP[dt.np.name]}({x} ** {y})"
    # integer power by squaring (exponent >= 0)
    r, base, e = blk.tmp("np.int64(1)", "w"), blk.tmp(x, "w"), blk.tmp(y, "w")
    blk.emit(f"while {e} > 0:")
    lb = blk.child()
    lb.emit(f"if {e} & 1:")
    lb.child().emit(f"{r} = {r} * {base}")
    lb.emit(f"{base} = {base} * {base}")
    lb.emit(f"{e} = {e} >> 1")
    return Bound(r)


@rule("maximum", "minimum")
def _minmax(blk, op, dt, out_dt, a, attrs, kernel):
    x, y = a
    if not _isf(dt):
        return f"{op[:3]}({x}, {y})"
    cmp = ">" if op == "maximum" else "<"
    return f"{x} if ({x} != {x} or {x} {cmp} {y}) else {y}"


@rule("atan2")
@_float_only
def _atan2(blk, op, dt, out_dt, a, attrs, kernel):
    return f"{NP[dt.np.name]}(math.atan2({a[0]}, {a[1]}))"


@rule("floor_divide", "remainder")
def _divmod(blk, op, dt, out_dt, a, attrs, kernel):
    x, y = a
    s = "//" if op == "floor_divide" else "%"
    return f"{NP[dt.np.name]}({x} {s} {y})" if _isf(dt) else f"{x} {s} {y}"


_INFIX = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!=",
          "logical_and": "and", "logical_or": "or"}


@rule(*_INFIX)
def _infix(blk, op, dt, out_dt, a, attrs, kernel):
    return f"{a[0]} {_INFIX[op]} {a[1]}"


@rule("where")
def _where(blk, op, dt, out_dt, a, attrs, kernel):
    return f"{a[1]} if {a[0]} else {a[2]}"
