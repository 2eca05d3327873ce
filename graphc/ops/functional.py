"""User-level tensor operations: torch's promotion, broadcasting and argument conventions
on top of the strict primitives. Tensor methods and graphc.* functions land here; VJP rules
use these functions too, so they work eagerly, while tracing and for higher-order grads.
"""
from __future__ import annotations

import builtins
from collections import namedtuple

import numpy as np

from .. import dtypes as _dt
from .. import tracing as _tracing
from ..tensor import Tensor, apply, apply_on, _dim

_py_max, _py_min, _py_sum, _py_abs = builtins.max, builtins.min, builtins.sum, builtins.abs
_py_any, _py_all = builtins.any, builtins.all

# ---- constants and conversion ------------------------------------------------------------------


def _pyval(v, dtype):
    if dtype.is_floating_point:
        return float(v)
    if dtype is _dt.bool_:
        return bool(v)
    return int(v)


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def full(shape, fill_value, dtype=None, requires_grad=False, device=None):
    shape = _shape_arg((shape,)) if isinstance(shape, (tuple, list)) else (int(shape),)
    dtype = _dt.as_dtype(dtype) if dtype is not None else _dt.scalar_dtype(fill_value)
    t = apply_on(device, "full", shape=shape, value=_pyval(fill_value, dtype), dtype=dtype)
    return _requires(t, requires_grad)


def _on(t, device):
    """t moved to `device` (creation functions' device=; None: where it is)."""
    return t if device is None else t.to(device)


def _device_of(x, device):
    """device= of a *_like function: as given, else x's (the CPU for a tracer)."""
    return device if device is not None or x._value is not None else x.device


def _requires(t, requires_grad):
    if requires_grad:
        if t._value is not None:
            raise _tracing.TraceError("creating a tensor with requires_grad=True inside a compiled "
                                      "function is not supported; create it outside and capture it")
        t.requires_grad_(True)
    return t


def zeros(*shape, dtype=None, requires_grad=False, device=None):
    return full(_shape_arg(shape), 0, dtype=dtype or _dt.get_default_dtype(), requires_grad=requires_grad,
                device=device)


def ones(*shape, dtype=None, requires_grad=False, device=None):
    return full(_shape_arg(shape), 1, dtype=dtype or _dt.get_default_dtype(), requires_grad=requires_grad,
                device=device)


def empty(*shape, dtype=None, requires_grad=False, device=None):
    return zeros(*shape, dtype=dtype, requires_grad=requires_grad, device=device)


def full_like(x, fill_value, dtype=None, requires_grad=False, device=None):
    return full(tuple(x.shape), fill_value, dtype=dtype or x.dtype, requires_grad=requires_grad,
                device=_device_of(x, device))


def zeros_like(x, dtype=None, requires_grad=False, device=None):
    return full_like(x, 0, dtype=dtype, requires_grad=requires_grad, device=device)


def ones_like(x, dtype=None, requires_grad=False, device=None):
    return full_like(x, 1, dtype=dtype, requires_grad=requires_grad, device=device)


def empty_like(x, dtype=None, requires_grad=False, device=None):
    return zeros_like(x, dtype=dtype, requires_grad=requires_grad, device=device)


def iota(shape, axis, dtype=_dt.int64):
    return apply("iota", shape=tuple(shape), axis=axis, dtype=_dt.as_dtype(dtype))


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device=None):
    if device is not None:
        return _requires(_on(arange(start, end, step, dtype), device), requires_grad)
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if dtype is None:
        dtype = (_dt.get_default_dtype() if _py_any(isinstance(v, float) for v in (start, end, step))
                 else _dt.int64)
    dtype = _dt.as_dtype(dtype)
    n = _py_max(0, int(np.ceil((end - start) / step)))
    r = iota((n,), 0, dtype=_dt.float64 if dtype.is_floating_point else _dt.int64)
    if step != 1:
        r = r * step
    if start != 0:
        r = r + start
    return _requires(cast(r, dtype), requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False, device=None):
    if device is not None:
        return _requires(_on(linspace(start, end, steps, dtype), device), requires_grad)
    dtype = _dt.as_dtype(dtype) if dtype is not None else _dt.get_default_dtype()
    if steps == 1:
        return _requires(full((1,), start, dtype=dtype), requires_grad)
    r = iota((steps,), 0, dtype=_dt.float64) * ((end - start) / (steps - 1)) + start
    return _requires(cast(r, dtype), requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False, device=None):
    if device is not None:
        return _requires(_on(eye(n, m, dtype), device), requires_grad)
    m = n if m is None else m
    e = eq(iota((n, m), 0), iota((n, m), 1))
    return _requires(cast(e, dtype or _dt.get_default_dtype()), requires_grad)


def _to_tensor(v, dtype):
    """A Python scalar as a 0-d tensor of dtype (a `full` node while tracing)."""
    return apply("full", shape=(), value=_pyval(v, dtype), dtype=dtype)


def _as(x, dtype):
    if not isinstance(x, Tensor):
        if isinstance(x, (list, tuple, np.ndarray)):
            from .creation import tensor
            x = tensor(x)
        else:
            return _to_tensor(x, dtype)
    return x if x._dtype is dtype else cast(x, dtype)


def cast(x, dtype):
    dtype = _dt.as_dtype(dtype)
    return x if x._dtype is dtype else apply("cast", x, dtype=dtype)


def broadcast_shapes(*shapes):
    n = _py_max(len(s) for s in shapes)
    out = []
    for i in reversed(range(n)):   # from the last dim, as torch's infer_size (so errors name the same dim)
        size = 1
        for k, s in enumerate(shapes):
            d = s[i - n + len(s)] if i - n + len(s) >= 0 else 1
            if d != 1:
                if size != 1 and d != size:
                    raise RuntimeError(f"The size of tensor a ({size}) must match the size of tensor "
                                       f"b ({d}) at non-singleton dimension {i}")
                size = d
        out.append(size)
    return tuple(reversed(out))


def broadcast_to(x, shape):
    shape = tuple(shape)
    return x if tuple(x.shape) == shape else apply("broadcast_to", x, shape=shape)


def _prep(*operands, dtype=None, floating=False):
    """Promote operands to one dtype (torch.result_type) and broadcast them to one shape."""
    if dtype is None:
        dtype = _dt.result_type(*operands)
    if floating and not dtype.is_floating_point:
        dtype = _dt.get_default_dtype()
    ts = [_as(o, dtype) for o in operands]
    shape = broadcast_shapes(*[tuple(t.shape) for t in ts])
    return [broadcast_to(t, shape) for t in ts]


# ---- elementwise -----------------------------------------------------------------------------------
def _unary_float(name):
    def op(x):
        x = _as(x, x.dtype if x.dtype.is_floating_point else _dt.get_default_dtype())
        return apply(name, x)
    op.__name__ = name
    return op


exp, log, sqrt, rsqrt, tanh, sigmoid, sin, cos, erf = (
    _unary_float(n) for n in ("exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "sin", "cos", "erf"))


def neg(x):
    return apply("neg", x)


def abs(x):
    return x if x.dtype is _dt.bool_ else apply("abs", x)


def sign(x):
    return x if x.dtype is _dt.bool_ else apply("sign", x)


def log1p(x):
    return log(1 + x)


def expm1(x):
    return exp(x) - 1


def square(x):
    if x.dtype is _dt.bool_:     # torch: square of bool is int64 (pow(x, 2))
        x = cast(x, _dt.int64)
    return x * x


def reciprocal(x):
    return 1 / _as(x, x.dtype if x.dtype.is_floating_point else _dt.get_default_dtype())


def add(a, b, alpha=1):
    if alpha != 1:
        b = mul(b, alpha)
    a_, b_ = _prep(a, b)
    if a_.dtype is _dt.bool_:          # torch: bool + bool is logical or
        return apply("logical_or", a_, b_)
    return apply("add", a_, b_)


def _is_bool(v):
    return v.dtype is _dt.bool_ if isinstance(v, Tensor) else isinstance(v, (bool, np.bool_))


def sub(a, b, alpha=1):
    if _is_bool(a) or _is_bool(b):
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. "
                           "If you are trying to invert a mask, use the `~` or `logical_not()` "
                           "operator instead.")
    if alpha != 1:
        b = mul(b, alpha)
    return apply("sub", *_prep(a, b))


def mul(a, b):
    a_, b_ = _prep(a, b)
    if a_.dtype is _dt.bool_:
        return apply("logical_and", a_, b_)
    return apply("mul", a_, b_)


def div(a, b, rounding_mode=None):
    if rounding_mode is not None:
        raise NotImplementedError(f"div(rounding_mode={rounding_mode!r}) is not supported by graphc")
    return apply("div", *_prep(a, b, floating=True))


true_divide = divide = div


def pow(a, b):
    return apply("pow", *_prep(a, b))


def floor_divide(a, b):
    return apply("floor_divide", *_prep(a, b))


def remainder(a, b):
    return apply("remainder", *_prep(a, b))


def floor(x):
    """Round down (as torch.floor: integers are returned unchanged)."""
    return apply("floor", x) if x.dtype.is_floating_point else x


def ceil(x):
    return neg(floor(neg(x))) if x.dtype.is_floating_point else x


def maximum(a, b):
    a_, b_ = _prep(a, b)
    return apply("logical_or" if a_.dtype is _dt.bool_ else "maximum", a_, b_)


def minimum(a, b):
    a_, b_ = _prep(a, b)
    return apply("logical_and" if a_.dtype is _dt.bool_ else "minimum", a_, b_)


def _cmp(name):
    def op(a, b):
        return apply(name, *_prep(a, b))
    op.__name__ = name
    return op


lt, le, gt, ge, eq, ne = (_cmp(n) for n in ("lt", "le", "gt", "ge", "eq", "ne"))


def _to_bool(x):
    return x if x.dtype is _dt.bool_ else ne(x, 0)


def logical_not(x):
    return apply("logical_not", _to_bool(x))


def logical_and(a, b):
    return apply("logical_and", *_prep(_to_bool(_as(a, _dt.bool_)), _to_bool(_as(b, _dt.bool_))))


def logical_or(a, b):
    return apply("logical_or", *_prep(_to_bool(_as(a, _dt.bool_)), _to_bool(_as(b, _dt.bool_))))


def logical_xor(a, b):
    return ne(_to_bool(_as(a, _dt.bool_)), _to_bool(_as(b, _dt.bool_)))


def where(condition, x=None, y=None):
    if x is None and y is None:
        raise _tracing.TraceError("where(condition) with one argument has a data-dependent shape; "
                                  "use where(condition, x, y)") if _tracing.active() else \
            RuntimeError("where(condition) is not supported; use nonzero()")
    cond = _to_bool(_as(condition, _dt.bool_))
    a, b = _as(x, _dt.result_type(x, y)), _as(y, _dt.result_type(x, y))
    shape = broadcast_shapes(tuple(cond.shape), tuple(a.shape), tuple(b.shape))
    return apply("where", broadcast_to(cond, shape), broadcast_to(a, shape), broadcast_to(b, shape))


def clamp(x, min=None, max=None):
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    # the result has the promoted type of x and the bounds (an int tensor clamped at 0.5 is float)
    out = cast(x, _dt.result_type(*[v for v in (x, min, max) if v is not None]))
    if min is not None:
        out = where(lt(out, min), min, out)
    if max is not None:
        out = where(gt(out, max), max, out)
    if out.dtype.is_floating_point:
        # NaN, as torch, where x or a bound is NaN (no comparison holds there, so the wheres above
        # pass x through), with torch's gradient there: 0 for x and for tensor bounds (torch:
        # g * (min <= x <= max)), not the pass-through's g. Masked only where it can matter.
        bad = ne(out, out) if x.dtype.is_floating_point and _grad_wanted(x, min, max) else None
        for bound in (min, max):
            if isinstance(bound, Tensor) and bound.dtype.is_floating_point:
                isnan_b = ne(bound, bound)
            elif isinstance(bound, float) and bound != bound:
                isnan_b = full_like(out, True, dtype=_dt.bool_)
            else:
                continue
            bad = isnan_b if bad is None else logical_or(bad, isnan_b)
        if bad is not None:
            out = where(bad, full_like(out, float("nan")), out)
    return out


def _grad_wanted(*ts):
    """Could a gradient flow from any of ts (eagerly or while tracing)?"""
    from .. import autograd as _ag
    return _ag.is_grad_enabled() and _py_any(isinstance(t, Tensor) and t.requires_grad for t in ts)


clip = clamp


def masked_fill(x, mask, value):
    return where(mask, _as(value, x.dtype) if not isinstance(value, Tensor) else cast(value, x.dtype), x)


# ---- reductions ------------------------------------------------------------------------------------
def _axes(x, dim):
    if dim is None or (isinstance(dim, (tuple, list)) and not dim):   # torch: dim=() reduces all dims
        return tuple(range(x.ndim))
    if isinstance(dim, int):
        dim = (dim,)
    axes = [_dim(d, x.ndim) for d in dim]
    if len(set(axes)) != len(axes):
        raise RuntimeError(f"dim {next(a for a in axes if axes.count(a) > 1)} appears multiple times "
                           "in the list of dims")
    return tuple(sorted(axes)) if x.ndim else ()


def sum(x, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        x = cast(x, dtype)
    elif not x.dtype.is_floating_point:
        x = cast(x, _dt.int64)
    axes = _axes(x, dim)
    if not axes and x.ndim:
        return x
    return apply("sum", x, axes=axes, keepdim=bool(keepdim))


def mean(x, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        x = cast(x, dtype)
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be either a "
                           f"floating point or complex dtype. Got: {_dt.scalar_type_name(x.dtype)}")
    axes = _axes(x, dim)
    n = 1
    for a in axes:
        n *= x.shape[a]
    return sum(x, axes, keepdim) / n if n else sum(x, axes, keepdim) * float("nan")


def var(x, dim=None, unbiased=None, keepdim=False, correction=None):
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    axes = _axes(x, dim)
    n = 1
    for a in axes:
        n *= x.shape[a]
    d = x - mean(x, axes, keepdim=True)
    return sum(d * d, axes, keepdim) / _py_max(n - correction, 0)


def std(x, dim=None, unbiased=None, keepdim=False, correction=None):
    return _root0(var(x, dim, unbiased=unbiased, keepdim=keepdim, correction=correction), 2)


def _root0(s, p):
    """s ** (1/p) for s >= 0, with torch's gradient 0 (not nan) where s == 0 (norm, std of a
    constant): the root only sees s where it is positive."""
    zero = eq(s, 0)
    safe = where(zero, ones_like(s), s)
    r = sqrt(safe) if p == 2 else pow(safe, 1.0 / p)
    return where(zero, zeros_like(r), r)


def amax(x, dim=None, keepdim=False):
    axes = _axes(x, dim)
    if x.dtype is _dt.bool_:
        return cast(amax(cast(x, _dt.int64), dim, keepdim), _dt.bool_)
    return apply("max", x, axes=axes, keepdim=bool(keepdim)) if axes or not x.ndim else x


def amin(x, dim=None, keepdim=False):
    if x.dtype is _dt.bool_:
        return logical_not(amax(logical_not(x), dim, keepdim))
    return neg(amax(neg(x), dim, keepdim))


MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])


def argmax(x, dim=None, keepdim=False):
    if x.dtype is _dt.bool_:
        x = cast(x, _dt.int64)
    if dim is None:
        r = apply("argmax", reshape(x, (-1,)), axis=0, keepdim=False)
        return reshape(r, (1,) * x.ndim) if keepdim else r
    if x.ndim == 0:
        return zeros((), dtype=_dt.int64)
    return apply("argmax", x, axis=_dim(dim, x.ndim), keepdim=bool(keepdim))


def argmin(x, dim=None, keepdim=False):
    if x.dtype is _dt.bool_:
        x = cast(x, _dt.int64)
    return argmax(neg(x), dim, keepdim)


def max(x, dim=None, keepdim=False):
    if isinstance(dim, Tensor):           # torch.max(a, b) is maximum
        return maximum(x, dim)
    if dim is None:
        return amax(x)
    idx = argmax(x, dim, keepdim=True)
    d = _dim(dim, x.ndim) if x.ndim else 0
    vals = take_along_axis(x, idx, d) if x.ndim else x
    if not keepdim and x.ndim:
        vals, idx = squeeze(vals, d), squeeze(idx, d)
    return MaxResult(vals, idx)


def min(x, dim=None, keepdim=False):
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    if dim is None:
        return amin(x)
    idx = argmin(x, dim, keepdim=True)
    d = _dim(dim, x.ndim) if x.ndim else 0
    vals = take_along_axis(x, idx, d) if x.ndim else x
    if not keepdim and x.ndim:
        vals, idx = squeeze(vals, d), squeeze(idx, d)
    return MinResult(vals, idx)


def any(x, dim=None, keepdim=False):
    return gt(sum(cast(_to_bool(x), _dt.int64), dim, keepdim), 0)


def all(x, dim=None, keepdim=False):
    return eq(sum(cast(logical_not(x), _dt.int64), dim, keepdim), 0)


def logsumexp(x, dim, keepdim=False):
    if not x.dtype.is_floating_point:       # int and bool inputs give a float result, as torch
        x = cast(x, _dt.get_default_dtype())
    m = detach(amax(x, dim, keepdim=True))
    m = where(eq(abs(m), float("inf")), zeros_like(m), m)
    out = log(sum(exp(x - m), dim, keepdim=True)) + m
    return out if keepdim else squeeze(out, _axes(x, dim))


def norm(x, p=2, dim=None, keepdim=False):
    if p == 2 or p == "fro":
        return _root0(sum(x * x, dim, keepdim), 2)
    if p == 1:
        return sum(abs(x), dim, keepdim)
    if p == float("inf"):
        return amax(abs(x), dim, keepdim)
    return _root0(sum(pow(abs(x), p), dim, keepdim), p)


def detach(x):
    return x.detach()


def clone(x):
    if x._value is not None:
        return x  # SSA values are immutable: a clone is the same value
    return add(x, zeros((), dtype=x.dtype)) if x.dtype is not _dt.bool_ else logical_or(x, False)


# ---- shapes ----------------------------------------------------------------------------------------
def _infer_shape(shape, numel):
    shape = list(shape)
    neg = [i for i, s in enumerate(shape) if s == -1]
    if len(neg) > 1:
        raise RuntimeError("only one dimension can be inferred")
    if neg:
        known = 1
        for i, s in enumerate(shape):
            if i != neg[0]:
                known *= s
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{shape}' is invalid for input of size {numel}")
        shape[neg[0]] = numel // known
    return tuple(shape)


def reshape(x, *shape):
    shape = _infer_shape(_shape_arg(shape), x.numel())
    return x if tuple(x.shape) == shape else apply("reshape", x, shape=shape)


view = reshape


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = _dim(start_dim, x.ndim), _dim(end_dim, x.ndim)
    shape = tuple(x.shape)
    return reshape(x, shape[:s] + (-1 if shape[s:e + 1] else 1,) + shape[e + 1:]) if s <= e else x


def unsqueeze(x, dim):
    d = _dim(dim, x.ndim + 1)
    shape = tuple(x.shape)
    return reshape(x, shape[:d] + (1,) + shape[d:])


def squeeze(x, dim=None):
    shape = tuple(x.shape)
    if dim is None:
        dims = {i for i, s in enumerate(shape) if s == 1}
    else:
        dims = {_dim(d, x.ndim) for d in ((dim,) if isinstance(dim, int) else dim)} if x.ndim else set()
        dims = {d for d in dims if shape[d] == 1}
    return reshape(x, tuple(s for i, s in enumerate(shape) if i not in dims))


def permute(x, *dims):
    dims = _shape_arg(dims)
    if len(dims) != x.ndim:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match "
                           f"the length of the desired ordering of dimensions i.e. input.dim() = {x.ndim} "
                           f"is not equal to len(dims) = {len(dims)}")
    dims = tuple(_dim(d, x.ndim) for d in dims)
    if len(set(dims)) != len(dims):
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return x if dims == tuple(range(x.ndim)) else apply("permute", x, perm=dims)


def transpose(x, dim0, dim1):
    if x.ndim < 2 and x.ndim == 0:
        return x
    p = list(range(x.ndim))
    a, b = _dim(dim0, x.ndim), _dim(dim1, x.ndim)
    p[a], p[b] = p[b], p[a]
    return permute(x, p)


swapaxes = transpose


def t(x):
    if x.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {x.ndim}D")
    return transpose(x, 0, 1) if x.ndim == 2 else x


def mT(x):
    if x.ndim < 2:
        raise RuntimeError("tensor.mT is only supported on matrices or batches of matrices. Got 1-D tensor.")
    return transpose(x, -2, -1)


def expand(x, *sizes):
    sizes = _shape_arg(sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater or "
                           f"equal to the number of dimensions in the tensor ({x.ndim})")
    for i, s in enumerate(sizes[:lead]):
        if s < 0:
            raise RuntimeError(f"The expanded size of the tensor ({s}) isn't allowed in a leading, "
                               f"non-existing dimension {i}")
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    return broadcast_to(x, shape)


def expand_as(x, other):
    return broadcast_to(x, tuple(other.shape))


def repeat(x, *sizes):
    sizes = _shape_arg(sizes)
    if len(sizes) < x.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor")
    shape = (1,) * (len(sizes) - x.ndim) + tuple(x.shape)
    inter, big = [], []
    for r, s in zip(sizes, shape):
        inter += [1, s]
        big += [r, s]
    y = broadcast_to(reshape(x, inter), big)
    return reshape(y, tuple(r * s for r, s in zip(sizes, shape)))


def sum_to_shape(g, shape):
    """Sum g over the dims that broadcasting added to reach it from `shape` (broadcast's VJP)."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1)
    r = apply("sum", g, axes=axes, keepdim=True) if axes else g
    return reshape(r, shape)


def slice_prim(x, starts, stops, steps):
    if _py_all(a == 0 for a in starts) and tuple(stops) == tuple(x.shape) and _py_all(s == 1 for s in steps):
        return x
    return apply("slice", x, starts=tuple(starts), stops=tuple(stops), steps=tuple(steps))


def pad_prim(x, lo, hi, interior, value):
    if not _py_any(lo) and not _py_any(hi) and not _py_any(interior):
        return x
    return apply("pad", x, lo=tuple(lo), hi=tuple(hi), interior=tuple(interior),
                 value=_pyval(value, x.dtype))


def narrow(x, dim, start, length):
    d = _dim(dim, x.ndim)
    start = start + x.shape[d] if start < 0 else start
    if not (0 <= start and start + length <= x.shape[d]):
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({x.shape[d]}).")
    starts, stops = [0] * x.ndim, list(x.shape)
    starts[d], stops[d] = start, start + length
    return slice_prim(x, starts, stops, [1] * x.ndim)


def pad(x, pad, mode="constant", value=0.0):
    """torch.nn.functional.pad: (left, right) pairs from the last dim backwards."""
    if mode != "constant":
        raise NotImplementedError(f"pad(mode={mode!r}) is not supported; only 'constant'")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise RuntimeError("Padding length must be divisible by 2 and at most twice the number of dims")
    lo, hi = [0] * x.ndim, [0] * x.ndim
    for i in range(len(pad) // 2):
        lo[x.ndim - 1 - i], hi[x.ndim - 1 - i] = pad[2 * i], pad[2 * i + 1]
    # negative padding crops
    starts = [-a if a < 0 else 0 for a in lo]
    stops = [n + b if b < 0 else n for n, b in zip(x.shape, hi)]
    x = slice_prim(x, starts, stops, [1] * x.ndim)
    return pad_prim(x, [_py_max(a, 0) for a in lo], [_py_max(b, 0) for b in hi], [0] * x.ndim, value)


def cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    dtype = _dt.result_type(*tensors)
    # torch (legacy) skips 1-d empty tensors when concatenating higher-rank ones
    kept = [t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)]
    tensors = [cast(t, dtype) for t in (kept if kept and kept[0].ndim > 1 else tensors)]
    d = _dim(dim, tensors[0].ndim)
    for k, t in enumerate(tensors[1:], 1):
        if t.ndim != tensors[0].ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {tensors[0].ndim} and {t.ndim}")
        for i in range(t.ndim):
            if i != d and t.shape[i] != tensors[0].shape[i]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected size "
                                   f"{tensors[0].shape[i]} but got size {t.shape[i]} for tensor number {k} "
                                   "in the list.")
    if len(tensors) == 1:
        return tensors[0]
    return apply("concat", *tensors, axis=d)


concat = concatenate = cat


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for k, t in enumerate(tensors[1:], 1):
        if tuple(t.shape) != tuple(tensors[0].shape):
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(tensors[0].shape)} "
                               f"at entry 0 and {list(t.shape)} at entry {k}")
    d = _dim(dim, tensors[0].ndim + 1)
    return cat([unsqueeze(t, d) for t in tensors], d)


def split(x, split_size_or_sections, dim=0):
    d = _dim(dim, x.ndim)
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    else:
        sizes = list(split_size_or_sections)
        if _py_sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                               f"(input tensor's size at dimension {d}), but got split_sizes={sizes}")
    out, at = [], 0
    for s in sizes:
        out.append(narrow(x, d, at, s))
        at += s
    return tuple(out)


def chunk(x, chunks, dim=0):
    n = x.shape[_dim(dim, x.ndim)]
    return split(x, _py_max(1, -(-n // chunks)), dim)


def unbind(x, dim=0):
    d = _dim(dim, x.ndim)
    return tuple(squeeze(narrow(x, d, i, 1), d) for i in range(x.shape[d]))


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


# ---- gather / scatter ------------------------------------------------------------------------------
def take_along_axis(x, idx, dim):
    return apply("take_along_axis", x, idx, axis=_dim(dim, x.ndim))


def scatter_add(x, idx, src, dim):
    return apply("scatter_add", x, idx, src, axis=_dim(dim, x.ndim))


def gather(x, dim, index):
    """torch.gather: index may be smaller than x in the non-gathered dims."""
    d = _dim(dim, x.ndim)
    if index.ndim != x.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    stops = [x.shape[i] if i == d else index.shape[i] for i in range(x.ndim)]
    if _py_any(s > n for s, n in zip(stops, x.shape)):
        raise RuntimeError(f"Size does not match at dimension: index {list(index.shape)} vs input {list(x.shape)}")
    return take_along_axis(slice_prim(x, [0] * x.ndim, stops, [1] * x.ndim), index, d)


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
            from .creation import tensor
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
    from .. import autograd as _ag
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


# ---- Tensor methods and operators ------------------------------------------------------------------
def _rev(f):
    return lambda self, other: f(other, self)


def _bitwise_not(x):
    """`~x`: logical not of a bool tensor, two's complement -x - 1 of an int64 one (as torch)."""
    if x.dtype is _dt.bool_:
        return logical_not(x)
    if x.dtype is _dt.int64:
        return sub(neg(x), 1)
    raise TypeError(f"~ (bitwise_not) is only supported on bool and integer tensors, got {x.dtype.name}")


def _bitwise(logical):
    """`&`, `|`, `^` on bool tensors (graphc has no bitwise integer ops; refuse rather than
    silently computing the logical result)."""
    def op(a, b):
        if not (_is_bool(a) and _is_bool(b)):
            kinds = ", ".join(v.dtype.name if isinstance(v, Tensor) else type(v).__name__ for v in (a, b))
            raise TypeError(f"bitwise operators (&, |, ^) are only supported on bool tensors by graphc, "
                            f"got {kinds}; use gc.logical_and/logical_or/logical_xor for a truth test")
        return logical(a, b)
    return op


def _install_methods():
    M = {
        "__add__": add, "__radd__": _rev(add), "__sub__": sub, "__rsub__": _rev(sub),
        "__mul__": mul, "__rmul__": _rev(mul), "__truediv__": div, "__rtruediv__": _rev(div),
        "__pow__": pow, "__rpow__": _rev(pow), "__matmul__": matmul, "__rmatmul__": _rev(matmul),
        "__floordiv__": floor_divide, "__rfloordiv__": _rev(floor_divide),
        "__mod__": remainder, "__rmod__": _rev(remainder),
        "floor_divide": floor_divide, "remainder": remainder,
        "floor": floor, "ceil": ceil,
        "__neg__": neg, "__abs__": abs, "__invert__": _bitwise_not,
        "__and__": _bitwise(logical_and), "__or__": _bitwise(logical_or), "__xor__": _bitwise(logical_xor),
        "__rand__": _rev(_bitwise(logical_and)), "__ror__": _rev(_bitwise(logical_or)),
        "__rxor__": _rev(_bitwise(logical_xor)),
        "__lt__": lt, "__le__": le, "__gt__": gt, "__ge__": ge, "__eq__": eq, "__ne__": ne,
        "add": add, "sub": sub, "mul": mul, "div": div, "pow": pow, "matmul": matmul, "mm": mm,
        "bmm": bmm, "dot": dot, "maximum": maximum, "minimum": minimum, "eq": eq, "ne": ne,
        "lt": lt, "le": le, "gt": gt, "ge": ge, "neg": neg, "abs": abs, "sign": sign, "exp": exp,
        "log": log, "sqrt": sqrt, "rsqrt": rsqrt, "tanh": tanh, "sigmoid": sigmoid, "sin": sin,
        "cos": cos, "erf": erf, "log1p": log1p, "expm1": expm1, "square": square,
        "reciprocal": reciprocal, "clamp": clamp, "clip": clamp, "masked_fill": masked_fill,
        "logical_not": logical_not, "logical_and": logical_and, "logical_or": logical_or,
        "logical_xor": logical_xor, "where": lambda self, c, y: where(c, self, y),
        "sum": sum, "mean": mean, "var": var, "std": std, "amax": amax, "amin": amin,
        "max": max, "min": min, "argmax": argmax, "argmin": argmin, "any": any, "all": all,
        "logsumexp": logsumexp, "norm": norm, "clone": clone,
        "reshape": reshape, "view": view, "flatten": flatten, "unsqueeze": unsqueeze,
        "squeeze": squeeze, "permute": permute, "transpose": transpose, "swapaxes": transpose,
        "t": t, "expand": expand, "expand_as": expand_as, "broadcast_to": broadcast_to,
        "repeat": repeat, "narrow": narrow, "split": split, "chunk": chunk, "unbind": unbind,
        "gather": gather, "index_select": index_select,
        "scatter_add": lambda self, dim, index, src: scatter_add(self, index, src, dim),
        "view_as": lambda self, o: reshape(self, tuple(o.shape)),
        "reshape_as": lambda self, o: reshape(self, tuple(o.shape)),
        "contiguous": lambda self: self,
        "float": lambda self: cast(self, _dt.float32), "double": lambda self: cast(self, _dt.float64),
        "long": lambda self: cast(self, _dt.int64), "bool": lambda self: cast(self, _dt.bool_),
        "type_as": lambda self, o: cast(self, o.dtype),
        "new_zeros": lambda self, *s, dtype=None, device=None: zeros(*s, dtype=dtype or self.dtype,
                                                                     device=_device_of(self, device)),
        "new_ones": lambda self, *s, dtype=None, device=None: ones(*s, dtype=dtype or self.dtype,
                                                                   device=_device_of(self, device)),
        "new_full": lambda self, s, v, dtype=None, device=None: full(s, v, dtype=dtype or self.dtype,
                                                                     device=_device_of(self, device)),
    }
    for name, fn in M.items():
        setattr(Tensor, name, fn)
    Tensor.T = property(lambda self: permute(self, tuple(reversed(range(self.ndim)))))
    Tensor.mT = property(mT)


_install_methods()


# ---- sliding windows (primitives in graphc/ops/conv.py) ---------------------------------------------
def _pair(v):
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(e) for e in v)


def unfold(x, kernel_size, stride=1, padding=0, dilation=1, value=0):
    """im2col, as torch.nn.functional.unfold: [N,C,H,W] -> [N, C*kh*kw, L]."""
    return apply("unfold", x, kernel=_pair(kernel_size), stride=_pair(stride), padding=_pair(padding),
                 dilation=_pair(dilation), value=_pyval(value, x.dtype))


def fold(cols, output_size, kernel_size, stride=1, padding=0, dilation=1):
    """col2im, as torch.nn.functional.fold: [N, C*kh*kw, L] -> [N, C, H, W] (sums overlaps)."""
    return apply("fold", cols, output_size=_pair(output_size), kernel=_pair(kernel_size),
                 stride=_pair(stride), padding=_pair(padding), dilation=_pair(dilation))
