"""The LLVM backend's vector math (graphc/backends/llvm/vecmath.py): exp, log, tanh, sigmoid,
erf as straight-line IR, compiled through the real backend and compared with numpy (float64
references) in ulps on dense sweeps, special values, and the generated code itself."""
import math
import re

import numpy as np
import pytest

pytest.importorskip("llvmlite")
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")     # casts of inf/NaN references

import graphc as gc  # noqa: E402
import graphc.nn.functional as F  # noqa: E402

_erf64 = np.vectorize(math.erf, otypes=[np.float64])      # libm's erf, to within an ulp

FUNCS = {
    "exp": lambda x: x.exp(),
    "log": lambda x: x.log(),
    "tanh": lambda x: x.tanh(),
    "sigmoid": lambda x: x.sigmoid(),
    "erf": lambda x: x.erf(),
}


def _ref(name, x):
    """float64 reference (numpy; erf: math.erf)."""
    x = x.astype(np.float64)
    with np.errstate(all="ignore"):
        if name == "exp":
            return np.exp(x)
        if name == "log":
            return np.log(x)
        if name == "tanh":
            return np.tanh(x)
        if name == "sigmoid":
            e = np.exp(-np.abs(x))
            return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return _erf64(x)


_CACHE = {}


def run(name, x):
    key = (name, x.dtype.name)
    if key not in _CACHE:
        _CACHE[key] = gc.compile(FUNCS[name], backend="llvm")
    return _CACHE[key](gc.tensor(x)).numpy()


def ulps(got, ref, dtype):
    """|got - ref| in units of the spacing of `dtype` at ref (ref: float64, exact enough for f32;
    for f64 it is numpy's own result). Equal values (infinities included) and NaN/NaN are 0."""
    with np.errstate(all="ignore"):
        rd = ref.astype(dtype)
        d = np.abs(got.astype(np.float64) - ref) / np.spacing(np.abs(rd)).astype(np.float64)
    same = (got == rd) | (np.isnan(got) & np.isnan(ref))
    return np.where(same, 0.0, d)


def _f32_sweep(n=1 << 20):
    """Every 4096th float32 bit pattern (both signs, denormals, inf, NaN) plus dense ranges."""
    bits = np.arange(0, 1 << 32, 4096, dtype=np.uint64).astype(np.uint32).view(np.float32)
    return bits


def _f64_sweep():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 1 << 64, 1 << 18, dtype=np.uint64).view(np.float64)
    return bits


# name: (dense f32 range, max ulp f32, dense f64 range, max ulp f64 vs numpy)
CASES = {
    "exp": ((-110.0, 95.0), 1.5, (-750.0, 715.0), 2.0),
    "log": ((0.0, 100.0), 1.5, (0.0, 1e6), 2.0),
    "tanh": ((-12.0, 12.0), 3.0, (-25.0, 25.0), 4.0),
    "sigmoid": ((-110.0, 110.0), 3.0, (-750.0, 750.0), 3.0),
    "erf": ((-6.0, 6.0), 3.0, (-7.0, 7.0), 1.0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_ulps_dense(name):
    (lo, hi), tol, _, _ = CASES[name]
    x = np.concatenate([np.linspace(lo, hi, 1_000_001, dtype=np.float32), _f32_sweep(),
                        np.linspace(-1e-3, 1e-3, 100_001, dtype=np.float32)])
    got = run(name, x)
    ref = _ref(name, x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref.astype(np.float32)))
    d = ulps(got, ref, np.float32)
    i = int(np.argmax(d))
    assert d[i] <= tol, f"{name}: {d[i]:.2f} ulp at x={x[i]!r}: got {got[i]!r}, want {ref[i]!r}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_float64_ulps_dense(name):
    _, _, (lo, hi), tol = CASES[name]
    x = np.concatenate([np.linspace(lo, hi, 400_001), _f64_sweep(), np.linspace(-1e-3, 1e-3, 10_001)])
    if name == "log":
        x = np.abs(x)
    got = run(name, x)
    ref = _ref(name, x)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    d = ulps(got, ref, np.float64)
    i = int(np.argmax(d))
    assert d[i] <= tol, f"{name}: {d[i]:.2f} ulp at x={x[i]!r}: got {got[i]!r}, want {ref[i]!r}"


INF, NAN = float("inf"), float("nan")
SPECIAL = {
    "exp": [(-INF, 0.0), (INF, INF), (NAN, NAN), (0.0, 1.0), (-0.0, 1.0), (1000.0, INF), (-1000.0, 0.0)],
    "log": [(0.0, -INF), (-0.0, -INF), (-1.0, NAN), (-INF, NAN), (INF, INF), (NAN, NAN), (1.0, 0.0)],
    "tanh": [(INF, 1.0), (-INF, -1.0), (NAN, NAN), (0.0, 0.0), (-0.0, -0.0), (30.0, 1.0), (-30.0, -1.0)],
    "sigmoid": [(INF, 1.0), (-INF, 0.0), (NAN, NAN), (0.0, 0.5), (-1000.0, 0.0), (1000.0, 1.0)],
    "erf": [(INF, 1.0), (-INF, -1.0), (NAN, NAN), (0.0, 0.0), (-0.0, -0.0), (10.0, 1.0), (-10.0, -1.0)],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(SPECIAL))
def test_special_values(name, dtype):
    x = np.array([a for a, _ in SPECIAL[name]], dtype=dtype)
    want = np.array([w for _, w in SPECIAL[name]], dtype=dtype)
    got = run(name, x)
    np.testing.assert_array_equal(got, want)
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[ok]), np.signbit(want[ok]))      # -0 stays -0


def test_float32_exp_overflow_underflow_edges():
    f = np.float32
    big = np.nextafter(f(88.72283935546875), f(0))     # largest x with a finite exp
    x = np.array([big, np.nextafter(big, f(100)), -87.0, -100.0, -103.9, -103.98, -104.5], dtype=f)
    got = run("exp", x)
    want = np.exp(x.astype(np.float64)).astype(f)
    assert np.isfinite(got[0]) and got[1] == np.inf
    d = ulps(got, np.exp(x.astype(np.float64)), f)
    assert d.max() <= 1.0, (got, want)
    assert got[4] > 0 and got[4] < np.finfo(f).tiny          # denormal results, correctly scaled


def test_log_denormals():
    for dt in (np.float32, np.float64):
        tiny = np.finfo(dt).tiny
        x = np.array([tiny / 2, tiny / 1024, np.nextafter(dt(0), dt(1)), tiny], dtype=dt)
        d = ulps(run("log", x), np.log(x.astype(np.float64)), dt)
        assert d.max() <= 1.5, (dt, d)


@pytest.mark.parametrize("name", ["tanh", "erf", "sigmoid"])
def test_symmetries_exact(name):
    x = np.concatenate([np.linspace(0, 12, 200_001, dtype=np.float32), np.float32([1e-30, 1e-40])])
    pos, neg = run(name, x), run(name, -x)
    if name == "sigmoid":         # sigmoid(-x) = 1 - sigmoid(x), to rounding
        np.testing.assert_allclose(neg, 1 - pos.astype(np.float64), rtol=0, atol=1.2e-7)
    else:                         # odd, bit for bit
        np.testing.assert_array_equal(neg, -pos)
        assert np.all(np.abs(pos) <= 1)


def test_monotone_near_saturation():
    """No overshoot past +-1 and no dips where tanh/erf saturate."""
    x = np.linspace(2, 12, 100_001, dtype=np.float32)
    for name in ("tanh", "erf"):
        y = run(name, x)
        assert np.all(np.diff(y) >= 0) and y.max() == 1.0 and np.all(y <= 1.0), name


def test_no_libm_calls_and_vectorised():
    """The optimised IR of f32 exp/log/tanh/sigmoid/erf calls no libm function or llvm.exp/log
    intrinsic, and its loop runs on vectors."""
    x = gc.tensor(np.linspace(-3, 3, 4096, dtype=np.float32).reshape(64, 64))
    f = gc.compile(lambda x: x.exp() + x.abs().log() + x.tanh() + x.sigmoid() + x.erf(), backend="llvm")
    f(x)
    ir = f.llvm_ir(x)
    for sym in ("@expf", "@logf", "@tanhf", "@erff", "@llvm.exp.", "@llvm.log."):
        assert sym not in ir, sym
    assert re.search(r"<\d+ x float>", ir), "the elementwise loop is not vectorised"


def test_ln_gelu_row_loops_vectorised():
    """layer_norm + tanh-GELU: one reduction kernel whose mean sum, variance sum and output loop
    all run on vectors (reassociated partial sums), rows not unrolled into spills."""
    gc.manual_seed(0)
    x, g, b = gc.randn(64, 1024), gc.randn(1024), gc.randn(1024)
    f = gc.compile(lambda x: F.gelu(F.layer_norm(x, (1024,)) * g + b, approximate="tanh"), backend="llvm")
    got = f(x).numpy()
    ir = f.llvm_ir(x)
    assert len(re.findall(r"fadd reassoc <\d+ x float>", ir)) >= 2          # both row sums
    assert re.search(r"fdiv <\d+ x float>", ir)                              # tanh's division, vectorised
    assert "llvm.loop.unroll.disable" in ir
    assert "@tanhf" not in ir and "@llvm.exp." not in ir
    assert "@llvm.prefetch" in ir                                            # the next row of x
    xs = x.numpy().astype(np.float64)
    y = (xs - xs.mean(1, keepdims=True)) / np.sqrt(xs.var(1, keepdims=True) + 1e-5)
    y = y * g.numpy() + b.numpy()
    want = 0.5 * y * (1 + np.tanh(math.sqrt(2 / math.pi) * (y + 0.044715 * y ** 3)))
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_row_prefetch_only_for_long_rows():
    """The next-row prefetch is emitted for rows of >= 1 KiB (softmax over 1024 floats), not
    for short rows (softmax over 10 logits, where the hardware prefetcher keeps up), and the
    last row's prefetch stays inside the input (checks mode runs it)."""
    x = gc.randn(33, 1024)
    long_rows = gc.compile(lambda x: F.softmax(x, -1), backend="llvm")
    np.testing.assert_allclose(long_rows(x).numpy(), F.softmax(x, -1).numpy(), rtol=1e-5, atol=1e-7)
    assert "@llvm.prefetch" in long_rows.llvm_ir(x)
    s = gc.randn(33, 10)
    short_rows = gc.compile(lambda x: F.softmax(x, -1), backend="llvm")
    short_rows(s)
    assert "@llvm.prefetch" not in short_rows.llvm_ir(s)


@pytest.mark.parametrize("ldexp", ["0", "1"])
def test_both_ways_of_scaling_by_two_to_the_n(ldexp, monkeypatch):
    """exp's 2^n: llvm.ldexp (one vscalef on AVX-512F, the default there) or integer exponent
    bits (elsewhere); both pass the dense sweeps and the edge cases of exp, sigmoid and erf."""
    from graphc.backends.llvm import runtime as R
    if ldexp == "1" and "+avx512f" not in R.init()["features"].split(","):
        pytest.skip("llvm.ldexp on vectors is one instruction only with AVX-512F (vscalef)")
    monkeypatch.setenv("GRAPHC_LLVM_LDEXP", ldexp)
    f32 = np.concatenate([np.linspace(-110, 95, 400_001, dtype=np.float32), _f32_sweep()])
    edges = np.float32([88.72283, 88.7229, -87.0, -100.0, -103.9, -103.98, -104.5])
    for name in ("exp", "sigmoid", "erf"):
        for x, dt in ((np.concatenate([f32, edges]), np.float32), (np.linspace(-750, 715, 200_001), np.float64)):
            if name == "erf" and dt == np.float64:
                continue
            f = gc.compile(FUNCS[name], backend="llvm")
            got = f(gc.tensor(x)).numpy()
            ref = _ref(name, x)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(ref.astype(dt)))
            tol = CASES[name][1] if dt == np.float32 else CASES[name][3]
            assert ulps(got, ref, dt).max() <= tol, (name, dt, ldexp)
            asm = f.asm(gc.tensor(x))
            assert ("vscalef" in asm) == (ldexp == "1") and "ldexp" not in asm, (name, dt)
