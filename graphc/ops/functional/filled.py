"""New tensors from a value, a range or another tensor: full, zeros/ones/empty and their
*_like forms, iota, arange, linspace, eye, detach and clone."""
from __future__ import annotations

import numpy as np

from ... import dtypes as _dt
from ... import mode as _tracing
from ...tensor import apply, apply_on
from .pointwise import add, eq, logical_or
from .promotion import _py_any, _py_max, _pyval, _shape_arg, cast


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


def detach(x):
    return x.detach()


def clone(x):
    if x._value is not None:
        return x  # SSA values are immutable: a clone is the same value
    return add(x, zeros((), dtype=x.dtype)) if x.dtype is not _dt.bool_ else logical_or(x, False)
