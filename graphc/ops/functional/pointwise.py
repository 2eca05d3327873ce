"""Elementwise ops: unary math, arithmetic, comparisons and logic, with torch's promotion
(bool + bool is logical or, an int tensor's exp is float, ...)."""
from __future__ import annotations

from ... import dtypes as _dt
from ...tensor import apply
from .promotion import _as, _is_bool, _prep, cast


# ---- elementwise -----------------------------------------------------------------------------------
def _unary_float(name):
    def op(x):
        x = _as(x, x.dtype if x.dtype.is_floating_point else _dt.get_default_dtype())
        return apply(name, x)
    op.__name__ = name
    return op


exp, log, sqrt, rsqrt, tanh, sigmoid, sin, cos, erf = (
    _unary_float(n) for n in ("exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "sin", "cos", "erf"))


def neg(x):
    return apply("neg", x)


def abs(x):
    return x if x.dtype is _dt.bool_ else apply("abs", x)


def sign(x):
    return x if x.dtype is _dt.bool_ else apply("sign", x)


def square(x):
    if x.dtype is _dt.bool_:     # torch: square of bool is int64 (pow(x, 2))
        x = cast(x, _dt.int64)
    return x * x


def reciprocal(x):
    return 1 / _as(x, x.dtype if x.dtype.is_floating_point else _dt.get_default_dtype())


def add(a, b, alpha=1):
    if alpha != 1:
        b = mul(b, alpha)
    a_, b_ = _prep(a, b)
    if a_.dtype is _dt.bool_:          # torch: bool + bool is logical or
        return apply("logical_or", a_, b_)
    return apply("add", a_, b_)


def sub(a, b, alpha=1):
    if _is_bool(a) or _is_bool(b):
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. "
                           "If you are trying to invert a mask, use the `~` or `logical_not()` "
                           "operator instead.")
    if alpha != 1:
        b = mul(b, alpha)
    return apply("sub", *_prep(a, b))


def mul(a, b):
    a_, b_ = _prep(a, b)
    if a_.dtype is _dt.bool_:
        return apply("logical_and", a_, b_)
    return apply("mul", a_, b_)


def div(a, b, rounding_mode=None):
    if rounding_mode is not None:
        raise NotImplementedError(f"div(rounding_mode={rounding_mode!r}) is not supported by graphc")
    return apply("div", *_prep(a, b, floating=True))


true_divide = divide = div


def pow(a, b):
    return apply("pow", *_prep(a, b))


def floor_divide(a, b):
    return apply("floor_divide", *_prep(a, b))


def remainder(a, b):
    return apply("remainder", *_prep(a, b))


def floor(x):
    """Round down (as torch.floor: integers are returned unchanged)."""
    return apply("floor", x) if x.dtype.is_floating_point else x


def ceil(x):
    return neg(floor(neg(x))) if x.dtype.is_floating_point else x


def maximum(a, b):
    a_, b_ = _prep(a, b)
    return apply("logical_or" if a_.dtype is _dt.bool_ else "maximum", a_, b_)


def atan2(input, other):
    """The angle of (other, input) in radians, as torch.atan2 (integers promote to float)."""
    return apply("atan2", *_prep(input, other, floating=True))


def minimum(a, b):
    a_, b_ = _prep(a, b)
    return apply("logical_and" if a_.dtype is _dt.bool_ else "minimum", a_, b_)


def _cmp(name):
    def op(a, b):
        return apply(name, *_prep(a, b))
    op.__name__ = name
    return op


lt, le, gt, ge, eq, ne = (_cmp(n) for n in ("lt", "le", "gt", "ge", "eq", "ne"))


def _to_bool(x):
    return x if x.dtype is _dt.bool_ else ne(x, 0)


def logical_not(x):
    return apply("logical_not", _to_bool(x))


def logical_and(a, b):
    return apply("logical_and", *_prep(_to_bool(_as(a, _dt.bool_)), _to_bool(_as(b, _dt.bool_))))


def logical_or(a, b):
    return apply("logical_or", *_prep(_to_bool(_as(a, _dt.bool_)), _to_bool(_as(b, _dt.bool_))))


def logical_xor(a, b):
    return ne(_to_bool(_as(a, _dt.bool_)), _to_bool(_as(b, _dt.bool_)))
