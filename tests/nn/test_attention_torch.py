"""F.scaled_dot_product_attention, nn.MultiheadAttention and the transformer layers against torch
2.13 with the same weights (torch's state_dict loaded, keys matching): outputs, attention
weights, and the gradients of a weighted loss w.r.t. every input and every parameter, in eval
mode (dropout off); masks of every kind (bool, float, key padding, causal, fully masked rows),
batch_first both ways, L != S, need_weights with and without head averaging; float64 gradchecks
of SDPA; the errors torch raises and the arguments graphc refuses."""
import numpy as np
import pytest

import graphc as gc
import graphc.nn as nn
import graphc.nn.functional as F
from graphc.testing import gradcheck

torch = pytest.importorskip("torch")
TF = torch.nn.functional
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning")


def npy(t):
    return np.array(t.detach().numpy(), copy=True)


def close(a, b, what, rtol=1e-5, atol=2e-6):
    a, b = npy(a), npy(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)


def g_of(t):
    """The graphc copy of a torch tensor (None stays None; masks keep their dtype)."""
    return None if t is None else gc.tensor(t.detach().numpy())


def backward_both(outs_t, outs_g, seed=3):
    """Backpropagate sum(out_k * R_k) with the same random R_k through both."""
    rng = np.random.default_rng(seed)
    lt, lg = 0, 0
    for t, g in zip(outs_t, outs_g):
        if t is None:
            assert g is None
            continue
        r = rng.standard_normal(tuple(t.shape)).astype(np.float32)
        r[~np.isfinite(npy(t))] = 0     # a NaN output (a fully masked row of softmax) gets no cotangent
        lt = lt + (torch.nan_to_num(t) * torch.tensor(r)).sum()
        lg = lg + (gc.nan_to_num(g) * gc.tensor(r)).sum()
    lt.backward()
    lg.backward()


def leaves(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    return ([torch.tensor(a, requires_grad=True) for a in arrays],
            [gc.tensor(a, requires_grad=True) for a in arrays])


# ---- scaled_dot_product_attention ---------------------------------------------------------------------
def _bool_mask(shape, seed=1, empty_row=True):
    m = np.random.default_rng(seed).random(shape) > 0.4
    if empty_row:
        m[..., 1, :] = False            # a query that may attend to nothing
    return torch.tensor(m)


SDPA_CASES = {
    "plain": dict(),
    "causal": dict(is_causal=True),
    "scale": dict(scale=0.37),
    "bool_mask_broadcast": dict(attn_mask=_bool_mask((4, 6))),
    "bool_mask_per_head": dict(attn_mask=_bool_mask((3, 4, 6))),
    "float_mask": dict(attn_mask=torch.randn(2, 1, 4, 6)),
    "float_mask_neg_inf_row": dict(attn_mask=torch.zeros(4, 6).index_fill_(0, torch.tensor([2]), float("-inf"))),
}


@pytest.mark.parametrize("case", list(SDPA_CASES))
def test_sdpa_matches_torch(case):
    kw = SDPA_CASES[case]
    (tq, tk, tv), (gq, gk, gv) = leaves((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5))
    gkw = {k: (g_of(v) if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    ot = TF.scaled_dot_product_attention(tq, tk, tv, **kw)
    og = F.scaled_dot_product_attention(gq, gk, gv, **gkw)
    close(og, ot, case)
    backward_both([ot], [og])
    for n, a, b in (("q", gq, tq), ("k", gk, tk), ("v", gv, tv)):
        close(a.grad, b.grad, f"{case}: d{n}")


@pytest.mark.parametrize("L,S", [(5, 3), (3, 5), (1, 4)])
def test_sdpa_causal_when_lengths_differ(L, S):
    (tq, tk, tv), (gq, gk, gv) = leaves((2, L, 4), (2, S, 4), (2, S, 3))
    ot = TF.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    og = F.scaled_dot_product_attention(gq, gk, gv, is_causal=True)
    close(og, ot, "causal L != S")
    backward_both([ot], [og])
    close(gk.grad, tk.grad, "dk")


def test_sdpa_fully_masked_row_is_zero_with_zero_gradient():
    (tq, tk, tv), (gq, gk, gv) = leaves((1, 3, 4), (1, 5, 4), (1, 5, 4))
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1] = False
    og = F.scaled_dot_product_attention(gq, gk, gv, attn_mask=g_of(mask))
    assert np.all(npy(og)[0, 1] == 0)
    og.sum().backward()
    assert np.all(gq.grad.numpy()[0, 1] == 0)


def test_sdpa_grouped_query_attention():
    (tq, tk, tv), (gq, gk, gv) = leaves((2, 4, 3, 8), (2, 2, 5, 8), (2, 2, 5, 8))
    ot = TF.scaled_dot_product_attention(tq, tk, tv, enable_gqa=True)
    og = F.scaled_dot_product_attention(gq, gk, gv, enable_gqa=True)
    close(og, ot, "gqa")
    backward_both([ot], [og])
    close(gk.grad, tk.grad, "gqa dk")


def test_sdpa_dropout_draws_from_graphcs_generator():
    q = gc.randn(2, 4, 8)
    gc.manual_seed(5)
    a = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)
    gc.manual_seed(5)
    b = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)
    plain = F.scaled_dot_product_attention(q, q, q)
    np.testing.assert_array_equal(npy(a), npy(b))
    assert not np.allclose(npy(a), npy(plain))


@pytest.mark.parametrize("kw", [dict(), dict(is_causal=True), dict(attn_mask="float")])
def test_sdpa_gradcheck_float64(kw):
    rng = np.random.default_rng(0)
    q, k, v = (gc.tensor(rng.standard_normal(s), dtype=gc.float64) for s in ((2, 3, 4), (2, 5, 4), (2, 5, 3)))
    if kw.get("attn_mask") == "float":
        kw = dict(attn_mask=gc.tensor(rng.standard_normal((3, 5)), dtype=gc.float64))
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kw), [q, k, v])


def test_sdpa_errors():
    q = gc.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match="attn_mask should not be set when is_causal"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=gc.ones(3, 3, dtype=gc.bool), is_causal=True)
    with pytest.raises(RuntimeError, match="at least 2 dimensional"):
        F.scaled_dot_product_attention(gc.randn(4), q, q)
    with pytest.raises(RuntimeError, match="same floating dtype"):
        F.scaled_dot_product_attention(q, q.double(), q)
    with pytest.raises(RuntimeError, match="not a multiple"):
        F.scaled_dot_product_attention(gc.randn(1, 3, 2, 4), gc.randn(1, 2, 2, 4), gc.randn(1, 2, 2, 4),
                                       enable_gqa=True)


# ---- MultiheadAttention -----------------------------------------------------------------------------
def pair(cls, *args, **kwargs):
    """A torch module and a graphc one holding torch's weights, both in eval mode."""
    t = getattr(torch.nn, cls)(*args, **kwargs).eval()
    g = getattr(nn, cls)(*args, **kwargs).eval()
    sd = t.state_dict()
    assert list(sd) == list(g.state_dict())
    for k, v in g.state_dict().items():
        assert tuple(v.shape) == tuple(sd[k].shape), k
    g.load_state_dict({k: gc.tensor(v.numpy()) for k, v in sd.items()})
    return t, g


def check_params(t, g, what):
    gp = dict(g.named_parameters())
    assert list(gp) == [n for n, _ in t.named_parameters()]
    for n, p in t.named_parameters():
        close(gp[n].grad, p.grad, f"{what}: d{n}", atol=1e-5)


E, H = 8, 2
KPM = torch.tensor([[False] * 5, [False, False, True, False, True]])
MHA_CASES = {
    "cross": (dict(), dict()),
    "batch_first": (dict(batch_first=True), dict()),
    "kdim_vdim": (dict(kdim=6, vdim=3), dict()),
    "no_bias": (dict(bias=False), dict()),
    "per_head_weights": (dict(), dict(average_attn_weights=False)),
    "no_weights": (dict(), dict(need_weights=False)),
    "bool_attn_mask": (dict(), dict(attn_mask=_bool_mask((4, 5), empty_row=False) | torch.eye(4, 5).bool())),
    "float_attn_mask_3d": (dict(), dict(attn_mask=torch.randn(2 * H, 4, 5))),
    "key_padding": (dict(), dict(key_padding_mask=KPM)),
    "key_padding_no_weights": (dict(batch_first=True), dict(key_padding_mask=KPM, need_weights=False)),
    "float_key_padding_and_mask": (dict(), dict(key_padding_mask=torch.randn(2, 5),
                                                attn_mask=torch.randn(4, 5), need_weights=False)),
    "fully_masked_row_weights": (dict(), dict(attn_mask=torch.zeros(4, 5, dtype=torch.bool).index_fill_(
        0, torch.tensor([1]), True))),
}


def _mha_inputs(kw, L=4, S=5, N=2):
    lead = (lambda n: (N, n)) if kw.get("batch_first") else (lambda n: (n, N))
    return leaves(lead(L) + (E,), lead(S) + (kw.get("kdim", E),), lead(S) + (kw.get("vdim", E),))


@pytest.mark.parametrize("case", list(MHA_CASES))
def test_multihead_attention_matches_torch(case):
    kw, fw = MHA_CASES[case]
    t, g = pair("MultiheadAttention", E, H, **kw)
    (tq, tk, tv), (gq, gk, gv) = _mha_inputs(kw)
    ot, wt = t(tq, tk, tv, **fw)
    og, wg = g(gq, gk, gv, **{k: (g_of(v) if isinstance(v, torch.Tensor) else v) for k, v in fw.items()})
    close(og, ot, case)
    if wt is None:
        assert wg is None
    else:
        np.testing.assert_allclose(npy(wg), npy(wt), rtol=1e-5, atol=2e-6, err_msg=case)  # NaN where torch's
    backward_both([ot, wt], [og, wg])
    for n, a, b in (("query", gq, tq), ("key", gk, tk), ("value", gv, tv)):
        close(a.grad, b.grad, f"{case}: d{n}", atol=1e-5)
    check_params(t, g, case)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_multihead_self_attention_matches_torch(batch_first, causal):
    t, g = pair("MultiheadAttention", E, H, batch_first=batch_first)
    (tx,), (gx,) = leaves((2, 5, E) if batch_first else (5, 2, E))
    mask = torch.nn.Transformer.generate_square_subsequent_mask(5) if causal else None
    gmask = nn.Transformer.generate_square_subsequent_mask(5) if causal else None
    ot, _ = t(tx, tx, tx, attn_mask=mask, is_causal=causal, need_weights=False)
    og, _ = g(gx, gx, gx, attn_mask=gmask, is_causal=causal, need_weights=False)
    close(og, ot, "self-attention")
    backward_both([ot], [og])
    close(gx.grad, tx.grad, "dx", atol=1e-5)
    check_params(t, g, "self-attention")


def test_multihead_attention_unbatched():
    t, g = pair("MultiheadAttention", E, H)
    (tq, tk), (gq, gk) = leaves((4, E), (5, E))
    ot, wt = t(tq, tk, tk)
    og, wg = g(gq, gk, gk)
    close(og, ot, "unbatched")
    close(wg, wt, "unbatched weights")


def test_multihead_attention_init_and_refusals():
    m = nn.MultiheadAttention(E, H)
    assert np.all(npy(m.in_proj_bias) == 0) and np.all(npy(m.out_proj.bias) == 0)
    bound = np.sqrt(6.0 / (E + 3 * E))         # xavier_uniform_ over the packed [3E, E] weight
    w = npy(m.in_proj_weight)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert type(m.out_proj).__name__ == "NonDynamicallyQuantizableLinear"
    for kw in (dict(add_bias_kv=True), dict(add_zero_attn=True)):
        with pytest.raises(NotImplementedError, match="MultiheadAttention"):
            nn.MultiheadAttention(E, H, **kw)
    with pytest.raises(AssertionError, match="divisible"):
        nn.MultiheadAttention(E, 3)
    x = gc.randn(4, 2, E)
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        m(x, x, x, is_causal=True)
    with pytest.raises(RuntimeError, match="2D attn_mask"):
        m(x, x, x, attn_mask=gc.zeros(3, 4))


# ---- transformer layers -----------------------------------------------------------------------------
LAYER_KW = {
    "post_norm_relu": dict(),
    "norm_first_gelu_batch_first": dict(norm_first=True, activation="gelu", batch_first=True),
    "no_bias_eps": dict(bias=False, layer_norm_eps=1e-3),
}
D, NH, FF = 8, 2, 16


def _seq(batch_first, n, seed):
    return leaves((2, n, D) if batch_first else (n, 2, D), seed=seed)


@pytest.mark.parametrize("case", list(LAYER_KW))
def test_encoder_layer_matches_torch(case):
    kw = LAYER_KW[case]
    t, g = pair("TransformerEncoderLayer", D, NH, FF, **kw)
    (tx,), (gx,) = _seq(kw.get("batch_first", False), 5, 0)
    kpm = torch.tensor([[False] * 5, [False, False, False, True, True]])
    ot = t(tx, src_key_padding_mask=kpm)
    og = g(gx, src_key_padding_mask=g_of(kpm))
    close(og, ot, case, atol=1e-5)
    backward_both([ot], [og])
    close(gx.grad, tx.grad, f"{case}: dx", atol=1e-5)
    check_params(t, g, case)


@pytest.mark.parametrize("case", list(LAYER_KW))
def test_decoder_layer_matches_torch(case):
    kw = LAYER_KW[case]
    t, g = pair("TransformerDecoderLayer", D, NH, FF, **kw)
    bf = kw.get("batch_first", False)
    (tx,), (gx,) = _seq(bf, 4, 0)
    (tm,), (gm,) = _seq(bf, 6, 1)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(4)
    mkpm = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])
    ot = t(tx, tm, tgt_mask=mask, tgt_is_causal=True, memory_key_padding_mask=mkpm)
    og = g(gx, gm, tgt_mask=nn.Transformer.generate_square_subsequent_mask(4), tgt_is_causal=True,
           memory_key_padding_mask=g_of(mkpm))
    close(og, ot, case, atol=1e-5)
    backward_both([ot], [og])
    close(gx.grad, tx.grad, f"{case}: dtgt", atol=1e-5)
    close(gm.grad, tm.grad, f"{case}: dmemory", atol=1e-5)
    check_params(t, g, case)


def test_encoder_stack_with_norm_and_mask():
    torch.manual_seed(0)
    t = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(D, NH, FF), 2, norm=torch.nn.LayerNorm(D))
    g = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, NH, FF), 2, norm=nn.LayerNorm(D))
    assert list(t.state_dict()) == list(g.state_dict())
    g.load_state_dict({k: gc.tensor(v.numpy()) for k, v in t.state_dict().items()})
    t.eval(), g.eval()
    (tx,), (gx,) = _seq(False, 5, 0)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(5)
    ot = t(tx, mask=mask)                  # torch detects the causal mask; graphc applies it as given
    og = g(gx, mask=nn.Transformer.generate_square_subsequent_mask(5))
    close(og, ot, "encoder stack", atol=1e-5)
    backward_both([ot], [og])
    close(gx.grad, tx.grad, "encoder stack dx", atol=1e-5)
    check_params(t, g, "encoder stack")


def test_layers_are_deep_copies():
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, NH, FF), 2, enable_nested_tensor=False)
    a, b = enc.layers[0].linear1.weight, enc.layers[1].linear1.weight
    assert a is not b and np.array_equal(npy(a), npy(b))


def test_transformer_matches_torch():
    torch.manual_seed(0)
    t = torch.nn.Transformer(D, NH, 2, 2, FF, dropout=0.1).eval()
    g = nn.Transformer(D, NH, 2, 2, FF, dropout=0.1).eval()
    assert list(t.state_dict()) == list(g.state_dict())
    g.load_state_dict({k: gc.tensor(v.numpy()) for k, v in t.state_dict().items()})
    (ts, tt), (gs, gt) = leaves((6, 2, D), (4, 2, D))
    skpm = torch.tensor([[False] * 6, [False] * 5 + [True]])
    tmask = torch.nn.Transformer.generate_square_subsequent_mask(4)
    ot = t(ts, tt, tgt_mask=tmask, src_key_padding_mask=skpm, memory_key_padding_mask=skpm)
    og = g(gs, gt, tgt_mask=nn.Transformer.generate_square_subsequent_mask(4), src_key_padding_mask=g_of(skpm),
           memory_key_padding_mask=g_of(skpm))
    close(og, ot, "transformer", atol=1e-5)
    backward_both([ot], [og])
    close(gs.grad, ts.grad, "dsrc", atol=1e-5)
    close(gt.grad, tt.grad, "dtgt", atol=1e-5)
    check_params(t, g, "transformer")


def test_transformer_init_and_mask():
    m = nn.Transformer.generate_square_subsequent_mask(3)
    want = torch.nn.Transformer.generate_square_subsequent_mask(3).numpy()
    np.testing.assert_array_equal(m.numpy(), want)
    tr = nn.Transformer(D, NH, 1, 1, FF)
    for name, p in tr.named_parameters():
        if p.ndim > 1:     # xavier_uniform_ over every matrix
            fan_out, fan_in = p.shape
            assert np.abs(npy(p)).max() <= np.sqrt(6.0 / (fan_in + fan_out)), name
    with pytest.raises(RuntimeError, match="batch number"):
        tr(gc.randn(3, 2, D), gc.randn(3, 1, D))
    with pytest.raises(RuntimeError, match="activation should be relu/gelu"):
        nn.TransformerEncoderLayer(D, NH, activation="tanh")
    layer = nn.TransformerEncoderLayer(D, NH, FF, activation=nn.GELU())
    assert "activation" in dict(layer.named_children())


def test_encoder_layer_equals_torchs_inference_fast_path():
    """Under no_grad in eval mode torch runs its fused encoder kernel; graphc's plain path gives
    the same values (without a padding mask, where the fast path's nested tensor would zero the
    padded rows)."""
    t, g = pair("TransformerEncoderLayer", D, NH, FF, batch_first=True)
    x = np.random.default_rng(0).standard_normal((2, 5, D)).astype(np.float32)
    with torch.no_grad():
        ot = t(torch.tensor(x))
    with gc.no_grad():
        og = g(gc.tensor(x))
    close(og, ot, "fast path", atol=1e-5)


def test_dropout_only_in_training():
    m = nn.TransformerEncoderLayer(D, NH, FF, dropout=0.5)
    x = gc.randn(5, 2, D)
    outs = []
    for seed in (3, 3, 4):
        gc.manual_seed(seed)
        outs.append(npy(m(x)))
    np.testing.assert_array_equal(outs[0], outs[1])         # graphc's generator: the same seed, the same masks
    assert not np.allclose(outs[0], outs[2])
    m.eval()
    np.testing.assert_array_equal(npy(m(x)), npy(m(x)))
    attn = nn.MultiheadAttention(D, NH, dropout=0.5)
    w_train = npy(attn(x, x, x)[1])
    attn.eval()
    w_eval = npy(attn(x, x, x)[1])
    np.testing.assert_allclose(w_eval.sum(-1), 1, rtol=1e-5)
    assert not np.allclose(w_train, w_eval)
