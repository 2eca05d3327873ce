"""cuda tensors: devices, eager GPU mode, compiled calls on cuda inputs, Module.to, checkpoints.

The cases that need CUDA run in numba's CUDA simulator in a subprocess
(tests/backends/cuda/cuda_device_cases.py); the rest -- what happens where CUDA is not available, device
objects -- run here.
"""
import numpy as np
import pytest

import graphc as gc
import graphc.nn as nn
from cuda_subprocess import assert_simulator_run_passes

pytestmark = pytest.mark.slow      # every test here takes seconds (pytest -m "not slow" skips them)


@pytest.fixture
def no_cuda(monkeypatch):
    """CUDA unavailable (as numba.cuda.is_available() False), whatever this machine has."""
    monkeypatch.setattr(gc.cuda, "_AVAILABLE", False)


def test_device_cases_in_simulator():
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install numba-cuda)")
    assert_simulator_run_passes("cuda_device_cases.py")


def test_cuda_unavailable_raises(no_cuda):
    assert not gc.cuda.is_available() and gc.cuda.device_count() == 0
    gc.cuda.synchronize()               # a no-op without CUDA, as torch's lazy init allows
    x = gc.randn(3)
    for make in (lambda: x.cuda(), lambda: x.to("cuda"), lambda: x.to("cuda:0"), lambda: gc.zeros(3, device="cuda"),
                 lambda: gc.randn(2, device="cuda"), lambda: gc.tensor([1.0], device="cuda"),
                 lambda: nn.Linear(2, 2).cuda(), lambda: nn.Linear(2, 2, device="cuda"),
                 lambda: gc.cuda.launch_overhead_us(1)):
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            make()
    assert x.device == gc.device("cpu") and not x.is_cuda


def test_cpu_device_is_a_no_op():
    x = gc.randn(2, 3)
    assert x.to("cpu") is x and x.cpu() is x and x.to(device="cpu") is x
    assert str(x.device) == "cpu" and gc.zeros(2, device="cpu").device == gc.device("cpu")
    m = nn.Linear(2, 2)
    w = m.weight
    assert m.to("cpu") is m and m.cpu() is m and m.weight is w
    y = x.to("cpu", gc.float64)
    assert y.dtype is gc.float64 and np.allclose(y.numpy(), x.numpy())


def test_device_objects():
    d = gc.device("cuda:0")
    assert d == "cuda:0" and d == gc.device("cuda") and d != gc.device("cpu") and str(d) == "cuda:0"
    assert d.index == 0 and d.type == "cuda" and hash(d) == hash(gc.device("cuda"))
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda"):
        gc.device("tpu")


def test_invalid_device_ordinal(monkeypatch):
    monkeypatch.setattr(gc.cuda, "_AVAILABLE", True)
    with pytest.raises(RuntimeError, match="invalid device ordinal 1"):
        gc.device("cuda:1").check_available()
