"""graphc.optim against torch.optim (eager), compiled steps against eager, param groups,
zero_grad, state_dict, LR schedulers, and hyperparameter changes reaching a compiled step
without a retrace."""
import copy
import pickle

import numpy as np
import pytest

import graphc as gc
from graphc import optim as go
from graphc.optim import lr_scheduler as gsched

try:
    import torch
except ImportError:            # the torch comparisons skip; everything else runs
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

STEPS = 20
SHAPES = [(3, 4), (5,), ()]
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-6, atol=2e-6)}

# (name, options): every option of every optimizer, and combinations of them
CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.1, weight_decay=0.2, maximize=True)),
    ("SGD", dict(lr=0.1, momentum=0.5, dampening=0.5, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.9), eps=1e-6)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05, maximize=True, betas=(0.3, 0.5))),
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.2, amsgrad=True)),
    ("AdamW", dict(lr=0.01, betas=(0.5, 0.6), maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.005, momentum=0.5, centered=True, weight_decay=0.05, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1, initial_accumulator_value=0.5, eps=1e-6)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.05, maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5)),
    ("Adadelta", dict(lr=1.0, weight_decay=0.1, maximize=True)),
]
IDS = [f"{n}-" + ",".join(f"{k}={v}" for k, v in kw.items()) for n, kw in CASES]


def data(seed=0, shapes=SHAPES, steps=STEPS):
    r = np.random.default_rng(seed)
    init = [r.standard_normal(s) for s in shapes]
    grads = [[r.standard_normal(s) for s in shapes] for _ in range(steps)]
    return init, grads


def gparams(init, dtype):
    return [gc.tensor(np.asarray(a, dtype=dtype), requires_grad=True) for a in init]


def tparams(init, dtype):
    return [torch.tensor(np.asarray(a, dtype=dtype), requires_grad=True) for a in init]


def groups_of(params, spec):
    """spec None: all params in one list; else [(indices, options), ...] param groups."""
    if spec is None:
        return params
    return [dict(params=[params[i] for i in idx], **opts) for idx, opts in spec]


def run_graphc(name, kw, dtype, grads, init, compiled=False, spec=None, between=None):
    ps = gparams(init, dtype)
    opt = getattr(go, name)(groups_of(ps, spec), **kw)

    def step(*gs):
        for p, g in zip(ps, gs):
            p.grad = g
        opt.step()

    f = gc.compile(step, backend="interp") if compiled else step
    for i, gs in enumerate(grads):
        f(*[gc.tensor(np.asarray(g, dtype=dtype)) for g in gs])
        if between is not None:
            between(i, opt)
    return [p.detach().numpy().copy() for p in ps], opt, f


def run_torch(name, kw, dtype, grads, init, spec=None, between=None):
    ps = tparams(init, dtype)
    opt = getattr(torch.optim, name)(groups_of(ps, spec), **kw)
    for i, gs in enumerate(grads):
        for p, g in zip(ps, gs):
            p.grad = torch.tensor(np.asarray(g, dtype=dtype))
        opt.step()
        if between is not None:
            between(i, opt)
    return [p.detach().numpy().copy() for p in ps], opt


def assert_params(a, b, dtype, **tol):
    tol = tol or TOL[dtype]
    for x, y in zip(a, b):
        assert x.dtype == y.dtype
        np.testing.assert_allclose(x, y, **tol)


# ---- against torch.optim, eagerly -------------------------------------------------------------------
@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_matches_torch(name, kw, dtype):
    init, grads = data()
    got, opt, _ = run_graphc(name, kw, dtype, grads, init)
    want, topt = run_torch(name, kw, dtype, grads, init)
    assert_params(got, want, dtype)
    # the state has torch's keys and values
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sorted(sd["state"]) == sorted(tsd["state"])
    for k, st in tsd["state"].items():
        assert sorted(sd["state"][k]) == sorted(st), (k, sd["state"][k].keys(), st.keys())
        for key, v in st.items():
            np.testing.assert_allclose(sd["state"][k][key].numpy(), v.numpy(), **TOL[dtype])
            if key == "step":
                assert sd["state"][k][key].dtype.name == str(v.dtype).replace("torch.", "")
    assert [g["params"] for g in sd["param_groups"]] == [g["params"] for g in tsd["param_groups"]]


# ---- compiled == eager --------------------------------------------------------------------------------
@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_compiled_matches_eager(name, kw):
    init, grads = data(1)
    for dtype in ("float64", "float32"):
        eager, opt_e, _ = run_graphc(name, kw, dtype, grads, init)
        comp, opt_c, f = run_graphc(name, kw, dtype, grads, init, compiled=True)
        assert_params(comp, eager, dtype, rtol=1e-12 if dtype == "float64" else 1e-6, atol=0)
        se, sc = opt_e.state_dict()["state"], opt_c.state_dict()["state"]
        for k in se:
            for key in se[k]:
                np.testing.assert_allclose(sc[k][key].numpy(), se[k][key].numpy(), rtol=1e-6, atol=1e-12)
        # state holds concrete tensors, never tracers
        for st in opt_c.state.values():
            assert all(not v.is_tracer for v in st.values())
        # at most: the first call, and one retrace once .grad / state exist
        assert len(f.traces) <= 2, f.explain()


def _mlp_step(opt_cls, opt_kw, seed=0, compiled=False, steps=6, sched=None):
    gc.manual_seed(seed)
    l1, l2 = gc.nn.Linear(8, 16), gc.nn.Linear(16, 3)
    ps = list(l1.parameters()) + list(l2.parameters())
    opt = opt_cls(ps, **opt_kw)
    sch = sched(opt) if sched else None
    gc.manual_seed(100)
    x, y = gc.randn(10, 8), gc.randint(0, 3, (10,))

    def step(x, y):
        opt.zero_grad()
        loss = gc.nn.functional.cross_entropy(l2(gc.relu(l1(x))), y)
        loss.backward()
        opt.step()
        return loss

    f = gc.compile(step, backend="interp") if compiled else step
    losses = []
    for _ in range(steps):
        losses.append(f(x, y).item())
        if sch is not None:
            sch.step()
    return losses, [p.detach().numpy().copy() for p in ps], f


@pytest.mark.parametrize("cls,kw", [
    (go.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-3)),
    (go.Adam, dict(lr=1e-2, amsgrad=True)),
    (go.AdamW, dict(lr=1e-2)),
    (go.RMSprop, dict(lr=1e-3, momentum=0.5, centered=True)),
    (go.Adagrad, dict(lr=0.1, lr_decay=0.01)),
    (go.Adadelta, dict(lr=1.0, rho=0.9)),
], ids=["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta"])
def test_compiled_training_step(cls, kw):
    """forward + backward + opt.step() in one compiled graph, with a scheduler between calls."""
    sched = lambda o: gsched.StepLR(o, step_size=2, gamma=0.5)   # noqa: E731
    le, pe, _ = _mlp_step(cls, kw, sched=sched)
    lc, pc, f = _mlp_step(cls, kw, compiled=True, sched=sched)
    np.testing.assert_allclose(lc, le, rtol=1e-6)
    assert_params(pc, pe, "float32", rtol=1e-6, atol=1e-7)
    assert len(f.traces) <= 2, f.explain()
    ir = f.ir(gc.randn(10, 8), gc.randint(0, 3, (10,)))
    assert "update" in ir


# ---- hyperparameters reach a compiled step without a retrace -----------------------------------------
@pytest.mark.parametrize("sched_cls,skw", [(gsched.StepLR, dict(step_size=3, gamma=0.5)),
                                           (gsched.CosineAnnealingLR, dict(T_max=5, eta_min=1e-3))])
@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.05)),
                                     ("RMSprop", dict(lr=0.01)), ("Adagrad", dict(lr=0.1))])
def test_lr_change_no_retrace(name, kw, sched_cls, skw):
    init, grads = data(2, steps=12)
    lrs = {"eager": [], "compiled": []}

    def between(which):
        def f(i, opt):
            sch = opt._test_sched
            sch.step()
            lrs[which].append(sch.get_last_lr()[0])
        return f

    results = {}
    for which in ("eager", "compiled"):
        ps = gparams(init, "float64")
        opt = getattr(go, name)(ps, **kw)
        opt._test_sched = sched_cls(opt, **skw)

        def step(*gs):
            for p, g in zip(ps, gs):
                p.grad = g
            opt.step()

        f = gc.compile(step, backend="interp") if which == "compiled" else step
        ntraces = []
        for i, gs in enumerate(grads):
            f(*[gc.tensor(g) for g in gs])
            between(which)(i, opt)
            if which == "compiled":
                ntraces.append(len(f.traces))
        results[which] = [p.detach().numpy().copy() for p in ps]
    assert lrs["eager"] == lrs["compiled"] and len(set(lrs["eager"])) > 2
    assert_params(results["compiled"], results["eager"], "float64", rtol=1e-12, atol=0)
    # traces only on the first calls (state and .grad appearing), never for an lr change
    assert ntraces[-1] == ntraces[1] <= 2, f.explain()


@needs_torch
def test_lr_change_compiled_matches_torch():
    init, grads = data(3, steps=12)
    got, _, f = run_graphc("Adam", dict(lr=0.05), "float64", grads, init, compiled=True,
                           between=lambda i, o: o.param_groups[0].__setitem__("lr", 0.05 / (i + 2)))
    want, _ = run_torch("Adam", dict(lr=0.05), "float64", grads, init,
                        between=lambda i, o: o.param_groups[0].__setitem__("lr", 0.05 / (i + 2)))
    assert_params(got, want, "float64")
    assert len(f.traces) <= 2


def test_other_hyperparameters_live_in_compiled_step():
    """momentum, weight_decay, betas, eps... are mirrored too: changing one (not to or from 0)
    changes the compiled step without a retrace."""
    init, grads = data(4, steps=8)

    def change(i, opt):
        g = opt.param_groups[0]
        if "momentum" in g:
            g["momentum"] = 0.9 - 0.05 * i
            g["weight_decay"] = 0.01 * (i + 1)
        else:
            g["betas"] = (0.9 - 0.01 * i, 0.99 - 0.001 * i)
            g["eps"] = 1e-8 * (i + 1)
    for name, kw in [("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
                     ("Adam", dict(lr=0.01, betas=(0.9, 0.99)))]:
        eager, _, _ = run_graphc(name, kw, "float64", grads, init, between=change)
        comp, opt, f = run_graphc(name, kw, "float64", grads, init, compiled=True, between=change)
        assert_params(comp, eager, "float64", rtol=1e-12, atol=0)
        assert len(f.traces) <= 2, f.explain()


# ---- param groups -----------------------------------------------------------------------------------
GROUP_SPEC = [([0, 2], dict(lr=0.05)), ([1], dict(weight_decay=0.1))]


@needs_torch
@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01)),
                                     ("AdamW", dict(lr=0.01)), ("RMSprop", dict(lr=0.01, centered=True)),
                                     ("Adagrad", dict(lr=0.1))])
def test_param_groups_match_torch(name, kw):
    init, grads = data(5)
    got, opt, _ = run_graphc(name, kw, "float64", grads, init, spec=GROUP_SPEC)
    want, topt = run_torch(name, kw, "float64", grads, init, spec=GROUP_SPEC)
    assert_params(got, want, "float64")
    assert opt.param_groups[0]["lr"] == 0.05 and opt.param_groups[1]["lr"] == kw["lr"]
    assert opt.param_groups[1]["weight_decay"] == 0.1
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [g["params"] for g in tsd["param_groups"]] == [[0, 1], [2]]
    for g, tg in zip(sd["param_groups"], tsd["param_groups"]):
        for k, v in g.items():
            assert tg[k] == v or (k == "betas" and tuple(tg[k]) == tuple(v)), k


def test_param_groups_compiled():
    init, grads = data(6)
    for name in ("SGD", "Adam"):
        eager, _, _ = run_graphc(name, dict(lr=0.01), "float32", grads, init, spec=GROUP_SPEC)
        comp, _, _ = run_graphc(name, dict(lr=0.01), "float32", grads, init, spec=GROUP_SPEC, compiled=True)
        assert_params(comp, eager, "float32", rtol=1e-6, atol=0)


def test_add_param_group_and_validation():
    a, b, c = (gc.randn(2, requires_grad=True) for _ in range(3))
    opt = go.SGD([a], lr=0.1)
    opt.add_param_group({"params": b, "momentum": 0.5})
    g = opt.param_groups[1]
    assert isinstance(g, dict) and g["params"] == [b] and g["momentum"] == 0.5 and g["lr"] == 0.1
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="non-leaf"):
        opt.add_param_group({"params": [c * 2]})
    with pytest.raises(TypeError, match="ordered collections"):
        go.SGD({a, b})
    with pytest.raises(ValueError, match="empty"):
        go.Adam([])
    with pytest.raises(ValueError, match="learning rate"):
        go.Adam([a], lr=-1)
    with pytest.raises(ValueError, match="beta"):
        go.Adam([a], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="Nesterov"):
        go.SGD([a], lr=0.1, nesterov=True)
    # the new group takes part in steps
    a.grad, b.grad = gc.ones(2), gc.ones(2)
    a0, b0 = a.detach().numpy().copy(), b.detach().numpy().copy()
    opt.step()
    np.testing.assert_allclose(a.detach().numpy(), a0 - 0.1)
    np.testing.assert_allclose(b.detach().numpy(), b0 - 0.1)
    assert "Parameter Group 1" in repr(opt)


def test_param_group_is_a_dict_with_a_live_lr_mirror():
    w = gc.randn(3, requires_grad=True)
    opt = go.Adam([w], lr=0.1)
    g = opt.param_groups[0]
    assert g.mirror("lr") is None                     # created lazily, by a traced step
    f = gc.compile(lambda: opt.step(), backend="interp")
    w.grad = gc.ones(3)
    f()
    m = g.mirror("lr")
    assert m is not None and m.dtype is gc.float64 and m.ndim == 0 and m.item() == 0.1
    g["lr"] = 0.25
    assert m.item() == 0.25 and g.mirror("lr") is m        # updated in place, same tensor
    g.update(lr=0.5)
    assert m.item() == 0.5
    assert copy.deepcopy(g)["lr"] == 0.5
    assert pickle.loads(pickle.dumps(dict(g, params=[])))["lr"] == 0.5
    assert {k: v for k, v in g.items() if k != "params"} == dict(
        lr=0.5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, maximize=False,
        decoupled_weight_decay=False)


# ---- zero_grad ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("compiled", [False, True])
def test_zero_grad(compiled):
    w = gc.randn(4, requires_grad=True)
    x = gc.randn(4)
    opt = go.SGD([w], lr=0.1)

    def accumulate(x):
        (w * x).sum().backward()

    def zero_none():
        opt.zero_grad()

    def zero_keep():
        opt.zero_grad(set_to_none=False)

    run = (lambda f: gc.compile(f, backend="interp")) if compiled else (lambda f: f)
    acc, zn, zk = run(accumulate), run(zero_none), run(zero_keep)
    acc(x)
    acc(x)
    np.testing.assert_allclose(w.grad.numpy(), 2 * x.numpy())
    g = w.grad
    zk()
    assert w.grad is not None and np.all(w.grad.numpy() == 0)
    if not compiled:
        assert w.grad is g                       # zeroed in place, like torch
    acc(x)
    np.testing.assert_allclose(w.grad.numpy(), x.numpy())
    zn()
    assert w.grad is None
    zk()                                          # nothing to zero
    assert w.grad is None


def test_zero_grad_inside_compiled_step_and_skipped_params():
    """A parameter without a gradient is skipped (its state is not even created)."""
    a, b = gc.randn(3, requires_grad=True), gc.randn(3, requires_grad=True)
    opt = go.Adam([a, b], lr=0.1)
    x = gc.randn(3)

    @gc.compile(backend="interp")
    def step(x):
        opt.zero_grad(set_to_none=False)
        loss = (a * x).sum()
        loss.backward()
        opt.step()
        return loss

    b0 = b.detach().numpy().copy()
    for _ in range(3):
        step(x)
    assert b.grad is None and np.array_equal(b.detach().numpy(), b0) and not opt.state.get(b)
    assert opt.state[a]["step"].item() == 3


# ---- closures ------------------------------------------------------------------------------------------
def test_step_with_closure():
    w = gc.tensor([1.0, -2.0], requires_grad=True)
    opt = go.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 5.0
    np.testing.assert_allclose(w.detach().numpy(), [0.5, -1.0])


# ---- state_dict ------------------------------------------------------------------------------------------
ROUND_TRIP = [CASES[i] for i in (2, 3, 9, 10, 13, 19, 23)]


@pytest.mark.parametrize("name,kw", ROUND_TRIP, ids=[f"{n}-{k}" for n, k in ROUND_TRIP])
def test_state_dict_round_trip(name, kw):
    """save after 10 steps, load into a new optimizer, continue == the uninterrupted run."""
    init, grads = data(7)
    full, _, _ = run_graphc(name, kw, "float64", grads, init)

    def steps(ps, opt, gs_list):
        for gs in gs_list:
            for p, g in zip(ps, gs):
                p.grad = gc.tensor(g)
            opt.step()

    ps = gparams(init, "float64")
    opt = getattr(go, name)(ps, **kw)
    steps(ps, opt, grads[:10])
    sd = pickle.loads(pickle.dumps(opt.state_dict()))     # it survives serialization
    saved = [p.detach().numpy().copy() for p in ps]
    steps(ps, opt, grads[10:12])                           # the saved dict is a snapshot
    ps2 = [gc.tensor(v, requires_grad=True) for v in saved]
    opt2 = getattr(go, name)(ps2, **dict(kw, lr=123.0))   # different options: the dict wins
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == kw["lr"]
    steps(ps2, opt2, grads[10:])
    assert_params([p.detach().numpy() for p in ps2], full, "float64", rtol=0, atol=0)


def test_state_dict_layout_and_snapshot():
    a, b = gc.randn(2, 2, requires_grad=True), gc.randn(3, requires_grad=True)
    opt = go.Adam([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, amsgrad=True)
    b.grad = gc.ones(3)
    opt.step()
    sd = opt.state_dict()
    assert list(sd) == ["state", "param_groups"]
    assert list(sd["state"]) == [1]                      # only b has state: keyed by index
    assert sorted(sd["state"][1]) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
    assert sd["param_groups"][0]["params"] == [0] and sd["param_groups"][1]["params"] == [1]
    assert sd["param_groups"][1]["lr"] == 0.5 and type(sd["param_groups"][1]) is dict
    assert sd["state"][1]["exp_avg"] is not opt.state[b]["exp_avg"]
    before = sd["state"][1]["exp_avg"].numpy().copy()
    opt.step()
    np.testing.assert_array_equal(sd["state"][1]["exp_avg"].numpy(), before)


def test_load_state_dict_mismatch_changes_nothing():
    a, b, c = (gc.randn(3, requires_grad=True) for _ in range(3))
    opt = go.SGD([{"params": [a, b]}, {"params": [c], "lr": 0.2}], lr=0.1, momentum=0.9)
    for p in (a, b, c):
        p.grad = gc.ones(3)
    opt.step()
    good = opt.state_dict()
    snapshot = (copy.deepcopy([dict(g, params=None) for g in opt.param_groups]),
                {id(p): st["momentum_buffer"].numpy().copy() for p, st in opt.state.items()})
    bufs = {id(p): st["momentum_buffer"] for p, st in opt.state.items()}

    def unchanged():
        assert [dict(g, params=None) for g in opt.param_groups] == snapshot[0]
        for p, st in opt.state.items():
            assert st["momentum_buffer"] is bufs[id(p)]
            np.testing.assert_array_equal(st["momentum_buffer"].numpy(), snapshot[1][id(p)])

    bad = copy.deepcopy(good)
    bad["param_groups"] = bad["param_groups"][:1]
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict(bad)
    unchanged()
    bad = copy.deepcopy(good)
    bad["param_groups"][0]["params"] = [0]
    bad["param_groups"][0]["lr"] = 99.0
    with pytest.raises(ValueError, match="doesn't match the size"):
        opt.load_state_dict(bad)
    unchanged()
    bad = copy.deepcopy(good)
    bad["param_groups"][1]["lr"] = 99.0
    bad["state"][2]["momentum_buffer"] = gc.zeros(4)
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(bad)
    unchanged()
    bad = copy.deepcopy(good)
    bad["state"][7] = {"momentum_buffer": gc.zeros(3)}
    with pytest.raises(ValueError, match="parameter 7"):
        opt.load_state_dict(bad)
    unchanged()
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})
    unchanged()
    # a good load overwrites the existing state tensors in place
    good["state"][0]["momentum_buffer"] = gc.full((3,), 7.0)
    opt.load_state_dict(good)
    assert opt.state[a]["momentum_buffer"] is bufs[id(a)]
    np.testing.assert_array_equal(bufs[id(a)].numpy(), np.full(3, 7.0, np.float32))


def test_load_state_dict_keeps_compiled_step_valid():
    """A compiled step captured the state tensors: loading writes into them, so it keeps working."""
    init, grads = data(8, steps=12)
    full, _, _ = run_graphc("Adam", dict(lr=0.05), "float64", grads, init)
    ps = gparams(init, "float64")
    opt = go.Adam(ps, lr=0.05)

    def step(*gs):
        for p, g in zip(ps, gs):
            p.grad = g
        opt.step()

    f = gc.compile(step, backend="interp")
    for gs in grads[:6]:
        f(*[gc.tensor(g) for g in gs])
    sd = opt.state_dict()
    saved_params = [p.detach().numpy().copy() for p in ps]
    for gs in grads[6:9]:                               # wander off, then restore
        f(*[gc.tensor(g) for g in gs])
    opt.load_state_dict(sd)
    with gc.no_grad():
        for p, v in zip(ps, saved_params):
            p.copy_(gc.tensor(v))
    for gs in grads[6:]:
        f(*[gc.tensor(g) for g in gs])
    assert_params([p.detach().numpy() for p in ps], full, "float64", rtol=1e-12, atol=0)
    assert len(f.traces) <= 2


def test_sgd_dampening_state_dict_round_trip():
    """SGD's first-step flag (dampening) is not in torch's state layout: a loaded buffer counts as started."""
    init, grads = data(9, steps=6)
    kw = dict(lr=0.1, momentum=0.9, dampening=0.5)
    full, opt, _ = run_graphc("SGD", kw, "float64", grads, init)
    ps = gparams(init, "float64")
    o1 = go.SGD(ps, **kw)
    for gs in grads[:3]:
        for p, g in zip(ps, gs):
            p.grad = gc.tensor(g)
        o1.step()
    o2 = go.SGD(ps, **kw)
    o2.load_state_dict(o1.state_dict())
    for gs in grads[3:]:
        for p, g in zip(ps, gs):
            p.grad = gc.tensor(g)
        o2.step()
    assert_params([p.detach().numpy() for p in ps], full, "float64", rtol=0, atol=0)


@needs_torch
@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01, amsgrad=True)),
                                     ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
                                     ("Adagrad", dict(lr=0.1, lr_decay=0.1))])
def test_load_torch_state_dict(name, kw):
    """A torch.optim state_dict loads into the graphc optimizer (torch tensors become graphc's)."""
    init, grads = data(10)
    want, _ = run_torch(name, kw, "float64", grads, init)
    tps = tparams(init, "float64")
    topt = getattr(torch.optim, name)(tps, **kw)
    for gs in grads[:10]:
        for p, g in zip(tps, gs):
            p.grad = torch.tensor(g)
        topt.step()
    ps = [gc.tensor(p.detach().numpy().copy(), requires_grad=True) for p in tps]
    opt = getattr(go, name)(ps, **kw)
    opt.load_state_dict(topt.state_dict())
    for gs in grads[10:]:
        for p, g in zip(ps, gs):
            p.grad = gc.tensor(g)
        opt.step()
    assert_params([p.detach().numpy() for p in ps], want, "float64")


# ---- LR schedulers -----------------------------------------------------------------------------------------
SCHEDS = [("StepLR", dict(step_size=4, gamma=0.5)),
          ("StepLR", dict(step_size=1, gamma=0.9)),
          ("CosineAnnealingLR", dict(T_max=10)),
          ("CosineAnnealingLR", dict(T_max=7, eta_min=0.01)),
          ("MultiStepLR", dict(milestones=[3, 8, 8, 20], gamma=0.5)),
          ("ExponentialLR", dict(gamma=0.95))]


@needs_torch
@pytest.mark.parametrize("name,skw", SCHEDS, ids=[f"{n}-{k}" for n, k in SCHEDS])
def test_scheduler_matches_torch(name, skw):
    w, tw = gc.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    v, tv = gc.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    opt = go.SGD([{"params": [w]}, {"params": [v], "lr": 0.3}], lr=0.1, momentum=0.9)
    topt = torch.optim.SGD([{"params": [tw]}, {"params": [tv], "lr": 0.3}], lr=0.1, momentum=0.9)
    s = getattr(gsched, name)(opt, **skw)
    ts = getattr(torch.optim.lr_scheduler, name)(topt, **skw)
    got, want = [s.get_last_lr()], [ts.get_last_lr()]
    for epoch in range(30):
        opt.step()
        topt.step()
        s.step()
        ts.step()
        got.append(s.get_last_lr())
        want.append(ts.get_last_lr())
        assert [g["lr"] for g in opt.param_groups] == got[-1]
    assert got == want                                  # bit for bit: the same recursive formulas
    assert s.last_epoch == ts.last_epoch == 30
    assert opt.param_groups[0]["initial_lr"] == 0.1


@pytest.mark.parametrize("name,skw", SCHEDS, ids=[f"{n}-{k}" for n, k in SCHEDS])
def test_scheduler_state_dict(name, skw):
    def make():
        w = gc.zeros(2, requires_grad=True)
        opt = go.Adam([w], lr=0.1)
        return opt, getattr(gsched, name)(opt, **skw)

    opt, s = make()
    ref = []
    for e in range(25):
        s.step()
        ref.append(s.get_last_lr())
    opt, s = make()
    for e in range(12):
        s.step()
    osd, ssd = opt.state_dict(), s.state_dict()
    assert "optimizer" not in ssd and ssd["last_epoch"] == 12
    ssd = pickle.loads(pickle.dumps(ssd))
    opt2, s2 = make()
    opt2.load_state_dict(osd)
    s2.load_state_dict(ssd)
    got = []
    for e in range(12, 25):
        s2.step()
        got.append(s2.get_last_lr())
    assert got == ref[12:]


def test_scheduler_closed_form_and_errors():
    w = gc.zeros(2, requires_grad=True)
    opt = go.SGD([w], lr=1.0)
    s = gsched.StepLR(opt, step_size=3, gamma=0.1)
    with pytest.warns(UserWarning, match="deprecated"):
        s.step(7)
    assert s.get_last_lr() == [1.0 * 0.1 ** 2]
    with pytest.raises(TypeError, match="not an Optimizer"):
        gsched.StepLR(object(), step_size=1)
    opt2 = go.SGD([gc.zeros(1, requires_grad=True)], lr=1.0)
    with pytest.raises(KeyError, match="initial_lr"):
        gsched.CosineAnnealingLR(opt2, T_max=3, last_epoch=5)
    base = gsched.LRScheduler.__new__(gsched.LRScheduler)
    with pytest.raises(NotImplementedError):
        base.get_lr()
