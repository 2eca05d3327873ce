"""Attention under gc.compile == eager, on the interpreter and llvm here and on cuda in numba's
CUDA simulator (a subprocess: the simulator must be chosen before numba is first imported):
scaled_dot_product_attention with each kind of mask (values and gradients through the compiled
call), a 2-layer TransformerEncoder with a causal mask and a key padding mask, and a tiny
GPT-style training step (token + position embeddings, a causal self-attention block with
dropout, LayerNorm, a linear head, cross_entropy, AdamW) over several steps."""
import os

import numpy as np
import pytest

import graphc as gc
import graphc.nn as nn
import graphc.nn.functional as F

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),   # the simulator's RNG hash
              pytest.mark.filterwarnings("ignore:Support for mismatched:UserWarning")]   # as torch warns
BACKENDS = ["cuda"] if SIM else ["interp", pytest.param("llvm", marks=pytest.mark.slow)]


def npy(t):
    return np.array(t.detach().numpy(), copy=True)


def close(a, b, what, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(npy(a), npy(b), rtol=rtol, atol=atol, err_msg=what)


def arr(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _padding_rows():
    m = np.zeros((4, 6), dtype=bool)
    m[1] = True                  # a query with nothing to attend to: zeros, not NaN
    m[2, 3:] = True
    return m


SDPA = {
    "causal": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
    "bool_mask": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=gc.tensor(~_padding_rows())),
    "float_mask": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=gc.tensor(arr(1, 4, 6, seed=4)),
                                                                 scale=0.5),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(SDPA))
def test_sdpa_compiled_equals_eager(case, backend):
    fn = SDPA[case]
    ins = [gc.tensor(arr(*s, seed=i), requires_grad=True) for i, s in enumerate([(2, 2, 4, 8), (2, 2, 6, 8),
                                                                                 (2, 2, 6, 3)])]
    eager = fn(*ins)
    compiled = gc.compile(fn, backend=backend)(*ins)
    close(compiled, eager, case)
    r = gc.tensor(arr(*eager.shape, seed=9))
    grads = []
    for out in (eager, compiled):
        for t in ins:
            t.grad = None
        (out * r).sum().backward()
        grads.append([npy(t.grad) for t in ins])
    for k, (a, b) in enumerate(zip(*grads)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=f"{case}: gradient {k}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_transformer_encoder_compiled_equals_eager(backend):
    gc.manual_seed(0)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 2,
                                norm=nn.LayerNorm(8)).eval()
    x = gc.tensor(arr(2, 5, 8))
    mask = nn.Transformer.generate_square_subsequent_mask(5)
    kpm = gc.tensor(np.array([[False] * 5, [False] * 3 + [True] * 2]))

    def f(x):
        return enc(x, mask=mask, src_key_padding_mask=kpm)

    close(gc.compile(f, backend=backend)(x), f(x), "encoder", atol=1e-5)


V, T, D, HEADS = 11, 6, 8, 2


class Block(nn.Module):
    """nanoGPT's block: causal self-attention (one qkv projection, SDPA) and an MLP, pre-norm."""

    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(D), nn.LayerNorm(D)
        # no qkv bias (nanoGPT's bias=False): the key bias's true gradient is 0 (softmax ignores a
        # shift per row), so it would get rounding noise, which Adam scales up to full steps
        self.c_attn, self.c_proj = nn.Linear(D, 3 * D, bias=False), nn.Linear(D, D)
        self.mlp = nn.Sequential(nn.Linear(D, 4 * D), nn.GELU(), nn.Linear(4 * D, D))

    def forward(self, x):
        B, L, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, L, HEADS, C // HEADS).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=0.1 if self.training else 0.0, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, L, C))
        return x + self.mlp(self.ln_2(x))


class TinyGPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, D), nn.Embedding(T, D)
        self.block, self.ln_f = Block(), nn.LayerNorm(D)
        self.lm_head = nn.Linear(D, V, bias=False)

    def forward(self, idx):
        pos = gc.arange(0, idx.shape[1], dtype=gc.int64)
        x = self.wte(idx) + self.wpe(pos)
        return self.lm_head(self.ln_f(self.block(x)))


def _train(compiled, backend, steps=3):
    gc.manual_seed(0)
    model = TinyGPT()
    opt = gc.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    rng = np.random.default_rng(0)
    data = [gc.tensor(rng.integers(0, V, (2, T + 1)).astype(np.int64)) for _ in range(steps)]

    def step(x, y):
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    fn = gc.compile(step, backend=backend) if compiled else step
    gc.manual_seed(1)                 # the dropout masks: the same numbers eagerly and compiled
    losses = [float(fn(d[:, :T], d[:, 1:]).item()) for d in data]
    return losses, {k: npy(v) for k, v in model.state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_gpt_training_step_compiled_equals_eager(backend):
    (le, se), (lc, sc) = _train(False, backend), _train(True, backend)
    np.testing.assert_allclose(lc, le, rtol=1e-5)
    assert le[-1] != le[0]
    for k in se:
        np.testing.assert_allclose(sc[k], se[k], rtol=1e-4, atol=1e-5, err_msg=k)


@pytest.mark.slow
@pytest.mark.skipif(SIM, reason="the driver of the simulator run")
def test_in_cuda_simulator():
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install numba-cuda)")
    from cuda_subprocess import assert_simulator_run_passes
    assert_simulator_run_passes("test_attention_compiled.py", "-k", "not simulator", timeout=1200)
