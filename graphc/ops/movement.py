"""Movement primitives: reshape, permute, broadcast_to, slice, pad, concat.

In eager mode these return numpy views where numpy can (as torch returns views); the
compiler folds them into index maps instead of copies.
"""
from __future__ import annotations

import numpy as np

from . import _infer as I
from . import functional as F
from .registry import Primitive, register


def _reshape_infer(x, *, shape):
    shape = I.check_shape("reshape", shape)
    n = 1
    for s in shape:
        n *= s
    if n != x.numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {x.numel}")
    return I.tt(shape, x.dtype)


register(Primitive("reshape", "movement", _reshape_infer,
                   lambda x, *, shape: np.reshape(x, shape),
                   lambda c, g: (F.reshape(g, c.in_types[0].shape),),
                   arity=1, attrs=("shape",), saves=()))


def _permute_infer(x, *, perm):
    if sorted(perm) != list(range(x.ndim)):
        raise RuntimeError(f"permute(): {tuple(perm)} is not a permutation of the {x.ndim} dims of {x}")
    return I.tt(tuple(x.shape[p] for p in perm), x.dtype)


def _permute_vjp(c, g):
    return (F.permute(g, tuple(int(i) for i in np.argsort(c.attrs["perm"]))),)


register(Primitive("permute", "movement", _permute_infer,
                   lambda x, *, perm: np.transpose(x, perm), _permute_vjp,
                   arity=1, attrs=("perm",), saves=()))


def _broadcast_infer(x, *, shape):
    shape = I.check_shape("broadcast_to", shape)
    lead = len(shape) - x.ndim
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(shape)}) must be greater or "
                           f"equal to the number of dimensions in the tensor ({x.ndim})")
    for d, (s, t) in enumerate(zip(x.shape, shape[lead:])):
        if s != t and s != 1:
            raise RuntimeError(f"The expanded size of the tensor ({t}) must match the existing size ({s}) "
                               f"at non-singleton dimension {d + lead}.  Target sizes: {list(shape)}.  "
                               f"Tensor sizes: {list(x.shape)}")
    return I.tt(shape, x.dtype)


register(Primitive("broadcast_to", "movement", _broadcast_infer,
                   lambda x, *, shape: np.broadcast_to(x, shape),
                   lambda c, g: (F.sum_to_shape(g, c.in_types[0].shape),),
                   arity=1, attrs=("shape",), saves=()))


def slice_len(start, stop, step):
    return max(0, (stop - start + step - 1) // step)


def _slice_infer(x, *, starts, stops, steps):
    if not (len(starts) == len(stops) == len(steps) == x.ndim):
        raise ValueError(f"slice: need one start, stop and step per dim of {x}")
    out = []
    for d, (a, b, s) in enumerate(zip(starts, stops, steps)):
        if s <= 0:
            raise ValueError("slice step must be positive")
        if not (0 <= a <= x.shape[d] and 0 <= b <= x.shape[d]):
            raise ValueError(f"slice: [{a}:{b}] is out of range for dim {d} of {x}")
        out.append(slice_len(a, b, s))
    return I.tt(out, x.dtype)


def _slice_impl(x, *, starts, stops, steps):
    return x[tuple(slice(a, b, s) for a, b, s in zip(starts, stops, steps))]


def _slice_vjp(c, g):
    shape = c.in_types[0].shape
    lo, hi, interior = [], [], []
    for n_in, n_out, a, s in zip(shape, g.shape, c.attrs["starts"], c.attrs["steps"]):
        used = a + (n_out - 1) * s + 1 if n_out else a
        lo.append(a)
        hi.append(n_in - used)
        interior.append(s - 1)
    return (F.pad_prim(g, tuple(lo), tuple(hi), tuple(interior), 0),)


register(Primitive("slice", "movement", _slice_infer, _slice_impl, _slice_vjp,
                   arity=1, attrs=("starts", "stops", "steps"), saves=(),
                   doc="x[a:b:s, ...] with 0 <= a, b <= size and s > 0"))


def _padded_len(n, lo, hi, interior):
    return lo + n + max(n - 1, 0) * interior + hi


def _pad_infer(x, *, lo, hi, interior, value):
    if not (len(lo) == len(hi) == len(interior) == x.ndim):
        raise ValueError(f"pad: need lo, hi and interior for every dim of {x}")
    if any(v < 0 for v in (*lo, *hi, *interior)):
        raise ValueError("pad: lo, hi and interior padding must be non-negative (crop with slice)")
    return I.tt([_padded_len(n, a, b, i) for n, a, b, i in zip(x.shape, lo, hi, interior)], x.dtype)


def _pad_impl(x, *, lo, hi, interior, value):
    shape = [_padded_len(n, a, b, i) for n, a, b, i in zip(x.shape, lo, hi, interior)]
    out = np.full(shape, value, dtype=x.dtype)
    out[tuple(slice(a, a + (n - 1) * (i + 1) + 1 if n else a, i + 1)
              for n, a, i in zip(x.shape, lo, interior))] = x
    return out


def _pad_vjp(c, g):
    shape = c.in_types[0].shape
    starts, stops, steps = [], [], []
    for n, a, i in zip(shape, c.attrs["lo"], c.attrs["interior"]):
        starts.append(a)
        stops.append(a + (n - 1) * (i + 1) + 1 if n else a)
        steps.append(i + 1)
    return (F.slice_prim(g, tuple(starts), tuple(stops), tuple(steps)),)


register(Primitive("pad", "movement", _pad_infer, _pad_impl, _pad_vjp,
                   arity=1, attrs=("lo", "hi", "interior", "value"), saves=(),
                   doc="XLA-style pad: lo/hi at each end, interior between elements"))


def _concat_infer(*xs, axis):
    if not xs:
        raise ValueError("concat: expected a non-empty list of tensors")
    x0 = xs[0]
    I.check_axes("concat", (axis,), x0.ndim)
    for x in xs[1:]:
        if x.dtype is not x0.dtype or x.ndim != x0.ndim or any(
                a != b for d, (a, b) in enumerate(zip(x.shape, x0.shape)) if d != axis):
            raise RuntimeError(f"Sizes of tensors must match except in dimension {axis}: "
                               + ", ".join(str(t) for t in xs))
    shape = list(x0.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return I.tt(shape, x0.dtype)


def _concat_vjp(c, g):
    axis = c.attrs["axis"]
    grads, at = [], 0
    for t, need in zip(c.in_types, c.needs):
        n = t.shape[axis]
        if need:
            starts = [0] * g.ndim
            stops = list(g.shape)
            starts[axis], stops[axis] = at, at + n
            grads.append(F.slice_prim(g, tuple(starts), tuple(stops), (1,) * g.ndim))
        else:
            grads.append(None)
        at += n
    return tuple(grads)


register(Primitive("concat", "movement", _concat_infer,
                   lambda *xs, axis: np.concatenate(xs, axis=axis), _concat_vjp,
                   arity=None, attrs=("axis",), saves=()))
