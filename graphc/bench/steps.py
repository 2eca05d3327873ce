"""graphc's own implementation of each workload family: the eager step and gc.compile of it,
from the shared initial state (graphc/bench/workloads.py). IMPLS[family](state, backend,
compiled) -> Impl."""
from __future__ import annotations

from .columns import EPS, LR, MOMENTUM, Impl


def _model(family, state):
    import graphc as gc
    import graphc.nn as nn
    P = state["params"]
    if family in ("mlp_train", "mlp_infer"):
        layers = []
        for k in range(0, len(P), 2):
            layers += [nn.Linear(P[k].shape[1], P[k].shape[0]), nn.ReLU()]
        model = nn.Sequential(*layers[:-1])
    else:
        c1, c2 = P[0].shape[0], P[2].shape[0]
        model = nn.Sequential(nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(P[4].shape[1], 10))
    params = list(model.parameters())
    assert [tuple(p.shape) for p in params] == [w.shape for w in P]
    with gc.no_grad():
        for p, w in zip(params, P):
            p.copy_(gc.from_numpy(w.copy()))
    return model


def _train(state, backend, compiled, family):
    import graphc as gc
    import graphc.nn.functional as F
    model = _model(family, state)
    opt = gc.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    fn = gc.compile(step, backend=backend) if compiled else step
    args = (gc.from_numpy(state["x"].copy()), gc.from_numpy(state["y"].copy()))
    return Impl(lambda: fn(*args), lambda t: t.detach().numpy(),
                lambda: [p.detach().numpy().copy() for p in model.parameters()], fn, args)


def _infer(state, backend, compiled):
    import graphc as gc
    model = _model("mlp_infer", state)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    def infer(x):
        return model(x)
    fn = gc.compile(infer, backend=backend) if compiled else infer
    args = (gc.from_numpy(state["x"].copy()),)
    return Impl(lambda: fn(*args), lambda t: t.numpy(), fn=fn, args=args)


def _ln_gelu(state, backend, compiled):
    import graphc as gc
    import graphc.nn.functional as F
    g, b = (gc.from_numpy(a.copy()) for a in state["params"])
    d = state["x"].shape[-1]

    def f(x):
        return F.gelu(F.layer_norm(x, (d,), eps=EPS) * g + b, approximate="tanh")
    fn = gc.compile(f, backend=backend) if compiled else f
    args = (gc.from_numpy(state["x"].copy()),)
    return Impl(lambda: fn(*args), lambda t: t.numpy(), fn=fn, args=args)


IMPLS = {"mlp_train": lambda *a: _train(*a, "mlp_train"), "cnn_train": lambda *a: _train(*a, "cnn_train"),
         "mlp_infer": _infer, "ln_gelu": _ln_gelu}
