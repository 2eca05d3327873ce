"""Shape and dtype rules shared by several primitives."""
from __future__ import annotations

from .. import dtypes as dt
from ..ir.graph import TensorType


def fmt(t: TensorType) -> str:
    return str(t)


def same(op: str, *ts: TensorType) -> TensorType:
    """Elementwise primitives take operands of one shape and one dtype (the user-level
    functions insert the casts and broadcasts, so the IR says what really happens)."""
    t0 = ts[0]
    for t in ts[1:]:
        if t.shape != t0.shape or t.dtype is not t0.dtype:
            raise TypeError(f"{op}: operands must have the same shape and dtype, got "
                            + ", ".join(fmt(t) for t in ts))
    return t0


def need_float(op: str, t: TensorType) -> None:
    if not t.dtype.is_floating_point:
        raise TypeError(f"{op}: expected a floating-point operand, got {fmt(t)}")


def need_dtype(op: str, t: TensorType, *allowed) -> None:
    if t.dtype not in allowed:
        names = " or ".join(a.name for a in allowed)
        raise TypeError(f"{op}: expected {names}, got {fmt(t)}")


def check_axes(op: str, axes, ndim: int) -> tuple:
    axes = tuple(axes)
    if any((not isinstance(a, int)) or a < 0 or a >= ndim for a in axes) or len(set(axes)) != len(axes):
        raise ValueError(f"{op}: axes {axes} are not distinct axes of a rank-{ndim} tensor")
    return axes


def check_shape(op: str, shape) -> tuple:
    shape = tuple(shape)
    if any((not isinstance(s, int)) or s < 0 for s in shape):
        raise ValueError(f"{op}: invalid shape {shape}")
    return shape


def tt(shape, dtype) -> TensorType:
    return TensorType(tuple(shape), dtype)


BOOL = dt.bool_
INT = dt.int64
