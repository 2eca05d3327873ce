"""Retracing of compiled training loops (issue 16): guards describe the state on entry, so a
loop that zeroes its gradients inside the step settles on at most two graphs; None met by a
guard or an argument spec; the recompile limit and explain()'s trace history."""
import warnings

import numpy as np
import pytest

import graphc as gc
import graphc.nn as nn


def _mlp(seed=0):
    gc.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))


def _data():
    rng = np.random.default_rng(0)
    return (gc.tensor(rng.standard_normal((4, 8)).astype(np.float32)),
            gc.tensor(rng.standard_normal((4, 1)).astype(np.float32)))


def _step_fn(m, opt, where):
    def step(x, y):
        if where == "module_start":
            m.zero_grad(set_to_none=True)
        elif where == "opt_start":
            opt.zero_grad()
        loss = ((m(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        if where == "module_end":
            m.zero_grad()
        elif where == "opt_end":
            opt.zero_grad()
        return loss
    return step


@pytest.mark.parametrize("where", ["module_start", "opt_start", "module_end", "opt_end"])
def test_zero_grad_inside_the_step_traces_at_most_twice(where):
    x, y = _data()
    results = []
    for compiled in (False, True):
        m = _mlp()
        opt = gc.optim.AdamW(m.parameters(), lr=1e-2)
        step = _step_fn(m, opt, where)
        run = gc.compile(step, backend="interp") if compiled else step
        losses = [float(run(x, y).item()) for _ in range(6)]
        results.append((losses, [p.detach().numpy().copy() for p in m.parameters()],
                        [None if p.grad is None else p.grad.numpy().copy() for p in m.parameters()]))
        if compiled:
            assert len(run.traces) <= 2, run.explain()
    (el, ep, eg), (cl, cp, cg) = results
    np.testing.assert_allclose(cl, el, rtol=1e-6, atol=1e-6)
    for a, b in zip(cp, ep):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    for a, b in zip(cg, eg):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_guard_describes_grad_on_entry_not_after_the_trace():
    m = _mlp()
    opt = gc.optim.SGD(m.parameters(), lr=0.1)
    step = gc.compile(_step_fn(m, opt, "module_start"), backend="interp")
    x, y = _data()
    step(x, y)
    step(x, y)
    reasons = [r for _, r in step.traces]
    assert reasons[0] == "first call"
    assert "'m.0.weight.grad' was None when traced, now a tensor" in reasons[1]
    for _ in range(3):
        step(x, y)
    assert len(step.traces) == 2
