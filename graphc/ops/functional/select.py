"""Selection: where(condition, x, y) and the ops built on it (clamp/clip, masked_fill)."""
from __future__ import annotations

from ... import autograd as _ag
from ... import dtypes as _dt
from ... import mode as _tracing
from ...tensor import Tensor, apply
from .filled import full_like
from .pointwise import _to_bool, gt, logical_or, lt, ne
from .promotion import _as, _py_any, broadcast_shapes, broadcast_to, cast


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
    return _ag.is_grad_enabled() and _py_any(isinstance(t, Tensor) and t.requires_grad for t in ts)


clip = clamp


def masked_fill(x, mask, value):
    return where(mask, _as(value, x.dtype) if not isinstance(value, Tensor) else cast(value, x.dtype), x)
