"""Contraction: matmul with torch's 1-d and batch broadcasting rules, mm, bmm, dot, outer."""
from __future__ import annotations

from ...tensor import apply
from .promotion import broadcast_shapes, broadcast_to
from .shapes import squeeze, unsqueeze


# ---- contraction -----------------------------------------------------------------------------------
def matmul(a, b):
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are "
                           f"{a.ndim}D and {b.ndim}D")
    va, vb = a.ndim == 1, b.ndim == 1
    a2 = unsqueeze(a, 0) if va else a
    b2 = unsqueeze(b, 1) if vb else b
    if a2.shape[-1] != b2.shape[-2]:
        if va and vb:
            raise RuntimeError(f"inconsistent tensor size, expected tensor [{a.shape[0]}] and src "
                               f"[{b.shape[0]}] to have the same number of elements, but got "
                               f"{a.shape[0]} and {b.shape[0]} elements respectively")
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({a2.shape[-2]}x{a2.shape[-1]} "
                           f"and {b2.shape[-2]}x{b2.shape[-1]})")
    batch = broadcast_shapes(tuple(a2.shape[:-2]), tuple(b2.shape[:-2]))
    a2 = broadcast_to(a2, batch + tuple(a2.shape[-2:]))
    b2 = broadcast_to(b2, batch + tuple(b2.shape[-2:]))
    out = apply("matmul", a2, b2, transpose_a=False, transpose_b=False)
    if va:
        out = squeeze(out, -2)
    if vb:
        out = squeeze(out, -1)
    return out


def mm(a, b):
    if a.ndim != 2 or b.ndim != 2:
        raise RuntimeError(f"mm: expected 2D tensors, got {a.ndim}D and {b.ndim}D")
    return matmul(a, b)


def bmm(a, b):
    if a.ndim != 3 or b.ndim != 3:
        raise RuntimeError(f"batch1 must be a 3D tensor")
    return matmul(a, b)


def dot(a, b):
    return matmul(a, b)


def outer(a, b):
    return unsqueeze(a, 1) * unsqueeze(b, 0)
