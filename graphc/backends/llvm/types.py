"""graphc dtypes as LLVM types: the type a value has in registers and the type it has in memory
(a bool is an i1 in registers and one byte in memory, as numpy stores it)."""
from __future__ import annotations

from llvmlite import ir

from ... import dtypes as _dt

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32 = ir.FloatType()
F64 = ir.DoubleType()
PTR = ir.PointerType()
VOID = ir.VoidType()


def reg(dtype) -> ir.Type:
    """The register type of a graphc dtype."""
    return {"float32": F32, "float64": F64, "int64": I64, "bool": I1}[dtype.name]


def mem(dtype) -> ir.Type:
    """The in-memory element type of a graphc dtype."""
    return I8 if dtype is _dt.bool_ else reg(dtype)


def i64(n: int) -> ir.Constant:
    n = int(n)
    if n >= 1 << 63:
        n -= 1 << 64
    return ir.Constant(I64, n)


def const(dtype, value) -> ir.Constant:
    """A scalar constant of a graphc dtype (register type)."""
    t = reg(dtype)
    if dtype.is_floating_point:
        return ir.Constant(t, float(value))
    if dtype is _dt.bool_:
        return ir.Constant(I1, int(bool(value)))
    return i64(int(value))


def is_float(dtype) -> bool:
    return dtype.is_floating_point


def is_bool(dtype) -> bool:
    return dtype is _dt.bool_
