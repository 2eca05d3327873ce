"""Every registered primitive, applied eagerly, against a direct numpy computation.

For each case the primitive's shape/dtype rule (infer) must agree exactly with what its
numpy implementation produces, and graphc.tensor.apply must return the same values.
CASES must name every primitive in the registry: a new primitive without a test fails here.
"""
import math

import numpy as np
import pytest

import graphc as gc
from graphc import dtypes as dt
from graphc.ir.graph import TensorType
from graphc.ops.registry import PRIMITIVES
from graphc.tensor import Tensor, apply

F32, F64, I64, B = np.float32, np.float64, np.int64, np.bool_
FLOATS = (F32, F64)
NUMERIC = (F32, F64, I64)
ALL = (F32, F64, I64, B)
SHAPES = [(3, 5), (1, 7), (2, 1, 3), (), (0, 4), (4, 0, 2)]


def R(seed=0):
    return np.random.default_rng(seed)


def arr(shape, dtype, seed=0, lo=-3.0, hi=3.0):
    r = R(seed)
    if dtype == B:
        return r.integers(0, 2, shape).astype(bool)
    if dtype == I64:
        return r.integers(int(lo), int(hi) + 1, shape).astype(np.int64)
    return np.asarray(r.uniform(lo, hi, shape)).astype(dtype)


class Case:
    """One application: inputs (numpy arrays), attributes, and the expected numpy result
    (an array), or an exception type that infer or impl must raise."""

    def __init__(self, name, inputs, attrs=None, want=None, raises=None, tol=None):
        self.name, self.inputs, self.attrs = name, list(inputs), dict(attrs or {})
        self.want, self.raises, self.tol = want, raises, tol

    def __repr__(self):
        shapes = ",".join(f"{a.dtype}{list(a.shape)}" for a in self.inputs)
        return f"{self.name}({shapes}){self.attrs if self.attrs else ''}"


CASES = {}


def case(name, inputs, attrs=None, want=None, raises=None, tol=None):
    CASES.setdefault(name, []).append(Case(name, inputs, attrs, want, raises, tol))


# ---- references written independently of the implementations -------------------------------------
_erf_ref = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid_ref(x):
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x64))).astype(x.dtype)


UNARY_FLOAT = {
    "exp": (np.exp, (-3, 3)), "log": (np.log, (0.1, 5)), "sqrt": (np.sqrt, (0, 5)),
    "rsqrt": (lambda x: (1.0 / np.sqrt(x.astype(np.float64))).astype(x.dtype), (0.1, 5)),
    "tanh": (np.tanh, (-4, 4)), "sigmoid": (_sigmoid_ref, (-30, 30)), "sin": (np.sin, (-4, 4)),
    "cos": (np.cos, (-4, 4)), "erf": (lambda x: _erf_ref(x).astype(x.dtype), (-3, 3)),
}
for _n, (_ref, (_lo, _hi)) in UNARY_FLOAT.items():
    for _dt in FLOATS:
        for _s in SHAPES:
            _x = arr(_s, _dt, 1, _lo, _hi)
            case(_n, [_x], want=_ref(_x), tol=1e-6 if _dt == F32 else 1e-13)
    case(_n, [arr((3,), I64)], raises=TypeError)
    case(_n, [arr((3,), B)], raises=TypeError)

for _dt in NUMERIC:
    for _s in SHAPES:
        _x = arr(_s, _dt, 2)
        case("neg", [_x], want=np.array([-v for v in _x.reshape(-1)], dtype=_dt).reshape(_s))
        case("abs", [_x], want=np.where(_x < 0, -_x, _x))
        case("sign", [_x], want=(_x > 0).astype(_dt) - (_x < 0).astype(_dt))
        case("stop_gradient", [_x], want=_x.copy())
case("neg", [arr((3,), B)], raises=TypeError)
case("stop_gradient", [arr((2, 3), B)], want=arr((2, 3), B))
# special values
case("sign", [np.array([-0.0, 0.0, np.inf, -np.inf, 2.5], F64)], want=np.array([0.0, 0.0, 1.0, -1.0, 1.0]))
case("sigmoid", [np.array([-1000.0, 1000.0, 0.0], F32)], want=np.array([0.0, 1.0, 0.5], F32))
case("exp", [np.array([-np.inf, 0.0, 1000.0], F64)], want=np.array([0.0, 1.0, np.inf]))
case("log", [np.array([0.0, 1.0, np.inf], F64)], want=np.array([-np.inf, 0.0, np.inf]))

for _s in SHAPES:
    _b = arr(_s, B, 3)
    case("logical_not", [_b], want=np.array([not v for v in _b.reshape(-1)], dtype=bool).reshape(_s))
for _dt in NUMERIC:
    case("logical_not", [arr((3,), _dt)], raises=TypeError)

# cast: every pair of dtypes (float -> int truncates toward zero, nonzero -> True)
_GDT = {F32: dt.float32, F64: dt.float64, I64: dt.int64, B: dt.bool_}
for _src in ALL:
    for _dst in ALL:
        for _s in [(3, 5), (), (0, 2)]:
            _x = arr(_s, _src, 4)
            if _src in FLOATS:
                _x = np.asarray(_x * 2.7).astype(_src)
            if _dst == B:
                _w = _x != 0
            elif _dst == I64 and _src in FLOATS:
                _w = np.trunc(_x).astype(I64)
            else:
                _w = _x.astype(_dst)
            case("cast", [_x], {"dtype": _GDT[_dst]}, want=_w)

# ---- binary ------------------------------------------------------------------------------------------
_BIN = {
    "add": (lambda a, b: a + b, NUMERIC), "sub": (lambda a, b: a - b, NUMERIC),
    "mul": (lambda a, b: a * b, NUMERIC), "div": (lambda a, b: a / b, FLOATS),
    "maximum": (lambda a, b: np.where(a >= b, a, b), NUMERIC),
    "minimum": (lambda a, b: np.where(a <= b, a, b), NUMERIC),
}
for _n, (_ref, _dts) in _BIN.items():
    for _dt in _dts:
        for _s in SHAPES:
            _a, _b = arr(_s, _dt, 5), arr(_s, _dt, 6)
            if _n == "div":
                _b = np.where(np.abs(_b) < 0.1, 1.0, _b).astype(_dt)
            case(_n, [_a, _b], want=_ref(_a, _b).astype(_dt))
    case(_n, [arr((3,), B), arr((3,), B)], raises=TypeError)
    case(_n, [arr((3,), F32), arr((3,), F64)], raises=TypeError)
    case(_n, [arr((3,), F32), arr((1,), F32)], raises=TypeError)
    case(_n, [arr((2, 3), F32), arr((3, 2), F32)], raises=TypeError)
case("div", [arr((3,), I64), arr((3,), I64)], raises=TypeError)

_atan2_ref = np.vectorize(math.atan2, otypes=[np.float64])
for _dt in FLOATS:
    for _s in SHAPES:
        _a, _b = arr(_s, _dt, 5), arr(_s, _dt, 6)
        case("atan2", [_a, _b], want=_atan2_ref(_a, _b).astype(_dt), tol=2e-7 if _dt == F32 else 1e-15)
_v = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan])
_a, _b = np.repeat(_v, 7), np.tile(_v, 7)
case("atan2", [_a, _b], want=_atan2_ref(_a, _b))           # signed zeros, infinities, NaN: C's atan2
for _dt in (I64, B):
    case("atan2", [arr((3,), _dt), arr((3,), _dt)], raises=TypeError)
case("atan2", [arr((3,), F32), arr((3,), F64)], raises=TypeError)
case("atan2", [arr((3,), F32), arr((1,), F32)], raises=TypeError)
case("div", [np.array([1.0, -1.0, 0.0]), np.zeros(3)], want=np.array([np.inf, -np.inf, np.nan]))
case("maximum", [np.array([np.nan, 1.0]), np.array([0.0, np.nan])], want=np.array([np.nan, np.nan]))

# floor division and remainder follow Python (floor toward -inf; the remainder has b's sign)
for _dt in NUMERIC:
    for _s in SHAPES:
        _a, _b = arr(_s, _dt, 7), arr(_s, _dt, 8)
        _b = np.where(_b == 0, 3, _b).astype(_dt)
        case("floor_divide", [_a, _b], want=np.floor_divide(_a, _b).astype(_dt))
        case("remainder", [_a, _b], want=(_a - _b * np.floor_divide(_a, _b)).astype(_dt),
             tol=1e-5 if _dt in FLOATS else None)
case("floor_divide", [np.array([-7, 7, -7], I64), np.array([2, -2, -2], I64)], want=np.array([-4, -4, 3], I64))
case("remainder", [np.array([-7, 7, -7], I64), np.array([3, -3, -3], I64)], want=np.array([2, -2, -1], I64))
case("remainder", [np.array([-7.5, 7.5]), np.array([2.0, -2.0])], want=np.array([0.5, -0.5]))
for _n in ("floor_divide", "remainder"):
    case(_n, [np.array([1, 2], I64), np.array([1, 0], I64)], raises=ZeroDivisionError)
    case(_n, [arr((3,), B), arr((3,), B)], raises=TypeError)
    case(_n, [arr((3,), F32), arr((3,), F64)], raises=TypeError)
for _dt in FLOATS:
    for _s in SHAPES:
        _x = np.asarray(arr(_s, _dt, 9) * 2.5).astype(_dt)
        case("floor", [_x], want=np.floor(_x))
case("floor", [np.array([-0.5, 0.5, np.inf, -np.inf])], want=np.array([-1.0, 0.0, np.inf, -np.inf]))
case("floor", [arr((3,), I64)], raises=TypeError)

for _dt in FLOATS:
    for _s in SHAPES:
        _a, _b = arr(_s, _dt, 7, 0.1, 3), arr(_s, _dt, 8, -2, 2)
        case("pow", [_a, _b], want=np.exp(_b.astype(F64) * np.log(_a.astype(F64))).astype(_dt),
             tol=1e-5 if _dt == F32 else 1e-12)
for _s in SHAPES:
    _a, _b = arr(_s, I64, 9, -3, 3), arr(_s, I64, 10, 0, 4)
    case("pow", [_a, _b], want=np.array([int(x) ** int(y) for x, y in zip(_a.reshape(-1), _b.reshape(-1))],
                                        dtype=I64).reshape(_s))
case("pow", [np.array([2, 3]), np.array([1, -1])], raises=ValueError)
case("pow", [np.array([0.0, 0.0, -8.0]), np.array([0.0, -1.0, 1.0 / 3])], want=np.array([1.0, np.inf, np.nan]))
case("pow", [arr((3,), B), arr((3,), B)], raises=TypeError)

_CMP = {"lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b, "eq": lambda a, b: a == b, "ne": lambda a, b: a != b}
for _n, _ref in _CMP.items():
    for _dt in ALL:
        for _s in SHAPES:
            _a = arr(_s, _dt, 11, -2, 2)
            _b = np.where(arr(_s, B, 12), _a, arr(_s, _dt, 13, -2, 2)).astype(_dt)   # some ties
            case(_n, [_a, _b], want=_ref(_a, _b))
    case(_n, [arr((3,), I64), arr((3,), F32)], raises=TypeError)
    case(_n, [arr((3,), F32), arr((2,), F32)], raises=TypeError)
case("eq", [np.array([np.nan, 1.0]), np.array([np.nan, 1.0])], want=np.array([False, True]))
case("ne", [np.array([np.nan, 1.0]), np.array([np.nan, 1.0])], want=np.array([True, False]))

for _n, _ref in (("logical_and", lambda a, b: a & b), ("logical_or", lambda a, b: a | b)):
    for _s in SHAPES:
        _a, _b = arr(_s, B, 14), arr(_s, B, 15)
        case(_n, [_a, _b], want=_ref(_a, _b))
    case(_n, [arr((3,), I64), arr((3,), I64)], raises=TypeError)
    case(_n, [arr((3,), B), arr((4,), B)], raises=TypeError)

for _dt in ALL:
    for _s in SHAPES:
        _c, _a, _b = arr(_s, B, 16), arr(_s, _dt, 17), arr(_s, _dt, 18)
        case("where", [_c, _a, _b], want=np.array([x if c else y for c, x, y in
                                                    zip(_c.reshape(-1), _a.reshape(-1), _b.reshape(-1))],
                                                   dtype=_dt).reshape(_s))
case("where", [arr((3,), F32), arr((3,), F32), arr((3,), F32)], raises=TypeError)
case("where", [arr((3,), B), arr((3,), F32), arr((3,), F64)], raises=TypeError)
case("where", [arr((2,), B), arr((3,), F32), arr((3,), F32)], raises=TypeError)
case("where", [arr((1, 3), B), arr((2, 3), F32), arr((2, 3), F32)], raises=TypeError)


# ---- reductions --------------------------------------------------------------------------------------
def _reduce_ref(x, axes, keepdim, fn):
    out = x
    for a in sorted(axes, reverse=True):
        out = fn(out, a)
    if keepdim:
        out = out.reshape([1 if i in axes else s for i, s in enumerate(x.shape)])
    return out


_AXES = {(3, 5): [(), (0,), (1,), (0, 1)], (1, 7): [(0,), (1,)], (2, 1, 3): [(1,), (0, 2), (0, 1, 2)],
         (): [()], (0, 4): [(0,), (1,), (0, 1)], (4, 0, 2): [(1,), (0, 2)]}
for _dt in NUMERIC:
    for _s, _axes_list in _AXES.items():
        _x = arr(_s, _dt, 19)
        for _axes in _axes_list:
            for _k in (False, True):
                _w = _reduce_ref(_x.astype(F64), _axes, _k, lambda v, a: np.add.reduce(v, axis=a))
                case("sum", [_x], {"axes": _axes, "keepdim": _k}, want=np.asarray(_w).astype(_dt),
                     tol=1e-5 if _dt == F32 else 1e-12)
                if all(_s[a] > 0 for a in _axes):
                    _w = _reduce_ref(_x, _axes, _k, lambda v, a: np.maximum.reduce(v, axis=a))
                    case("max", [_x], {"axes": _axes, "keepdim": _k}, want=np.asarray(_w))
                else:
                    case("max", [_x], {"axes": _axes, "keepdim": _k}, raises=ValueError)
case("sum", [arr((3,), B)], {"axes": (0,), "keepdim": False}, raises=TypeError)
case("sum", [arr((3, 2), F32)], {"axes": (2,), "keepdim": False}, raises=ValueError)
case("sum", [arr((3, 2), F32)], {"axes": (-1,), "keepdim": False}, raises=ValueError)
case("sum", [arr((3, 2), F32)], {"axes": (0, 0), "keepdim": False}, raises=ValueError)
case("max", [arr((2, 3), B)], {"axes": (1,), "keepdim": False}, want=arr((2, 3), B).any(1))
case("max", [np.array([[1.0, np.nan], [2.0, 3.0]])], {"axes": (1,), "keepdim": False},
     want=np.array([np.nan, 3.0]))
case("max", [np.array([-np.inf, -np.inf])], {"axes": (0,), "keepdim": True}, want=np.array([-np.inf]))
case("max", [arr((3,), F32)], {"axes": (1,), "keepdim": False}, raises=ValueError)


def _argmax_ref(x, axis, keepdim):
    moved = np.moveaxis(x, axis, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    idx = np.array([max(range(len(r)), key=lambda j: (r[j], -j)) for r in flat], dtype=I64)
    out = idx.reshape(moved.shape[:-1])
    return np.expand_dims(out, axis) if keepdim else out


for _dt in ALL:
    for _s in [(3, 5), (1, 7), (2, 1, 3), (4, 0, 2)]:
        _x = arr(_s, _dt, 20, -2, 2)       # small integers: ties, and the first maximum wins
        for _a in range(len(_s)):
            for _k in (False, True):
                if _s[_a] == 0:
                    case("argmax", [_x], {"axis": _a, "keepdim": _k}, raises=ValueError)
                else:
                    case("argmax", [_x], {"axis": _a, "keepdim": _k}, want=_argmax_ref(_x, _a, _k))
case("argmax", [arr((3, 2), F32)], {"axis": 2, "keepdim": False}, raises=ValueError)

# ---- movement ----------------------------------------------------------------------------------------
for _dt in ALL:
    _x = arr((2, 3, 4), _dt, 21)
    for _shape in [(24,), (4, 6), (2, 3, 4), (1, 24, 1), (4, 3, 2)]:
        case("reshape", [_x], {"shape": _shape}, want=np.array(_x.reshape(-1).tolist(), dtype=_dt).reshape(_shape))
    case("reshape", [arr((), _dt)], {"shape": (1, 1)}, want=arr((), _dt).reshape(1, 1))
    case("reshape", [arr((0, 3), _dt)], {"shape": (3, 0, 5)}, want=np.zeros((3, 0, 5), _dt))
    for _perm in [(0, 1, 2), (2, 0, 1), (1, 2, 0), (2, 1, 0)]:
        _w = np.empty([_x.shape[p] for p in _perm], _dt)
        for _i in np.ndindex(*_x.shape):
            _w[tuple(_i[p] for p in _perm)] = _x[_i]
        case("permute", [_x], {"perm": _perm}, want=_w)
    case("permute", [arr((), _dt)], {"perm": ()}, want=arr((), _dt))
    _y = arr((3, 1), _dt, 22)
    for _shape in [(3, 4), (2, 3, 4), (3, 1), (0, 3, 5), (3, 0)]:
        _w = np.empty(_shape, _dt)
        for _i in np.ndindex(*_shape):
            _w[_i] = _y[_i[-2], 0]
        case("broadcast_to", [_y], {"shape": _shape}, want=_w)
    case("broadcast_to", [arr((), _dt)], {"shape": (2, 2)}, want=np.full((2, 2), arr((), _dt)))
case("reshape", [arr((2, 3), F32)], {"shape": (4, 2)}, raises=RuntimeError)
case("reshape", [arr((2, 3), F32)], {"shape": (-1, 3)}, raises=ValueError)
case("permute", [arr((2, 3), F32)], {"perm": (0, 0)}, raises=RuntimeError)
case("permute", [arr((2, 3), F32)], {"perm": (1, 0, 2)}, raises=RuntimeError)
case("broadcast_to", [arr((2, 3), F32)], {"shape": (3,)}, raises=RuntimeError)
case("broadcast_to", [arr((2, 3), F32)], {"shape": (2, 4)}, raises=RuntimeError)
case("broadcast_to", [arr((2, 3), F32)], {"shape": (3, 2, 3)}, want=np.stack([arr((2, 3), F32)] * 3))


def _slice_ref(x, starts, stops, steps):
    out = x
    for d, (a, b, s) in enumerate(zip(starts, stops, steps)):
        keep = list(range(a, b, s))
        out = np.take(out, np.array(keep, dtype=np.int64), axis=d)
    return out


for _dt in ALL:
    _x = arr((5, 7, 3), _dt, 23)
    for _st, _sp, _ss in [((0, 0, 0), (5, 7, 3), (1, 1, 1)), ((1, 2, 0), (4, 7, 3), (1, 2, 3)),
                          ((4, 6, 2), (5, 7, 3), (2, 5, 1)), ((2, 3, 1), (2, 3, 1), (1, 1, 1)),
                          ((0, 1, 0), (5, 6, 3), (4, 3, 2)), ((3, 0, 0), (5, 7, 1), (7, 1, 1))]:
        case("slice", [_x], {"starts": _st, "stops": _sp, "steps": _ss}, want=_slice_ref(_x, _st, _sp, _ss))
    case("slice", [arr((0, 3), _dt)], {"starts": (0, 1), "stops": (0, 3), "steps": (1, 1)}, want=np.zeros((0, 2), _dt))
    case("slice", [arr((), _dt)], {"starts": (), "stops": (), "steps": ()}, want=arr((), _dt))
case("slice", [arr((5,), F32)], {"starts": (3,), "stops": (1,), "steps": (1,)}, want=np.zeros(0, F32))
case("slice", [arr((5,), F32)], {"starts": (0,), "stops": (6,), "steps": (1,)}, raises=ValueError)
case("slice", [arr((5,), F32)], {"starts": (-1,), "stops": (5,), "steps": (1,)}, raises=ValueError)
case("slice", [arr((5,), F32)], {"starts": (0,), "stops": (5,), "steps": (0,)}, raises=ValueError)
case("slice", [arr((5, 2), F32)], {"starts": (0,), "stops": (5,), "steps": (1,)}, raises=ValueError)


def _pad_ref(x, lo, hi, interior, value):
    shape = [a + n + max(n - 1, 0) * i + b for n, a, b, i in zip(x.shape, lo, hi, interior)]
    out = np.full(shape, value, dtype=x.dtype)
    for idx in np.ndindex(*x.shape):
        out[tuple(a + j * (i + 1) for j, a, i in zip(idx, lo, interior))] = x[idx]
    return out


for _dt in ALL:
    _x = arr((3, 4), _dt, 24)
    _v = {F32: 1.5, F64: -2.25, I64: 7, B: True}[_dt]
    for _lo, _hi, _in in [((0, 0), (0, 0), (0, 0)), ((1, 2), (3, 0), (0, 0)), ((0, 1), (0, 1), (2, 1)),
                          ((2, 0), (0, 0), (1, 0))]:
        case("pad", [_x], {"lo": _lo, "hi": _hi, "interior": _in, "value": _v},
             want=_pad_ref(_x, _lo, _hi, _in, _v))
    case("pad", [arr((0, 2), _dt)], {"lo": (1, 0), "hi": (1, 1), "interior": (3, 1), "value": _v},
         want=_pad_ref(arr((0, 2), _dt), (1, 0), (1, 1), (3, 1), _v))
    case("pad", [arr((1,), _dt)], {"lo": (0,), "hi": (0,), "interior": (5,), "value": _v}, want=arr((1,), _dt))
case("pad", [arr((3,), F32)], {"lo": (-1,), "hi": (0,), "interior": (0,), "value": 0.0}, raises=ValueError)
case("pad", [arr((3,), F32)], {"lo": (0, 0), "hi": (0,), "interior": (0,), "value": 0.0}, raises=ValueError)

for _dt in ALL:
    _a, _b, _c = arr((2, 3), _dt, 25), arr((2, 1), _dt, 26), arr((2, 0), _dt, 27)
    case("concat", [_a, _b, _c], {"axis": 1},
         want=np.array([list(_a[i]) + list(_b[i]) for i in range(2)], dtype=_dt))
    case("concat", [_a, arr((4, 3), _dt, 28)], {"axis": 0}, want=np.array(list(_a) + list(arr((4, 3), _dt, 28))))
    case("concat", [_a], {"axis": 0}, want=_a)
    case("concat", [arr((0, 3), _dt), arr((0, 3), _dt)], {"axis": 0}, want=np.zeros((0, 3), _dt))
case("concat", [arr((2, 3), F32), arr((2, 3), F64)], {"axis": 0}, raises=RuntimeError)
case("concat", [arr((2, 3), F32), arr((3, 3), F32)], {"axis": 1}, raises=RuntimeError)
case("concat", [arr((2, 3), F32), arr((2, 3, 1), F32)], {"axis": 0}, raises=RuntimeError)
case("concat", [arr((2, 3), F32)], {"axis": 2}, raises=ValueError)
case("concat", [], {"axis": 0}, raises=ValueError)


# ---- contraction ---------------------------------------------------------------------------------
def _matmul_ref(a, b):
    out = np.zeros(a.shape[:-1] + b.shape[-1:], dtype=np.float64 if a.dtype != I64 else I64)
    for idx in np.ndindex(*out.shape):
        batch, i, j = idx[:-2], idx[-2], idx[-1]
        out[idx] = sum(a[batch + (i, k)] * b[batch + (k, j)] for k in range(a.shape[-1]))
    return out.astype(a.dtype)


for _dt in NUMERIC:
    for _sa, _sb in [((3, 4), (4, 5)), ((1, 1), (1, 1)), ((2, 3, 4), (2, 4, 1)), ((2, 1, 2, 3), (2, 1, 3, 2)),
                     ((0, 4), (4, 3)), ((3, 0), (0, 2)), ((2, 0, 3), (2, 3, 4))]:
        _a, _b = arr(_sa, _dt, 29), arr(_sb, _dt, 30)
        case("matmul", [_a, _b], want=_matmul_ref(_a, _b), tol=1e-5 if _dt == F32 else 1e-12)
if "transpose_a" in PRIMITIVES["matmul"].attrs:
    for _dt in NUMERIC:
        for _ta in (False, True):
            for _tb in (False, True):
                _a, _b = arr((2, 3, 4), _dt, 39), arr((2, 4, 5), _dt, 40)
                _ai = np.ascontiguousarray(np.swapaxes(_a, -1, -2)) if _ta else _a
                _bi = np.ascontiguousarray(np.swapaxes(_b, -1, -2)) if _tb else _b
                case("matmul", [_ai, _bi], {"transpose_a": _ta, "transpose_b": _tb}, want=_matmul_ref(_a, _b),
                     tol=1e-5 if _dt == F32 else 1e-12)
    case("matmul", [arr((3, 4), F32), arr((3, 5), F32)], {"transpose_a": False, "transpose_b": False},
         raises=RuntimeError)
    case("matmul", [arr((3, 4), F32), arr((3, 5), F32)], {"transpose_a": 1, "transpose_b": False}, raises=TypeError)
case("matmul", [arr((3, 4), F32), arr((5, 4), F32)], raises=RuntimeError)
case("matmul", [arr((4,), F32), arr((4, 5), F32)], raises=RuntimeError)
case("matmul", [arr((2, 3, 4), F32), arr((4, 5), F32)], raises=RuntimeError)
case("matmul", [arr((2, 3, 4), F32), arr((3, 4, 5), F32)], raises=RuntimeError)
case("matmul", [arr((3, 4), F32), arr((4, 5), F64)], raises=RuntimeError)
case("matmul", [arr((3, 4), B), arr((4, 5), B)], raises=RuntimeError)


# ---- index --------------------------------------------------------------------------------------------
def _take_ref(x, idx, axis):
    out = np.empty(idx.shape, x.dtype)
    for i in np.ndindex(*idx.shape):
        src = list(i)
        src[axis] = idx[i]
        out[i] = x[tuple(src)]
    return out


def _scatter_ref(x, idx, src, axis):
    out = x.copy()
    for i in np.ndindex(*idx.shape):
        dst = list(i)
        dst[axis] = idx[i]
        out[tuple(dst)] += src[i]
    return out


for _dt in ALL:
    _x = arr((4, 5), _dt, 31)
    for _axis, _ishape in [(0, (3, 5)), (1, (4, 2)), (1, (4, 0)), (0, (0, 5)), (1, (4, 7))]:
        _idx = R(32).integers(0, _x.shape[_axis], _ishape)
        case("take_along_axis", [_x, _idx], {"axis": _axis}, want=_take_ref(_x, _idx, _axis))
        if _dt != B:
            _src = arr(_ishape, _dt, 33)
            case("scatter_add", [_x, _idx, _src], {"axis": _axis}, want=_scatter_ref(_x, _idx, _src, _axis))
    _x3 = arr((2, 3, 4), _dt, 34)
    _idx3 = R(35).integers(0, 3, (2, 5, 4))
    case("take_along_axis", [_x3, _idx3], {"axis": 1}, want=_take_ref(_x3, _idx3, 1))
case("take_along_axis", [arr((4, 5), F32), np.array([[4, 0, 1, 2, 3]])], {"axis": 0}, raises=IndexError)
case("take_along_axis", [arr((4, 5), F32), np.array([[-1]] * 4)], {"axis": 1}, raises=IndexError)
case("take_along_axis", [arr((4, 5), F32), np.zeros((4, 1), F32)], {"axis": 1}, raises=TypeError)
case("take_along_axis", [arr((4, 5), F32), np.zeros((3, 1), I64)], {"axis": 1}, raises=RuntimeError)
case("take_along_axis", [arr((4, 5), F32), np.zeros((4,), I64)], {"axis": 0}, raises=RuntimeError)
case("take_along_axis", [arr((4, 5), F32), np.zeros((4, 1), I64)], {"axis": 2}, raises=ValueError)
case("scatter_add", [arr((4, 5), F32), np.array([[0, 0, 0]] * 4), np.ones((4, 3), F32)], {"axis": 1},
     want=arr((4, 5), F32) + np.array([[3, 0, 0, 0, 0]] * 4, F32))
case("scatter_add", [arr((4, 5), F32), np.zeros((4, 3), I64), np.ones((4, 3), F64)], {"axis": 1}, raises=RuntimeError)
case("scatter_add", [arr((4, 5), F32), np.zeros((4, 3), I64), np.ones((4, 2), F32)], {"axis": 1}, raises=RuntimeError)
case("scatter_add", [arr((4, 5), F32), np.full((4, 3), 5), np.ones((4, 3), F32)], {"axis": 1}, raises=IndexError)

# ---- constants -------------------------------------------------------------------------------------
for _dt in ALL:
    _g = _GDT[_dt]
    _v = {F32: 1.5, F64: -0.1, I64: -7, B: True}[_dt]
    for _s in SHAPES:
        case("full", [], {"shape": _s, "value": _v, "dtype": _g}, want=np.full(_s, _v, _dt))
        if _s and _dt != B:
            for _a in range(len(_s)):
                _w = np.zeros(_s, _dt)
                for _i in np.ndindex(*_s):
                    _w[_i] = _i[_a]
                case("iota", [], {"shape": _s, "axis": _a, "dtype": _g}, want=_w)
        _n = int(np.prod(_s))
        _data = tuple(arr((_n,), _dt, 36).tolist())
        case("constant", [], {"shape": _s, "dtype": _g, "data": _data},
             want=np.array(_data, _dt).reshape(_s))
case("full", [], {"shape": (2, -1), "value": 0.0, "dtype": dt.float32}, raises=ValueError)
case("iota", [], {"shape": (2, 3), "axis": 2, "dtype": dt.int64}, raises=ValueError)
case("iota", [], {"shape": (), "axis": 0, "dtype": dt.int64}, raises=ValueError)
case("iota", [], {"shape": (3,), "axis": 0, "dtype": dt.bool_}, raises=TypeError)
case("constant", [], {"shape": (2, 2), "dtype": dt.float32, "data": (1.0, 2.0, 3.0)}, raises=ValueError)


# ---- sliding windows: unfold (im2col) and fold (col2im) ---------------------------------------------
def _unfold_ref(x, kernel, stride, padding, dilation, value):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.empty((n, c * kh * kw, oh * ow), x.dtype)
    for b, ch, i, j, oi, oj in np.ndindex(n, c, kh, kw, oh, ow):
        r, s = oi * sh - ph + i * dh, oj * sw - pw + j * dw
        v = x[b, ch, r, s] if 0 <= r < h and 0 <= s < w else value
        out[b, (ch * kh + i) * kw + j, oi * ow + oj] = v
    return out


def _fold_ref(cols, output_size, kernel, stride, padding, dilation):
    (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = output_size, kernel, stride, padding, dilation
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    n, ck, _ = cols.shape
    c = ck // (kh * kw)
    out = np.zeros((n, c, h, w), cols.dtype)
    for b, ch, i, j, oi, oj in np.ndindex(n, c, kh, kw, oh, ow):
        r, s = oi * sh - ph + i * dh, oj * sw - pw + j * dw
        if 0 <= r < h and 0 <= s < w:
            out[b, ch, r, s] += cols[b, (ch * kh + i) * kw + j, oi * ow + oj]
    return out


_WINDOWS = [((2, 3, 5, 4), (2, 2), (1, 1), (0, 0), (1, 1)), ((1, 2, 5, 5), (3, 3), (2, 2), (1, 1), (1, 1)),
            ((1, 1, 6, 5), (2, 3), (1, 2), (0, 1), (2, 1)), ((2, 1, 3, 3), (1, 1), (1, 1), (0, 0), (1, 1)),
            ((0, 2, 4, 4), (2, 2), (2, 2), (0, 0), (1, 1))]
for _dt in NUMERIC:
    for _s, _k, _st, _p, _d in _WINDOWS:
        _x = arr(_s, _dt, 37)
        _v = {F32: 0.0, F64: -1.5, I64: 3}[_dt]
        _attrs = {"kernel": _k, "stride": _st, "padding": _p, "dilation": _d}
        case("unfold", [_x], dict(_attrs, value=_v), want=_unfold_ref(_x, _k, _st, _p, _d, _v))
        _cols = arr(_unfold_ref(_x, _k, _st, _p, _d, 0).shape, _dt, 38)
        case("fold", [_cols], dict(_attrs, output_size=_s[2:]),
             want=_fold_ref(_cols, _s[2:], _k, _st, _p, _d), tol=1e-6 if _dt == F32 else 1e-12)
_UF = {"kernel": (2, 2), "stride": (1, 1), "padding": (0, 0), "dilation": (1, 1)}
case("unfold", [arr((3, 4, 4), F32)], dict(_UF, value=0.0), raises=RuntimeError)
case("unfold", [arr((1, 1, 1, 4), F32)], dict(_UF, value=0.0), raises=RuntimeError)
case("unfold", [arr((1, 1, 4, 4), F32)], dict(_UF, stride=(0, 1), value=0.0), raises=ValueError)
case("fold", [arr((1, 8, 10), F32)], dict(_UF, output_size=(4, 4)), raises=RuntimeError)
case("fold", [arr((1, 6, 9), F32)], dict(_UF, output_size=(4, 4)), raises=RuntimeError)
case("fold", [arr((6, 9), F32)], dict(_UF, output_size=(4, 4)), raises=RuntimeError)

# ---- random: counter-based uniform numbers ---------------------------------------------------------
_M64 = (1 << 64) - 1


def _mix64_ref(x):
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _uniform_ref(seed, offset, shape, dtype):
    key = _mix64_ref(seed & _M64)
    n = int(np.prod(shape, dtype=np.int64))
    bits = [_mix64_ref((key + ((offset + i) & _M64) * 0x9E3779B97F4A7C15) & _M64) for i in range(n)]
    if dtype == F32:
        vals = [(b >> 40) * 2.0 ** -24 for b in bits]
    else:
        vals = [(b >> 11) * 2.0 ** -53 for b in bits]
    return np.array(vals, dtype).reshape(shape)


for _dt in FLOATS:
    for _seed, _off, _s in [(0, 0, (3, 5)), (1234, 17, (2, 1, 3)), (-5, 2 ** 40, (4,)), (7, 0, ()), (7, 3, (0, 4))]:
        case("uniform", [np.array([_seed, _off], I64)], {"shape": _s, "dtype": _GDT[_dt]},
             want=_uniform_ref(_seed, _off, _s, _dt))
case("uniform", [np.array([1, 2, 3], I64)], {"shape": (2,), "dtype": dt.float32}, raises=TypeError)
case("uniform", [np.array([1.0, 2.0], F32)], {"shape": (2,), "dtype": dt.float32}, raises=TypeError)
case("uniform", [np.array([1, 2], I64)], {"shape": (2,), "dtype": dt.int64}, raises=TypeError)


def test_uniform_is_in_unit_interval_and_varies():
    u = apply("uniform", gc.tensor([42, 0]), shape=(10000,), dtype=dt.float32).numpy()
    assert u.min() >= 0 and u.max() < 1
    assert 0.45 < u.mean() < 0.55 and len(np.unique(u)) > 9000
    v = apply("uniform", gc.tensor([42, 5000]), shape=(5000,), dtype=dt.float32).numpy()
    np.testing.assert_array_equal(u[5000:], v)          # counter-based: offsets compose


# ---- the tests -------------------------------------------------------------------------------------
def test_every_primitive_has_cases():
    missing = set(PRIMITIVES) - set(CASES)
    assert not missing, f"primitives without a test in test_primitives.py: {sorted(missing)}"
    unknown = set(CASES) - set(PRIMITIVES)
    assert not unknown, f"cases for unregistered primitives: {sorted(unknown)}"


def test_every_primitive_has_good_and_bad_cases():
    for name, cases in CASES.items():
        assert any(c.raises is None for c in cases), name
    # every primitive with a shape/dtype rule worth breaking has an error case
    no_errors = {n for n, cs in CASES.items() if not any(c.raises for c in cs)}
    assert no_errors <= {"stop_gradient", "cast", "abs", "sign"}, sorted(no_errors)


def test_primitive_metadata():
    for name, p in PRIMITIVES.items():
        assert p.name == name
        assert callable(p.infer) and callable(p.impl)
        assert set(p.saves) <= {"inputs", "out"}
        if p.arity is not None:
            ok = [c for c in CASES[name] if c.raises is None]
            assert all(len(c.inputs) == p.arity for c in ok), name
        for c in CASES[name]:
            assert set(c.attrs) <= set(p.attrs), (name, c.attrs, p.attrs)   # (some attrs have defaults)


ALL_CASES = [c for cs in CASES.values() for c in cs]


def _types(c):
    return [TensorType(a.shape, dt.from_numpy(a.dtype)) for a in c.inputs]


def _assert_values(got, want, tol):
    assert got.shape == want.shape
    if got.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=tol or 0, atol=tol or 0, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("c", [c for c in ALL_CASES if c.raises is None], ids=repr)
def test_primitive(c):
    p = PRIMITIVES[c.name]
    # infer agrees exactly with what the numpy implementation produces
    t = p.infer(*_types(c), **c.attrs)
    assert isinstance(t, TensorType)
    with np.errstate(all="ignore"):
        raw = np.asarray(p.impl(*[a.copy() for a in c.inputs], **c.attrs))
    assert raw.shape == tuple(t.shape), (raw.shape, t.shape)
    assert raw.dtype == t.dtype.np, (raw.dtype, t.dtype)
    # eager apply returns the expected values, and leaves its inputs alone
    ins = [gc.from_numpy(a.copy()) for a in c.inputs]
    before = [a.copy() for a in c.inputs]
    out = apply(c.name, *ins, **c.attrs)
    assert isinstance(out, Tensor)
    assert out.dtype is t.dtype and tuple(out.shape) == tuple(t.shape)
    assert out.numpy().dtype == t.dtype.np
    for i, b in zip(ins, before):
        np.testing.assert_array_equal(i.numpy(), b)
    want = np.asarray(c.want)
    assert want.dtype == t.dtype.np, f"test bug: reference dtype {want.dtype} for {t}"
    _assert_values(out.numpy(), want, c.tol)
    assert not out.requires_grad and out.grad_fn is None


@pytest.mark.parametrize("c", [c for c in ALL_CASES if c.raises is not None], ids=repr)
def test_primitive_rejects(c):
    p = PRIMITIVES[c.name]
    with pytest.raises(c.raises):
        with np.errstate(all="ignore"):
            p.infer(*_types(c), **c.attrs)
            p.impl(*[a.copy() for a in c.inputs], **c.attrs)   # data errors (index bounds, int pow)
    with pytest.raises(c.raises):
        apply(c.name, *[gc.from_numpy(a.copy()) for a in c.inputs], **c.attrs)


def test_apply_records_grad_only_for_float_outputs():
    x = gc.tensor([1.5, -2.0], requires_grad=True)
    assert apply("exp", x).grad_fn is not None
    assert apply("gt", x, x).grad_fn is None
    assert apply("cast", x, dtype=dt.int64).grad_fn is None
    assert apply("argmax", x, axis=0, keepdim=False).grad_fn is None
    assert apply("stop_gradient", x).grad_fn is None
    with gc.no_grad():
        assert apply("exp", x).grad_fn is None


def test_movement_returns_views_that_share_the_version_counter():
    x = gc.tensor(np.arange(12.0).reshape(3, 4))
    for name, attrs in [("reshape", {"shape": (4, 3)}), ("permute", {"perm": (1, 0)}),
                        ("slice", {"starts": (1, 0), "stops": (3, 4), "steps": (1, 2)}),
                        ("broadcast_to", {"shape": (2, 3, 4)})]:
        y = apply(name, x, **attrs)
        assert np.shares_memory(y.numpy(), x.numpy()), name
        assert y._version is x._version
    y = apply("pad", x, lo=(0, 0), hi=(1, 0), interior=(0, 0), value=0.0)
    assert not np.shares_memory(y.numpy(), x.numpy())


def test_unknown_primitive():
    from graphc.ops import registry
    with pytest.raises(KeyError, match="unknown primitive"):
        registry.get("no_such_op")
    with pytest.raises(ValueError, match="defined twice"):
        registry.register(registry.Primitive("add", "elementwise", None, None))
    with pytest.raises(ValueError, match="unknown category"):
        registry.Primitive("x", "weird", None, None)
