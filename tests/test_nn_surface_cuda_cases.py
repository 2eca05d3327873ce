"""tests/test_nn_surface_compiled.py's cases on the cuda backend in numba's CUDA simulator.

Skipped in the main run (the simulator must be chosen before numba is first imported);
test_nn_surface_compiled.py::test_cuda_simulator runs it in a subprocess. Alone:
NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_nn_surface_cuda_cases.py"""
import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip("run with NUMBA_ENABLE_CUDASIM=1 (tests/test_nn_surface_compiled.py does)", allow_module_level=True)
pytest.importorskip("numba_cuda", reason="numba-cuda is not installed")

from test_nn_surface_compiled import CASES, TRAIN_CASES, _run, _train  # noqa: E402

# the simulator computes with numpy scalars, which warn on overflow to inf (exp(100)) as a GPU does not
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_cuda_equals_eager(name, make):
    fn, arrays = make()
    want = _run(fn, arrays)
    got = _run(fn, arrays, "cuda")
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"{name} on cuda: output {i}")


@pytest.mark.parametrize("name", list(TRAIN_CASES))
def test_cuda_training_step_equals_eager(name):
    want, got = _train(name, None), _train(name, "cuda")
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5, err_msg=k)
