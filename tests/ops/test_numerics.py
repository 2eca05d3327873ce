"""graphc's numerical contract (docs/numerics.md): a value the compiled code computes twice
-- once for amax(t) and again for eq(t, amax(t)) in the max's VJP -- is bit-identical, so
gradients through comparisons never lose a row, on every backend."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import graphc as gc

F = gc.nn.functional

STEPS = {
    "muladd": lambda t: t * 1.37 + 0.11,
    "square": lambda t: t * t - 0.5,
    "fma_chain": lambda t: (t * 0.7 + 0.3) * t + 0.25,
    "exp": lambda t: gc.exp(t * 0.5),
    "tanh": lambda t: gc.tanh(t) * 3.0 + t,
    "sigmoid": lambda t: gc.sigmoid(t) * t,
    "log": lambda t: gc.log(t * t + 1.0),
    "layer_norm": lambda t: F.layer_norm(t, t.shape[-1:]),
    "log_softmax": lambda t: F.log_softmax(t, dim=-1),
}
REDUCE = {
    "amax": lambda t: gc.amax(t, dim=-1, keepdim=True),
    "max": lambda t: t.max(dim=-1).values,
    "relu": F.relu,
    "maximum": lambda t: gc.maximum(t, t * 0.99 + 0.01),
    "where": lambda t: gc.where(t > t.mean(dim=-1, keepdim=True), t, t * 0.5),
}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["interp", "llvm"])
@settings(max_examples=12, deadline=None, derandomize=True, database=None)
@given(chain=st.lists(st.sampled_from(sorted(STEPS)), min_size=1, max_size=5),
       head=st.sampled_from(sorted(REDUCE)), rows=st.integers(1, 9), cols=st.sampled_from([1, 2, 7, 16, 33]))
def test_comparisons_in_a_vjp_see_the_same_bits(backend, chain, head, rows, cols):
    x = np.random.default_rng(rows * 100 + cols).standard_normal((rows, 2, cols)).astype(np.float32)

    def f(t):
        for s in chain:
            t = STEPS[s](t)
        return REDUCE[head](t).sum()

    def step(t):
        loss = f(t)
        loss.backward()
        return loss, t.grad
    t = gc.tensor(x, requires_grad=True)
    want = step(t)
    got = gc.compile(step, backend=backend)(gc.tensor(x, requires_grad=True))
    np.testing.assert_allclose(got[0].detach().numpy(), want[0].detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[1].numpy(), want[1].numpy(), rtol=1e-3, atol=1e-4)


def test_llvm_emits_no_fast_math_flags():
    """The arithmetic graphc emits carries no fast-math flags: no `contract` (FMA fusion left to
    LLVM), `fast`, `nnan` or `ninf`; sums of long rows alone may be reassociated."""
    f = gc.compile(lambda t: (gc.tanh(t * 1.5 + 0.5) * t - 0.25).sum(dim=1), backend="llvm")
    x = gc.randn(4, 300)
    f(x)
    text = f.llvm_ir(x)
    for flag in (" contract ", " fast ", " nnan ", " ninf ", " arcp ", " afn "):
        assert flag not in text, flag
    assert "llvm.fmuladd" not in text


_PTX_SCRIPT = r'''
import sys
import numpy as np
import graphc as gc
from graphc.backends.cuda import _numba
try:
    _numba.cuda().compile_ptx(lambda a: None, "void(float32[::1])", cc=(9, 0))
except Exception as e:
    print("NO-NVVM", type(e).__name__); sys.exit(0)
from graphc.backends.cuda.runtime import ptx
for dt, sfx in ((np.float32, "f32"), (np.float64, "f64")):
    a = [gc.tensor(np.ones(7, dt)) for _ in range(3)]
    g = gc.compile(lambda x, y, z: (x * y + z, (x * y - z) * 2.0), backend="interp").graph(*a)
    text = "\n".join(ptx(g).values())
    print(sfx, text.count("fma.rn." + sfx), text.count("mul." + sfx), text.count("mul.rn." + sfx))
'''


@pytest.mark.slow
def test_cuda_kernels_round_every_multiply_and_add():
    """The generated CUDA kernels use libdevice's _rn arithmetic, which NVVM and ptxas never
    contract into an FMA (a plain `mul.f32` then `add.f32` in PTX may be fused by ptxas).
    Compiles to sm_90 PTX without a GPU; skips where NVVM is missing."""
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed")
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", _PTX_SCRIPT], capture_output=True, text=True, timeout=300,
                       env=dict(__import__("os").environ, NUMBA_ENABLE_CUDASIM="0"))
    assert r.returncode == 0, r.stderr[-3000:]
    if "NO-NVVM" in r.stdout:
        pytest.skip("NVVM not available (pip install 'numba-cuda[cu13]')")
    for line in r.stdout.strip().splitlines():
        sfx, fma, plain_mul, rn_mul = line.split()
        assert int(fma) == 0 and int(plain_mul) == 0 and int(rn_mul) > 0, r.stdout
