"""Contraction primitives: batched matrix multiply."""
from __future__ import annotations

import numpy as np

from . import _infer as I
from . import functional as F
from .registry import Primitive, register


def _mT_type(t, flag):
    """The type of op(t): t with its last two dims swapped when flag is set."""
    return I.tt(t.shape[:-2] + (t.shape[-1], t.shape[-2]), t.dtype) if flag else t


def _matmul_infer(a, b, *, transpose_a=False, transpose_b=False):
    if a.ndim < 2 or b.ndim < 2 or a.ndim != b.ndim:
        raise RuntimeError(f"matmul: operands must be matrices with equal batch rank, got {a} and {b}")
    if a.dtype is not b.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                           f"{a.dtype.name} != {b.dtype.name}")
    if a.dtype is I.BOOL:
        raise RuntimeError("matmul: bool matrices are not supported")
    if not isinstance(transpose_a, bool) or not isinstance(transpose_b, bool):
        raise TypeError(f"matmul: transpose_a and transpose_b must be bools, got "
                        f"{transpose_a!r} and {transpose_b!r}")
    a, b = _mT_type(a, transpose_a), _mT_type(b, transpose_b)
    if a.shape[-1] != b.shape[-2]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied "
                           f"({a.shape[-2]}x{a.shape[-1]} and {b.shape[-2]}x{b.shape[-1]})")
    if a.shape[:-2] != b.shape[:-2]:
        raise RuntimeError(f"matmul: batch dims differ: {a} and {b}")
    return I.tt(a.shape[:-1] + (b.shape[-1],), a.dtype)


def _matmul_impl(a, b, *, transpose_a=False, transpose_b=False):
    return np.matmul(np.swapaxes(a, -1, -2) if transpose_a else a,
                     np.swapaxes(b, -1, -2) if transpose_b else b)


def _matmul_vjp(c, g):
    """out = A @ B with A = op(a), B = op(b): dA = g @ B^T, dB = A^T @ g, and da = dA (or dA^T
    when a was transposed), written without transposing anything twice."""
    a, b = c.inputs
    ta, tb = c.attrs.get("transpose_a", False), c.attrs.get("transpose_b", False)
    ga = gb = None
    if c.needs[0]:
        # ta: da = (g @ B^T)^T = B @ g^T;  else da = g @ B^T, where B^T is b itself when tb
        ga = F.matmul(F.mT(b) if tb else b, F.mT(g)) if ta else F.matmul(g, b if tb else F.mT(b))
    if c.needs[1]:
        # tb: db = (A^T @ g)^T = g^T @ A;  else db = A^T @ g, where A^T is a itself when ta
        gb = F.matmul(F.mT(g), F.mT(a) if ta else a) if tb else F.matmul(a if ta else F.mT(a), g)
    return ga, gb


register(Primitive("matmul", "contraction", _matmul_infer, _matmul_impl, _matmul_vjp, arity=2,
                   attrs=("transpose_a", "transpose_b"),
                   doc="op(a)[..., m, k] @ op(b)[..., k, n] with identical batch dims, where op "
                       "swaps the last two dims when transpose_a / transpose_b is set"))
