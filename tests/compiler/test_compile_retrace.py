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
        elif where == "module_start_zeros":
            m.zero_grad(set_to_none=False)
        elif where == "opt_start_zeros":
            opt.zero_grad(set_to_none=False)
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


@pytest.mark.parametrize("where", ["module_start", "opt_start", "module_end", "opt_end",
                                   "module_start_zeros", "opt_start_zeros"])
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
    """Gradients accumulating across calls: None on the first entry, a tensor on the second.
    (A step that zeroes with set_to_none=True first never reads the entry .grad: no guard.)"""
    m = _mlp()
    opt = gc.optim.SGD(m.parameters(), lr=0.1)
    step = gc.compile(_step_fn(m, opt, "accumulate"), backend="interp")
    x, y = _data()
    step(x, y)
    step(x, y)
    reasons = [r for _, r in step.traces]
    assert reasons[0] == "first call"
    assert "'m.0.weight.grad' was None when traced, now a tensor" in reasons[1]
    for _ in range(3):
        step(x, y)
    assert len(step.traces) == 2


def test_recompile_limit_warns_once_then_runs_new_variants_eagerly():
    @gc.compile(backend="interp", recompile_limit=3)
    def f(x):
        return x * 2 + 1

    xs = [gc.ones(n) for n in range(1, 7)]
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        outs = [f(x) for x in xs]
    limit_warnings = [w for w in got if issubclass(w.category, gc.compiler.RecompileWarning)]
    assert len(limit_warnings) == 1
    msg = str(limit_warnings[0].message)
    assert "recompile limit (3 traces)" in msg and "argument 'x'" in msg and "shape" in msg
    assert len(f.traces) == 3
    for x, o in zip(xs, outs):                    # eager variants compute the same values
        np.testing.assert_allclose(o.numpy(), x.numpy() * 2 + 1)
    calls = [e.calls for es in f._cache.values() for e in es]
    f(xs[0])                                      # a cached variant still runs its graph
    assert sum(e.calls for es in f._cache.values() for e in es) == sum(calls) + 1
    text = f.explain()
    assert "3 trace(s)" in text and "recompile limit (3) reached: 3 call(s)" in text
    assert "argument 'x' changed from tensor float32[2] to tensor float32[3]" in text
    with pytest.raises(RuntimeError, match="past the recompile limit"):
        f.ir(gc.ones(9))


def test_recompile_limit_default_from_environment_and_module(monkeypatch):
    from graphc.compiler import limit
    monkeypatch.setenv("GRAPHC_RECOMPILE_LIMIT", "2")
    f = gc.compile(lambda x: x + 1, backend="interp")
    with pytest.warns(gc.RecompileWarning):
        for n in range(1, 4):
            f(gc.ones(n))
    assert len(f.traces) == 2
    monkeypatch.delenv("GRAPHC_RECOMPILE_LIMIT")
    monkeypatch.setattr(limit, "DEFAULT_RECOMPILE_LIMIT", 1)
    g = gc.compile(lambda x: x + 1, backend="interp")
    with pytest.warns(gc.compiler.RecompileWarning, match="limit \\(1 traces\\)"):
        g(gc.ones(1))
        g(gc.ones(2))
    assert len(g.traces) == 1
    h = gc.compile(lambda x: x + 1, backend="interp", recompile_limit=0)   # 0: no limit
    for n in range(1, 4):
        h(gc.ones(n))
    assert len(h.traces) == 3


def test_recompile_limit_names_a_guard_that_keeps_failing():
    @gc.compile(backend="interp", recompile_limit=2)
    def f(x):
        return x * SCALE

    globals()["SCALE"] = 1.0
    x = gc.ones(2)
    with pytest.warns(gc.compiler.RecompileWarning, match="global 'SCALE' keeps changing"):
        for v in (1.0, 2.0, 3.0):
            globals()["SCALE"] = v
            np.testing.assert_allclose(f(x).numpy(), [v, v])
    assert "global 'SCALE' changed from 2.0 to 3.0" in f.explain()


def test_captured_state_guard_says_old_and_new():
    w = gc.ones(3)

    @gc.compile(backend="interp")
    def f(x):
        return x * w

    f(gc.ones(3))
    w.requires_grad_(True)
    f(gc.ones(3))
    assert "captured 'w' changed from float32[3] to float32[3] requiring grad" in f.traces[1][1]


# ---- None met by a guard or an argument spec (issue 16 item 3) ----------------------------------
class _Lambda(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


def test_cnn_with_lambda_and_adaptive_pool_trains_past_a_short_last_batch():
    """The reported crash: a Sequential CNN with Lambda layers, whose epoch ends on a smaller
    batch (a new signature traced while every .grad and optimizer state entry exists)."""
    def make():
        gc.manual_seed(0)
        m = nn.Sequential(_Lambda(lambda x: x.reshape(-1, 1, 8, 8)), nn.Conv2d(1, 4, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), _Lambda(lambda x: x.reshape(x.shape[0], -1)),
                          nn.Linear(4, 2))
        return m, gc.optim.Adam(m.parameters(), lr=1e-2)

    rng = np.random.default_rng(1)
    batches = [(rng.standard_normal((3 if i % 7 == 6 else 5, 64)).astype(np.float32),
                rng.integers(0, 2, 3 if i % 7 == 6 else 5)) for i in range(24)]
    losses = []
    for compiled in (False, True):
        m, opt = make()

        def step(x, y):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
            return loss
        run = gc.compile(step, backend="interp") if compiled else step
        losses.append([float(run(gc.tensor(x), gc.tensor(y)).item()) for x, y in batches])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    assert len(run.traces) <= 4, run.explain()


def test_argument_that_is_none_or_a_tensor():
    @gc.compile(backend="interp")
    def f(x, b):
        return x if b is None else x + b

    x = gc.ones(2)
    got = [f(x, None).numpy().tolist(), f(x, gc.ones(2)).numpy().tolist(), f(x, None).numpy().tolist()]
    assert got == [[1, 1], [2, 2], [1, 1]]
    assert len(f.traces) == 2
    assert "argument 'b' changed from None to tensor float32[2]" in f.traces[1][1]


class _Shifted(nn.Module):
    def __init__(self, bias=True):
        super().__init__()
        self.lin = nn.Linear(2, 2, bias=bias)
        self.shift = None

    def forward(self, x):
        y = self.lin(x)
        return y if self.shift is None else y + self.shift


def test_module_attribute_none_to_tensor_and_back():
    m = _Shifted()
    cm = gc.compile(m, backend="interp")
    x = gc.ones(1, 2)
    r0 = cm(x).detach().numpy()
    for shift in (10.0, None, 20.0, None, 20.0):
        m.shift = None if shift is None else gc.ones(2) * shift
        got = cm(x).detach().numpy()
        np.testing.assert_allclose(got, r0 + (shift or 0.0), rtol=1e-6)
    # None, 10 and each new tensor of 20 trace (a captured tensor is guarded by identity);
    # None again reuses the first graph
    assert len(cm._compiled.traces) == 4
    assert "attribute '_Shifted.shift' changed from None to tensor" in cm._compiled.traces[1][1]


def test_parameter_slot_none_to_parameter_and_back():
    m = _Shifted(bias=False)
    cm = gc.compile(m, backend="interp")
    x = gc.ones(1, 2)
    r0 = cm(x).detach().numpy()
    m.lin.bias = nn.Parameter(gc.ones(2) * 5)
    np.testing.assert_allclose(cm(x).detach().numpy(), r0 + 5, rtol=1e-6)
    assert "parameter 'lin.bias' was None when traced, now a tensor" in cm._compiled.traces[1][1]
    m.lin.bias = None
    np.testing.assert_allclose(cm(x).detach().numpy(), r0, rtol=1e-6)
    assert len(cm._compiled.traces) == 2


def test_buffers_that_are_none():
    m = nn.BatchNorm1d(3, track_running_stats=False)
    cm = gc.compile(m, backend="interp")
    x = gc.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_allclose(cm(x).detach().numpy(), m(x).detach().numpy(), atol=1e-5)
    m.eval()
    np.testing.assert_allclose(cm(x).detach().numpy(), m(x).detach().numpy(), atol=1e-5)


def test_argument_grad_none_then_tensor_then_none():
    w = gc.ones(3, requires_grad=True)

    @gc.compile(backend="interp")
    def f(w):
        (w * 2).sum().backward()
        return w.grad * 1

    assert f(w).numpy().tolist() == [2, 2, 2]
    assert f(w).numpy().tolist() == [4, 4, 4]
    w.grad = None
    assert f(w).numpy().tolist() == [2, 2, 2]
    assert len(f.traces) == 2


def test_optimizer_state_created_on_first_step_and_grads_toggled_outside():
    x, y = _data()
    results = []
    for compiled in (False, True):
        m = _mlp()
        opt = gc.optim.Adam(m.parameters(), lr=0.1)

        def step(x, y):
            loss = ((m(x) - y) ** 2).mean()
            loss.backward()
            return loss
        run = gc.compile(step, backend="interp") if compiled else step
        out = []
        for k in range(5):
            out.append(float(run(x, y).item()))
            opt.step()
            if k % 2:
                opt.zero_grad()
        results.append(out)
        if compiled:
            assert len(run.traces) == 2, run.explain()
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6)


# ---- recurrent state (issue 16 item 2) ------------------------------------------------------------
def test_detached_recurrent_state_does_not_retrace_on_requires_grad():
    results = []
    for compiled in (False, True):
        gc.manual_seed(0)
        cell, head = nn.RNNCell(3, 4), nn.Linear(4, 1)
        opt = gc.optim.SGD(list(cell.parameters()) + list(head.parameters()), lr=0.1)

        def step(x, h):
            h = cell(x, h.detach())
            loss = head(h).pow(2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss, h
        run = gc.compile(step, backend="interp") if compiled else step
        out = []
        for epoch in range(2):
            h = gc.zeros(2, 4)                       # no grad at the start of each epoch
            for i in range(3):
                loss, h = run(gc.ones(2, 3) * (i + 1), h)   # then a non-leaf requiring grad
                out.append(float(loss.item()))
        results.append(out)
        if compiled:
            # the optimizer's first step is traced alone; then one graph serves h with and without grad
            assert len(run.traces) == 2, run.explain()
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6)


def test_requires_grad_still_matters_when_the_state_is_not_detached():
    w = gc.ones(2, requires_grad=True)

    @gc.compile(backend="interp")
    def f(x):
        return (x * 3).sum()

    f(gc.ones(2))
    out = f(w)                       # flows into the output: a different graph, with a backward
    out.backward()
    assert w.grad.numpy().tolist() == [3, 3]
    assert len(f.traces) == 2

    @gc.compile(backend="interp")
    def g(x):
        return x.detach() * 3

    g(gc.ones(2))
    assert not g(w).requires_grad and not g(w * 1).requires_grad
    assert len(g.traces) == 1


def test_module_reached_only_through_a_list_zeroed_inside_the_step():
    """The parameters are captured through the optimizer only (the module sits in a list the
    scan does not walk): their entry .grad is still recorded, so the eager write of
    Module.zero_grad is seen and the values match eager."""
    x, y = _data()
    results = []
    for compiled in (False, True):
        models = [_mlp()]
        opt = gc.optim.SGD(models[0].parameters(), lr=0.1)

        def step(x, y):
            models[0].zero_grad()
            loss = ((models[0](x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        run = gc.compile(step, backend="interp") if compiled else step
        results.append([float(run(x, y).item()) for _ in range(5)])
        if compiled:
            assert len(run.traces) <= 2, run.explain()
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6)


def test_eager_write_into_a_grad_while_tracing_is_refused_not_silently_wrong():
    """Code that bypasses the .grad property and writes an entry gradient's storage (as
    graphc's own Module.zero_grad once did) cannot be recorded -- later calls would not repeat
    the write: the entry .grads are read-only while tracing, and the error says what to write
    instead. Through the property the gradient is a traced value (p.grad.numpy() is a
    TraceError naming the line, tested in test_tracing_errors)."""
    m = _mlp()
    opt = gc.optim.SGD(m.parameters(), lr=0.1)

    @gc.compile(backend="interp")
    def step(x, y):
        for p in m.parameters():
            if p._grad is not None:
                p._grad._data[...] = 0
        loss = ((m(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    x, y = _data()
    step(x, y)                                   # grads None: nothing to zero
    with pytest.raises(ValueError, match="read-only") as info:
        step(x, y)
    assert any("opt.zero_grad(set_to_none=False)" in n for n in info.value.__notes__)
    assert all(p.grad._data.flags.writeable for p in m.parameters())   # restored after the trace
