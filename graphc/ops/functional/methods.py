"""Tensor methods and operators: installs the functions of this package onto Tensor
(x + y, x.sum(), x.T, x[i], x.add_(y), ...); tensor.py defines the class and the in-place
mechanism (Tensor._inplace) without importing this package."""
from __future__ import annotations

from ... import dtypes as _dt
from ...tensor import Tensor
from .filled import _device_of, clone, full, full_like, ones, zeros, zeros_like
from .indexing import getitem, index_select, setitem
from .joining import chunk, narrow, split, unbind
from .matmul import bmm, dot, matmul, mm
from .accurate import expm1, log1p
from .pointwise import (abs, add, ceil, cos, div, eq, erf, exp, floor, floor_divide, ge, gt,
                        le, log, logical_and, logical_not, logical_or, logical_xor, lt, maximum, atan2,
                        minimum, mul, ne, neg, pow, reciprocal, remainder, rsqrt, sigmoid, sign, sin,
                        sqrt, square, sub, tanh)
from .promotion import _is_bool, broadcast_to, cast
from .reductions import (all, amax, amin, any, argmax, argmin, logsumexp, max, mean, min, norm, std,
                         sum, var)
from .gather import gather
from .select import clamp, masked_fill, where
from .arrange import diag, diag_embed, diagonal, flip, fliplr, flipud, movedim, repeat_interleave, roll, tril, triu
from .linalg import addbmm, addmm, addmv, baddbmm
from .rounding import fix, fmod, frac, isclose, isfinite, isinf, isnan, isneginf, isposinf, lerp, nan_to_num, \
    round, trunc
from .scans import cumprod, cumsum, prod
from . import scattering as _sc
from . import sorting as _so
from .shapes import expand, expand_as, flatten, mT, permute, repeat, reshape, squeeze, t, transpose, \
    unsqueeze, view


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


# ---- in-place ops: Tensor._inplace runs the out-of-place op, then makes self hold the result --------
def add_(self, other, alpha=1):
    return self._inplace(lambda s, o: add(s, o, alpha=alpha), other)


def sub_(self, other, alpha=1):
    return self._inplace(lambda s, o: sub(s, o, alpha=alpha), other)


def mul_(self, other):
    return self._inplace(mul, other)


def div_(self, other):
    return self._inplace(div, other)


def pow_(self, other):
    return self._inplace(pow, other)


def clamp_(self, min=None, max=None):
    return self._inplace(lambda s: clamp(s, min, max))


def zero_(self):
    return self._inplace(zeros_like)


def fill_(self, value):
    return self._inplace(lambda s: full_like(s, value))


def copy_(self, src):
    # clone: a new node, so that self takes src's history rather than becoming src's alias
    if isinstance(src, Tensor) and src._value is None and self._value is None and src.device != self.device:
        src = src.to(self.device)      # copy_ moves data across devices, as torch's
    return self._inplace(lambda s, o: clone(broadcast_to(cast(o, s.dtype), s.shape)), src)


def addcmul_(self, t1, t2, value=1):
    return self._inplace(lambda s, a, b: s + a * b * value, t1, t2)


def addcdiv_(self, t1, t2, value=1):
    return self._inplace(lambda s, a, b: s + a / b * value, t1, t2)


def lerp_(self, end, weight):
    return self._inplace(lambda s, e: s + (e - s) * weight, end)


def _flip(self, *dims):
    return flip(self, dims[0] if len(dims) == 1 and not isinstance(dims[0], int) else dims)


def _addmm_method(f):
    return lambda self, a, b, *, beta=1, alpha=1: f(self, a, b, beta=beta, alpha=alpha)


def _tensor_ops():
    """The torch tensor-op surface (arrange, rounding, scans, linalg) as methods."""
    M = {"tril": tril, "triu": triu, "flip": _flip, "fliplr": fliplr, "flipud": flipud, "roll": roll,
         "movedim": movedim, "moveaxis": movedim, "diagonal": diagonal, "diag": diag,
         "diag_embed": diag_embed, "repeat_interleave": repeat_interleave, "lerp": lerp,
         "isnan": isnan, "isinf": isinf, "isfinite": isfinite, "isposinf": isposinf, "isneginf": isneginf,
         "nan_to_num": nan_to_num, "isclose": isclose, "round": round, "trunc": trunc, "fix": fix,
         "frac": frac, "fmod": fmod, "prod": prod, "cumsum": cumsum, "cumprod": cumprod,
         "addmm": _addmm_method(addmm), "baddbmm": _addmm_method(baddbmm),
         "addbmm": _addmm_method(addbmm), "addmv": _addmm_method(addmv),
         "scatter": _sc.scatter, "scatter_reduce": _sc.scatter_reduce, "index_add": _sc.index_add,
         "index_copy": _sc.index_copy, "index_fill": _sc.index_fill, "scatter_add": _sc.scatter_add,
         "sort": _so.sort, "argsort": _so.argsort, "topk": _so.topk, "msort": _so.msort,
         "nonzero": _so.nonzero, "argwhere": _so.argwhere, "masked_select": _so.masked_select,
         "unique": _so.unique, "unique_consecutive": _so.unique_consecutive, "count_nonzero": _so.count_nonzero,
         "allclose": lambda self, o, rtol=1e-05, atol=1e-08, equal_nan=False: bool(
             all(isclose(self, o, rtol, atol, equal_nan)).item())}
    for name in ("tril", "triu", "round", "trunc", "frac", "fmod", "nan_to_num", "cumsum", "cumprod", "fix",
                 "scatter", "scatter_reduce", "index_add", "index_copy", "index_fill", "scatter_add"):
        M[name + "_"] = _inplace_of(M[name])
    M.update(masked_fill_=_inplace_of(masked_fill), floor_=_inplace_of(floor), ceil_=_inplace_of(ceil))
    return M


def _inplace_of(f):
    """x.f_(*args): f's result written into x (Tensor._inplace)."""
    return lambda self, *a, **k: self._inplace(lambda s: f(s, *a, **k))


def _iadd(self, o):
    return self.add_(o)


def _isub(self, o):
    return self.sub_(o)


def _imul(self, o):
    return self.mul_(o)


def _itruediv(self, o):
    return self.div_(o)


def _install_methods():
    M = {
        "add_": add_, "sub_": sub_, "mul_": mul_, "div_": div_, "pow_": pow_, "clamp_": clamp_,
        "zero_": zero_, "fill_": fill_, "copy_": copy_, "addcmul_": addcmul_, "addcdiv_": addcdiv_,
        "lerp_": lerp_, "__iadd__": _iadd, "__isub__": _isub, "__imul__": _imul,
        "__itruediv__": _itruediv, "__getitem__": getitem, "__setitem__": setitem,
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
        "bmm": bmm, "dot": dot, "maximum": maximum, "minimum": minimum, "atan2": atan2, "eq": eq, "ne": ne,
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
    M.update(_tensor_ops())
    for name, fn in M.items():
        setattr(Tensor, name, fn)
    Tensor.T = property(lambda self: permute(self, tuple(reversed(range(self.ndim)))))
    Tensor.mT = property(mT)


_install_methods()
