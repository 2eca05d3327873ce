"""Elementwise primitives on scalars: one LLVM instruction sequence per (primitive, dtype).

Semantics follow the numpy implementations in graphc/ops/elementwise.py: Python's floor
division and remainder (numpy's npy_divmod for floats), NaN-propagating maximum/minimum, a
numerically stable sigmoid, wrapping integer arithmetic. Integer division by zero is not
checked unless GRAPHC_BOUNDS_CHECK=1 (the interpreter raises; unchecked code yields 0 instead of trapping).
"""
from __future__ import annotations

from llvmlite import ir

from . import vecmath as VM
from .types import F32, F64, I1, I64, const, is_bool, is_float, reg

UNARY = ("neg", "abs", "sign", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "sin", "cos",
         "erf", "floor", "stop_gradient", "logical_not", "cast")
BINARY = ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "floor_divide", "remainder",
          "lt", "le", "gt", "ge", "eq", "ne", "logical_and", "logical_or")
ELEMENTWISE = UNARY + BINARY + ("where",)

_INTRINSIC = {"exp": "llvm.exp", "log": "llvm.log", "sqrt": "llvm.sqrt", "sin": "llvm.sin",
              "cos": "llvm.cos", "floor": "llvm.floor", "abs": "llvm.fabs"}
_LIBM = {"erf": ("erff", "erf")}     # f64 erf only: the rest is in vecmath.py


def function(module, name, ret, args):
    """Get or declare a function (an intrinsic or a C symbol) in the module."""
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, args), name=name)
    return fn


def _sfx(t):
    return "f32" if t == F32 else "f64"


def _math(b, name, x):
    """exp/log/tanh/sigmoid/erf: the vectorisable IR of vecmath.py (f64 erf: libm); the rest:
    LLVM intrinsics."""
    t = x.type
    if VM.available(name, t):
        return VM.call(b, name, x)
    if name in _INTRINSIC:
        fn = function(b.module, f"{_INTRINSIC[name]}.{_sfx(t)}", t, [t])
    else:
        fn = function(b.module, _LIBM[name][0 if t == F32 else 1], t, [t])
    return b.call(fn, [x])


def _copysign(b, x, y):
    t = x.type
    return b.call(function(b.module, f"llvm.copysign.{_sfx(t)}", t, [t, t]), [x, y])


def emit(b: ir.IRBuilder, op, in_dtype, out_dtype, args, attrs):
    """The LLVM value of elementwise primitive `op` applied to register values `args`."""
    if op in UNARY:
        return _unary(b, op, in_dtype, out_dtype, args[0], attrs)
    if op == "where":
        return b.select(args[0], args[1], args[2])
    return _binary(b, op, in_dtype, args[0], args[1])


def _unary(b, op, dt, out_dt, x, attrs):
    fl = is_float(dt)
    if op == "stop_gradient":
        return x
    if op == "logical_not":
        return b.xor(x, ir.Constant(I1, 1))
    if op == "cast":
        return cast(b, x, dt, out_dt)
    if op == "neg":
        return b.fneg(x) if fl else b.sub(ir.Constant(x.type, 0), x)
    if op == "abs":
        if fl:
            return _math(b, "abs", x)
        if is_bool(dt):
            return x
        return b.select(b.icmp_signed("<", x, const(dt, 0)), b.sub(const(dt, 0), x), x)
    if op == "sign":
        if is_bool(dt):
            return x
        if fl:
            one, mone = const(dt, 1.0), const(dt, -1.0)
            return b.select(b.fcmp_ordered(">", x, const(dt, 0.0)), one,
                            b.select(b.fcmp_ordered("<", x, const(dt, 0.0)), mone, x))
        return b.select(b.icmp_signed(">", x, const(dt, 0)), const(dt, 1),
                        b.select(b.icmp_signed("<", x, const(dt, 0)), const(dt, -1), const(dt, 0)))
    if not fl:
        raise NotImplementedError(f"{op} on {dt.name}")
    if op == "rsqrt":
        return b.fdiv(const(dt, 1.0), _math(b, "sqrt", x))
    return _math(b, op, x)


def cast(b, x, src, dst):
    if src is dst:
        return x
    t = reg(dst)
    if is_bool(dst):
        if is_float(src):
            return b.fcmp_unordered("!=", x, const(src, 0.0))
        return b.icmp_signed("!=", x, const(src, 0))
    if is_bool(src):
        return b.uitofp(x, t) if is_float(dst) else b.zext(x, t)
    if is_float(src) and is_float(dst):
        return b.fpext(x, t) if t == F64 else b.fptrunc(x, t)
    if is_float(dst):
        return b.sitofp(x, t)
    # float -> int truncates toward zero; saturating so NaN / out-of-range is defined (numpy: UB-ish)
    fn = function(b.module, f"llvm.fptosi.sat.i64.{_sfx(x.type)}", I64, [x.type])
    return b.call(fn, [x])


_FCMP = {"lt": ("<", True), "le": ("<=", True), "gt": (">", True), "ge": (">=", True),
         "eq": ("==", True), "ne": ("!=", False)}
_ICMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


def _binary(b, op, dt, x, y):
    fl = is_float(dt)
    if op in _FCMP:
        if fl:
            sym, ordered = _FCMP[op]
            return b.fcmp_ordered(sym, x, y) if ordered else b.fcmp_unordered(sym, x, y)
        if is_bool(dt):
            return b.icmp_unsigned(_ICMP[op], x, y)
        return b.icmp_signed(_ICMP[op], x, y)
    if op == "logical_and":
        return b.and_(x, y)
    if op == "logical_or":
        return b.or_(x, y)
    if op in ("add", "sub", "mul", "div"):
        if fl:       # no fast-math flags (no `contract`): each op rounds as numpy's does, so a value
            # recomputed in two loops (amax(t) and eq(t, amax(t))) is bit-identical (docs/numerics.md)
            return {"add": b.fadd, "sub": b.fsub, "mul": b.fmul, "div": b.fdiv}[op](x, y)
        if op == "div":
            raise NotImplementedError("div on integers")
        return {"add": b.add, "sub": b.sub, "mul": b.mul}[op](x, y)
    if op in ("maximum", "minimum"):
        if fl:   # numpy: (a >= b || isnan(a)) ? a : b  -- NaN propagates from either side
            keep_a = b.or_(b.fcmp_ordered(">=" if op == "maximum" else "<=", x, y),
                           b.fcmp_unordered("uno", x, x))
            return b.select(keep_a, x, y)
        return b.select(b.icmp_signed(">=" if op == "maximum" else "<=", x, y), x, y)
    if op == "pow":
        if fl:
            return b.call(function(b.module, f"llvm.pow.{_sfx(x.type)}", x.type, [x.type, x.type]), [x, y])
        return _ipow(b, x, y)
    if op in ("floor_divide", "remainder"):
        return (_fdivmod if fl else _idivmod)(b, op, x, y)
    raise NotImplementedError(op)


def _ipow(b, x, e):
    """x ** e for int64 by squaring (wrapping); e < 0 is rejected by the interpreter, 1 here."""
    pre = b.block
    head = b.append_basic_block("ipow.head")
    body = b.append_basic_block("ipow.body")
    done = b.append_basic_block("ipow.done")
    b.branch(head)
    b.position_at_end(head)
    res = b.phi(I64)
    base = b.phi(I64)
    ex = b.phi(I64)
    res.add_incoming(ir.Constant(I64, 1), pre)
    base.add_incoming(x, pre)
    ex.add_incoming(e, pre)
    b.cbranch(b.icmp_signed(">", ex, ir.Constant(I64, 0)), body, done)
    b.position_at_end(body)
    odd = b.trunc(ex, I1)
    res.add_incoming(b.select(odd, b.mul(res, base), res), body)
    base.add_incoming(b.mul(base, base), body)
    ex.add_incoming(b.lshr(ex, ir.Constant(I64, 1)), body)
    b.branch(head)
    b.position_at_end(done)
    return res


def _idivmod(b, op, x, y):
    zero, one, mone = ir.Constant(I64, 0), ir.Constant(I64, 1), ir.Constant(I64, -1)
    y0 = b.icmp_signed("==", y, zero)
    ym1 = b.icmp_signed("==", y, mone)
    ys = b.select(b.or_(y0, ym1), one, y)          # never trap: no /0, no INT_MIN / -1
    q = b.sdiv(x, ys)
    r = b.srem(x, ys)
    adj = b.and_(b.icmp_signed("!=", r, zero),
                 b.xor(b.icmp_signed("<", r, zero), b.icmp_signed("<", ys, zero)))
    if op == "floor_divide":
        q = b.select(adj, b.sub(q, one), q)
        return b.select(y0, zero, b.select(ym1, b.sub(zero, x), q))
    r = b.select(adj, b.add(r, ys), r)
    return b.select(y0, zero, r)


def _fdivmod(b, op, a, d):
    """numpy's npy_divmod / npy_floor_divide / npy_remainder, step for step."""
    t = a.type
    zero, one, half = ir.Constant(t, 0.0), ir.Constant(t, 1.0), ir.Constant(t, 0.5)
    mod = b.frem(a, d)
    dz = b.fcmp_ordered("==", d, zero)
    div = b.fdiv(b.fsub(a, mod), d)
    mod_nz = b.fcmp_unordered("!=", mod, zero)
    adj = b.and_(mod_nz, b.xor(b.fcmp_ordered("<", d, zero), b.fcmp_ordered("<", mod, zero)))
    if op == "remainder":
        m2 = b.select(adj, b.fadd(mod, d), b.select(mod_nz, mod, _copysign(b, zero, d)))
        return b.select(dz, mod, m2)
    div = b.select(adj, b.fsub(div, one), div)
    fl = _math(b, "floor", div)
    fl = b.select(b.fcmp_ordered(">", b.fsub(div, fl), half), b.fadd(fl, one), fl)
    q = b.fdiv(a, d)
    res = b.select(b.fcmp_unordered("!=", div, zero), fl, _copysign(b, zero, q))
    return b.select(dz, q, res)
