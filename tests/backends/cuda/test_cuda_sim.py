"""The cuda backend, run in numba's CUDA simulator (no GPU needed).

numba picks the simulator when it is first imported (NUMBA_ENABLE_CUDASIM=1), and other tests
in this process may import numba normally, so the simulator cases (tests/backends/cuda/cuda_sim_cases.py)
run in a subprocess with the variable set. They use tiny shapes: the simulator runs each CUDA
thread as a Python thread.
"""
import os

import pytest

from cuda_subprocess import run_cases, simulator_env

pytestmark = pytest.mark.slow      # every test here takes seconds (pytest -m "not slow" skips them)

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install numba-cuda)")


def test_cuda_backend_in_simulator():
    r = run_cases("cuda_sim_cases.py", simulator_env())
    out = r.stdout
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    assert " passed" in out and "skipped" not in out.strip().split("\n")[-1], out[-3000:]


def test_generated_kernels_compile_to_ptx():
    """A representative subset of the same cases with every kernel compiled to sm_90 PTX by
    NVVM (the real target's typing, no GPU needed); skips where NVVM is missing. The whole
    set: GRAPHC_CUDA_PTX=1 python -m pytest tests/backends/cuda/cuda_sim_cases.py (~1 min)."""
    r = run_cases("cuda_sim_cases.py", {"GRAPHC_CUDA_PTX": "1", "NUMBA_ENABLE_CUDASIM": "0"}, "-k",
                  "kernels_and_source or opaque or float_unary or binary or casts or broadcast "
                  "or unfold or softmax_style or in_place or int_unary")
    tail = (r.stdout + r.stderr)[-6000:]
    # pytest exits 5 when the cases module skipped itself before any test ran (no NVVM)
    if r.returncode == 5 or ("skipped" in r.stdout and " passed" not in r.stdout):
        pytest.skip("NVVM not available (pip install 'numba-cuda[cu13]')")
    assert r.returncode == 0, tail


def test_backend_registered_lazily():
    from graphc import backends
    assert "cuda" not in backends._BACKENDS or callable(backends._BACKENDS["cuda"])
    import graphc.backends.cuda._numba as shim      # the numpy shim is in place after import
    import numpy as np
    assert hasattr(np, "row_stack")
    assert callable(shim.simulator)
