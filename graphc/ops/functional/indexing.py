"""Indexing: x[index] (getitem) and x[index] = v (setitem) with torch's rules for ints,
slices, None, Ellipsis, bool masks and integer index tensors; index_select."""
from __future__ import annotations

import numpy as np

from ... import autograd as _ag
from ... import dtypes as _dt
from ... import mode as _tracing
from ...tensor import Tensor, _dim
from ..from_data import tensor
from .gather import take_along_axis
from .joining import slice_prim
from .pointwise import ge, logical_or, lt
from .promotion import _prep, _py_max, _py_sum, broadcast_to
from .reductions import any
from .select import where
from .shapes import permute, reshape


def index_select(x, dim, index):
    d = _dim(dim, x.ndim)
    idx = [slice(None)] * d + [index]
    return getitem(x, tuple(idx))


# ---- indexing --------------------------------------------------------------------------------------
class _NewAxisIndex:
    """A bool scalar index (x[True], x[False]): a new axis of size 1, indexed by the tensor
    [0] (True) or [] (False), which is how torch treats it."""
    __slots__ = ("index",)

    def __init__(self, flag):
        self.index = Tensor._wrap(np.zeros(1 if flag else 0, np.int64))


def _normalize_index(x, index):
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    for e in index:
        if isinstance(e, (list, np.ndarray)):
            e = tensor(e, device=None if x._value is not None else x.device)
        if isinstance(e, (bool, np.bool_)):
            out.append(_NewAxisIndex(bool(e)))
            continue
        if isinstance(e, Tensor) and e.dtype is _dt.bool_:
            if e._value is not None:
                _tracing.data_dependent(e, "boolean-mask indexing x[mask] (its shape depends on the data)",
                                        hint="use gc.where(mask, x, 0) or masked_fill instead")
            if e.ndim == 0:
                out.append(_NewAxisIndex(bool(e)))
                continue
        if isinstance(e, Tensor) and e.dtype not in (_dt.int64, _dt.bool_):
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        out.append(e)

    def width(e):   # how many of x's dims an entry consumes (a k-d mask consumes k)
        if e is None or e is Ellipsis or isinstance(e, _NewAxisIndex):
            return 0
        return e.ndim if isinstance(e, Tensor) and e.dtype is _dt.bool_ else 1

    n_ell = _py_sum(1 for e in out if e is Ellipsis)
    if n_ell > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    consumed = _py_sum(width(e) for e in out)
    if consumed > x.ndim:
        raise IndexError(f"too many indices for tensor of dimension {x.ndim}")
    if n_ell:
        i = next(k for k, e in enumerate(out) if e is Ellipsis)
        out[i:i + 1] = [slice(None)] * (x.ndim - consumed)
    else:
        out += [slice(None)] * (x.ndim - consumed)
    # masks become one int64 index tensor per dim they cover (their nonzero())
    res, d = [], 0
    for e in out:
        if isinstance(e, Tensor) and e.dtype is _dt.bool_:
            for k, (m, n) in enumerate(zip(e.shape, x.shape[d:d + e.ndim])):
                if m != n:
                    raise IndexError(f"The shape of the mask {list(e.shape)} at index {k} does not match "
                                     f"the shape of the indexed tensor {list(x.shape)} at index {d + k}")
            # (a cuda mask is read on the host: the result's shape depends on it, as in torch)
            res.extend(Tensor._wrap(a.astype(np.int64)).to(e.device) for a in np.nonzero(e._host()))
        else:
            res.append(e)
        d += width(e)
    return res


def _int_index(e, n, d):
    try:
        i = int(e.__index__())
    except (AttributeError, TypeError):
        raise IndexError(f"only integers, slices (`:`), ellipsis (`...`), None and long or "
                         f"bool tensors are valid indices (got {type(e).__name__})") from None
    if not -n <= i < n:
        raise IndexError(f"index {i} is out of bounds for dimension {d} with size {n}")
    return i % n


def _check_index_bounds(idx, n, d):
    """Eager index tensors are checked against their dim (the gather only sees a flat index)."""
    if idx._value is None and idx.numel():
        if idx.is_cuda:     # checked on the device; one flag is read back (torch raises here too)
            if not bool(any(logical_or(lt(idx, -n), ge(idx, n)))):
                return
        data = idx._host()
        bad = data[(data < -n) | (data >= n)]
        if bad.size:
            raise IndexError(f"index {bad.flat[0]} is out of bounds for dimension {d} with size {n}")


def getitem(x, index):
    """x[index] with torch's rules: ints and slices select, None adds an axis, integer
    tensors gather (placed where they stand if adjacent, else first)."""
    entries = _normalize_index(x, index)
    starts, stops, steps = [0] * x.ndim, list(x.shape), [1] * x.ndim
    layout = []      # the result's dims: ("new",) | ("dim", d) | ("adv", d, index tensor)
    d = 0
    for e in entries:
        if e is None:
            layout.append(("new",))
            continue
        if isinstance(e, _NewAxisIndex):
            layout.append(("adv", None, e.index))
            continue
        n = x.shape[d]
        if isinstance(e, slice):
            if e.step is not None and e.step <= 0:
                raise ValueError("step must be greater than zero")
            a, b, s = e.indices(n)
            starts[d], stops[d], steps[d] = a, _py_max(a, b), s
            layout.append(("dim", d))
        elif isinstance(e, Tensor):
            _check_index_bounds(e, n, d)
            layout.append(("adv", d, e))
        else:
            i = _int_index(e, n, d)
            starts[d], stops[d] = i, i + 1
        d += 1
    y = slice_prim(x, starts, stops, steps)
    shape = tuple(1 if item[0] == "new" or item[1] is None else y.shape[item[1]] for item in layout)
    y = reshape(y, shape)
    adv = [(p, item[2]) for p, item in enumerate(layout) if item[0] == "adv"]
    return _advanced(y, adv) if adv else y


def _advanced(y, adv):
    """Gather y at the tensor indices `adv` [(dim, index)], numpy/torch placement rules."""
    dims = [p for p, _ in adv]
    idx = _prep(*[i for _, i in adv], dtype=_dt.int64)
    bshape = tuple(idx[0].shape)
    sizes = [y.shape[p] for p in dims]
    rest = [p for p in range(y.ndim) if p not in dims]
    yp = permute(y, dims + rest)
    rest_shape = tuple(y.shape[p] for p in rest)
    n_adv = 1
    for s in sizes:
        n_adv *= s
    r = 1
    for s in rest_shape:
        r *= s
    y2 = reshape(yp, (n_adv, r))
    lin = None
    stride = n_adv
    for i, n in zip(idx, sizes):
        stride //= n if n else 1
        i = where(lt(i, 0), i + n, i)
        term = i * stride if stride != 1 else i
        lin = term if lin is None else lin + term
    m = 1
    for s in bshape:
        m *= s
    lin = broadcast_to(reshape(lin, (m, 1)), (m, r))
    out = reshape(take_along_axis(y2, lin, 0), bshape + rest_shape)
    if dims == list(range(dims[0], dims[0] + len(dims))) and dims[0] > 0:
        nb = len(bshape)
        lead = list(range(nb, nb + dims[0]))
        out = permute(out, lead + list(range(nb)) + list(range(nb + dims[0], out.ndim)))
    return out


def setitem(x, index, value):
    """x[index] = value: an eager, in-place write of the data."""
    if _tracing.active() is not None:
        raise _tracing.TraceError(
            f"indexed assignment `x[...] = v` is not supported while tracing "
            f"({_tracing.user_location()}); build the result with gc.where(mask, v, x) or gc.cat")
    if _ag.is_grad_enabled() and (x.requires_grad or (isinstance(value, Tensor) and value.requires_grad)):
        raise RuntimeError("indexed assignment into a tensor that requires grad is not supported "
                           "by graphc's autograd; build the result with gc.where or gc.cat, or "
                           "assign under gc.no_grad()")
    if not x._data.flags.writeable:
        raise RuntimeError("unsupported operation: cannot assign into an expanded (broadcast) view")
    # as torch: ints, slices and None select a view, then the index tensors write into it
    # (so x[0, :, idx] = v places idx's dims as x[0, :, idx] reads them, not as numpy would)
    basic, adv, d = [], [], 0
    for e in _normalize_index(x, index):
        if e is None or isinstance(e, _NewAxisIndex):
            if e is not None:
                adv.append((len(basic), e.index._data))
            basic.append(None)
            continue
        n = x.shape[d]
        if isinstance(e, Tensor):
            _check_index_bounds(e, n, d)
            adv.append((len(basic), e._data))
            basic.append(slice(None))
        elif isinstance(e, slice):
            if e.step is not None and e.step <= 0:
                raise ValueError("step must be greater than zero")
            basic.append(e)
        else:
            basic.append(_int_index(e, n, d))
            d += 1
            continue
        d += 1
    view = x._data[tuple(basic) + (Ellipsis,)]     # (a 0-d view, not a scalar, when all are ints)
    v = value._data if isinstance(value, Tensor) else value
    if adv:
        full = [slice(None)] * view.ndim
        at = 0
        for k, e in enumerate(basic):      # the view's dim of each kept entry
            for p, a in adv:
                if p == k:
                    full[at] = a
            if not isinstance(e, int):
                at += 1
        view[tuple(full)] = v
    else:
        view[...] = v
    x._version[0] += 1
