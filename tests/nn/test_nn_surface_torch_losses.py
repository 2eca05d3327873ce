"""Losses and distances of issue 15 against torch 2.13: every reduction, shapes with size-1 and
odd dims and broadcasting, the edge targets (0 for KLDiv / PoissonNLL, kinks of the margins),
gradients w.r.t. every float argument; module reprs and the deprecated size_average/reduce
flags as torch's; gradcheck in float64."""
import numpy as np
import pytest

import graphc as gc
import graphc.nn as nn
import graphc.nn.functional as F
from graphc.testing import gradcheck
from test_nn_surface_torch import compare, rand

torch = pytest.importorskip("torch")
TF = torch.nn.functional
REDUCTIONS = ["mean", "sum", "none"]

pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides", "ignore:.*Using a target size")


def sign_target(*shape, seed=4):
    return np.where(np.random.default_rng(seed).random(shape) < 0.5, -1.0, 1.0)


def probs(*shape, seed=5, zeros=True):
    p = np.random.default_rng(seed).random(shape)
    if zeros:
        p.flat[::3] = 0.0
    return p


# (name, graphc fn(reduction, *args), torch fn(reduction, *args), make arrays)
LOSSES = [
    ("smooth_l1", lambda r, x, y: F.smooth_l1_loss(x, y, reduction=r),
     lambda r, x, y: TF.smooth_l1_loss(x, y, reduction=r), lambda: [rand(4, 5), rand(4, 5, seed=1)]),
    ("smooth_l1_beta", lambda r, x, y: F.smooth_l1_loss(x, y, reduction=r, beta=0.3),
     lambda r, x, y: TF.smooth_l1_loss(x, y, reduction=r, beta=0.3), lambda: [rand(3, 1, 2), rand(3, 4, 2, seed=1)]),
    ("smooth_l1_beta0", lambda r, x, y: F.smooth_l1_loss(x, y, reduction=r, beta=0.0),
     lambda r, x, y: TF.smooth_l1_loss(x, y, reduction=r, beta=0.0), lambda: [rand(7), rand(7, seed=1)]),
    ("smooth_l1_kinks", lambda r, x, y: F.smooth_l1_loss(x, y, reduction=r),
     lambda r, x, y: TF.smooth_l1_loss(x, y, reduction=r),
     lambda: [np.array([0.0, 1.0, -1.0, 2.0, 0.5]), np.array([0.0, 0.0, 0.0, 1.0, 0.5])]),
    ("huber", lambda r, x, y: F.huber_loss(x, y, reduction=r, delta=0.7),
     lambda r, x, y: TF.huber_loss(x, y, reduction=r, delta=0.7), lambda: [rand(4, 5), rand(4, 5, seed=1)]),
    ("huber_weight", lambda r, x, y, w: F.huber_loss(x, y, reduction=r, weight=w),
     lambda r, x, y, w: TF.huber_loss(x, y, reduction=r, weight=w),
     lambda: [rand(4, 5), rand(4, 5, seed=1), rand(4, 5, seed=2)]),
    ("kl_div", lambda r, x, t: F.kl_div(x, t, reduction=r), lambda r, x, t: TF.kl_div(x, t, reduction=r),
     lambda: [rand(3, 6), probs(3, 6, zeros=False)]),
    ("kl_div_zero_targets", lambda r, x, t: F.kl_div(x, t, reduction=r),
     lambda r, x, t: TF.kl_div(x, t, reduction=r), lambda: [rand(3, 6), probs(3, 6)]),
    ("kl_div_log_target", lambda r, x, t: F.kl_div(x, t, reduction=r, log_target=True),
     lambda r, x, t: TF.kl_div(x, t, reduction=r, log_target=True), lambda: [rand(3, 6), rand(3, 6, seed=1)]),
    ("cosine_embedding", lambda r, a, b, y: F.cosine_embedding_loss(a, b, y, 0.2, reduction=r),
     lambda r, a, b, y: TF.cosine_embedding_loss(a, b, y, 0.2, reduction=r),
     lambda: [rand(5, 3), rand(5, 3, seed=1), sign_target(5)]),
    ("cosine_embedding_1d", lambda r, a, b, y: F.cosine_embedding_loss(a, b, y, reduction=r),
     lambda r, a, b, y: TF.cosine_embedding_loss(a, b, y, reduction=r),
     lambda: [rand(4), rand(4, seed=1), np.array(-1.0)]),
    ("margin_ranking", lambda r, a, b, y: F.margin_ranking_loss(a, b, y, 0.5, reduction=r),
     lambda r, a, b, y: TF.margin_ranking_loss(a, b, y, 0.5, reduction=r),
     lambda: [rand(6), rand(6, seed=1), sign_target(6)]),
    ("triplet", lambda r, a, p, n: F.triplet_margin_loss(a, p, n, reduction=r),
     lambda r, a, p, n: TF.triplet_margin_loss(a, p, n, reduction=r),
     lambda: [rand(4, 3), rand(4, 3, seed=1), rand(4, 3, seed=2)]),
    ("triplet_p1_swap", lambda r, a, p, n: F.triplet_margin_loss(a, p, n, 0.5, 1, swap=True, reduction=r),
     lambda r, a, p, n: TF.triplet_margin_loss(a, p, n, 0.5, 1, swap=True, reduction=r),
     lambda: [rand(4, 3), rand(4, 3, seed=1), rand(4, 3, seed=2)]),
    ("triplet_p3_1d", lambda r, a, p, n: F.triplet_margin_loss(a, p, n, 2.0, 3, reduction=r),
     lambda r, a, p, n: TF.triplet_margin_loss(a, p, n, 2.0, 3, reduction=r),
     lambda: [rand(5), rand(5, seed=1), rand(5, seed=2)]),
    ("poisson", lambda r, x, t: F.poisson_nll_loss(x, t, reduction=r),
     lambda r, x, t: TF.poisson_nll_loss(x, t, reduction=r), lambda: [rand(4, 3), 3 * probs(4, 3)]),
    ("poisson_rate_full", lambda r, x, t: F.poisson_nll_loss(x, t, log_input=False, full=True, reduction=r),
     lambda r, x, t: TF.poisson_nll_loss(x, t, log_input=False, full=True, reduction=r),
     lambda: [probs(4, 3, seed=1, zeros=False) + 0.1, np.round(5 * probs(4, 3))]),
    ("poisson_full_eps", lambda r, x, t: F.poisson_nll_loss(x, t, full=True, eps=1e-3, reduction=r),
     lambda r, x, t: TF.poisson_nll_loss(x, t, full=True, eps=1e-3, reduction=r),
     lambda: [rand(2, 5), 4 * probs(2, 5, zeros=False) + 1.5]),
    ("multilabel_soft_margin", lambda r, x, y: F.multilabel_soft_margin_loss(x, y, reduction=r),
     lambda r, x, y: TF.multilabel_soft_margin_loss(x, y, reduction=r),
     lambda: [rand(4, 5), (probs(4, 5) > 0.5).astype(np.float64)]),
    ("multilabel_soft_margin_weight", lambda r, x, y, w: F.multilabel_soft_margin_loss(x, y, w, reduction=r),
     lambda r, x, y, w: TF.multilabel_soft_margin_loss(x, y, w, reduction=r),
     lambda: [10 * rand(3, 4), (probs(3, 4) > 0.5).astype(np.float64), probs(4, seed=9, zeros=False)]),
    ("soft_margin", lambda r, x, y: F.soft_margin_loss(x, y, reduction=r),
     lambda r, x, y: TF.soft_margin_loss(x, y, reduction=r), lambda: [rand(3, 5, scale=10), sign_target(3, 5)]),
    ("hinge_embedding", lambda r, x, y: F.hinge_embedding_loss(x, y, 0.8, reduction=r),
     lambda r, x, y: TF.hinge_embedding_loss(x, y, 0.8, reduction=r), lambda: [rand(3, 5), sign_target(3, 5)]),
    ("gaussian_nll", lambda r, x, t, v: F.gaussian_nll_loss(x, t, v, reduction=r),
     lambda r, x, t, v: TF.gaussian_nll_loss(x, t, v, reduction=r),
     lambda: [rand(4, 3), rand(4, 3, seed=1), probs(4, 3) + 1e-7]),
    ("gaussian_nll_homo_full", lambda r, x, t, v: F.gaussian_nll_loss(x, t, v, full=True, eps=1e-2, reduction=r),
     lambda r, x, t, v: TF.gaussian_nll_loss(x, t, v, full=True, eps=1e-2, reduction=r),
     lambda: [rand(4, 3), rand(4, 3, seed=1), probs(4, zeros=False)]),
    ("gaussian_nll_var1", lambda r, x, t, v: F.gaussian_nll_loss(x, t, v, reduction=r),
     lambda r, x, t, v: TF.gaussian_nll_loss(x, t, v, reduction=r),
     lambda: [rand(4, 3), rand(4, 3, seed=1), probs(4, 1, zeros=False)]),
    ("gaussian_nll_float_var", lambda r, x, t: F.gaussian_nll_loss(x, t, 0.5, reduction=r),
     lambda r, x, t: TF.gaussian_nll_loss(x, t, 0.5, reduction=r), lambda: [rand(4, 3), rand(4, 3, seed=1)]),
    ("cosine_similarity", lambda r, a, b: F.cosine_similarity(a, b), lambda r, a, b: TF.cosine_similarity(a, b),
     lambda: [rand(4, 3, 2), rand(1, 3, 2, seed=1)]),
    ("cosine_similarity_dim_eps", lambda r, a, b: F.cosine_similarity(a, b, -1, 1e-3),
     lambda r, a, b: TF.cosine_similarity(a, b, -1, 1e-3), lambda: [rand(4, 5), rand(4, 5, seed=1)]),
    ("pairwise_distance", lambda r, a, b: F.pairwise_distance(a, b), lambda r, a, b: TF.pairwise_distance(a, b),
     lambda: [rand(4, 3), rand(4, 3, seed=1)]),
    ("pairwise_distance_p_keepdim", lambda r, a, b: F.pairwise_distance(a, b, 1.5, 1e-3, True),
     lambda r, a, b: TF.pairwise_distance(a, b, 1.5, 1e-3, True), lambda: [rand(2, 4, 3), rand(3, seed=1)]),
    ("pairwise_distance_inf", lambda r, a, b: F.pairwise_distance(a, b, float("inf")),
     lambda r, a, b: TF.pairwise_distance(a, b, float("inf")), lambda: [rand(4, 3), rand(4, 3, seed=1)]),
    ("normalize", lambda r, x: F.normalize(x), lambda r, x: TF.normalize(x), lambda: [rand(3, 4, 2)]),
    ("normalize_p1_dim0", lambda r, x: F.normalize(x, 1, 0), lambda r, x: TF.normalize(x, 1, 0),
     lambda: [rand(3, 4)]),
    ("normalize_zero_rows", lambda r, x: F.normalize(x, dim=-1), lambda r, x: TF.normalize(x, dim=-1),
     lambda: [np.concatenate([rand(2, 3), np.zeros((1, 3))])]),
]

# KLDiv's target gradient at target 0 is NaN in torch (xlogy's d/dy = x / y) and in graphc alike
# (and PoissonNLL's full=True: target log target), and gaussian_nll clamps var at eps = 1e-6 > 1e-7
# cases whose data sits on a kink or where the gradient is NaN (torch's too): finite differences
# cannot check them; their gradients are compared with torch's in test_loss_matches_torch
NO_FINITE_DIFFERENCES = {"smooth_l1_kinks", "kl_div_zero_targets", "normalize_zero_rows",
                         "pairwise_distance_inf", "poisson_rate_full", "gaussian_nll"}
# the targets torch does not differentiate (graphc does)
NODIFF = {"soft_margin": (1,)}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,gfn,tfn,make", LOSSES, ids=[c[0] for c in LOSSES])
def test_loss_matches_torch(name, gfn, tfn, make, reduction):
    if reduction != "mean" and name.startswith(("cosine_sim", "pairwise", "normalize")):
        pytest.skip("no reduction argument")
    compare(lambda *a: gfn(reduction, *a), lambda *a: tfn(reduction, *a), *make(), nodiff=NODIFF.get(name, ()),
            what=f"{name} {reduction}")


@pytest.mark.parametrize("name,gfn,tfn,make", LOSSES, ids=[c[0] for c in LOSSES])
def test_loss_gradcheck(name, gfn, tfn, make):
    if name in NO_FINITE_DIFFERENCES:
        pytest.skip("finite differences across a kink / at a NaN gradient")
    args = [gc.tensor(a) for a in make()]
    assert gradcheck(lambda *a: gfn("sum", *a), args)


def test_kl_div_batchmean_and_zero_targets():
    x, t = rand(3, 4), probs(3, 4)
    compare(lambda x, t: F.kl_div(x, t, reduction="batchmean"), lambda x, t: TF.kl_div(x, t, reduction="batchmean"),
            x, t, grad=False)
    gx = gc.tensor(x, requires_grad=True)
    F.kl_div(gx, gc.tensor(t), reduction="batchmean").backward()
    tx = torch.tensor(x, requires_grad=True)
    TF.kl_div(tx, torch.tensor(t), reduction="batchmean").backward()
    np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        F.kl_div(gc.tensor(x), gc.tensor(t))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.kl_div(gc.tensor(x), gc.tensor(t), reduction="avg")


def test_loss_argument_errors_as_torch():
    x = gc.randn(3, 4)
    with pytest.raises(RuntimeError, match="negative values for beta"):
        F.smooth_l1_loss(x, x, beta=-1.0)
    with pytest.raises(RuntimeError, match="non-positive values for delta"):
        F.huber_loss(x, x, delta=0.0)
    with pytest.raises(ValueError, match="Weights and input must have the same size"):
        F.huber_loss(x, x, weight=gc.ones(4))
    with pytest.raises(ValueError, match="margin must be greater than 0"):
        F.triplet_margin_loss(x, x, x, margin=0.0)
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        F.triplet_margin_loss(x, x, x[0])
    with pytest.raises(RuntimeError, match="multi-target not supported"):
        F.cosine_embedding_loss(gc.randn(2, 3, 4), gc.randn(2, 3, 4), gc.ones(2, 3))
    with pytest.raises(ValueError, match="var has negative"):
        F.gaussian_nll_loss(x, x, -gc.ones(3, 4))
    with pytest.raises(ValueError, match="var is of incorrect size"):
        F.gaussian_nll_loss(x, x, gc.ones(2))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.soft_margin_loss(x, x, reduction="avg")
    with pytest.raises(ValueError, match="expected margin to be greater than 0"):
        nn.TripletMarginLoss(margin=0)
    with pytest.raises(ValueError, match="expected margin to be greater than 0"):
        torch.nn.TripletMarginLoss(margin=0)


MODULES = [
    ("SmoothL1Loss", dict(beta=0.5), 2), ("HuberLoss", dict(delta=2.0, reduction="sum"), 2),
    ("KLDivLoss", dict(reduction="batchmean", log_target=True), 2), ("CosineEmbeddingLoss", dict(margin=0.1), 3),
    ("MarginRankingLoss", dict(margin=0.3, reduction="none"), 3), ("TripletMarginLoss", dict(p=1.0, swap=True), 3),
    ("PoissonNLLLoss", dict(full=True), 2), ("MultiLabelSoftMarginLoss", dict(), 2), ("SoftMarginLoss", dict(), 2),
    ("HingeEmbeddingLoss", dict(margin=2.0), 2), ("GaussianNLLLoss", dict(full=True), 3),
    ("CosineSimilarity", dict(dim=0), 2), ("PairwiseDistance", dict(p=3.0, keepdim=True), 2),
]


@pytest.mark.parametrize("name,kw,nargs", MODULES, ids=[m[0] for m in MODULES])
def test_loss_module_matches_torch(name, kw, nargs):
    gm, tm = getattr(nn, name)(**kw), getattr(torch.nn, name)(**kw)
    assert repr(gm) == repr(tm)
    args = [rand(4, 3), rand(4, 3, seed=1)]
    if name in ("CosineEmbeddingLoss", "MarginRankingLoss"):
        args = [rand(4, 3), rand(4, 3, seed=1), sign_target(4)]
        if name == "MarginRankingLoss":
            args = [rand(4), rand(4, seed=1), sign_target(4)]
    elif name == "TripletMarginLoss":
        args.append(rand(4, 3, seed=2))
    elif name == "GaussianNLLLoss":
        args.append(probs(4, 3, zeros=False))
    elif name in ("SoftMarginLoss", "HingeEmbeddingLoss"):
        args[1] = sign_target(4, 3)
    elif name == "PoissonNLLLoss":
        args[1] = np.round(3 * probs(4, 3))
    elif name == "MultiLabelSoftMarginLoss":
        args[1] = (probs(4, 3) > 0.3).astype(np.float64)
    compare(gm, tm, *args, nodiff=(1,) if name == "SoftMarginLoss" else (), what=name)


def test_multilabel_weight_is_a_buffer_and_legacy_flags():
    w = probs(3, zeros=False)
    gm = nn.MultiLabelSoftMarginLoss(gc.tensor(w))
    tm = torch.nn.MultiLabelSoftMarginLoss(torch.tensor(w))
    assert list(gm.state_dict()) == list(tm.state_dict()) == ["weight"]
    for sa, rd, want in ((False, None, "sum"), (None, False, "none"), (True, True, "mean")):
        with pytest.warns(UserWarning, match=f"reduction='{want}'"):
            assert nn.SmoothL1Loss(size_average=sa, reduce=rd).reduction == want
        with pytest.warns(UserWarning):
            assert torch.nn.SmoothL1Loss(size_average=sa, reduce=rd).reduction == want
    x, y = rand(2, 3), rand(2, 3, seed=1)
    with pytest.warns(UserWarning):
        compare(lambda x, y: F.soft_margin_loss(x, y, size_average=False),
                lambda x, y: TF.soft_margin_loss(x, y, size_average=False), x, y, nodiff=(1,))


def test_poisson_and_softplus_like_losses_at_large_values():
    x = np.array([-100.0, -30.0, -20.0, 0.0, 20.0, 30.0, 80.0])
    compare(lambda x, y: F.soft_margin_loss(x, y, reduction="none"),
            lambda x, y: TF.soft_margin_loss(x, y, reduction="none"), x, np.ones(7), nodiff=(1,))
    compare(lambda x, y: F.multilabel_soft_margin_loss(x, y, reduction="none"),
            lambda x, y: TF.multilabel_soft_margin_loss(x, y, reduction="none"), x[None], np.ones((1, 7)))
    compare(lambda x, t: F.poisson_nll_loss(x, t, reduction="none"),
            lambda x, t: TF.poisson_nll_loss(x, t, reduction="none"), x[:5] / 4, np.array([0, 0, 1, 2, 0.0]))
