"""The numbers an optimizer's step computes with: Python settings (checked as torch checks
them), 0-d tensors made eagerly even while a trace records (`_eager`, `_new_scalar`), and
coefficients cast to a parameter's dtype (`_like`)."""
from __future__ import annotations

import numbers

from .. import dtypes as _dt
from .. import tracing as _tr
from ..autograd import no_grad
from ..tensor import Tensor


def check_nonnegative(**settings):
    """Reject negative settings with torch's messages ("Invalid learning rate: -1")."""
    for name, v in settings.items():
        what = {"lr": "learning rate", "eps": "epsilon value"}.get(name, f"{name} value")
        if not 0.0 <= v:
            raise ValueError(f"Invalid {what}: {v}")


class _Required:
    def __repr__(self):
        return "<required parameter>"


required = _Required()


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _scalar_dtype():
    """The dtype of 'step' counters: torch's _get_scalar_dtype (float64 iff the default is)."""
    return _dt.float64 if _dt.get_default_dtype() is _dt.float64 else _dt.float32


def _eager(fn, *args, **kwargs):
    """Run fn eagerly under no_grad, even while a trace is being recorded."""
    with _tr.suspended(), no_grad():
        return fn(*args, **kwargs)


def _like(x, p):
    """A hyperparameter or scalar coefficient (Python number, or 0-d float64 tensor while
    tracing) ready to combine with parameter p: tensors are cast to p's dtype, as torch casts a
    Python scalar (without this a 0-d float32 parameter would be promoted to float64)."""
    if isinstance(x, Tensor) and x.dtype is not p.dtype:
        from ..ops import functional as F
        return F.cast(x, p.dtype)
    return x


def _new_scalar(value, dtype=_dt.float64) -> Tensor:
    from ..ops import functional as F
    return _eager(F.full, (), float(value), dtype=dtype)
