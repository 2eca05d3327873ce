"""graphc demo: the same training step run eagerly (dynamic graph) and compiled (static graph).

Trains a 784-128-10 MLP on synthetic data both ways, checks they agree, prints the IR of the
compiled step and the time per step of each."""
import time

import numpy as np

import graphc as gc
import graphc.nn.functional as F


def make_model(seed):
    gc.manual_seed(seed)
    return gc.nn.Linear(784, 128), gc.nn.Linear(128, 10)


def step_fn(l1, l2, opt):
    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(l2(F.relu(l1(x))), y)
        loss.backward()
        opt.step()
        return loss
    return step


def main():
    gc.manual_seed(0)
    x, y = gc.randn(64, 784), gc.randint(0, 10, (64,))

    eager_layers = make_model(1)
    comp_layers = make_model(1)
    params = lambda ls: [p for l in ls for p in l.parameters()]
    eager_step = step_fn(*eager_layers, gc.optim.SGD(params(eager_layers), lr=0.1, momentum=0.9))
    comp_step = gc.compile(step_fn(*comp_layers, gc.optim.SGD(params(comp_layers), lr=0.1, momentum=0.9)))

    print("step  eager loss   compiled loss")
    for i in range(5):
        le, lc = eager_step(x, y).item(), comp_step(x, y).item()
        print(f"{i:4d}  {le:10.6f}   {lc:10.6f}")
        assert abs(le - lc) < 1e-4 * max(1.0, abs(le)), "eager and compiled disagree"
    diff = max(float(np.abs(a.detach().numpy() - b.detach().numpy()).max())
               for a, b in zip(params(eager_layers), params(comp_layers)))
    print(f"max parameter difference after 5 steps: {diff:.2e}")

    print("\nThe compiled training step (forward, backward and SGD update in one graph):")
    text = comp_step.ir(x, y)
    lines = text.splitlines()
    print("\n".join(lines[:12] + [f"  ... {len(lines) - 20} more lines ..."] + lines[-8:]))

    def bench(f, n=20):
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            f(x, y)
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts)) * 1e3
    te, tc = bench(eager_step), bench(comp_step)
    print(f"\nmedian step time: eager {te:.2f} ms, compiled (backend={comp_step.backend}) {tc:.2f} ms, "
          f"ratio {te / tc:.2f}x")
    print(comp_step.explain())


if __name__ == "__main__":
    main()
