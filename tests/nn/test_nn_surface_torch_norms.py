"""GroupNorm, InstanceNorm1d/2d/3d, RMSNorm, LayerNorm(bias=False) against torch 2.13 (values,
input and parameter gradients, running statistics over several training steps, eval mode,
unbatched inputs, reprs and state_dict keys); the channel-wise and alpha dropouts by their
structure and statistics (graphc's random numbers are not torch's)."""
import numpy as np
import pytest

import graphc as gc
import graphc.nn as nn
import graphc.nn.functional as F
from graphc.testing import gradcheck
from test_nn_surface_torch import compare, load_from_torch, npy, rand

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _randomise(tm, seed=0):
    """Non-default affine parameters and running statistics, so copying them is tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, v in tm.state_dict().items():
            if v.dtype.is_floating_point:
                v.copy_(torch.rand(v.shape, generator=g, dtype=v.dtype) + 0.5)


NORMS = [
    ("GroupNorm(2, 4)", (3, 4, 5)), ("GroupNorm(1, 3)", (2, 3)), ("GroupNorm(3, 3, eps=1e-3)", (2, 3, 2, 3)),
    ("GroupNorm(2, 6, affine=False)", (1, 6, 3)), ("GroupNorm(2, 4, bias=False)", (2, 4, 1, 3)),
    ("InstanceNorm1d(3)", (2, 3, 5)), ("InstanceNorm1d(3, affine=True)", (3, 5)),
    ("InstanceNorm2d(2, affine=True, track_running_stats=True)", (2, 2, 3, 4)),
    ("InstanceNorm2d(2, track_running_stats=True, momentum=0.3)", (2, 3, 4)),
    ("InstanceNorm3d(2, affine=True)", (1, 2, 2, 3, 2)),
    ("RMSNorm(5)", (3, 5)), ("RMSNorm([2, 3], eps=1e-3)", (4, 2, 3)),
    ("RMSNorm(4, elementwise_affine=False)", (2, 1, 4)), ("RMSNorm(1)", (3, 1)),
    ("LayerNorm(4, bias=False)", (3, 4)), ("LayerNorm([2, 3], elementwise_affine=False)", (2, 2, 3)),
]


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("spec,shape", NORMS, ids=[n[0] + str(n[1]) for n in NORMS])
def test_norm_module_matches_torch(spec, shape, mode):
    tm, gm = eval("torch.nn." + spec), eval("nn." + spec)
    _randomise(tm)
    getattr(tm, mode)(), getattr(gm, mode)()
    assert repr(gm) == repr(tm)
    assert list(gm.state_dict()) == list(tm.state_dict())
    # RMSNorm's eps=None is the dtype's epsilon, so float32 and float64 differ: both checked
    compare(gm, tm, rand(*shape, seed=2), gmod=gm, tmod=tm, tol={"atol": 1e-5}, what=spec)


@pytest.mark.parametrize("spec,shape", [("InstanceNorm1d(3, track_running_stats=True)", (4, 3, 5)),
                                        ("InstanceNorm2d(2, affine=True, track_running_stats=True, momentum=0.5)",
                                         (3, 2, 2, 3)),
                                        ("InstanceNorm1d(3, track_running_stats=True, momentum=None)", (2, 3, 4))])
def test_instance_norm_running_stats_over_steps(spec, shape):
    tm, gm = eval("torch.nn." + spec).double(), eval("nn." + spec).double()
    load_from_torch(gm, tm)
    for step in range(3):
        x = rand(*shape, seed=step)
        np.testing.assert_allclose(npy(gm(gc.tensor(x))), tm(torch.tensor(x)).detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
        for k, v in tm.state_dict().items():
            np.testing.assert_allclose(npy(gm.state_dict()[k]), v.numpy(), rtol=1e-12, err_msg=f"{k} step {step}")
    tm.eval(), gm.eval()
    x = rand(*shape, seed=9)
    np.testing.assert_allclose(npy(gm(gc.tensor(x))), tm(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)


def test_functional_norms_match_torch():
    x, w, b = rand(2, 6, 3), rand(6, seed=1), rand(6, seed=2)
    compare(lambda x, w, b: F.group_norm(x, 3, w, b), lambda x, w, b: TF.group_norm(x, 3, w, b), x, w, b)
    compare(lambda x: F.group_norm(x, 2), lambda x: TF.group_norm(x, 2), x)
    compare(lambda x, w, b: F.instance_norm(x, weight=w, bias=b), lambda x, w, b: TF.instance_norm(x, weight=w, bias=b),
            x, w, b)
    rm, rv = rand(6, seed=3), rand(6, seed=4) ** 2
    compare(lambda x, m, v: F.instance_norm(x, m, v, use_input_stats=False),
            lambda x, m, v: TF.instance_norm(x, m, v, use_input_stats=False), x, rm, rv, nodiff=(1, 2))
    compare(lambda x, w: F.rms_norm(x, (3,), w), lambda x, w: TF.rms_norm(x, (3,), w), x, rand(3, seed=5))
    compare(lambda x: F.rms_norm(x, [6, 3], eps=0.1), lambda x: TF.rms_norm(x, [6, 3], eps=0.1), x)
    compare(lambda x: F.rms_norm(x * 0, 3), lambda x: TF.rms_norm(x * 0, (3,)), x)       # zeros: eps only


def test_norm_gradcheck():
    x, w, b = (gc.tensor(rand(2, 4, 3, seed=s)) for s in range(3))
    w, b = gc.tensor(rand(4, seed=4)), gc.tensor(rand(4, seed=5))
    assert gradcheck(lambda x, w, b: F.group_norm(x, 2, w, b), [x, w, b])
    assert gradcheck(lambda x, w, b: F.instance_norm(x, weight=w, bias=b), [x, w, b])
    assert gradcheck(lambda x, w: F.rms_norm(x, (4, 3), w), [x, gc.tensor(rand(4, 3, seed=6))])


def test_norm_errors_as_torch():
    with pytest.raises(ValueError, match="num_channels must be divisible by num_groups"):
        nn.GroupNorm(3, 4)
    with pytest.raises(RuntimeError, match="divisible by num_groups"):
        F.group_norm(gc.randn(2, 4, 3), 3)
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        nn.InstanceNorm1d(3)(gc.randn(1, 3, 2, 2))
    with pytest.raises(ValueError, match="to match num_features"):
        nn.InstanceNorm1d(3, affine=True)(gc.randn(2, 4, 5))
    with pytest.warns(UserWarning, match="does not match num_features"):
        nn.InstanceNorm1d(3)(gc.randn(2, 4, 5))
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        F.instance_norm(gc.randn(2, 3, 1))
    with pytest.raises(RuntimeError, match="expected input with shape"):
        F.rms_norm(gc.randn(2, 3), (2,))


# =================================================================================================
# dropouts: channel-wise masks, scaling, alpha dropout's moments; eval / p=0 identity
# =================================================================================================
@pytest.mark.parametrize("fn,shape", [(F.dropout1d, (40, 30, 7)), (F.dropout1d, (300, 5)),
                                      (F.dropout2d, (20, 30, 3, 4)), (F.dropout3d, (20, 30, 2, 2, 3)),
                                      (F.dropout3d, (300, 2, 2, 3))])
def test_channel_dropout_masks_whole_channels(fn, shape):
    gc.manual_seed(0)
    y = npy(fn(gc.ones(*shape), 0.3, True))
    batched = {F.dropout1d: 3, F.dropout2d: 4, F.dropout3d: 5}[fn]
    lead = 2 if len(shape) == batched else 1
    rows = y.reshape(int(np.prod(shape[:lead])), -1)
    assert np.all((rows == rows[:, :1]))                     # one decision per channel
    kept = rows[:, 0] != 0
    np.testing.assert_allclose(rows[kept], 1 / 0.7, rtol=1e-6)
    assert abs(kept.mean() - 0.7) < 0.06


def test_dropout2d_3d_input_warns_and_is_channelwise():
    gc.manual_seed(1)
    with pytest.warns(UserWarning, match="Received a 3D input to dropout2d"):
        y = npy(F.dropout2d(gc.ones(50, 40, 6), 0.5))
    assert np.all(y == y[:, :, :1])


def test_alpha_dropout_keeps_mean_and_variance():
    gc.manual_seed(2)
    x = gc.randn(400, 500)
    for fn in (F.alpha_dropout, lambda x, p, t: F.feature_alpha_dropout(x.reshape(400, 500, 1), p, t)):
        y = npy(fn(x, 0.2, True)).reshape(400, 500)
        assert abs(y.mean()) < 0.02 and abs(y.std() - 1) < 0.02
    y = npy(F.alpha_dropout(x, 0.2, True))
    sat = -1.7580993408473766
    a = (1 / np.sqrt((sat * sat * 0.2 + 1) * 0.8))
    dropped = np.isclose(y, sat * a + (-sat) * a * 0.2)      # torch's value for a dropped element
    assert abs(dropped.mean() - 0.2) < 0.01
    xs = npy(x)[~dropped]
    np.testing.assert_allclose(y[~dropped], xs * a + (-sat) * a * 0.2, rtol=1e-5, atol=1e-6)


def test_alpha_dropout_moments_match_torch_statistically():
    torch.manual_seed(0)
    xt = torch.randn(300, 400)
    yt = TF.alpha_dropout(xt, 0.3, True)
    gc.manual_seed(0)
    yg = npy(F.alpha_dropout(gc.tensor(xt.numpy()), 0.3, True))
    assert abs(yg.mean() - yt.mean().item()) < 0.02 and abs(yg.std() - yt.std().item()) < 0.02
    np.testing.assert_allclose(np.unique(yg.round(5))[:1], np.unique(yt.numpy().round(5))[:1], rtol=1e-4)


@pytest.mark.parametrize("name", ["Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"])
def test_dropout_modules_eval_identity_and_repr(name):
    gm, tm = getattr(nn, name)(0.25), getattr(torch.nn, name)(0.25)
    assert repr(gm) == repr(tm)
    shape = {"Dropout1d": (2, 3, 4), "Dropout2d": (2, 3, 2, 2)}.get(name, (2, 3, 2, 2, 2))
    gm.eval()
    x = gc.randn(*shape)
    np.testing.assert_array_equal(npy(gm(x)), npy(x))
    gm.train()
    assert gm(gc.zeros(*shape)).shape == shape
    with pytest.raises(ValueError, match="between 0 and 1"):
        getattr(nn, name)(1.5)


def test_dropout_gradient_is_the_mask_and_errors():
    gc.manual_seed(3)
    x = gc.randn(6, 8, 3, requires_grad=True)
    y = F.dropout1d(x, 0.5)
    y.sum().backward()
    np.testing.assert_allclose(npy(x.grad), (npy(y) != 0) * 2.0)
    assert F.dropout1d(x, 0.5, training=False) is x
    np.testing.assert_array_equal(npy(F.alpha_dropout(x, 1.0, True)), 0)
    with pytest.raises(RuntimeError, match="Expected 2D or 3D input"):
        F.dropout1d(gc.randn(2, 3, 4, 5))
    with pytest.raises(RuntimeError, match="Expected 3D or 4D input"):
        F.dropout2d(gc.randn(2, 3))
    h = x * 1
    out = F.dropout1d(h, 0.5, inplace=True)
    assert out is h and set(np.unique(npy(h) == 0)) <= {True, False}


@pytest.mark.parametrize("fn", [F.dropout, F.dropout1d, F.alpha_dropout, F.feature_alpha_dropout])
def test_dropout_inplace_writes_the_input(fn):
    """inplace=True (F.dropout ignored it before) returns the input, overwritten, differentiable."""
    gc.manual_seed(4)
    x = gc.randn(6, 8, 3, requires_grad=True)
    h = x * 1
    out = fn(h, 0.5, True, inplace=True)
    assert out is h
    gc.manual_seed(4)
    gc.randn(6, 8, 3)
    want = npy(fn(x.detach() * 1, 0.5, True))
    np.testing.assert_array_equal(npy(h), want)
    h.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    leaf = gc.randn(3, 4, requires_grad=True)
    assert fn(leaf, 0.5, False, inplace=True) is leaf          # eval: the input itself, as torch
