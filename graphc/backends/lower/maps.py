"""Index maps: how an output index of a movement op becomes an index into its input, as lowering
IR (tuples of Expr, one per dim). Maps that can fall outside their input (pad, concat, unfold's
padding) also give a validity predicate; the input index they return is then clamped to 0 where
invalid so the (discarded) load stays in bounds -- the value used there is the fill, selected by
the caller."""
from __future__ import annotations

from . import expr as X


def broadcast(idx, in_shape, out_shape):
    lead = len(out_shape) - len(in_shape)
    return tuple(X.ZERO if n == 1 else idx[d + lead] for d, n in enumerate(in_shape))


def reshape(idx, in_shape, out_shape):
    """Group by group (runs of dims with equal products): a group merged into one input dim needs
    no division, and X.linear sees through the delinearize of a split one."""
    in_shape, out_shape = tuple(in_shape), tuple(out_shape)
    if [n for n in in_shape if n != 1] == [n for n in out_shape if n != 1]:
        src = iter(i for i, n in zip(idx, out_shape) if n != 1)    # only unit dims inserted/removed
        return tuple(X.ZERO if n == 1 else next(src) for n in in_shape)
    groups = reshape_groups(in_shape, out_shape)
    if groups is None:
        return X.delinearize(X.linear(idx, out_shape), in_shape)
    res = ()
    for (i0, i1), (o0, o1) in groups:
        res += X.delinearize(X.linear(idx[o0:o1], out_shape[o0:o1]), in_shape[i0:i1])
    return res


def reshape_groups(in_shape, out_shape):
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
    return tuple(res)


def slice_(idx, starts, steps):
    return tuple(X.add(X.mul(i, s), X.const(a)) for i, a, s in zip(idx, starts, steps))


def _clamp(idx, ok):
    return tuple(X.select(ok, i, X.ZERO) for i in idx)


def pad(idx, in_shape, lo, interior):
    """Input index and validity of pad's output index (lo / interior per dim; lo may be < 0)."""
    res, preds = [], []
    for i, n, l, it in zip(idx, in_shape, lo, interior):
        t = X.sub(i, X.const(l))
        preds.append(X.cmp("ge", t, 0))
        if it:
            preds.append(X.cmp("eq", X.mod(t, it + 1), 0))
            t = X.div(t, it + 1)
        preds.append(X.cmp("lt", t, n))
        res.append(t)
    ok = X.all_of(preds)
    return _clamp(res, ok), ok


def concat_piece(idx, axis, offset, size):
    """Index into the concat operand at [offset, offset + size) along axis, and whether idx is there."""
    t = X.sub(idx[axis], X.const(offset))
    ok = X.and_(X.cmp("ge", t, 0), X.cmp("lt", t, size))
    res = list(idx)
    res[axis] = X.select(ok, t, X.ZERO)
    return tuple(res), ok


def out_size(n, k, s, p, d):
    """Output positions of a window of k taps (dilation d) at stride s over n + 2p."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def unfold(idx, in_shape, kernel, stride, padding, dilation):
    """[N, C*kh*kw, OH*OW] -> [N, C, H, W] (im2col) and validity (inside the unpadded image)."""
    n, ck, l = idx
    (kh, kw), ow = kernel, out_size(in_shape[3], kernel[1], stride[1], padding[1], dilation[1])
    r = X.mod(ck, kh * kw)
    parts = (X.div(ck, kh * kw), X.div(r, kw), X.mod(r, kw), X.div(l, ow), X.mod(l, ow))
    return unfold_parts(n, parts, in_shape, kernel, stride, padding, dilation)


def unfold_parts(n, parts, in_shape, kernel, stride, padding, dilation):
    """unfold's input index from the factored output index (c, ki, kj, oy, ox): a loop nest over
    [N, C, kh, kw, OH, OW] needs no division."""
    c, ki, kj, oy, ox = parts
    y, x = window_pixel(ki, kj, oy, ox, stride, padding, dilation)
    ok = inside(y, x, in_shape[2:])
    return _clamp((n, c, y, x), ok), ok


def unfold_column(n, c, ki, kj, oy, ox, kernel, ow):
    """The index [n, c*kh*kw + ki*kw + kj, oy*OW + ox] of unfold's output (fold's input) for tap
    (ki, kj) of channel c's window at output position (oy, ox)."""
    kh, kw = kernel
    return n, X.add(X.add(X.mul(c, kh * kw), X.mul(ki, kw)), kj), X.add(X.mul(oy, ow), ox)


def window_pixel(ki, kj, oy, ox, stride, padding, dilation):
    """The image pixel (y, x) that tap (ki, kj) of the window at output position (oy, ox) reads
    (unfold) or adds into (fold); outside the image where the window overlaps the padding."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    y = X.sub(X.add(X.mul(oy, sh), X.mul(ki, dh)), X.const(ph))
    x = X.sub(X.add(X.mul(ox, sw), X.mul(kj, dw)), X.const(pw))
    return y, x


def inside(y, x, hw):
    h, w = hw
    return X.all_of([X.cmp("ge", y, 0), X.cmp("lt", y, h), X.cmp("ge", x, 0), X.cmp("lt", x, w)])
