"""tests/support/wrong_value_programs.py on the cuda backend in numba's CUDA simulator, against eager
graphc: forward and gradients. Run by tests/test_wrong_values.py in a subprocess with
NUMBA_ENABLE_CUDASIM=1 (numba picks the simulator at its first import)."""
import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip("run with NUMBA_ENABLE_CUDASIM=1 (tests/test_wrong_values.py does)", allow_module_level=True)
pytest.importorskip("numba_cuda", reason="numba-cuda is not installed")

import graphc as gc  # noqa: E402
from wrong_value_programs import PROGRAMS  # noqa: E402


@pytest.mark.parametrize("program,shape", PROGRAMS, ids=[p.__name__ for p, _ in PROGRAMS])
def test_forward_and_gradients_match_eager(program, shape):
    x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)

    def step(t):
        loss, out = program(gc, t)
        loss.backward()
        return loss, out, t.grad
    got = [a.detach().numpy() for a in gc.compile(step, backend="cuda")(gc.tensor(x, requires_grad=True))]
    t = gc.tensor(x, requires_grad=True)
    want = [a.detach().numpy() for a in step(t)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)
