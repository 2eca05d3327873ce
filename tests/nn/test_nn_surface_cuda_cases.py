"""tests/nn/test_nn_surface_compiled.py's cases on the cuda backend in numba's CUDA simulator.

Skipped in the main run (the simulator must be chosen before numba is first imported);
test_nn_surface_compiled.py::test_cuda_simulator runs it in a subprocess. Alone:
NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/nn/test_nn_surface_cuda_cases.py"""
import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip("run with NUMBA_ENABLE_CUDASIM=1 (tests/nn/test_nn_surface_compiled.py does)", allow_module_level=True)
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


import graphc as gc  # noqa: E402
import graphc.nn as nn  # noqa: E402
import graphc.nn.functional as F  # noqa: E402

# eager GPU mode: cuda tensors through the new surface (its index and iota tensors made on the
# input's device), equal to the same calls on the CPU, values and input gradients
EAGER = {
    "pad_modes": lambda x: F.pad(x, (1, 2, 2, 1), "reflect") + F.pad(x, (1, 2, 2, 1), "replicate")
    + F.pad(x, (1, 2, 2, 1), "circular"),
    "pad_circular_crop": lambda x: F.pad(x[0], (-1, 2), "circular"),
    "activations": lambda x: F.elu(x) + F.logsigmoid(x) + F.softplus(x) + F.hardswish(x) + F.softshrink(x),
    "norms": lambda x: F.group_norm(x, 3) + F.rms_norm(x, (5,)) + F.instance_norm(x),
    "losses": lambda x: F.kl_div(x, F.softmax(x, 1), reduction="batchmean") + F.smooth_l1_loss(x, x * 0.5)
    + F.triplet_margin_loss(x[0, 0], x[0, 1], x[0, 2]) + F.gaussian_nll_loss(x, x * 0.5, 0.7),
    # (p=2 and 1: a general p's pow VJP mixes a CPU exponent into cuda tensors; elementwise.py's)
    "distances": lambda x: F.normalize(x) + F.pairwise_distance(x, x * 2)[..., None]
    + F.pairwise_distance(x, x * 2, 1.0, keepdim=True) + F.cosine_similarity(x, x * x, dim=-1)[..., None],
    "embedding_bag": lambda x: F.embedding_bag(_on(x, gc.tensor([1, 2, 3, 3, 0])), x[0, 0].reshape(4, 5),
                                               _on(x, gc.tensor([0, 2, 2])), mode="max")
    + F.embedding_bag(_on(x, gc.tensor([[1, 2], [3, 0]])), x[0, 1].reshape(4, 5), mode="mean")[:1],
}


def _on(x, t):
    return t.to(x.device)


@pytest.mark.parametrize("name", list(EAGER))
def test_eager_cuda_tensors_equal_cpu(name):
    a = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    results = []
    for dev in ("cpu", "cuda"):
        x = gc.tensor(a).to(dev).requires_grad_(True)
        y = EAGER[name](x)
        y.sum().backward()
        assert y.device.type == dev and x.grad.device.type == dev
        results.append((y.detach().cpu().numpy(), x.grad.cpu().numpy()))
    (yc, gcpu), (yg, ggpu) = results
    np.testing.assert_allclose(yg, yc, rtol=1e-5, atol=1e-6, err_msg=f"{name} value")
    np.testing.assert_allclose(ggpu, gcpu, rtol=1e-5, atol=1e-5, err_msg=f"{name} grad")


def test_eager_cuda_modules():
    x = gc.randn(2, 3, 5, 5)
    for make in (lambda: nn.Conv2d(3, 2, 3, padding=1, padding_mode="reflect"), lambda: nn.PReLU(3),
                 lambda: nn.GroupNorm(3, 3), lambda: nn.InstanceNorm2d(3, affine=True, track_running_stats=True)):
        gc.manual_seed(0)
        cpu = make()
        gc.manual_seed(0)
        dev = make().to("cuda")
        np.testing.assert_allclose(dev(x.to("cuda")).detach().cpu().numpy(), cpu(x).detach().numpy(),
                                   rtol=1e-5, atol=1e-6)
    bag = nn.EmbeddingBag(6, 3, mode="sum")
    idx = gc.tensor([[1, 2], [3, 4]])
    want = bag(idx).detach().numpy()
    np.testing.assert_allclose(bag.to("cuda")(idx.to("cuda")).detach().cpu().numpy(), want, rtol=1e-6)
