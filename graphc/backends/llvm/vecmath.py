"""Math functions as LLVM IR: exp, log, tanh, sigmoid, erf for f32 and f64 (erf: f32 only).

LLVM cannot vectorise a call to libm (`tanhf`, `erff`) nor the `llvm.exp` / `llvm.log`
intrinsics without a vector math library, so a loop with one of them stays scalar. Here every
function is straight-line IR -- arithmetic, compares, selects, integer bit operations and the
`llvm.fma` (where the host has FMA) / `llvm.fabs` / `llvm.copysign` intrinsics, all of which LLVM
vectorises -- in an internal `alwaysinline` function per (function, type) in the module
(`graphc.vm.exp.f32`, ...), inlined before the loop vectoriser runs.

The method is Cephes / fdlibm style: a range reduction (Cody-Waite with a two-part ln2, the
exponent and mantissa taken apart with integer operations), a minimax polynomial on the reduced
range, and the result rebuilt by writing the exponent bits (2^n in two factors, so results that
are denormal or overflow round once and correctly) -- or, where the target has AVX-512F (the
module's `graphc_ldexp`, set by the codegen from the host's features), by `llvm.ldexp`, which
LLVM lowers to one `vscalefps` / `vscalefpd` (elsewhere it would be a libm call per element).
(Tried and left out: the sigmoid's division as a reciprocal estimate plus a Newton step, `arcp
ninf`: no faster in ln_gelu, and 2.5 ulp instead of 2 in sigmoid(-x) = 1 - sigmoid(x).)
Special values are selected at the end:

- exp: NaN -> NaN, +inf / large -> +inf, -inf / very negative -> 0 (denormal results on the way)
- log: NaN -> NaN, x < 0 -> NaN, +-0 -> -inf, +inf -> +inf, denormal inputs scaled by 2^23 / 2^54
- tanh: odd, saturates to +-1, NaN -> NaN: (1 - e) / (1 + e), e = exp(-2|x|), with the
  numerator -expm1(-2|x|) for small |x| (both from one range reduction), the sign of x put on
- sigmoid: the stable two-branch form 1 / (1 + e) or e / (1 + e), e = exp(-|x|)
- erf (f32): odd, x * P(x^2) below |x| = 0.875, 1 - exp(R(|x|) - x^2) above (R fitted to
  log(erfc(x)) + x^2 on [0.875, 4]), 1 from 4 on; NaN -> NaN

Measured accuracy against float64 numpy / math.erf (tests/backends/llvm/test_llvm_vecmath.py, dense sweeps over the
whole range) is within a few ulp; see docs/llvm.md.
"""
from __future__ import annotations

import math

from llvmlite import ir

from .types import F32, F64, I32, I64

FUNCTIONS = ("exp", "log", "tanh", "sigmoid", "erf")


def available(name, t) -> bool:
    """Is there an IR implementation of `name` for float type `t`? (f64 erf: no, libm's.)"""
    return name in FUNCTIONS and t in (F32, F64) and not (name == "erf" and t == F64)


def call(b: ir.IRBuilder, name, x):
    """Emit a call of the IR implementation of `name` on `x` (declared in b's module on first use)."""
    return b.call(_function(b.module, name, x.type), [x])


def _function(module, name, t):
    sfx = "f32" if t == F32 else "f64"
    fname = f"graphc.vm.{name}.{sfx}"
    fn = module.globals.get(fname)
    if fn is not None:
        return fn
    fn = ir.Function(module, ir.FunctionType(t, [t]), name=fname)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(_BODIES[name](_Ops(b, t), fn.args[0]))
    return fn


class _Ops:
    """Small helpers over a builder for one float type."""

    def __init__(self, b, t):
        self.b, self.t = b, t
        self.f32 = t == F32
        self.it = I32 if self.f32 else I64           # the integer of the same width
        self.mant = 23 if self.f32 else 52           # mantissa bits
        self.bias = 127 if self.f32 else 1023
        self.ldexp_ok = getattr(b.module, "graphc_ldexp", False)   # llvm.ldexp is one instruction here
        self.fma_ok = getattr(b.module, "graphc_fma", False)       # the host has FMA (the codegen says)

    def c(self, v):
        return ir.Constant(self.t, v)

    def ci(self, v):
        return ir.Constant(self.it, v)

    def intrinsic(self, name, *args):
        m = self.b.module
        fname = f"llvm.{name}.{'f32' if self.f32 else 'f64'}"
        fn = m.globals.get(fname)
        if fn is None:
            fn = ir.Function(m, ir.FunctionType(self.t, [self.t] * len(args)), name=fname)
        return self.b.call(fn, list(args))

    def fma(self, a, x, y):
        """a * x + y: one rounding (llvm.fma) where the host has FMA, else a rounded multiply
        then an add -- decided here, never left to LLVM (llvm.fmuladd may fuse in one loop and
        not in another, and a value computed twice must be bit-identical: docs/numerics.md)."""
        if self.fma_ok:
            return self.intrinsic("fma", a, x, y)
        return self.b.fadd(self.b.fmul(a, x), y)

    def poly(self, x, coeffs):
        """Horner: coeffs[0] * x^n + ... + coeffs[n]."""
        acc = self.c(coeffs[0])
        for k in coeffs[1:]:
            acc = self.fma(acc, x, self.c(k))
        return acc

    def abs(self, x):
        return self.intrinsic("fabs", x)

    def copysign(self, x, s):
        return self.intrinsic("copysign", x, s)

    def isnan(self, x):
        return self.b.fcmp_unordered("uno", x, x)

    def lt(self, x, y):
        return self.b.fcmp_ordered("<", x, y)

    def gt(self, x, y):
        return self.b.fcmp_ordered(">", x, y)

    def eq(self, x, y):
        return self.b.fcmp_ordered("==", x, y)

    def ldexp(self, x, n):
        """x * 2^n, rounded once (n: the integer of the same width as x)."""
        b = self.b
        m = b.module
        fname = f"llvm.ldexp.{'f32' if self.f32 else 'f64'}.i32"
        fn = m.globals.get(fname)
        if fn is None:
            fn = ir.Function(m, ir.FunctionType(self.t, [self.t, I32]), name=fname)
        return b.call(fn, [x, n if self.f32 else b.trunc(n, I32)])

    def pow2(self, n):
        """2^n as a float, for an integer n inside the normal exponent range."""
        b = self.b
        return b.bitcast(b.shl(b.add(n, self.ci(self.bias)), self.ci(self.mant)), self.t)


# ---- exp ------------------------------------------------------------------------------------------------
# Cephes expf: exp(r) = 1 + r + r^2 P(r) on |r| <= ln2/2
_EXPF_P = (1.9875691500E-4, 1.3981999507E-3, 8.3334519073E-3, 4.1665795894E-2, 1.6666665459E-1,
           5.0000001201E-1)
# f64: the Taylor series of (exp(r) - 1 - r) / r^2 through r^11 (truncation < 1e-18 on |r| <= ln2/2)
_EXP_P = tuple(1.0 / math.factorial(k) for k in range(13, 1, -1))


def _exp(o: _Ops, x):
    """exp(x) for any x: clamped to where the result is 0 / inf anyway."""
    b = o.b
    hi, lo = (89.0, -104.0) if o.f32 else (710.0, -746.0)   # exp(hi) > max float; exp(lo) < min denormal / 2
    xc = b.select(o.gt(x, o.c(hi)), o.c(hi), x)          # NaN stays NaN, and so does the result
    xc = b.select(o.lt(xc, o.c(lo)), o.c(lo), xc)
    return _exp_core(o, xc, split=True)


def _exp_reduce(o: _Ops, x):
    """x = n ln2 + r, |r| <= ln2/2 (Cody-Waite: n * ln2_hi is exact, it has few significant
    bits): (the integer n, expm1(r) = r + r^2 P(r)). n is rounded by adding 1.5 * 2^mant (its
    low bits are then n: no float -> int conversion, and a NaN x stays NaN without poison)."""
    b = o.b
    if o.f32:
        ln2_hi, ln2_lo, coeffs = 0.693359375, -2.12194440e-4, _EXPF_P
    else:
        ln2_hi, ln2_lo, coeffs = 6.93147180369123816490e-01, 1.90821492927058770002e-10, _EXP_P
    magic = 1.5 * 2.0 ** o.mant
    t = o.fma(x, o.c(1.4426950408889634), o.c(magic))
    nf = b.fsub(t, o.c(magic))
    n = b.sub(b.bitcast(t, o.it), b.bitcast(o.c(magic), o.it))
    r = o.fma(b.fneg(nf), o.c(ln2_hi), x)
    r = o.fma(b.fneg(nf), o.c(ln2_lo), r)
    return n, o.fma(o.poly(r, coeffs), b.fmul(r, r), r)


def _exp_core(o: _Ops, x, split):
    """exp(x) for x in [lo, hi] (see _exp) or NaN (-> NaN). split: build 2^n as 2^n1 * 2^n2
    (needed when n can leave the normal exponent range: denormal or overflowing results)."""
    b = o.b
    n, q = _exp_reduce(o, x)
    p = b.fadd(q, o.c(1.0))
    if o.ldexp_ok:
        return o.ldexp(p, n)
    if not split:
        return b.fmul(p, o.pow2(n))
    n1 = b.ashr(n, o.ci(1))
    n2 = b.sub(n, n1)                          # 2^n = 2^n1 * 2^n2, each factor normal
    return b.fmul(b.fmul(p, o.pow2(n1)), o.pow2(n2))


# ---- log ------------------------------------------------------------------------------------------------
# Cephes logf: log(1 + f) = f - f^2/2 + f^3 P(f) on sqrt(1/2) - 1 <= f < sqrt(2) - 1
_LOGF_P = (7.0376836292E-2, -1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1, 1.4249322787E-1,
           -1.6668057665E-1, 2.0000714765E-1, -2.4999993993E-1, 3.3333331174E-1)
# fdlibm log: log(1 + f) = f - (hfsq - s (hfsq + R(s^2))), s = f / (2 + f)
_LG = (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
       2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
       1.479819860511658591e-01)


def _log(o: _Ops, x):
    b = o.b
    tiny = 1.1754943508222875e-38 if o.f32 else 2.2250738585072014e-308
    shift = 23 if o.f32 else 54
    den = o.lt(x, o.c(tiny))                   # denormals (and 0, negatives: selected below)
    xs = b.select(den, b.fmul(x, o.c(float(2 ** shift))), x)
    bits = b.bitcast(xs, o.it)
    e = b.sub(b.lshr(bits, o.ci(o.mant)), o.ci(o.bias))
    e = b.sub(e, b.select(den, o.ci(shift), o.ci(0)))
    mmask = (1 << o.mant) - 1
    m = b.bitcast(b.or_(b.and_(bits, o.ci(mmask)), o.ci(o.bias << o.mant)), o.t)    # [1, 2)
    up = o.gt(m, o.c(1.4142135623730951))
    m = b.select(up, b.fmul(m, o.c(0.5)), m)   # [sqrt(1/2), sqrt(2))
    e = b.add(e, b.select(up, o.ci(1), o.ci(0)))
    f = b.fsub(m, o.c(1.0))
    dk = b.sitofp(e, o.t)
    if o.f32:
        z = b.fmul(f, f)
        y = b.fmul(b.fmul(o.poly(f, _LOGF_P), f), z)
        y = o.fma(dk, o.c(-2.12194440e-4), y)
        y = o.fma(z, o.c(-0.5), y)
        res = o.fma(dk, o.c(0.693359375), b.fadd(f, y))
    else:
        s = b.fdiv(f, b.fadd(o.c(2.0), f))
        z = b.fmul(s, s)
        w = b.fmul(z, z)
        t1 = b.fmul(w, o.poly(w, (_LG[5], _LG[3], _LG[1])))
        t2 = b.fmul(z, o.poly(w, (_LG[6], _LG[4], _LG[2], _LG[0])))
        rr = b.fadd(t2, t1)
        hfsq = b.fmul(b.fmul(o.c(0.5), f), f)
        inner = b.fadd(b.fmul(s, b.fadd(hfsq, rr)), b.fmul(dk, o.c(1.90821492927058770002e-10)))
        res = b.fsub(b.fmul(dk, o.c(6.93147180369123816490e-01)), b.fsub(b.fsub(hfsq, inner), f))
    inf = o.c(float("inf"))
    res = b.select(o.eq(x, inf), inf, res)
    res = b.select(o.eq(x, o.c(0.0)), o.c(float("-inf")), res)
    res = b.select(o.lt(x, o.c(0.0)), o.c(float("nan")), res)
    return b.select(o.isnan(x), x, res)


# ---- tanh -----------------------------------------------------------------------------------------------
def _exp_expm1(o: _Ops, x):
    """(exp(x), expm1(x)) for x <= 0 down to where 2^n stays normal (tanh: 2^-27 f32, 2^-56
    f64), or NaN: 2^n (1 + q) and 2^n q + (2^n - 1), q = expm1(r) = r + r^2 P(r) (exp's
    polynomial), so expm1 is exact near 0 too."""
    b = o.b
    n, q = _exp_reduce(o, x)
    s = o.pow2(n)
    return b.fmul(b.fadd(q, o.c(1.0)), s), o.fma(s, q, b.fsub(s, o.c(1.0)))


def _tanh(o: _Ops, x):
    """tanh(|x|) = (1 - e) / (1 + e), e = exp(-2|x|), the sign of x put on; the numerator as
    -expm1(-2|x|) below |x| = 0.55 (where 1 - e would cancel). |x| is clamped where tanh
    rounds to 1 (f32: from 9.02, f64: from 19.06). NaN stays NaN all the way."""
    b = o.b
    ax = o.abs(x)
    sat = 9.1 if o.f32 else 19.1
    axc = b.select(o.gt(ax, o.c(sat)), o.c(sat), ax)
    e, m = _exp_expm1(o, b.fmul(axc, o.c(-2.0)))
    num = b.select(o.lt(ax, o.c(0.55)), m, b.fsub(e, o.c(1.0)))      # <= 0
    return o.copysign(b.fdiv(num, b.fadd(e, o.c(1.0))), x)     # only the sign bit differs


def _sigmoid(o: _Ops, x):
    b = o.b
    e = _exp(o, b.fneg(o.abs(x)))
    r = b.fdiv(o.c(1.0), b.fadd(o.c(1.0), e))      # one division: a vectorised select computes both sides
    return b.select(b.fcmp_ordered(">=", x, o.c(0.0)), r, b.fmul(e, r))


# ---- erf (f32) ------------------------------------------------------------------------------------------
# fitted (least squares on 400 / 600 Chebyshev nodes against mpmath): relative error 2e-10 of
# erf(x) / x = P(x^2) on |x| <= 0.875; absolute error 4e-9 of log(erfc(x)) + x^2 = R(x - 2.4) on [0.875, 4]
_ERF_P = (8.694667894302136e-05, -0.0008215559871505053, 0.0052071342593961525, -0.026861739795981374,
          0.11283735821535704, -0.3761263625396028, 1.1283791668898906)
_ERF_R = (-5.846183295719301e-08, 3.227153944671473e-10, 1.9658454628461e-06, -1.4579861218413526e-05,
          8.641746333890196e-05, -0.0004695440095782301, 0.002387967596276035, -0.011768112911814455,
          0.059497946098888484, -0.364236602765803, -1.520975056240245)


def _erf(o: _Ops, x):
    b = o.b
    ax = o.abs(x)
    small = b.fmul(x, o.poly(b.fmul(x, x), _ERF_P))
    axc = b.select(b.fcmp_unordered("<", ax, o.c(0.875)), o.c(0.875), ax)   # NaN: 0.875
    axc = b.select(o.gt(axc, o.c(4.0)), o.c(4.0), axc)    # erf(4) rounds to 1 in f32
    q = b.fsub(o.poly(b.fsub(axc, o.c(2.4)), _ERF_R), b.fmul(axc, axc))      # in [-17.6, -0.7]
    big = o.copysign(b.fsub(o.c(1.0), _exp_core(o, q, split=False)), x)
    return b.select(b.fcmp_unordered("<", ax, o.c(0.875)), small, big)       # NaN: small (NaN)


_BODIES = {"exp": _exp, "log": _log, "tanh": _tanh, "sigmoid": _sigmoid, "erf": _erf}
