"""Index maps: how an output index of a movement op becomes an index into its input.

An index is a list of i64 LLVM values, one per dimension. Maps that can fall outside their
input (pad, concat, unfold's padding) also give a validity predicate; the input index they
return is then clamped to 0 where invalid so the (discarded) load stays in bounds -- the value
used there is the fill value, selected by the caller.
"""
from __future__ import annotations

from llvmlite import ir

from ..kernels import strides  # noqa: F401  (one home for the row-major index algebra)
from .types import I1, i64



def linear(b, idx, shape):
    """Row-major linear offset of idx in a buffer of `shape`. A run of dims whose indices are
    exactly what `delinearize` made of some linear index over the same sub-shape (a reshape that
    merged or split contiguous dims: [32, 144] read as [32, 16, 3, 3]) contributes that index
    times the run's last stride: the divisions and remainders become dead, and the loop stays
    vectorisable (LLVM cannot prove that (j / 9) * 9 + (j / 3 % 3) * 3 + j % 3 is j)."""
    st_all = strides(shape)
    memo = getattr(b, "graphc_delinearized", None) or {}
    off = None
    d = 0
    while d < len(idx):
        hit = None
        for (first, n_dims), (lin, sub) in memo.get(id(idx[d]), {}).items():
            run = idx[d:d + n_dims]
            if len(run) == n_dims and tuple(shape[d:d + n_dims]) == sub and \
                    all(v is w for v, w in zip(run, first)):
                hit = (lin, n_dims)
                break
        if hit is not None:
            lin, n_dims = hit
            st = st_all[d + n_dims - 1]
            term = lin if st == 1 else b.mul(lin, i64(st))
            d += n_dims
        else:
            if shape[d] == 1:
                d += 1
                continue
            term = idx[d] if st_all[d] == 1 else b.mul(idx[d], i64(st_all[d]))
            d += 1
        off = term if off is None else b.add(off, term)
    return i64(0) if off is None else off


def delinearize(b, lin, shape):
    out = []
    for n, st in zip(shape, strides(shape)):
        if n == 1:
            out.append(i64(0))
            continue
        q = lin if st == 1 else b.udiv(lin, i64(st))
        out.append(q if st * n >= _big(shape) else b.urem(q, i64(n)))
    if len(out) > 1:    # remembered on the builder for linear() (the values are kept alive with it)
        memo = getattr(b, "graphc_delinearized", None)
        if memo is None:
            memo = b.graphc_delinearized = {}
        memo.setdefault(id(out[0]), {})[(tuple(out), len(out))] = (lin, tuple(shape))
    return out


def _big(shape):
    p = 1
    for n in shape:
        p *= n
    return p


def broadcast(idx, in_shape, out_shape):
    lead = len(out_shape) - len(in_shape)
    return [i64(0) if n == 1 else idx[d + lead] for d, n in enumerate(in_shape)]


def reshape(b, idx, in_shape, out_shape):
    a = [n for n in in_shape if n != 1]
    c = [n for n in out_shape if n != 1]
    if a == c:     # only unit dims inserted or removed: map the others one to one
        src = iter(i for i, n in zip(idx, out_shape) if n != 1)
        return [i64(0) if n == 1 else next(src) for n in in_shape]
    groups = _reshape_groups(in_shape, out_shape)
    if groups is None:
        return delinearize(b, linear(b, idx, out_shape), in_shape)
    res = []        # group by group: a group merged into one input dim needs no division
    for (i0, i1), (o0, o1) in groups:
        sub_in, sub_out = in_shape[i0:i1], out_shape[o0:o1]
        res += delinearize(b, linear(b, idx[o0:o1], sub_out), sub_in)
    return res


def _reshape_groups(in_shape, out_shape):
    """The runs of consecutive dims of in_shape and out_shape with equal products, as
    [((i0, i1), (o0, o1))], e.g. [64,16,14,14] -> [64,16,1,196]: (64)(64), (16)(16), (14,14)(1,196).
    None when a dim is 0."""
    if 0 in in_shape or 0 in out_shape:
        return None
    groups, i, o = [], 0, 0
    while i < len(in_shape) or o < len(out_shape):
        i0, o0 = i, o
        pi = po = 1
        while True:
            if pi <= po and i < len(in_shape):
                pi *= in_shape[i]
                i += 1
            elif o < len(out_shape):
                po *= out_shape[o]
                o += 1
            else:
                break
            if pi == po:
                while i < len(in_shape) and in_shape[i] == 1:      # absorb trailing unit dims
                    i += 1
                while o < len(out_shape) and out_shape[o] == 1:
                    o += 1
                break
        groups.append(((i0, i), (o0, o)))
    return groups


def permute(idx, perm):
    res = [None] * len(perm)
    for i, p in enumerate(perm):
        res[p] = idx[i]
    return res


def slice_(b, idx, starts, steps):
    res = []
    for i, a, s in zip(idx, starts, steps):
        j = i if s == 1 else b.mul(i, i64(s))
        res.append(j if a == 0 else b.add(j, i64(a)))
    return res


def _all(b, preds):
    ok = ir.Constant(I1, 1)
    for p in preds:
        ok = b.and_(ok, p)
    return ok


def _clamp(b, idx, ok):
    return [b.select(ok, i, i64(0)) for i in idx]


def pad(b, idx, in_shape, lo, interior):
    """Input index and validity of pad's output index (lo/interior per dim)."""
    res, preds = [], []
    for i, n, l, it in zip(idx, in_shape, lo, interior):
        t = b.sub(i, i64(l)) if l else i
        preds.append(b.icmp_signed(">=", t, i64(0)))
        if it:
            preds.append(b.icmp_signed("==", b.srem(t, i64(it + 1)), i64(0)))
            t = b.sdiv(t, i64(it + 1))
        preds.append(b.icmp_signed("<", t, i64(n)))
        res.append(t)
    ok = _all(b, preds)
    return _clamp(b, res, ok), ok


def concat_piece(b, idx, axis, offset, size):
    """Index into the concat operand at [offset, offset + size) along axis, and whether idx is there."""
    i = idx[axis]
    t = b.sub(i, i64(offset)) if offset else i
    ok = b.and_(b.icmp_signed(">=", t, i64(0)), b.icmp_signed("<", t, i64(size)))
    res = list(idx)
    res[axis] = b.select(ok, t, i64(0))
    return res, ok


def unfold(b, idx, in_shape, kernel, stride, padding, dilation, out_shape):
    """[N, C*kh*kw, OH*OW] -> [N, C, H, W] (im2col) and validity (inside the unpadded image)."""
    n, ck, l = idx
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    ow = _out_size(in_shape[3], kw, sw, pw, dw)
    c = b.udiv(ck, i64(kh * kw))
    r = b.urem(ck, i64(kh * kw))
    ki, kj = b.udiv(r, i64(kw)), b.urem(r, i64(kw))
    oy, ox = b.udiv(l, i64(ow)), b.urem(l, i64(ow))
    return unfold_parts(b, n, (c, ki, kj, oy, ox), in_shape, kernel, stride, padding, dilation)


def unfold_parts(b, n, parts, in_shape, kernel, stride, padding, dilation):
    """unfold's input index from the factored output index (c, ki, kj, oy, ox): a loop nest over
    [N, C, kh, kw, OH, OW] needs no division."""
    c, ki, kj, oy, ox = parts
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    h, w = in_shape[2:]
    y = b.sub(b.add(b.mul(oy, i64(sh)), b.mul(ki, i64(dh))), i64(ph))
    x = b.sub(b.add(b.mul(ox, i64(sw)), b.mul(kj, i64(dw))), i64(pw))
    ok = _all(b, [b.icmp_signed(">=", y, i64(0)), b.icmp_signed("<", y, i64(h)),
                  b.icmp_signed(">=", x, i64(0)), b.icmp_signed("<", x, i64(w))])
    return _clamp(b, [n, c, y, x], ok), ok


def _out_size(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1
