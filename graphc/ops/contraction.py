"""Contraction primitives: batched matrix multiply."""
from __future__ import annotations

import numpy as np

from . import _infer as I
from . import functional as F
from .registry import Primitive, register


def _matmul_infer(a, b):
    if a.ndim < 2 or b.ndim < 2 or a.ndim != b.ndim:
        raise RuntimeError(f"matmul: operands must be matrices with equal batch rank, got {a} and {b}")
    if a.dtype is not b.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                           f"{a.dtype.name} != {b.dtype.name}")
    if a.dtype is I.BOOL:
        raise RuntimeError("matmul: bool matrices are not supported")
    if a.shape[-1] != b.shape[-2]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied "
                           f"({a.shape[-2]}x{a.shape[-1]} and {b.shape[-2]}x{b.shape[-1]})")
    if a.shape[:-2] != b.shape[:-2]:
        raise RuntimeError(f"matmul: batch dims differ: {a} and {b}")
    return I.tt(a.shape[:-1] + (b.shape[-1],), a.dtype)


def _matmul_vjp(c, g):
    a, b = c.inputs
    return (F.matmul(g, F.mT(b)) if c.needs[0] else None,
            F.matmul(F.mT(a), g) if c.needs[1] else None)


register(Primitive("matmul", "contraction", _matmul_infer, np.matmul, _matmul_vjp, arity=2,
                   doc="a[..., m, k] @ b[..., k, n] with identical batch dims"))
