"""The lowering IR: a kernel body's value at a point, as a DAG of small immutable expressions.

Every node is an `Expr(op, args, attr, dtype)`, hash-consed: building a node that is
structurally equal to a live one returns that one, so equal subexpressions are one object (CSE
for free; a renderer memoising by node emits each once) and equality is identity.

  var, const                  loop / thread counters; integer, predicate and value literals
  add sub mul div mod         index arithmetic on int64 (div, mod: of a non-negative dividend by
                              a positive constant; what a negative dividend gives is unspecified,
                              and every use of one is masked by a validity predicate)
  lt ge eq ne, and, select    signed comparisons, conjunction, choice
  load                        a body input (or constant table) at a linear offset
  op                          an elementwise primitive: (name, operand dtype, attrs); rendered by
                              the backends' scalar rule tables
  cast                        an index as a value of a dtype (iota)
  given                       a value the backend supplies: a reduction's result, a GEMM product
  check                       a value, after a runtime check of a predicate (bounds, division)
  u64 uadd umul xor shr unit  the uint64 arithmetic of the random hash; unit: bits -> [0, 1)

Constructors fold constants and identities (x+0, x*1, 0*x, x//1, x%1, chains of constant
offsets and scales) and `linear` recognises linear(delinearize(l, s), s) == l.
"""
from __future__ import annotations

import math
import weakref

from ..kernels import numel, strides

INDEX, PRED, U64 = "index", "pred", "u64"       # the dtypes of non-value nodes


class Expr:
    """One node of the lowering IR (never built directly: use the constructors below)."""

    __slots__ = ("op", "args", "attr", "dtype", "__weakref__")

    def __repr__(self):
        return f"<Expr {short(self)}>"


_TABLE = weakref.WeakValueDictionary()


def _freeze(x):
    """A hashable key for an attribute value that tells 1, 1.0, True, 0.0 and -0.0 apart."""
    if isinstance(x, dict):
        return ("d",) + tuple((k, _freeze(v)) for k, v in sorted(x.items()))
    if isinstance(x, (list, tuple)):
        return ("l",) + tuple(_freeze(v) for v in x)
    if isinstance(x, float):
        return ("f", "nan" if x != x else x.hex())
    if hasattr(x, "dtype") and hasattr(x, "tobytes"):      # numpy scalars and arrays
        return ("a", str(x.dtype), getattr(x, "shape", ()), x.tobytes())
    return (type(x).__name__, x)


def make(op, args=(), attr=None, dtype=INDEX):
    key = (op, args, _freeze(attr), dtype)
    e = _TABLE.get(key)
    if e is None:
        e = object.__new__(Expr)
        e.op, e.args, e.attr, e.dtype = op, args, attr, dtype
        _TABLE[key] = e
    return e


# ---- leaves ------------------------------------------------------------------------------------
def var(name):
    return make("var", (), name)


def const(value, dtype=INDEX):
    if dtype == INDEX or dtype == U64:
        value = int(value)
    elif dtype == PRED:
        value = bool(value)
    else:                                           # a value of a graphc dtype
        value = float(value) if dtype.is_floating_point else bool(value) if dtype.name == "bool" else int(value)
    return make("const", (), value, dtype)


ZERO, ONE = const(0), const(1)
TRUE, FALSE = const(True, PRED), const(False, PRED)


def is_const(e, value=None):
    """Is e an index constant (equal to value, when given)?"""
    return e.op == "const" and e.dtype == INDEX and (value is None or e.attr == value)


# ---- index arithmetic ----------------------------------------------------------------------------
def add(a, b):
    if is_const(a) and is_const(b):
        return const(a.attr + b.attr)
    if is_const(a):
        a, b = b, a
    if is_const(b, 0):
        return a
    if is_const(b) and a.op == "add" and is_const(a.args[1]):      # (x + c1) + c2
        return add(a.args[0], const(a.args[1].attr + b.attr))
    return make("add", (a, b))


def sub(a, b):
    if is_const(b):
        return add(a, const(-b.attr))
    return make("sub", (a, b))


def mul(a, b):
    if not isinstance(b, Expr):
        b = const(b)
    if is_const(a) and is_const(b):
        return const(a.attr * b.attr)
    if is_const(a):
        a, b = b, a
    if is_const(b, 0):
        return ZERO
    if is_const(b, 1):
        return a
    if is_const(b) and a.op == "mul" and is_const(a.args[1]):      # (x * c1) * c2
        return mul(a.args[0], const(a.args[1].attr * b.attr))
    return make("mul", (a, b))


def div(a, n):
    """a // n (n > 0 an int; a >= 0 where the result is used)."""
    if n == 1 or is_const(a, 0):
        return a
    if is_const(a):
        return const(a.attr // n)
    if a.op == "div":                                              # (x // c1) // c2
        return div(a.args[0], a.args[1].attr * n)
    return make("div", (a, const(n)))


def mod(a, n):
    """a % n (n > 0 an int; a >= 0 where the result is used)."""
    if n == 1 or is_const(a, 0):
        return ZERO
    if is_const(a):
        return const(a.attr % n)
    return make("mod", (a, const(n)))


_CMP = {"lt": lambda x, y: x < y, "ge": lambda x, y: x >= y, "eq": lambda x, y: x == y,
        "ne": lambda x, y: x != y}


def cmp(op, a, b):
    if not isinstance(b, Expr):
        b = const(b)
    if is_const(a) and is_const(b):
        return TRUE if _CMP[op](a.attr, b.attr) else FALSE
    return make(op, (a, b), dtype=PRED)


def and_(a, b):
    if a is TRUE or b is FALSE:
        return b
    if b is TRUE or a is FALSE:
        return a
    return make("and", (a, b), dtype=PRED)


def all_of(preds):
    ok = TRUE
    for p in preds:
        ok = and_(ok, p)
    return ok


def select(p, a, b):
    if p is TRUE or a is b:
        return a
    if p is FALSE:
        return b
    return make("select", (p, a, b), dtype=a.dtype)


# ---- row-major offsets -------------------------------------------------------------------------------
def delinearize(lin, shape):
    """The index of linear offset `lin` in a buffer of `shape` (the first non-unit dim takes no
    remainder, so linear(delinearize(l)) == l for every l >= 0)."""
    total, out = numel(shape), []
    if total == 0:          # an empty buffer has no element to index (its strides hold zeros)
        return tuple(ZERO for _ in shape)
    for n, st in zip(shape, strides(shape)):
        if n == 1:
            out.append(ZERO)
            continue
        q = div(lin, st)
        out.append(q if st * n >= total else mod(q, n))
    return tuple(out)


def _delinearized(run, sub):
    """l when the index run is exactly delinearize(l, sub), else None."""
    last = max((j for j, n in enumerate(sub) if n != 1), default=None)
    if last is None:
        return None
    comp = run[last]
    cands = [comp.args[0]] if comp.op == "mod" and comp.args[1].attr == sub[last] else []
    for lin in cands + [comp]:
        if delinearize(lin, sub) == tuple(run):
            return lin
    return None


def linear(idx, shape):
    """Row-major linear offset of idx in a buffer of `shape`. A run of dims whose indices are
    what `delinearize` made of one linear index over the same sub-shape (a reshape that merged
    or split contiguous dims) contributes that index times the run's last stride: no division
    survives, and LLVM still vectorises the loop (it cannot prove (j/9)*9 + (j/3%3)*3 + j%3 == j)."""
    idx, shape = tuple(idx), tuple(shape)
    st, off, d = strides(shape), ZERO, 0
    while d < len(idx):
        hit = None
        for k in range(len(idx) - d, 1, -1):
            lin = _delinearized(idx[d:d + k], shape[d:d + k])
            if lin is not None:
                hit = (lin, k)
                break
        if hit is not None:
            off = add(off, mul(hit[0], st[d + hit[1] - 1]))
            d += hit[1]
            continue
        if shape[d] != 1:
            off = add(off, mul(idx[d], st[d]))
        d += 1
    return off


# ---- values --------------------------------------------------------------------------------------------
def load(buf, offset, dtype, size, what, table=None):
    """Element `offset` of body input `buf` (size elements; `what` names it in a failed check).
    table: (dtype, data) of a constant table, which the renderer materialises."""
    return make("load", (offset,), (buf, size, what, table), dtype)


def given(name, dtype):
    return make("given", (), name, dtype)


def scalar(prim, in_dtype, out_dtype, args, attrs):
    return make("op", tuple(args), (prim, in_dtype, dict(attrs)), out_dtype)


def cast(x, dtype):
    return make("cast", (x,), None, dtype)


def check(value, ok, what, limit, kind):
    """value, once `ok` holds (a renderer with checks emits the test before any use)."""
    if ok is TRUE:
        return value
    return make("check", (value, ok), (what, limit, kind), value.dtype)


def u64(x):
    return make("u64", (x,), None, U64)


def uop(op, a, b):
    """uadd / umul / xor / shr on uint64 (wrapping); b may be an int constant."""
    if not isinstance(b, Expr):
        b = const(b, U64)
    return make(op, (a, b), None, U64)


def unit(bits, dtype):
    """bits as a uniform float in [0, 1): the top 24 (float32) or 53 (float64) bits, scaled."""
    return make("unit", (bits,), None, dtype)


# ---- traversal and text ---------------------------------------------------------------------------------
def postorder(roots, done=()):
    """Every node reachable from roots and not in `done` (a container, e.g. a renderer's memo),
    operands before users, each once (iterative: a 10,000-op chain is a 10,000-deep DAG)."""
    seen, out = set(), []
    stack = [(r, False) for r in reversed(list(roots))]
    while stack:
        e, expanded = stack.pop()
        if e in seen or e in done:
            continue
        if expanded:
            seen.add(e)
            out.append(e)
            continue
        stack.append((e, True))
        for a in reversed(e.args):
            if a not in seen and a not in done:
                stack.append((a, False))
    return out


def _dt(d):
    return d if isinstance(d, str) else getattr(d, "short", str(d))


def short(e):
    """A leaf's text, or a non-leaf's op."""
    if e.op == "var":
        return e.attr
    if e.op == "const":
        v = e.attr
        if e.dtype == INDEX:
            return str(v)
        return f"{v!r}:{_dt(e.dtype)}" if not (isinstance(v, float) and math.isnan(v)) else f"nan:{_dt(e.dtype)}"
    return e.op


def _attr_text(e):
    if e.op == "op":
        prim, in_dt, attrs = e.attr
        extra = "".join(f" {k}={v!r}" for k, v in sorted(attrs.items()))
        return f" {prim}({_dt(in_dt)}){extra}"
    if e.op == "load":
        return f" {e.attr[0]}"
    if e.op in ("given",):
        return f" {e.attr}"
    if e.op == "check":
        return f" {e.attr[2]} {e.attr[0]!r}"
    return ""


def to_text(roots):
    """The DAG under roots as numbered lines, operands first: `%3 = mul(%1, 12) : index`; the
    last line names the roots. Leaves print inline."""
    roots = list(roots)
    names, lines = {}, []
    for e in postorder(roots):
        if not e.args and e.op in ("var", "const"):
            names[e] = short(e)
            continue
        names[e] = f"%{len(lines)}"
        args = ", ".join(names[a] for a in e.args)
        head = e.op + _attr_text(e)
        lines.append(f"{names[e]} = {head}({args}) : {_dt(e.dtype)}")
    lines.append("-> " + ", ".join(names[r] for r in roots))
    return "\n".join(lines)
