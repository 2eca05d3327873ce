"""PyTorch (CPU): each workload's step in torch eager, and torch.compile of the same step.
impl(family, state, compiled) -> Impl, or None when torch does not import."""
from __future__ import annotations

import types

from graphc.bench.columns import EPS, LR, MOMENTUM, Impl


def _torch_compile(f):
    """torch.compile(f), f given private globals first: dynamo stores its compiled graphs as
    globals of the compiled function's module (callables carrying .named_parameters), where a
    gc.compile scanning that module's globals for named tensors would find them."""
    import torch
    g = {"__builtins__": __builtins__, "__name__": __name__ + "._torch_compiled"}
    g.update({n: f.__globals__[n] for n in f.__code__.co_names if n in f.__globals__})
    return torch.compile(types.FunctionType(f.__code__, g, f.__name__, f.__defaults__, f.__closure__))


def impl(family, state, compiled):
    """torch eager (compiled False) or torch.compile of the same step, from the shared state."""
    try:
        import torch
    except ImportError:
        return None
    tnn, F = torch.nn, torch.nn.functional
    P = state["params"]
    x = torch.from_numpy(state["x"].copy())

    def load(model):
        with torch.no_grad():
            for p, w in zip(model.parameters(), P):
                p.copy_(torch.from_numpy(w))
        return model

    def params_of(model):
        return lambda: [p.detach().numpy().copy() for p in model.parameters()]
    if family == "ln_gelu":
        g, b = (torch.from_numpy(a.copy()) for a in P)

        def f():
            return F.gelu(F.layer_norm(x, (x.shape[-1],), eps=EPS) * g + b, approximate="tanh")
        return Impl(_torch_compile(f) if compiled else f, lambda t: t.numpy())
    layers = []
    if family in ("mlp_train", "mlp_infer"):
        for k in range(0, len(P), 2):
            layers += [tnn.Linear(P[k].shape[1], P[k].shape[0]), tnn.ReLU()]
        model = load(tnn.Sequential(*layers[:-1]))
    else:
        c1, c2 = P[0].shape[0], P[2].shape[0]
        model = load(tnn.Sequential(tnn.Conv2d(1, c1, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                                    tnn.Conv2d(c1, c2, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                                    tnn.Flatten(), tnn.Linear(P[4].shape[1], 10)))
    if family == "mlp_infer":
        model.eval()

        def infer():
            with torch.no_grad():
                return model(x)
        return Impl(_torch_compile(infer) if compiled else infer, lambda t: t.numpy())
    y = torch.from_numpy(state["y"].copy())
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return Impl(_torch_compile(step) if compiled else step, lambda t: t.detach().numpy(), params_of(model))

