"""Elementwise primitives: unary math, binary arithmetic, comparisons, logic, where, cast.

Operands of a binary primitive have one shape and one dtype; promotion and broadcasting
happen in graphc.ops.functional, before a primitive is applied.
"""
from __future__ import annotations

import math

import numpy as np

from . import _infer as I
from .registry import Primitive, register
from . import functional as F

_ERF = []


def _erf(x):
    """erf with scipy's ufunc where scipy is installed (math.erf, exact but slow, elsewhere),
    imported on first use: scipy.special costs ~250 ms of `import graphc` otherwise."""
    if not _ERF:
        try:
            from scipy.special import erf
        except ImportError:  # pragma: no cover - depends on the environment
            scalar = np.vectorize(math.erf, otypes=[np.float64])

            def erf(x):
                return scalar(x).astype(np.asarray(x).dtype, copy=False)
        _ERF.append(erf)
    return _ERF[0](x)

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _unary(name, impl, vjp, *, floating=True, saves=("inputs",), doc="", infer=None, **record):
    def default_infer(x):
        if floating:
            I.need_float(name, x)
        return x
    infer = infer or default_infer
    return register(Primitive(name, "elementwise", infer, impl, vjp, arity=1, saves=saves, doc=doc, **record))


def _sigmoid(x):
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _neg_infer(x):
    if x.dtype is I.BOOL:
        raise TypeError("neg: negation, the `-` operator, on a bool tensor is not supported; "
                        "use logical_not (`~`) instead")
    return x


_unary("neg", np.negative, lambda c, g: (-g,), saves=(), infer=_neg_infer, doc="-x", light=True)
_unary("abs", np.abs, lambda c, g: (g * F.sign(c.inputs[0]),), floating=False, doc="|x|")
def _sign(x):
    """-1, 0 or 1; 0 for NaN, as torch (numpy gives NaN)."""
    s = np.sign(x)
    return np.where(np.isnan(s), np.zeros_like(s), s) if s.dtype.kind == "f" else s


_unary("sign", _sign, lambda c, g: (F.zeros_like(g),), floating=False, saves=(), doc="-1, 0 or 1 (0 for NaN, as torch)")
_unary("exp", np.exp, lambda c, g: (g * c.out,), saves=("out",))
_unary("log", np.log, lambda c, g: (g / c.inputs[0],))
_unary("sqrt", np.sqrt, lambda c, g: (g / (c.out * 2),), saves=("out",))
_unary("rsqrt", lambda x: 1 / np.sqrt(x), lambda c, g: (g * c.out * c.out * c.out * -0.5,),
       saves=("out",), doc="1/sqrt(x)", decomposition=lambda x: 1 / F.sqrt(x))
_unary("tanh", np.tanh, lambda c, g: (g * (1 - c.out * c.out),), saves=("out",))
_unary("sigmoid", _sigmoid, lambda c, g: (g * c.out * (1 - c.out),), saves=("out",))
_unary("sin", np.sin, lambda c, g: (g * F.cos(c.inputs[0]),))
_unary("cos", np.cos, lambda c, g: (-g * F.sin(c.inputs[0]),))
_unary("erf", _erf, lambda c, g: (g * F.exp(-(c.inputs[0] * c.inputs[0])) * _TWO_OVER_SQRT_PI,))
_unary("floor", np.floor, lambda c, g: (F.zeros_like(g),), saves=(), doc="round down (zero gradient)")
_unary("stop_gradient", lambda x: x, None, floating=False, saves=(), differentiable=False,
       doc="identity whose gradient is zero (Tensor.detach while tracing)")


def _logical_not_infer(x):
    I.need_dtype("logical_not", x, I.BOOL)
    return x


register(Primitive("logical_not", "elementwise", _logical_not_infer, np.logical_not, None, arity=1, saves=(),
                   differentiable=False, light=True))


def _cast_infer(x, *, dtype):
    return I.tt(x.shape, dtype)


def _cast_vjp(c, g):
    src = c.in_types[0].dtype
    return (F.cast(g, src) if src.is_floating_point else None,)


register(Primitive("cast", "elementwise", _cast_infer,
                   lambda x, *, dtype: x.astype(dtype.np), _cast_vjp, arity=1, attrs=("dtype",),
                   saves=(), doc="convert to dtype (float to int truncates toward zero)", light=True))


# ---- binary ---------------------------------------------------------------------------------
def _binary(name, impl, vjp, *, floating=False, saves=("inputs",), doc=""):
    def infer(a, b):
        I.same(name, a, b)
        if floating:
            I.need_float(name, a)
        elif a.dtype is I.BOOL:
            raise TypeError(f"{name}: bool operands are not supported, got {a}")
        return a
    return register(Primitive(name, "elementwise", infer, impl, vjp, arity=2, saves=saves, doc=doc))


def _div_vjp(c, g):
    a, b = c.inputs
    ga = g / b if c.needs[0] else None
    gb = -g * c.out / b if c.needs[1] else None
    return ga, gb


def _pow_vjp(c, g):
    x, y = c.inputs
    if y.device != x.device:      # x ** 3 on cuda: the exponent is a host scalar broadcast;
        y = y.to(x.device)        # y - 1 and y == 0 below would be full host arrays
    gx = None
    if c.needs[0]:
        # torch: the base's gradient is 0 where y == 0 (not 0 * x**-1, which is nan at x == 0)
        gx = F.where(F.eq(y, 0), F.zeros_like(g), g * y * F.pow(x, y - 1))
    gy = None
    if c.needs[1]:
        # torch masks the exponent's gradient where x == 0 and y >= 0 (0**y has no log)
        zero = F.logical_and(F.eq(x, 0), F.ge(y, 0))
        safe_x = F.where(zero, F.ones_like(x), x)
        gy = F.where(zero, F.zeros_like(g), g * c.out * F.log(safe_x))
    return gx, gy


def _pow_impl(a, b):
    if a.dtype.kind == "i" and np.any(b < 0):
        raise ValueError("pow: integers to negative integer powers are not allowed")
    return np.power(a, b)


def _minmax_vjp(lose):
    def vjp(c, g):
        a, b = c.inputs
        # torch's rule: ties share the gradient equally, the losing side gets 0, and otherwise
        # (a NaN on either side, which is the result) each side gets all of it
        half, zero = g * 0.5, F.zeros_like(g)
        tie = F.eq(a, b)
        ga = F.where(tie, half, F.where(lose(a, b), zero, g)) if c.needs[0] else None
        gb = F.where(tie, half, F.where(lose(b, a), zero, g)) if c.needs[1] else None
        return ga, gb
    return vjp


_binary("add", np.add, lambda c, g: (g, g), saves=())
_binary("sub", np.subtract, lambda c, g: (g, -g), saves=())
_binary("mul", np.multiply, lambda c, g: (g * c.inputs[1] if c.needs[0] else None,
                                          g * c.inputs[0] if c.needs[1] else None))
_binary("div", np.true_divide, _div_vjp, floating=True, saves=("inputs", "out"))
_binary("pow", _pow_impl, _pow_vjp, saves=("inputs", "out"))
def _floor_divide_impl(a, b):
    if a.dtype.kind == "i" and np.any(b == 0):
        raise ZeroDivisionError("ZeroDivisionError: integer division by zero in floor_divide")
    return np.floor_divide(a, b)


def _remainder_impl(a, b):
    if a.dtype.kind == "i" and np.any(b == 0):
        raise ZeroDivisionError("ZeroDivisionError: integer division by zero in remainder")
    return np.remainder(a, b)


def _remainder_vjp(c, g):
    a, b = c.inputs
    # a - b * floor(a / b): d/da = 1, d/db = -floor(a / b)
    return (g if c.needs[0] else None,
            -g * F.floor_divide(a, b) if c.needs[1] else None)


_binary("floor_divide", _floor_divide_impl, lambda c, g: (F.zeros_like(g), F.zeros_like(g)), saves=(),
        doc="floor(a / b), as Python's // (its gradient is zero almost everywhere)")
_binary("remainder", _remainder_impl, _remainder_vjp,
        doc="a - b * floor(a / b), the sign of b, as Python's %")
_binary("maximum", np.maximum, _minmax_vjp(F.lt))
_binary("minimum", np.minimum, _minmax_vjp(F.gt))


def _atan2_vjp(c, g):
    y, x = c.inputs
    r = 1 / (y * y + x * x)         # torch's rule, NaN at the origin as torch's
    return (g * x * r if c.needs[0] else None, g * -y * r if c.needs[1] else None)


_binary("atan2", np.arctan2, _atan2_vjp, floating=True,
        doc="the angle of the point (b, a) in (-pi, pi], as torch.atan2(a, b) and C's atan2(y, x)")


def _compare(name, impl):
    def infer(a, b):
        I.same(name, a, b)
        return I.tt(a.shape, I.BOOL)
    register(Primitive(name, "elementwise", infer, impl, None, arity=2, saves=(), differentiable=False,
                       light=True))


for _n, _f in (("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
               ("ge", np.greater_equal), ("eq", np.equal), ("ne", np.not_equal)):
    _compare(_n, _f)


def _logical(name, impl):
    def infer(a, b):
        I.same(name, a, b)
        I.need_dtype(name, a, I.BOOL)
        return a
    register(Primitive(name, "elementwise", infer, impl, None, arity=2, saves=(), differentiable=False,
                       light=True))


_logical("logical_and", np.logical_and)
_logical("logical_or", np.logical_or)


def _where_infer(c, a, b):
    I.need_dtype("where", c, I.BOOL)
    I.same("where", a, b)
    if c.shape != a.shape:
        raise TypeError(f"where: condition {c} and values {a} must have the same shape")
    return a


def _where_vjp(c, g):
    cond = c.inputs[0]
    z = F.zeros_like(g)
    return (None, F.where(cond, g, z) if c.needs[1] else None,
            F.where(cond, z, g) if c.needs[2] else None)


register(Primitive("where", "elementwise", _where_infer, np.where, _where_vjp, arity=3))
