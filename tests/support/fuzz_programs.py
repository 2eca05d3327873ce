"""Random user-level programs for the differential fuzz test (tests/test_fuzz.py, bench/fuzz.py).

A `Program` is a small straight-line Python function over the PyTorch-style API, written as
source text: the same text runs on graphc (eagerly or under `graphc.compile`) and on torch, and
its `repr` is that text, so a shrunk hypothesis failure prints a ready-to-run repro. Every
program returns `(loss, (outputs...))`: `loss` is a scalar built from the outputs (a weighted
sum with a fixed cotangent, `.sum()` or `.mean()`), the outputs are tensors to compare.

`programs()` draws them: elementwise unary and binary ops (with broadcasting both ways and
scalar operands), transposes/permutes, reshapes/unsqueeze/squeeze/expand, basic indexing
(slices with steps, ints, `None`, `...`), cat/stack, pad, gather/index_select, where, reductions
(sum, mean, amax, amin, max(dim), logsumexp, var), matmul in every rank combination,
softmax/log_softmax and layer_norm, over shapes with odd sizes, size-1 and size-0 dims. The
generator tracks each value's shape (so every program is valid) and a bound on its magnitude
(exp only where it cannot overflow, no op whose values could pass ~1e6), and writes the
ill-conditioned ops in safe forms: log(|x| + 1), x / (y*y + 1), sqrt(x*x + 1), where() on a
condition read from an input. Points where a program is not differentiable (relu/abs/sign at
0, maximum/minimum/clamp ties, amax/amin/max ties) are listed as `kinks`, so a checker can
reject data that lands within rounding of one (see `near_kinks`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

# dimension sizes, the simplest first (hypothesis shrinks towards the front of the list)
SIZES = (1, 2, 3, 5, 4, 7, 0, 8, 6, 17, 33)
TINY_SIZES = (1, 2, 3, 0, 4, 5)          # for the CUDA simulator: every element is a Python thread
LAYOUTS = ("contiguous", "strided", "transposed")
# GRAPHC_FUZZ_AVOID=state-alias,...: step around a known bug to look for others (see check_program)
AVOID = set(filter(None, __import__("os").environ.get("GRAPHC_FUZZ_AVOID", "").split(",")))
BOUND_MAX = 1e6          # no value the generator cannot bound below this (f32 keeps ~7 digits)
EXP_MAX = 6.0            # exp only of values bounded by this


@dataclass
class Input:
    name: str
    shape: tuple
    role: str            # "x": float, requires grad; "c": float condition (where: c > 0);
    #                      "w": float cotangent (no grad); "i": int64 index in [0, high)
    high: int = 0


@dataclass
class Value:
    name: str
    shape: tuple
    bound: float


@dataclass
class Program:
    inputs: list
    lines: list                  # (name, expr) in order
    outputs: list                # names
    loss: str                    # expression
    kinks: list = field(default_factory=list)   # (kind, args...), see near_kinks
    dtype: str = "float32"       # dtype the program is run (and compiled) in
    seed: int = 0                # data seed
    specials: int = 0            # number of nan/inf/0 entries planted in the first float input
    layout: str = "contiguous"   # how the inputs are laid out in memory for the runs in `dtype`
    #                              (eager and compiled): "contiguous", "strided" (every other
    #                              element of the last dim) or "transposed" (a .mT view)

    # ---- source ---------------------------------------------------------------------------------
    def body(self):
        out = [f"    {n} = {e}" for n, e in self.lines]
        out.append(f"    loss = {self.loss}")
        return out

    def source(self, name="f"):
        args = ", ".join(i.name for i in self.inputs)
        outs = "".join(o + ", " for o in self.outputs)
        return "\n".join([f"def {name}({args}):", *self.body(), f"    return loss, ({outs})"])

    def function(self, lib, all_values=False):
        """The program as a Python function over `lib` (graphc or torch); with all_values it
        returns a dict of every named value instead."""
        src = self.source()
        if all_values:
            src = "\n".join([f"def f({', '.join(i.name for i in self.inputs)}):", *self.body(),
                             "    return dict(locals())"])
        ns = {"gc": lib, "F": lib.nn.functional}
        exec(compile(src, "<fuzz program>", "exec"), ns)     # noqa: S102 -- our own generated text
        return ns["f"]

    def input_shapes(self):
        return {i.name: i.shape for i in self.inputs}

    def __repr__(self):
        ins = ", ".join(f"{i.name}: {i.role}{list(i.shape)}" + (f"<{i.high}" if i.role == "i" else "")
                        for i in self.inputs)
        return (f"\n# inputs {ins}; dtype={self.dtype}, seed={self.seed}, specials={self.specials}, "
                f"layout={self.layout}\n"
                f"{self.source()}\n")

    def _repr_pretty_(self, printer, cycle):       # what hypothesis prints for a falsifying example
        printer.text(repr(self))

    # ---- data -------------------------------------------------------------------------------------
    def arrays(self):
        """The inputs as numpy arrays (float64 / int64), from `seed`."""
        rng = np.random.default_rng(self.seed)
        res = []
        planted = False
        for i in self.inputs:
            if i.role == "i":
                res.append(rng.integers(0, max(i.high, 1), i.shape).astype(np.int64))
                continue
            if i.role == "c":
                a = rng.standard_normal(i.shape)
            else:
                a = rng.uniform(-2.0, 2.0, i.shape)
            if self.specials and not planted and i.role == "x" and a.size:
                flat = a.reshape(-1)
                for k in range(self.specials):
                    flat[rng.integers(0, flat.size)] = (np.nan, np.inf, -np.inf, 0.0)[k % 4]
                planted = True
            res.append(np.asarray(a, dtype=np.float64))
        return res


# ---- kinks -------------------------------------------------------------------------------------------
def _rel_close(m, scale, tau):
    m = np.asarray(m, dtype=np.float64)
    m = m[np.isfinite(m)]
    return bool(np.any((m > 0) & (m < tau * scale)))


def near_kinks(prog, values, tau=1e-4):
    """Whether some value of the program (values: name -> float64 numpy array, from a float64
    run) lies within tau (relative to the operand's magnitude) of a point where the program is
    not differentiable, but not exactly on it: there float32 rounding may pick the other side.
    Exact ties / zeros (x*0, cat([a, a]), relu(x - x)) are kept: every backend sees them exactly."""
    for kind, *args in prog.kinks:
        if kind == "rstd":
            continue
        a = np.asarray(values[args[0]], dtype=np.float64)
        if a.size == 0:
            continue
        fin = a[np.isfinite(a)]
        scale = max(1.0, float(np.max(np.abs(fin)))) if fin.size else 1.0
        if kind == "zero":
            m = np.abs(a)
        elif kind == "near":
            m = np.abs(a - args[1])
        elif kind == "tie":
            b = np.asarray(values[args[1]], dtype=np.float64)
            fb = b[np.isfinite(b)]
            if fb.size:
                scale = max(scale, float(np.max(np.abs(fb))))
            m = np.abs(a - b)
        elif kind == "top2":
            dims, largest = args[1], args[2]
            dims = tuple(range(a.ndim)) if dims is None else tuple(d % a.ndim for d in dims)
            if a.ndim == 0:
                continue
            rest = [d for d in range(a.ndim) if d not in dims]
            r = np.transpose(a, rest + list(dims)).reshape([a.shape[d] for d in rest] + [-1])
            if r.shape[-1] < 2:
                continue
            s = np.sort(r, axis=-1)
            m = (s[..., -1] - s[..., -2]) if largest else (s[..., 1] - s[..., 0])
        else:
            raise ValueError(kind)
        if _rel_close(m, scale, tau):
            return True
    return False


def amplification(prog, values, eps=1e-5):
    """How much the program can amplify rounding errors beyond what the outputs' magnitudes
    show: layer_norm multiplies x - mean by 1/sqrt(var + eps), up to 316 where a normalized
    group is (nearly) constant (a size-1 group, an expanded row), so that its gradient is a
    difference of terms that large. The product over the layer_norms of max(1, that factor)."""
    amp = 1.0
    for kind, *args in prog.kinks:
        if kind != "rstd":
            continue
        a, k = np.asarray(values[args[0]], dtype=np.float64), args[1]
        if a.size == 0:
            continue
        axes = tuple(range(a.ndim - k, a.ndim))
        with np.errstate(all="ignore"):
            var = np.var(a, axis=axes)
            r = 1.0 / np.sqrt(var + eps)
        r = r[np.isfinite(r)]
        if r.size:
            amp *= max(1.0, float(r.max()))
    return amp


# ---- the generator -----------------------------------------------------------------------------------
def _numel(shape):
    return math.prod(shape)


def _bshape(a, b):
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        assert x == y or x == 1 or y == 1, (a, b)
        out.append(y if x == 1 else x)
    return tuple(out)


def _slice_text(s):
    a = "" if s.start is None else str(s.start)
    b = "" if s.stop is None else str(s.stop)
    return f"{a}:{b}" + ("" if s.step in (None, 1) else f":{s.step}")


def _tuple(t):
    t = tuple(t)
    return f"({t[0]},)" if len(t) == 1 else "(" + ", ".join(str(x) for x in t) + ")"


class _Builder:
    def __init__(self, draw, sizes, max_numel, max_ndim, specials=0):
        self.specials = specials
        self.pool = None
        self.draw, self.sizes, self.max_numel, self.max_ndim = draw, sizes, max_numel, max_ndim
        self.inputs, self.values, self.lines, self.kinks = [], [], [], []
        self.counts = {}

    # names and shapes
    def fresh(self, prefix):
        k = self.counts.get(prefix, 0)
        self.counts[prefix] = k + 1
        return f"{prefix}{k}"

    def size(self):
        """A dim size: mostly from the program's few sizes (square matrices, matching dims: the
        in-place and aliasing cases), else any."""
        if self.pool is None:
            self.pool = self.draw(st.lists(st.sampled_from(self.sizes), min_size=1, max_size=3))
        if self.draw(st.integers(0, 3)):
            return self.draw(st.sampled_from(self.pool))
        return self.draw(st.sampled_from(self.sizes))

    def shape(self, min_ndim=0):
        nd = self.draw(st.integers(min_ndim, self.max_ndim))
        for _ in range(4):
            s = tuple(self.size() for _ in range(nd))
            if _numel(s) <= self.max_numel:
                return s
        return (1,) * nd

    def new_input(self, shape, role="x", high=0):
        i = Input(self.fresh({"x": "x", "c": "c", "w": "w", "i": "i"}[role]), tuple(shape), role, high)
        self.inputs.append(i)
        if role == "x":
            v = Value(i.name, i.shape, 2.0)
            self.values.append(v)
            return v
        return i

    def emit(self, expr, shape, bound, kinks=()):
        shape = tuple(shape)
        if _numel(shape) > self.max_numel or not bound <= BOUND_MAX:
            return None
        v = Value(self.fresh("v"), shape, float(bound))
        self.lines.append((v.name, expr))
        self.values.append(v)
        for k in kinks:
            self.kinks.append((k[0], v.name if k[1] is None else k[1], *k[2:]))
        return v

    def ok(self, shape):
        return _numel(shape) <= self.max_numel

    def dim(self, nd, allow_negative=True):
        d = self.draw(st.integers(0, nd - 1))
        if allow_negative and self.draw(st.booleans()):
            d -= nd
        return d

    def partner(self, shape, x=None):
        """A float value of exactly `shape`: x itself, an existing value, or a new input."""
        cands = [v for v in self.values if v.shape == tuple(shape)]
        if x is not None and x.shape == tuple(shape) and self.draw(st.integers(0, 4)) == 0:
            return x
        if cands and self.draw(st.booleans()):
            return self.draw(st.sampled_from(cands))
        return self.new_input(shape)

    def bcast_shape(self, shape):
        """A shape that broadcasts with `shape` (fewer/more leading dims, some dims 1)."""
        s = list(shape)
        kind = self.draw(st.sampled_from(["same", "ones", "drop", "prepend", "expand1"]))
        if kind == "ones" and s:
            for d in range(len(s)):
                if self.draw(st.booleans()):
                    s[d] = 1
        elif kind == "drop" and s:
            s = s[self.draw(st.integers(1, len(s))):]
        elif kind == "prepend" and len(s) < self.max_ndim + 1:
            s = [self.size()] + s
        elif kind == "expand1" and 1 in s:
            s = [self.size() if n == 1 and self.draw(st.booleans()) else n for n in s]
        return tuple(s)

    # ---- ops: each returns the new Value, or None where it does not apply --------------------------------
    def op_unary(self, x):
        n, b = x.name, x.bound
        ops = ["neg", "exp", "tanh", "relu", "abs", "sigmoid", "log", "sin", "cos", "sqrt", "rsqrt",
               "erf", "gelu", "silu", "softplus", "square", "cube", "sign", "clamp", "scalar"]
        op = self.draw(st.sampled_from(ops))
        if op == "exp" and b > EXP_MAX:
            op = "tanh"
        if op in ("sign", "abs") and self.specials:
            op = "neg"      # torch.sign(nan) is 0 (and so abs's gradient at nan), graphc's nan
        sh = x.shape
        table = {
            "neg": (f"-{n}", b, ()),
            "exp": (f"{n}.exp()", math.exp(min(b, 700.0)), ()),
            "tanh": (f"{n}.tanh()", 1.0, ()),
            "relu": (f"F.relu({n})", b, [("zero", n)]),
            "abs": (f"{n}.abs()", b, [("zero", n)]),
            "sigmoid": (f"{n}.sigmoid()", 1.0, ()),
            "log": (f"({n}.abs() + 1).log()", math.log1p(b), [("zero", n)]),
            "sin": (f"{n}.sin()", 1.0, ()),
            "cos": (f"{n}.cos()", 1.0, ()),
            "sqrt": (f"({n} * {n} + 1).sqrt()", b + 1, ()),
            "rsqrt": (f"({n} * {n} + 1).rsqrt()", 1.0, ()),
            "erf": (f"{n}.erf()", 1.0, ()),
            "gelu": (f"F.gelu({n})", b, ()),
            "silu": (f"F.silu({n})", b, ()),
            "softplus": (f"F.softplus({n})", b + 1, ()),
            "square": (f"{n} ** 2", b * b, ()),
            "cube": (f"{n} ** 3", b ** 3, ()),
            "sign": (f"{n}.sign()", 1.0, [("zero", n)]),
            "clamp": (f"{n}.clamp(-1.0, 1.0)", 1.0, [("near", n, -1.0), ("near", n, 1.0)]),
        }
        if op == "scalar":
            form = self.draw(st.sampled_from(["{} * 0.5", "{} + 1.5", "2.0 - {}", "{} / 3.0", "-0.25 * {}"]))
            return self.emit(form.format(n), sh, b + 2, ())
        e, bound, kinks = table[op]
        return self.emit(e, sh, bound, [(k[0], k[1], *k[2:]) for k in kinks])

    def op_binary(self, x):
        op = self.draw(st.sampled_from(["add", "mul", "sub", "div", "maximum", "minimum", "pow"]))
        y = self.partner(self.bcast_shape(x.shape), x)
        a, b = (x, y) if self.draw(st.booleans()) else (y, x)
        sh = _bshape(a.shape, b.shape)
        if not self.ok(sh):
            return None
        A, B = a.name, b.name
        if op == "add":
            return self.emit(f"{A} + {B}", sh, a.bound + b.bound)
        if op == "sub":
            return self.emit(f"{A} - {B}", sh, a.bound + b.bound)
        if op == "mul":
            return self.emit(f"{A} * {B}", sh, a.bound * b.bound)
        if op == "div":
            return self.emit(f"{A} / ({B} * {B} + 1)", sh, a.bound)
        if op == "pow":
            return self.emit(f"({A} * {A} + 1) ** {B}.tanh()", sh, a.bound * a.bound + 1)
        fn = "gc.maximum" if op == "maximum" else "gc.minimum"
        return self.emit(f"{fn}({A}, {B})", sh, max(a.bound, b.bound), [("tie", A, B)])

    def op_where(self, x):
        c = self.new_input(self.bcast_shape(x.shape), role="c")
        if self.draw(st.booleans()):
            y = self.partner(self.bcast_shape(_bshape(c.shape, x.shape)), x)
            yn, yb, ys = y.name, y.bound, y.shape
        else:
            yn, yb, ys = "0.0", 0.0, ()
        args = [x.name, yn] if self.draw(st.booleans()) else [yn, x.name]
        sh = _bshape(_bshape(c.shape, x.shape), ys)
        return self.emit(f"gc.where({c.name} > 0, {args[0]}, {args[1]})", sh, max(x.bound, yb))

    def op_transpose(self, x):
        nd = len(x.shape)
        if nd < 2:
            return None
        kind = self.draw(st.sampled_from(["transpose", "permute", "mT"]))
        if kind == "transpose":
            d0, d1 = self.dim(nd), self.dim(nd)
            s = list(x.shape)
            s[d0], s[d1] = s[d1], s[d0]
            return self.emit(f"{x.name}.transpose({d0}, {d1})", s, x.bound)
        if kind == "mT":
            s = list(x.shape)
            s[-1], s[-2] = s[-2], s[-1]
            return self.emit(f"{x.name}.mT" if nd > 2 or self.draw(st.booleans()) else f"{x.name}.T", s, x.bound)
        perm = self.draw(st.permutations(range(nd)))
        return self.emit(f"{x.name}.permute{_tuple(perm)}", [x.shape[p] for p in perm], x.bound)

    def op_reshape(self, x):
        s, nd = list(x.shape), len(x.shape)
        kind = self.draw(st.sampled_from(["unsqueeze", "flatten", "squeeze", "split", "merge", "expand", "index_none"]))
        if kind == "unsqueeze" and nd < self.max_ndim + 1:
            d = self.draw(st.integers(-nd - 1, nd))
            t = list(s)
            t.insert(d % (nd + 1), 1)
            return self.emit(f"{x.name}.unsqueeze({d})", t, x.bound)
        if kind == "index_none" and nd < self.max_ndim + 1:
            return self.emit(f"{x.name}[None]", [1] + s, x.bound)
        if kind == "flatten" and nd != 1:
            return self.emit(f"{x.name}.reshape({_numel(s)})", [_numel(s)], x.bound)
        if kind == "squeeze" and 1 in s:
            d = self.draw(st.sampled_from([d for d in range(nd) if s[d] == 1]))
            return self.emit(f"{x.name}.squeeze({d})", s[:d] + s[d + 1:], x.bound)
        if kind == "split" and nd < self.max_ndim + 1:
            cands = [(d, f) for d in range(nd) for f in range(2, s[d]) if s[d] % f == 0]
            if not cands:
                return None
            d, f = self.draw(st.sampled_from(cands))
            t = s[:d] + [f, s[d] // f] + s[d + 1:]
            return self.emit(f"{x.name}.reshape{_tuple(t)}", t, x.bound)
        if kind == "merge" and nd >= 2:
            d = self.draw(st.integers(0, nd - 2))
            t = s[:d] + [s[d] * s[d + 1]] + s[d + 2:]
            return self.emit(f"{x.name}.reshape{_tuple(t)}", t, x.bound)
        if kind == "expand" and 1 in s:
            t = [self.size() if n == 1 and self.draw(st.booleans()) else n for n in s]
            lead = [self.size()] if nd < self.max_ndim + 1 and self.draw(st.booleans()) else []
            if not self.ok(lead + t):
                return None
            spelled = lead + [-1 if t[d] == s[d] and self.draw(st.booleans()) else t[d] for d in range(nd)]
            return self.emit(f"{x.name}.expand{_tuple(spelled)}", lead + t, x.bound)
        return None

    def op_index(self, x):
        s, nd = x.shape, len(x.shape)
        if nd == 0:
            return None
        items, shape = [], []
        for d in range(nd):
            n = s[d]
            kind = self.draw(st.sampled_from(["full", "slice", "int"]))
            if kind == "int" and n > 0:
                k = self.draw(st.integers(-n, n - 1))
                items.append(str(k))
            elif kind == "slice":
                start = self.draw(st.one_of(st.none(), st.integers(-n - 1, n + 1)))
                stop = self.draw(st.one_of(st.none(), st.integers(-n - 1, n + 1)))
                step = self.draw(st.sampled_from([None, 1, 2, 3]))
                sl = slice(start, stop, step)
                items.append(_slice_text(sl))
                shape.append(len(range(*sl.indices(n))))
            else:
                items.append(":")
                shape.append(n)
        if items and items[0] == ":" and any(i != ":" for i in items) and self.draw(st.booleans()):
            k = 0                                   # x[..., 1:3]: the leading full dims as ...
            while items[k] == ":":
                k += 1
            items = ["..."] + items[k:]
        while len(items) > 1 and items[-1] == ":" and items[0] != "...":
            items.pop()
        return self.emit(f"{x.name}[{', '.join(items)}]", shape, x.bound)

    def op_cat(self, x):
        nd = len(x.shape)
        if nd == 0:
            return None
        stack = self.draw(st.integers(0, 3)) == 0
        k = self.draw(st.integers(2, 3))
        parts = [x]
        if stack:
            d = self.draw(st.integers(-nd - 1, nd))
            for _ in range(k - 1):
                parts.append(self.partner(x.shape, x))
            order = self.draw(st.permutations(range(k)))
            t = list(x.shape)
            t.insert(d % (nd + 1), k)
            names = ", ".join(parts[o].name for o in order)
            return self.emit(f"gc.stack([{names}], dim={d})", t, max(p.bound for p in parts))
        d = self.dim(nd)
        for _ in range(k - 1):
            t = list(x.shape)
            if self.draw(st.booleans()):
                t[d] = self.size()
            parts.append(self.partner(t, x))
        order = self.draw(st.permutations(range(k)))
        t = list(x.shape)
        t[d] = sum(p.shape[d] for p in parts)
        names = ", ".join(parts[o].name for o in order)
        return self.emit(f"gc.cat([{names}], dim={d})", t, max(p.bound for p in parts))

    def op_pad(self, x):
        nd = len(x.shape)
        if nd == 0:
            return None
        k = self.draw(st.integers(1, min(2, nd)))
        pads = [self.draw(st.integers(0, 2)) for _ in range(2 * k)]
        t = list(x.shape)
        for j in range(k):
            t[nd - 1 - j] += pads[2 * j] + pads[2 * j + 1]
        v = self.draw(st.sampled_from([0.0, 1.5]))
        return self.emit(f"F.pad({x.name}, {_tuple(pads)}, value={v})", t, max(x.bound, v))

    def op_gather(self, x):
        nd = len(x.shape)
        if nd == 0:
            return None
        d = self.dim(nd)
        if x.shape[d] == 0:
            return None
        m = self.draw(st.integers(0, 3))
        if self.draw(st.booleans()):
            i = self.new_input((m,), role="i", high=x.shape[d])
            t = list(x.shape)
            t[d] = m
            return self.emit(f"{x.name}.index_select({d}, {i.name})", t, x.bound)
        t = list(x.shape)
        t[d] = m
        i = self.new_input(t, role="i", high=x.shape[d])
        return self.emit(f"{x.name}.gather({d}, {i.name})", t, x.bound)

    def op_reduce(self, x):
        nd = len(x.shape)
        op = self.draw(st.sampled_from(["sum", "mean", "amax", "amin", "max_dim", "logsumexp", "var"]))
        if nd == 0:
            dims = None
        elif op in ("max_dim", "logsumexp") or self.draw(st.booleans()):
            dims = (self.dim(nd),)
        elif self.draw(st.booleans()):
            dims = None
        else:
            ds = self.draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True))
            dims = tuple(d - nd if self.draw(st.booleans()) else d for d in ds)
        if op in ("max_dim", "logsumexp") and dims is None:
            op = "sum"
        keep = self.draw(st.booleans())
        red = tuple(range(nd)) if dims is None else tuple(sorted(d % nd for d in dims))
        if op in ("amax", "amin", "max_dim") and any(x.shape[d] == 0 for d in red):
            op = "sum"            # torch: "max(): Expected reduction dim to be specified for input.numel() == 0"
        n = _numel([x.shape[d] for d in red])
        shape = [1 if d in red else x.shape[d] for d in range(nd)] if keep else \
                [x.shape[d] for d in range(nd) if d not in red]
        if dims is None:
            arg = "" if not keep else f"dim={_tuple(tuple(range(nd)))}, keepdim=True"
            if keep and nd == 0:
                arg = ""
        elif len(dims) == 1 and self.draw(st.booleans()):
            arg = f"dim={dims[0]}, keepdim={keep}" if keep or self.draw(st.booleans()) else f"{dims[0]}"
        else:
            arg = f"dim={_tuple(dims)}, keepdim={keep}"
        if dims is None and keep and nd == 0:
            shape = []
        X = x.name
        if op == "sum":
            return self.emit(f"{X}.sum({arg})", shape, x.bound * max(n, 1))
        if op == "mean":
            return self.emit(f"{X}.mean({arg})", shape, x.bound)
        if op == "var":
            if dims is None:
                arg = "unbiased=False" if not arg else arg + ", unbiased=False"
            else:
                arg = f"dim={_tuple(dims)}, unbiased=False, keepdim={keep}"
            return self.emit(f"{X}.var({arg})", shape, x.bound * x.bound * 4)
        if op in ("amax", "amin"):
            return self.emit(f"{X}.{op}({arg})", shape, x.bound, [("top2", X, dims, op == "amax")])
        if op == "max_dim":
            return self.emit(f"{X}.max(dim={dims[0]}, keepdim={keep}).values", shape, x.bound,
                             [("top2", X, dims, True)])
        return self.emit(f"gc.logsumexp({X}, dim={dims[0]}, keepdim={keep})", shape,
                         x.bound + math.log(max(n, 1)) + 1)

    def op_matmul(self, x):
        s, nd = x.shape, len(x.shape)
        if nd == 0:
            return None
        k = s[-1]
        kind = self.draw(st.sampled_from(["mat", "vec", "batch", "self_t", "left"]))
        if kind == "self_t" and nd >= 2:           # x @ x.mT (transpose folded into the matmul)
            if self.draw(st.booleans()):
                return self.emit(f"{x.name} @ {x.name}.mT", s[:-1] + (s[-2],), x.bound * x.bound * max(k, 1))
            return self.emit(f"{x.name}.mT @ {x.name}", s[:-2] + (s[-1], s[-1]), x.bound * x.bound * max(s[-2], 1))
        if kind == "left":                          # y @ x, x as the right operand
            if nd == 1:
                y = self.partner((self.size(), s[0]) if self.draw(st.booleans()) else (s[0],), x)
                out = y.shape[:-1]
                kk = s[0]
            else:
                y = self.partner(self.bcast_shape(s[:-2]) + (self.size(), s[-2]), x)
                out = _bshape(y.shape[:-2], s[:-2]) + (y.shape[-2], s[-1])
                kk = s[-2]
            return self.emit(f"{y.name} @ {x.name}", out, x.bound * y.bound * max(kk, 1))
        if kind == "vec" or nd == 1 and kind != "batch":
            y = self.partner((k,), x)
            out = s[:-1]
        elif kind == "batch" and nd >= 1:
            batch = self.bcast_shape(s[:-2]) if nd >= 2 else (self.size(),)
            y = self.partner(tuple(batch) + (k, self.size()), x)
            out = (_bshape(s[:-2], batch) + (s[-2], y.shape[-1])) if nd >= 2 else batch + (y.shape[-1],)
        else:
            y = self.partner((k, self.size()), x)
            out = s[:-1] + (y.shape[-1],)
        if not self.ok(out):
            return None
        return self.emit(f"{x.name} @ {y.name}", out, x.bound * y.bound * max(k, 1))

    def op_softmax(self, x):
        nd = len(x.shape)
        if nd == 0:
            return None
        d = self.dim(nd)
        if self.draw(st.booleans()):
            return self.emit(f"F.softmax({x.name}, dim={d})", x.shape, 1.0)
        return self.emit(f"F.log_softmax({x.name}, dim={d})", x.shape,
                         2 * x.bound + math.log(max(x.shape[d], 1)) + 1)

    def op_layer_norm(self, x):
        nd = len(x.shape)
        if nd == 0:
            return None
        k = self.draw(st.integers(1, min(nd, 2)))
        ns = x.shape[nd - k:]
        args = [x.name, _tuple(ns)]
        bound = math.sqrt(max(_numel(ns), 1)) + 1
        if self.draw(st.booleans()):
            w = self.partner(ns)
            args.append(w.name)
            bound *= w.bound
            if self.draw(st.booleans()):
                b = self.partner(ns)
                args.append(b.name)
                bound += b.bound
        return self.emit(f"F.layer_norm({', '.join(args)})", x.shape, bound, [("rstd", x.name, k)])

    OPS = ("unary", "binary", "transpose", "reshape", "index", "reduce", "matmul", "softmax", "cat",
           "layer_norm", "where", "pad", "gather")


@st.composite
def programs(draw, max_steps=8, sizes=SIZES, max_numel=1200, max_ndim=3, ops=_Builder.OPS,
             dtypes=("float32", "float64"), specials=True):
    """A random valid Program (see the module docstring)."""
    n_special = draw(st.sampled_from([0, 0, 0, 1, 3])) if specials else 0
    b = _Builder(draw, sizes, max_numel, max_ndim, n_special)
    for _ in range(draw(st.integers(1, 2))):
        b.new_input(b.shape())
    n_steps = draw(st.integers(1, max_steps))
    for _ in range(n_steps):
        recent = b.values[::-1]                  # the newest first: chains, not only fans
        x = draw(st.sampled_from(recent[:4]) if draw(st.integers(0, 3)) else st.sampled_from(recent))
        for _ in range(3):
            op = draw(st.sampled_from(ops))
            if getattr(b, "op_" + op)(x) is not None:
                break
    made = [v for v in b.values if not any(v.name == i.name for i in b.inputs)]
    if not made:
        made = [b.emit(f"{b.values[0].name} * 1.0", b.values[0].shape, b.values[0].bound)]
    used = set()
    for _, expr in b.lines:
        used |= set(_WORD.findall(expr))
    outputs = [v for v in made if v.name not in used][-3:]      # the sinks (at most 3) ...
    inner = [v for v in made if v.name in used]
    if inner and draw(st.integers(0, 2)) == 0:                  # ... and maybe a value used later
        outputs.insert(0, draw(st.sampled_from(inner)))
    terms = []
    for o in outputs:
        kind = draw(st.sampled_from(["cot", "sum", "mean"]))
        if kind == "cot":
            w = b.new_input(o.shape, role="w")
            terms.append(f"({o.name} * {w.name}).sum()")
        elif kind == "mean" and _numel(o.shape):
            terms.append(f"{o.name}.mean()")
        else:
            terms.append(f"{o.name}.sum()")
    prog = Program(b.inputs, b.lines, [o.name for o in outputs], " + ".join(terms), b.kinks,
                   dtype=draw(st.sampled_from(dtypes)), seed=draw(st.integers(0, 2 ** 16)),
                   specials=n_special, layout=draw(st.sampled_from(LAYOUTS)))
    return prune(prog)


_WORD = re.compile(r"[A-Za-z_]\w*")


def prune(prog):
    """Drop the lines and inputs that neither the outputs nor the loss read, and number the
    values v0, v1, ... in order."""
    live = set(prog.outputs) | set(_WORD.findall(prog.loss))
    keep = []
    for name, expr in reversed(prog.lines):
        if name in live:
            keep.append((name, expr))
            live |= set(_WORD.findall(expr))
    keep.reverse()
    inputs = [i for i in prog.inputs if i.name in live]
    names = {n for n, _ in keep} | {i.name for i in inputs}
    kinks = [k for k in prog.kinks if all(a in names for a in k[1:] if isinstance(a, str))]
    ren = {n: f"v{k}" for k, (n, _) in enumerate(keep)}

    def sub(text):
        return _WORD.sub(lambda m: ren.get(m.group(0), m.group(0)), text)
    return Program(inputs, [(ren[n], sub(e)) for n, e in keep], [ren.get(o, o) for o in prog.outputs],
                   sub(prog.loss), [(k[0], *[ren.get(a, a) if isinstance(a, str) else a for a in k[1:]])
                                    for k in kinks], prog.dtype, prog.seed, prog.specials, prog.layout)


# ---- the differential check ----------------------------------------------------------------------------
class Mismatch(AssertionError):
    pass


class Rejected(Exception):
    """The data lands within rounding of a kink: comparing gradients there is meaningless."""


# (rtol, atol relative to the reference's largest magnitude) per comparison
TOL = {
    ("interp", "float32"): (2e-5, 2e-5), ("interp", "float64"): (1e-11, 1e-11),
    ("llvm", "float32"): (1e-4, 1e-4), ("llvm", "float64"): (1e-10, 1e-10),
    ("cuda", "float32"): (1e-4, 1e-4), ("cuda", "float64"): (1e-10, 1e-10),
    ("f64", "float32"): (2e-3, 2e-3), ("f64", "float64"): (1e-9, 1e-9),
    ("torch", "float64"): (1e-9, 1e-9),
}


def compare(what, got, want, tol, amp=1.0, undefined_grads=False):
    """got == want (dicts name -> array) within tol = (rtol, atol scaled by max|want| and by
    amp, see amplification); nan where nan, inf where inf.

    undefined_grads (graphc vs torch on data with planted infinities): in a gradient, NaN on
    one side may be ±inf on the other. Such an entry sums infinities of both signs (inf - inf:
    no defined value); torch's fused CPU kernels reduce in vector lanes and so keep an inf in
    some lanes, graphc's NaN is what the arithmetic says (docs/numerics.md). Both are
    non-finite; finite values and NaN/inf elsewhere must still agree."""
    rtol, arel = tol
    arel *= amp
    if list(got) != list(want):
        raise Mismatch(f"{what}: results {list(got)} != {list(want)}")
    for k in want:
        g, w = np.asarray(got[k]), np.asarray(want[k])
        if g.shape != w.shape:
            raise Mismatch(f"{what}: {k} has shape {g.shape}, want {w.shape}")
        g, w = g.astype(np.float64), w.astype(np.float64)
        if undefined_grads and k.startswith("grad:"):
            either = (np.isnan(g) & np.isinf(w)) | (np.isinf(g) & np.isnan(w))
            g, w = np.where(either, np.nan, g), np.where(either, np.nan, w)
        gn, wn = np.isnan(g), np.isnan(w)
        if not np.array_equal(gn, wn):
            raise Mismatch(f"{what}: {k} nan at {np.argwhere(gn != wn)[:5].tolist()}: got {g[gn != wn][:5]}, "
                           f"want {w[gn != wn][:5]}")
        gi, wi = np.isinf(g), np.isinf(w)
        if not (np.array_equal(gi, wi) and np.array_equal(g[gi], w[wi])):
            bad = (gi != wi) | (gi & wi & (g != w))
            raise Mismatch(f"{what}: {k} inf at {np.argwhere(bad)[:5].tolist()}: got {g[bad][:5]}, want {w[bad][:5]}")
        fin = ~(wn | wi)
        if not fin.any():
            continue
        scale = max(1.0, float(np.max(np.abs(w[fin]))))
        err = np.abs(g - w)
        lim = arel * scale + rtol * np.abs(w)
        bad = fin & ~(err <= lim)
        if bad.any():
            j = np.argwhere(bad)[:5]
            raise Mismatch(f"{what}: {k} differs at {int(bad.sum())}/{bad.size} elements, e.g. {j.tolist()}: "
                           f"got {g[bad][:5]}, want {w[bad][:5]} (max err {float(err[bad].max()):.3g}, "
                           f"scale {scale:.3g}, rtol {rtol}, atol {arel * scale:.3g})")


def _np(t):
    return np.array(t.detach().cpu().numpy() if hasattr(t, "cpu") else t.detach().numpy(), copy=True)


def _laid_out(a, layout):
    """a (numpy) as a view with the given memory layout, same values."""
    if layout == "strided" and a.ndim:
        base = np.zeros(a.shape[:-1] + (2 * a.shape[-1] + 1,), dtype=a.dtype)
        v = base[..., 1::2]
        v[...] = a
        return v
    if layout == "transposed" and a.ndim >= 2:
        return np.swapaxes(np.ascontiguousarray(np.swapaxes(a, -1, -2)), -1, -2)
    return a


def tensors(prog, lib, dtype, arrays, grad, layout="contiguous"):
    """The inputs as `lib` tensors of `dtype` (floats) / int64, the "x" ones requiring grad,
    laid out in memory as `layout` (see Program.layout)."""
    res = []
    for i, a in zip(prog.inputs, arrays):
        if i.role == "i":
            a = a.astype(np.int64)
        else:
            a = a.astype(np.dtype(dtype))
        if layout == "contiguous":
            t = lib.tensor(a)
        else:
            t = lib.from_numpy(_laid_out(a, layout))
        if grad and i.role == "x":
            t.requires_grad_(True)
        res.append(t)
    return res


def step_fn(prog, lib):
    """The program as a train-step: (loss, *outputs, *grads of the "x" inputs); a grad that
    backward did not reach is zeros (as a tensor: .grad is None there)."""
    fn = prog.function(lib)
    gidx = [k for k, i in enumerate(prog.inputs) if i.role == "x"]

    def step(*ins):
        loss, outs = fn(*ins)
        if loss.requires_grad:
            loss.backward()
        grads = [ins[k].grad if ins[k].grad is not None else lib.zeros_like(ins[k]) for k in gidx]
        return (loss, *outs, *grads)
    return step


def sgd_fn(prog, lib, params, lr=0.125):
    """The program as an optimizer step over captured parameters: the "x" inputs are `params`
    (tensors the function reads from its closure, as a model's weights), updated in place by
    SGD after loss.backward(); returns (loss, copies of the outputs taken before the update,
    the parameters after it). Under graphc.compile the parameters are `state` and the
    updates `update`s written back in place."""
    fn = prog.function(lib)
    xs = [k for k, i in enumerate(prog.inputs) if i.role == "x"]

    def step(one, *others):
        it = iter(others)
        pi = iter(params)
        ins = [next(pi) if i.role == "x" else next(it) for i in prog.inputs]
        loss, outs = fn(*ins)
        if "state-alias" in AVOID:     # a copy the simplifier cannot remove (o * 1.0 is o)
            outs = [o * one for o in outs]
            loss = loss * one
        else:
            outs = [o * 1.0 for o in outs]
        if loss.requires_grad:
            loss.backward()
        with lib.no_grad():
            for p in params:
                if p.grad is not None:
                    p.sub_(lr * p.grad)
                    p.grad = None
        return (loss, *outs, *[p * 1.0 for p in params])
    assert len(params) == len(xs)
    return step


def _sgd_run(prog, lib, dtype, arrays, layout, backend=None, calls=2, runs=1):
    """`calls` SGD steps (eager, or compiled with backend) from the starting parameters, `runs`
    times (the parameters reset in place in between: the same compiled function runs again):
    per run, a {name: numpy} per call and one with the parameters' values at the end."""
    ts = tensors(prog, lib, dtype, arrays, True, layout)
    params = [t for t, i in zip(ts, prog.inputs) if i.role == "x"]
    start = [_np(p) for p in params]
    others = [t for t, i in zip(ts, prog.inputs) if i.role != "x"]
    f = sgd_fn(prog, lib, params)
    if backend is not None:
        f = lib.compile(f, backend=backend)
    xs = [i for i in prog.inputs if i.role == "x"]
    names = ["loss"] + [f"out:{o}" for o in prog.outputs] + [f"param:{i.name}" for i in xs]
    out = []
    for _ in range(runs):
        with lib.no_grad():
            for p, a in zip(params, start):
                p.copy_(lib.from_numpy(a.copy()))
                p.grad = None
        res = []
        one = lib.tensor(np.ones((), dtype=np.dtype(dtype)))
        for _ in range(calls):
            r = f(one, *others)
            res.append({n: _np(v) for n, v in zip(names, r)})
        res.append({f"final:{i.name}": _np(p) for i, p in zip(xs, params)})
        out.append(res)
    return out


def _names(prog):
    return ["loss"] + [f"out:{o}" for o in prog.outputs] + [f"grad:{i.name}" for i in prog.inputs if i.role == "x"]


def _as_dict(prog, res, grads=True):
    names = _names(prog)
    if not grads:
        names = names[:1 + len(prog.outputs)]
    assert len(res) == len(names), (len(res), names)
    return {n: _np(r) for n, r in zip(names, res)}


def eager(prog, lib, dtype, arrays, layout="contiguous"):
    """Forward and gradients of prog run eagerly on lib, as {name: numpy}."""
    return _as_dict(prog, step_fn(prog, lib)(*tensors(prog, lib, dtype, arrays, True, layout)))


def check_program(prog, backends=("interp", "llvm"), use_torch=True, tau=1e-4):
    """The differential check. Raises Rejected where the data is within rounding of a kink,
    Mismatch (an AssertionError) on a wrong result, or whatever graphc raised."""
    import graphc as gc
    import warnings
    arrays = prog.arrays()
    if prog.dtype == "float32":     # the float64 references see the data the program sees
        arrays = [a.astype(np.float32).astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]
    torch = None
    if use_torch:
        try:
            import torch
        except ImportError:
            torch = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # float64 references: eager graphc (and torch), the data checked for kinks first
        ref_lib = torch if torch is not None else gc
        values = prog.function(ref_lib, all_values=True)(*tensors(prog, ref_lib, "float64", arrays, False))
        values = {k: _np(v) for k, v in values.items() if hasattr(v, "shape")}
        if near_kinks(prog, values, tau):
            raise Rejected()
        amp = amplification(prog, values)
        ref64 = eager(prog, gc, "float64", arrays)
        if torch is not None:
            compare("eager graphc float64 vs torch float64", ref64, eager(prog, torch, "float64", arrays),
                    TOL["torch", "float64"], amp, undefined_grads=prog.specials > 0)
        lay = prog.layout
        if prog.dtype == "float64" and lay == "contiguous":
            ref = ref64
        else:
            ref = eager(prog, gc, prog.dtype, arrays, lay)
            compare(f"eager graphc {prog.dtype} ({lay} inputs) vs float64 (contiguous)", ref, ref64,
                    TOL["f64", prog.dtype], amp)
        fwd_ref = {k: v for k, v in ref.items() if not k.startswith("grad:")}
        sgd_ref = None
        for b in backends:
            tol = TOL[b, prog.dtype]
            # forward only
            cf = gc.compile(prog.function(gc), backend=b)
            loss, outs = cf(*tensors(prog, gc, prog.dtype, arrays, False, lay))
            first = (loss, *outs)
            got = _as_dict(prog, first, grads=False)
            compare(f"compiled {b} forward vs eager", got, fwd_ref, tol, amp)
            loss, outs = cf(*tensors(prog, gc, prog.dtype, arrays, False, lay))
            again = _as_dict(prog, (loss, *outs), grads=False)
            _identical(f"compiled {b} forward, second call", again, got)
            _identical(f"compiled {b} forward, first call's results after a second call",
                       _as_dict(prog, first, grads=False), got)
            # the compiled forward on inputs requiring grad, backward outside it (the
            # backward graph the compiled call recorded)
            ins = tensors(prog, gc, prog.dtype, arrays, True, lay)
            loss, outs = cf(*ins)
            if loss.requires_grad:
                loss.backward()
            grads = [t.grad if t.grad is not None else gc.zeros_like(t)
                     for t, i in zip(ins, prog.inputs) if i.role == "x"]
            compare(f"compiled {b} forward, loss.backward() outside it, vs eager",
                    _as_dict(prog, (loss, *outs, *grads)), ref, tol, amp)
            # train step: backward inside the compiled function
            cs = gc.compile(step_fn(prog, gc), backend=b)
            first = cs(*tensors(prog, gc, prog.dtype, arrays, True, lay))
            got = _as_dict(prog, first)
            compare(f"compiled {b} train step vs eager", got, ref, tol, amp)
            if prog.dtype != "float64":
                compare(f"compiled {b} train step vs float64", got, ref64, TOL["f64", prog.dtype], amp)
            again = _as_dict(prog, cs(*tensors(prog, gc, prog.dtype, arrays, True, lay)))
            _identical(f"compiled {b} train step, second call", again, got)
            _identical(f"compiled {b} train step, first call's results after a second call",
                       _as_dict(prog, first), got)
            # two SGD steps on captured parameters, updated in place
            if sgd_ref is None:
                sgd_ref, = _sgd_run(prog, gc, prog.dtype, arrays, lay)
            got, again = _sgd_run(prog, gc, prog.dtype, arrays, lay, backend=b, runs=2)
            for k, (g, w) in enumerate(zip(got, sgd_ref)):
                compare(f"compiled {b} SGD step on captured parameters, call {k + 1} vs eager" if k < 2 else
                        f"compiled {b} SGD: the parameters after two steps vs eager", g, w, tol, amp * 4)
            for g, w in zip(again, got):
                _identical(f"compiled {b} SGD steps from the same start, run twice", g, w)


def _identical(what, got, want):
    for k in want:
        if not (got[k].shape == want[k].shape and np.array_equal(got[k], want[k], equal_nan=True)):
            d = np.abs(got[k].astype(np.float64) - want[k].astype(np.float64)) if got[k].shape == want[k].shape else None
            raise Mismatch(f"{what}: {k} not bit-identical" + ("" if d is None else f" (max diff {np.nanmax(d) if d.size else 0:.3g})"))
