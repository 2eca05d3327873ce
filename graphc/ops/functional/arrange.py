"""torch's rearranging ops written with existing primitives (so they trace and lower on every
backend with no kernel of their own): tril/triu, flip, roll, movedim, broadcast_tensors,
meshgrid, diagonal/diag/diag_embed, repeat_interleave."""
from __future__ import annotations

from ...tensor import Tensor, _dim
from .filled import iota, zeros_like
from .gather import take_along_axis
from .joining import cat, narrow, pad_prim, slice_prim
from .pointwise import eq, ge, le, sub
from .promotion import broadcast_shapes, broadcast_to
from .select import where
from .shapes import flatten, permute, reshape, unsqueeze


def iota_on(x, shape, axis):
    """iota on x's device (eager cuda tensors get a device copy; a tracer's stays a graph node)."""
    t = iota(shape, axis)
    return t if x._value is not None or x.device.type == "cpu" else t.to(x.device)


def _tri_mask(x, diagonal, keep, name):
    if x.ndim < 2:
        raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions")
    n, m = x.shape[-2], x.shape[-1]
    offset = sub(iota_on(x, (n, m), 1), iota_on(x, (n, m), 0))      # col - row
    return keep(offset, int(diagonal))


def tril(x, diagonal=0):
    """The lower triangle (col - row <= diagonal) of the last two dims, zeros elsewhere."""
    return where(_tri_mask(x, diagonal, le, "tril"), x, zeros_like(x))


def triu(x, diagonal=0):
    return where(_tri_mask(x, diagonal, ge, "triu"), x, zeros_like(x))


def _dims(dims, ndim):
    if isinstance(dims, int):
        dims = (dims,)
    out = [_dim(d, ndim) for d in dims]
    if len(set(out)) != len(out):
        raise RuntimeError("dims has duplicates")
    return out


def flip(x, dims):
    """Reverse the order along dims: a gather at n-1-i (slices refuse negative steps)."""
    for d in _dims(dims, x.ndim):
        n = x.shape[d]
        if n <= 1:
            continue
        idx = sub(n - 1, iota_on(x, tuple(x.shape), d))
        x = take_along_axis(x, idx, d)
    return x


def fliplr(x):
    return flip(x, 1)


def flipud(x):
    return flip(x, 0)


def roll(x, shifts, dims=None):
    """Shift elements along dims, wrapping around: two narrows and a cat per dim."""
    if dims is None:
        if not isinstance(shifts, int):
            shifts = tuple(shifts)
            if len(shifts) != 1:
                raise RuntimeError("roll: shifts must be one int when dims is not given")
            shifts = shifts[0]
        return reshape(roll(flatten(x), shifts, 0), tuple(x.shape))
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
    for s, d in zip(shifts, dims):
        d = _dim(d, x.ndim)
        n = x.shape[d]
        s = s % n if n else 0
        if s:
            x = cat([narrow(x, d, n - s, s), narrow(x, d, 0, n - s)], d)
    return x


def movedim(x, source, destination):
    src = _dims(source, x.ndim)
    dst = _dims(destination, x.ndim)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({list(src)} dims) should "
                           f"contain the same number of dims as destination ({list(dst)} dims)")
    order = [None] * x.ndim
    for s, d in zip(src, dst):
        order[d] = s
    rest = iter(i for i in range(x.ndim) if i not in src)
    order = [next(rest) if o is None else o for o in order]
    return permute(x, tuple(order)) if order != list(range(x.ndim)) else x


moveaxis = movedim


def broadcast_tensors(*tensors):
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    shape = broadcast_shapes(*(tuple(t.shape) for t in tensors))
    return tuple(broadcast_to(t, shape) for t in tensors)


def meshgrid(*tensors, indexing="ij"):
    """Coordinate grids; indexing='xy' swaps the first two output dims (numpy's convention)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f"torch.meshgrid: indexing must be one of 'xy' or 'ij', but received: {indexing}")
    for t in tensors:
        if t.ndim > 1:
            raise RuntimeError("torch.meshgrid: Expected 0D or 1D tensor in the tensor list")
    pos = list(range(len(tensors)))
    if indexing == "xy" and len(tensors) >= 2:
        pos[0], pos[1] = 1, 0
    shape = [0] * len(tensors)
    for p, t in zip(pos, tensors):
        shape[p] = t.numel()
    out = []
    for p, t in zip(pos, tensors):
        view = [1] * len(tensors)
        view[p] = t.numel()
        out.append(broadcast_to(reshape(t, tuple(view)), tuple(shape)))
    return tuple(out)


def diagonal(x, offset=0, dim1=0, dim2=1):
    """The diagonal of dims (dim1, dim2) as a new last dim: a strided slice of the two dims
    flattened (start at the offset, step m+1)."""
    d1, d2 = _dim(dim1, x.ndim), _dim(dim2, x.ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    rest = [i for i in range(x.ndim) if i not in (d1, d2)]
    n, m = x.shape[d1], x.shape[d2]
    y = permute(x, tuple(rest + [d1, d2])) if rest + [d1, d2] != list(range(x.ndim)) else x
    lead = tuple(y.shape[:-2])
    y = reshape(y, lead + (n * m,))
    length = max(0, min(n, m - offset) if offset >= 0 else min(n + offset, m))
    start = offset if offset >= 0 else -offset * m
    if length == 0:
        return slice_prim(y, [0] * y.ndim, list(lead) + [0], [1] * y.ndim)
    stop = start + (length - 1) * (m + 1) + 1
    return slice_prim(y, [0] * len(lead) + [start], list(lead) + [stop], [1] * len(lead) + [m + 1])


_diagonal = diagonal      # diag's argument named `diagonal` (torch's) shadows the function


def diag_embed(x, offset=0, dim1=-2, dim2=-1):
    """x's last dim placed on the offset diagonal of two new dims (dim1, dim2) of the output."""
    n = x.shape[-1] if x.ndim else 1
    big = n + abs(offset)
    lead = tuple(x.shape[:-1])
    # element (i, j) of the square takes x[..., i] (offset >= 0) or x[..., j] (offset < 0)
    xp = pad_prim(x, [0] * x.ndim, [0] * (x.ndim - 1) + [abs(offset)], [0] * x.ndim, 0)
    xb = broadcast_to(unsqueeze(xp, -1 if offset >= 0 else -2), lead + (big, big))
    mask = eq(sub(iota_on(x, (big, big), 1), iota_on(x, (big, big), 0)), offset)
    out = where(mask, xb, zeros_like(xb))
    nd = out.ndim
    return movedim(out, (nd - 2, nd - 1), (_dim(dim1, nd), _dim(dim2, nd)))


def diag(x, diagonal=0):
    """A 1-D input's square matrix with it on the diagonal, or a 2-D input's diagonal."""
    if x.ndim == 1:
        return diag_embed(x, diagonal, 0, 1)
    if x.ndim == 2:
        return _diagonal(x, diagonal, 0, 1)
    raise RuntimeError("diag(): Supports 1D or 2D tensors. Got {}D".format(x.ndim))


def repeat_interleave(x, repeats, dim=None, output_size=None):
    """Each element repeated `repeats` times along dim (an int; per-element repeat counts make
    a data-dependent shape and are refused)."""
    if isinstance(repeats, Tensor):
        if repeats.numel() != 1:
            raise NotImplementedError("repeat_interleave: per-element tensor repeats are not supported "
                                      "by graphc (data-dependent output shape); pass an int")
        repeats = int(repeats.item())
    if repeats < 0:
        raise RuntimeError("repeat_interleave: repeats can not be negative")
    if dim is None:
        x, dim = flatten(x), 0
    d = _dim(dim, x.ndim)
    shape = tuple(x.shape)
    y = broadcast_to(unsqueeze(x, d + 1), shape[:d + 1] + (repeats,) + shape[d + 1:])
    return reshape(y, shape[:d] + (shape[d] * repeats,) + shape[d + 1:])


def numel(x):
    """torch.numel: the number of elements (a Python int, known at trace time)."""
    return x.numel()
