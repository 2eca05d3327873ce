"""Elementwise primitives on scalars: one LLVM instruction sequence per (primitive, dtype).

RULES maps a primitive's name to its rule, registered with @rule("name", ...):

    rule(b, op, dt, out_dt, args, attrs) -> LLVM value

where b is the IRBuilder, op the primitive's name (one function may serve several), dt the
dtype of the last operand, out_dt the result's, args the operands' register values and attrs
the node's static attributes. A primitive with no rule here is not lowered by the llvm backend
(kernels.check_kernel: its decomposition is expanded, or compiling fails naming it).

Semantics follow the numpy implementations in graphc/ops/elementwise.py: Python's floor
division and remainder (numpy's npy_divmod for floats), NaN-propagating maximum/minimum, a
numerically stable sigmoid, wrapping integer arithmetic. Integer division by zero is not
checked unless GRAPHC_BOUNDS_CHECK=1 (the interpreter raises; unchecked code yields 0 instead of trapping).
"""
from __future__ import annotations

from llvmlite import ir

from .. import kernels as _K
from . import vecmath as VM
from .types import F32, F64, I1, I64, const, is_bool, is_float, reg

RULES, rule = _K.rule_table("llvm")   # primitive name -> rule(b, op, dt, out_dt, args, attrs)
ELEMENTWISE = RULES     # the elementwise primitives this backend lowers (codegen, check_kernel)


def emit(b: ir.IRBuilder, op, in_dtype, out_dtype, args, attrs):
    """The LLVM value of elementwise primitive `op` applied to register values `args`."""
    fn = RULES.get(op)
    if fn is None:
        raise NotImplementedError(f"llvm backend: no scalar rule for elementwise primitive {op!r}")
    return fn(b, op, in_dtype, out_dtype, args, attrs)


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


# ---- unary ----------------------------------------------------------------------------------
@rule("stop_gradient")
def _identity(b, op, dt, out_dt, args, attrs):
    return args[0]


@rule("logical_not")
def _logical_not(b, op, dt, out_dt, args, attrs):
    return b.xor(args[0], ir.Constant(I1, 1))


@rule("cast")
def _cast(b, op, dt, out_dt, args, attrs):
    return cast(b, args[0], dt, out_dt)


@rule("neg")
def _neg(b, op, dt, out_dt, args, attrs):
    x = args[0]
    return b.fneg(x) if is_float(dt) else b.sub(ir.Constant(x.type, 0), x)


@rule("abs")
def _abs(b, op, dt, out_dt, args, attrs):
    x = args[0]
    if is_float(dt):
        return _math(b, "abs", x)
    if is_bool(dt):
        return x
    return b.select(b.icmp_signed("<", x, const(dt, 0)), b.sub(const(dt, 0), x), x)


@rule("sign")
def _sign(b, op, dt, out_dt, args, attrs):
    x = args[0]
    if is_bool(dt):
        return x
    if is_float(dt):
        one, mone = const(dt, 1.0), const(dt, -1.0)
        return b.select(b.fcmp_ordered(">", x, const(dt, 0.0)), one,
                        b.select(b.fcmp_ordered("<", x, const(dt, 0.0)), mone, const(dt, 0.0)))   # NaN, -0: 0
    return b.select(b.icmp_signed(">", x, const(dt, 0)), const(dt, 1),
                    b.select(b.icmp_signed("<", x, const(dt, 0)), const(dt, -1), const(dt, 0)))


def _need_float(op, dt):
    if not is_float(dt):
        raise NotImplementedError(f"{op} on {dt.name}")


@rule("exp", "log", "sqrt", "tanh", "sigmoid", "sin", "cos", "erf", "floor")
def _float_math(b, op, dt, out_dt, args, attrs):
    _need_float(op, dt)
    return _math(b, op, args[0])


@rule("rsqrt")
def _rsqrt(b, op, dt, out_dt, args, attrs):
    _need_float(op, dt)
    return b.fdiv(const(dt, 1.0), _math(b, "sqrt", args[0]))


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


# ---- binary ---------------------------------------------------------------------------------
_FCMP = {"lt": ("<", True), "le": ("<=", True), "gt": (">", True), "ge": (">=", True),
         "eq": ("==", True), "ne": ("!=", False)}
_ICMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


@rule(*_FCMP)
def _compare(b, op, dt, out_dt, args, attrs):
    x, y = args
    if is_float(dt):
        sym, ordered = _FCMP[op]
        return b.fcmp_ordered(sym, x, y) if ordered else b.fcmp_unordered(sym, x, y)
    if is_bool(dt):
        return b.icmp_unsigned(_ICMP[op], x, y)
    return b.icmp_signed(_ICMP[op], x, y)


@rule("logical_and", "logical_or")
def _logical(b, op, dt, out_dt, args, attrs):
    return (b.and_ if op == "logical_and" else b.or_)(*args)


@rule("add", "sub", "mul", "div")
def _arith(b, op, dt, out_dt, args, attrs):
    x, y = args
    if is_float(dt):     # no fast-math flags (no `contract`): each op rounds as numpy's does, so a value
        # recomputed in two loops (amax(t) and eq(t, amax(t))) is bit-identical (docs/numerics.md)
        return {"add": b.fadd, "sub": b.fsub, "mul": b.fmul, "div": b.fdiv}[op](x, y)
    if op == "div":
        raise NotImplementedError("div on integers")
    return {"add": b.add, "sub": b.sub, "mul": b.mul}[op](x, y)


@rule("maximum", "minimum")
def _minmax(b, op, dt, out_dt, args, attrs):
    x, y = args
    if is_float(dt):   # numpy: (a >= b || isnan(a)) ? a : b  -- NaN propagates from either side
        keep_a = b.or_(b.fcmp_ordered(">=" if op == "maximum" else "<=", x, y),
                       b.fcmp_unordered("uno", x, x))
        return b.select(keep_a, x, y)
    return b.select(b.icmp_signed(">=" if op == "maximum" else "<=", x, y), x, y)


@rule("pow")
def _pow(b, op, dt, out_dt, args, attrs):
    x, y = args
    if is_float(dt):
        return b.call(function(b.module, f"llvm.pow.{_sfx(x.type)}", x.type, [x.type, x.type]), [x, y])
    return _ipow(b, x, y)


@rule("atan2")
def _atan2(b, op, dt, out_dt, args, attrs):
    _need_float(op, dt)             # libm's, as numpy's arctan2
    t = args[0].type
    return b.call(function(b.module, "atan2f" if t == F32 else "atan2", t, [t, t]), args)


@rule("floor_divide", "remainder")
def _divmod(b, op, dt, out_dt, args, attrs):
    return (_fdivmod if is_float(dt) else _idivmod)(b, op, *args)


@rule("where")
def _where(b, op, dt, out_dt, args, attrs):
    return b.select(args[0], args[1], args[2])


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
