"""The four dtypes graphc supports and torch's type-promotion rules over them.

A DType wraps a numpy dtype; its short name (f32, f64, i64, b1) is what the IR prints.
"""
from __future__ import annotations

import numpy as np


class DType:
    __slots__ = ("name", "short", "np", "category", "itemsize")

    def __init__(self, name: str, short: str, np_dtype, category: int):
        self.name = name          # torch spelling: float32
        self.short = short        # IR spelling: f32
        self.np = np.dtype(np_dtype)
        self.category = category  # 0 bool, 1 integer, 2 floating
        self.itemsize = self.np.itemsize

    @property
    def is_floating_point(self) -> bool:
        return self.category == 2

    def __repr__(self) -> str:
        return f"graphc.{self.name}"

    def __reduce__(self):
        return (from_name, (self.name,))


bool_ = DType("bool", "b1", np.bool_, 0)
int64 = DType("int64", "i64", np.int64, 1)
float32 = DType("float32", "f32", np.float32, 2)
float64 = DType("float64", "f64", np.float64, 2)

ALL = (bool_, int64, float32, float64)
_BY_NAME = {d.name: d for d in ALL} | {d.short: d for d in ALL}
_BY_NAME.update({"float": float32, "double": float64, "long": int64})
_BY_NP = {d.np: d for d in ALL}
_ORDER = {bool_: 0, int64: 1, float32: 2, float64: 3}

_default_float = [float32]


def get_default_dtype() -> DType:
    return _default_float[0]


def set_default_dtype(d) -> None:
    d = as_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default_float[0] = d


def from_name(name: str) -> DType:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise TypeError(f"unknown dtype {name!r}; graphc supports float32, float64, int64 and bool") from None


def from_numpy(np_dtype) -> DType:
    """The DType of a numpy dtype, or a TypeError naming what graphc supports."""
    d = _BY_NP.get(np.dtype(np_dtype))
    if d is None:
        raise TypeError(f"numpy dtype {np.dtype(np_dtype)} is not supported; "
                        "graphc supports float32, float64, int64 and bool")
    return d


def as_dtype(d) -> DType:
    """Accept a DType, a name ('float32'), a numpy dtype or a Python type (float, int, bool)."""
    if isinstance(d, DType):
        return d
    if d is float:
        return get_default_dtype()
    if d is int:
        return int64
    if d is bool:
        return bool_
    if isinstance(d, str):
        return from_name(d)
    return from_numpy(d)


_SCALAR_TYPE = {"bool": "Bool", "int64": "Long", "float32": "Float", "float64": "Double"}


def scalar_type_name(d: DType) -> str:
    """torch's ScalarType spelling (Float, Double, Long, Bool), as its error messages print it."""
    return _SCALAR_TYPE[d.name]


def promote_types(a: DType, b: DType) -> DType:
    return a if _ORDER[a] >= _ORDER[b] else b


def scalar_dtype(v) -> DType:
    """The dtype a Python scalar takes in promotion (a 'wrapped number' in torch)."""
    if isinstance(v, (bool, np.bool_)):
        return bool_
    if isinstance(v, (int, np.integer)):
        return int64
    if isinstance(v, (float, np.floating)):
        return get_default_dtype()
    raise TypeError(f"unsupported scalar type {type(v).__name__}")


def _combine(higher, lower):
    # torch's combine_categories (c10/core/ScalarType.h), restricted to our dtypes.
    if higher is None:
        return lower
    if lower is None:
        return higher
    if higher.is_floating_point:
        return higher
    if higher is bool_ or lower.is_floating_point:
        return promote_types(higher, lower)
    return higher


def result_type(*operands) -> DType:
    """torch.result_type: dimensioned tensors outrank 0-dim tensors, which outrank Python scalars,
    unless a lower-priority operand is of a higher category (bool < int < float)."""
    dim = zero = wrapped = None
    for o in operands:
        if hasattr(o, "dtype") and hasattr(o, "ndim") and isinstance(o.dtype, DType):
            if o.ndim > 0:
                dim = o.dtype if dim is None else promote_types(dim, o.dtype)
            else:
                zero = o.dtype if zero is None else promote_types(zero, o.dtype)
        else:
            d = scalar_dtype(o)
            wrapped = d if wrapped is None else promote_types(wrapped, d)
    return _combine(dim, _combine(zero, wrapped))
