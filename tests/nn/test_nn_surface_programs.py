"""Small real-program shapes using the new nn surface, written once against a module named
`torch` and run with torch itself and with graphc in its place (`import graphc as torch`), from
the same initial weights: the losses of every training step and the final weights agree.

- pytorch/examples fast_neural_style's TransformerNet pieces: ConvLayer (ReflectionPad2d +
  Conv2d), ResidualBlock (InstanceNorm2d(affine=True), ReLU), and a Conv2d with
  padding_mode='reflect', trained on an MSE + smooth L1 loss (with SGD: a conv bias before an
  InstanceNorm has a gradient of rounding noise only, which Adam would scale up to full steps
  in directions that differ between any two implementations);
- a metric-learning net: Linear, PReLU, GroupNorm, F.normalize, TripletMarginLoss and
  CosineEmbeddingLoss, with SGD + momentum;
- a llama-style MLP block: RMSNorm, F.silu gating (SwiGLU), LayerNorm(bias=False), Mish, a KLDiv
  distillation loss against a fixed teacher distribution, with AdamW.
"""
import numpy as np
import pytest

import graphc

torch = pytest.importorskip("torch")
LIBS = [("torch", torch), ("graphc", graphc)]


def npy(t):
    return np.array(t.detach().numpy(), copy=True)


def style_net(torch):
    nn = torch.nn

    class ConvLayer(nn.Module):
        def __init__(self, cin, cout, k, stride):
            super().__init__()
            self.reflection_pad = nn.ReflectionPad2d(k // 2)
            self.conv2d = nn.Conv2d(cin, cout, k, stride)

        def forward(self, x):
            return self.conv2d(self.reflection_pad(x))

    class ResidualBlock(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv1 = ConvLayer(channels, channels, 3, 1)
            self.in1 = nn.InstanceNorm2d(channels, affine=True)
            self.conv2 = ConvLayer(channels, channels, 3, 1)
            self.in2 = nn.InstanceNorm2d(channels, affine=True)
            self.relu = nn.ReLU()

        def forward(self, x):
            out = self.relu(self.in1(self.conv1(x)))
            return self.in2(self.conv2(out)) + x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = ConvLayer(3, 4, 3, 1)
            self.in1 = nn.InstanceNorm2d(4, affine=True)
            self.res = ResidualBlock(4)
            self.out = nn.Conv2d(4, 3, 3, padding=1, padding_mode="reflect")
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.out(self.res(self.relu(self.in1(self.conv1(x)))))
    return Net(), lambda y, t: nn.functional.mse_loss(y, t) + nn.SmoothL1Loss(beta=0.5)(y, t), \
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)


def metric_net(torch):
    nn, F = torch.nn, torch.nn.functional

    class Embed(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(6, 8)
            self.act = nn.PReLU(8)
            self.norm = nn.GroupNorm(2, 8)
            self.fc2 = nn.Linear(8, 4)

        def forward(self, x):
            return F.normalize(self.fc2(self.norm(self.act(self.fc1(x)))), dim=1)

    triplet, cosine = nn.TripletMarginLoss(margin=0.5), nn.CosineEmbeddingLoss(margin=0.1)

    def loss(emb, x):
        a, p, n = emb(x[0]), emb(x[1]), emb(x[2])
        y = torch.tensor(np.array([1.0, -1.0, 1.0, -1.0, 1.0], dtype=np.float32))
        return triplet(a, p, n) + cosine(a, n, y)
    return Embed(), loss, lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)


def swiglu_net(torch):
    nn, F = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(self, d=8, h=12, classes=5):
            super().__init__()
            self.norm = nn.RMSNorm(d)
            self.w1, self.w3 = nn.Linear(d, h, bias=False), nn.Linear(d, h, bias=False)
            self.w2 = nn.Linear(h, d, bias=False)
            self.ln = nn.LayerNorm(d, bias=False)
            self.head = nn.Sequential(nn.Mish(), nn.Linear(d, classes))

        def forward(self, x):
            h = self.norm(x)
            x = x + self.w2(F.silu(self.w1(h)) * self.w3(h))
            return F.log_softmax(self.head(self.ln(x)), dim=-1)
    teacher = np.random.default_rng(3).dirichlet(np.ones(5), size=6).astype(np.float32)
    return Block(), lambda y, _: F.kl_div(y, torch.tensor(teacher), reduction="batchmean"), \
        lambda p: torch.optim.AdamW(p, lr=1e-2)


PROGRAMS = {"fast_neural_style": (style_net, lambda r: r.standard_normal((2, 3, 6, 6))),
            "metric_learning": (metric_net, lambda r: r.standard_normal((3, 5, 6))),
            "swiglu_distill": (swiglu_net, lambda r: r.standard_normal((6, 8)))}


@pytest.mark.parametrize("name", [pytest.param("fast_neural_style", marks=pytest.mark.slow),   # ~2 s
                                  "metric_learning", "swiglu_distill"])
def test_program_trains_the_same_with_torch_and_graphc(name):
    build, data = PROGRAMS[name]
    rng = np.random.default_rng(0)
    x = data(rng).astype(np.float32)
    target = rng.standard_normal(x.shape).astype(np.float32)
    results, weights = {}, None
    for lib_name, lib in LIBS:
        lib.manual_seed(0)
        model, loss_fn, make_opt = build(lib)
        if weights is None:
            weights = {k: npy(v) for k, v in model.state_dict().items()}
        else:
            model.load_state_dict({k: lib.tensor(v) for k, v in weights.items()})
        opt = make_opt(model.parameters())
        xs, ts = lib.tensor(x), lib.tensor(target)
        losses = []
        for _ in range(4):
            opt.zero_grad()
            out = model(xs) if name != "metric_learning" else model
            loss = loss_fn(out, ts) if name != "metric_learning" else loss_fn(model, xs)
            loss.backward()
            opt.step()
            losses.append(float(loss.item()))
        results[lib_name] = (losses, {k: npy(v) for k, v in model.state_dict().items()})
    (lt, wt), (lg, wg) = results["torch"], results["graphc"]
    assert len(set(np.round(lt, 6))) == len(lt)                     # it trains
    np.testing.assert_allclose(lg, lt, rtol=2e-5, atol=1e-6)
    assert list(wg) == list(wt)
    for k in wt:
        np.testing.assert_allclose(wg[k], wt[k], rtol=1e-4, atol=1e-5, err_msg=k)
