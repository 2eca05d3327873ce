"""The benchmark suite behind `graphc bench` and bench/llvm.py: every implementation of a
workload side by side, in one process.

    graphc bench                         # every workload, the default backend (llvm)
    graphc bench mlp_train_b128 ln_gelu --backend llvm --repeat 20 --json
    python bench/llvm.py --repeat 20     # issue 5: llvm backend, all columns, compile times, targets

Columns, per workload (docs/benchmarks.md):
  eager          graphc eager (dynamic graph, a numpy kernel per op)
  compiled       gc.compile(step, backend=...)
  numpy          the same step written by hand in numpy (forward, backward and SGD momentum by
                 hand for the training steps; float32)
  torch          PyTorch eager (CPU), when torch imports
  torch.compile  torch.compile of the same torch step; a failure is reported per workload as
                 "n/a (reason)"
  jax.jit        jax.jit of the same step (jax.value_and_grad + a functional momentum update),
                 when jax imports
  copy floor     ln_gelu only, the issue's floor: the bytes of reading x once and writing y once
                 at the copy bandwidth measured in the same run (STREAM-style: np.copyto between
                 two 128 MiB arrays, four times this machine's L3, so the copy runs from DRAM)
  copyto x       ln_gelu only: np.copyto of x itself into a preallocated y, timed like the others
                 (x and y are 16 MiB each: partly in cache between calls, so below the floor)

Like with like: every implementation starts from the same float32 weights and inputs (drawn
once with numpy from a fixed seed), is called twice, and its outputs (the loss of the first and
of the second step, which depends on the first update; or the forward's output) are checked
against graphc eager's within `TOL` relative; a disagreement is reported in the row
("mismatch") and in the table. Timing is interleaved: after warm-up, each round gives every
implementation (in a rotating order) one untimed and up to 5 timed calls, until each has
`repeat` timed calls; their medians are reported, so slow drifts of a shared machine hit every
column alike (see time_interleaved).

Compile time (`compile_times`): the method of graphc/backends/llvm/bench.py -- fresh
subprocesses sharing a new, empty GRAPHC_CACHE_DIR: the first is cold, the later ones find the
executables in the disk cache (warm). In each, compile time = the time of the calls that traced
(a training step traces twice: .grad is None on the first call) minus as many steady-state calls.
Each process first loads the backend (`graphc.backends.prepare`: for llvm its modules, LLVM's
native target, the BLAS symbols), a cost it pays once whatever it compiles; that is timed on
its own and reported as "backend init", not in the compile time.

Workloads:
  mlp_train_b128  784-512-256-10 ReLU MLP, cross-entropy, SGD momentum, batch 128 (fwd+bwd+update)
  mlp_train_b32   the same, batch 32
  mlp_infer_b1024 the same MLP, forward only, batch 1024
  ln_gelu         tanh-GELU(layer_norm(x) * g + b), x [4096, 1024]
  cnn_train_b64   conv(1->16,3,p1)-relu-maxpool2-conv(16->32,3,p1)-relu-maxpool2-linear(1568->10),
                  cross-entropy, SGD momentum, input [64, 1, 28, 28]
"""
from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types

import numpy as np

LR, MOMENTUM, EPS = 0.01, 0.9, 1e-5
TOL = 1e-3                  # relative agreement required between implementations
SEED = 0
WORKLOADS = {}
COLUMNS = [("eager", "graphc eager"), ("compiled", "graphc compiled"), ("numpy", "numpy"),
           ("torch", "torch"), ("torch_compile", "torch.compile"), ("jax", "jax.jit")]


class Workload:
    """One benchmark: a family (mlp_train, mlp_infer, ln_gelu, cnn_train) at given sizes.

    w.init()                      -> the shared float32 state {"params": [...], "x": ..., "y": ...}
    w.impl(column, state, ...)    -> an Impl of that column (None where the framework is missing)
    w(backend=, compiled=)        -> (fn, args): the graphc step, as `graphc bench` always had"""

    def __init__(self, name, family, doc, **sizes):
        self.name, self.family, self.doc, self.sizes = name, family, doc, sizes

    @property
    def kind(self):
        return "train" if self.family.endswith("_train") else "forward"

    def init(self, seed=SEED):
        return _INIT[self.family](np.random.default_rng(seed), **self.sizes)

    def impl(self, column, state, backend=None):
        if column in ("eager", "compiled"):
            return _GRAPHC[self.family](state, backend, column == "compiled")
        if column == "numpy":
            return _NUMPY[self.family](state)
        if column in ("torch", "torch_compile"):
            return _torch_impl(self.family, state, column == "torch_compile")
        if column == "jax":
            return _jax_impl(self.family, state)
        raise ValueError(f"unknown column {column!r}")

    def __call__(self, backend=None, compiled=True):
        im = self.impl("compiled" if compiled else "eager", self.init(), backend)
        return im.fn, im.args


def _add(name, family, doc, **sizes):
    WORKLOADS[name] = Workload(name, family, doc, **sizes)


MLP_DIMS = (784, 512, 256, 10)
_add("mlp_train_b128", "mlp_train", "784-512-256-10 MLP training step (SGD momentum), batch 128",
     dims=MLP_DIMS, batch=128)
_add("mlp_train_b32", "mlp_train", "784-512-256-10 MLP training step (SGD momentum), batch 32",
     dims=MLP_DIMS, batch=32)
_add("mlp_infer_b1024", "mlp_infer", "784-512-256-10 MLP forward, batch 1024, no grad",
     dims=MLP_DIMS, batch=1024)
_add("ln_gelu", "ln_gelu", "tanh-GELU(layer_norm(x) * g + b), x [4096, 1024]", n=4096, d=1024)
_add("cnn_train_b64", "cnn_train", "conv(1->16,3,p1)-relu-pool2-conv(16->32,3,p1)-relu-pool2-"
     "linear(1568->10) training step (SGD momentum), batch 64", batch=64, hw=28, c1=16, c2=32)


class Impl:
    """One implementation: call() runs one step and returns its output (framework-native);
    to_numpy(out) converts it; params() gives the current parameters as numpy arrays (training
    steps); fn/args: the graphc function and its arguments (graphc columns)."""

    def __init__(self, call, to_numpy=np.asarray, params=None, fn=None, args=None):
        self.call, self.to_numpy, self.params, self.fn, self.args = call, to_numpy, params, fn, args


# ---- shared initial state ---------------------------------------------------------------------
def _uniform(rng, shape, fan_in):
    """torch's default Linear/Conv2d init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, shape).astype(np.float32)


def _init_mlp(rng, dims, batch, train=True):
    params = []
    for i, o in zip(dims[:-1], dims[1:]):
        params += [_uniform(rng, (o, i), i), _uniform(rng, (o,), i)]
    x = rng.standard_normal((batch, dims[0]), dtype=np.float32)
    y = rng.integers(0, dims[-1], (batch,)).astype(np.int64) if train else None
    return {"params": params, "x": x, "y": y}


def _init_ln_gelu(rng, n, d):
    return {"params": [rng.standard_normal(d, dtype=np.float32), rng.standard_normal(d, dtype=np.float32)],
            "x": rng.standard_normal((n, d), dtype=np.float32), "y": None}


def _cnn_flat(hw, c2):
    return c2 * (hw // 4) ** 2


def _init_cnn(rng, batch, hw, c1, c2):
    flat = _cnn_flat(hw, c2)
    params = [_uniform(rng, (c1, 1, 3, 3), 9), _uniform(rng, (c1,), 9),
              _uniform(rng, (c2, c1, 3, 3), c1 * 9), _uniform(rng, (c2,), c1 * 9),
              _uniform(rng, (10, flat), flat), _uniform(rng, (10,), flat)]
    return {"params": params, "x": rng.standard_normal((batch, 1, hw, hw), dtype=np.float32),
            "y": rng.integers(0, 10, (batch,)).astype(np.int64)}


_INIT = {"mlp_train": lambda rng, **s: _init_mlp(rng, **s),
         "mlp_infer": lambda rng, **s: _init_mlp(rng, train=False, **s),
         "ln_gelu": _init_ln_gelu, "cnn_train": _init_cnn}


# ---- graphc --------------------------------------------------------------------------------------
def _gc_model(family, state):
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


def _gc_train(state, backend, compiled, family):
    import graphc as gc
    import graphc.nn.functional as F
    model = _gc_model(family, state)
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


def _gc_infer(state, backend, compiled):
    import graphc as gc
    model = _gc_model("mlp_infer", state)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    def infer(x):
        return model(x)
    fn = gc.compile(infer, backend=backend) if compiled else infer
    args = (gc.from_numpy(state["x"].copy()),)
    return Impl(lambda: fn(*args), lambda t: t.numpy(), fn=fn, args=args)


def _gc_ln_gelu(state, backend, compiled):
    import graphc as gc
    import graphc.nn.functional as F
    g, b = (gc.from_numpy(a.copy()) for a in state["params"])
    d = state["x"].shape[-1]

    def f(x):
        return F.gelu(F.layer_norm(x, (d,), eps=EPS) * g + b, approximate="tanh")
    fn = gc.compile(f, backend=backend) if compiled else f
    args = (gc.from_numpy(state["x"].copy()),)
    return Impl(lambda: fn(*args), lambda t: t.numpy(), fn=fn, args=args)


_GRAPHC = {"mlp_train": lambda *a: _gc_train(*a, "mlp_train"), "cnn_train": lambda *a: _gc_train(*a, "cnn_train"),
           "mlp_infer": _gc_infer, "ln_gelu": _gc_ln_gelu}


# ---- numpy, by hand ------------------------------------------------------------------------------
def _np_xent(logits, y):
    """Mean cross-entropy and its gradient wrt the logits (stable softmax)."""
    n = logits.shape[0]
    rows = np.arange(n)
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    loss = np.log(s[:, 0]).mean() - z[rows, y].mean()
    e /= s
    e[rows, y] -= 1.0
    e /= n
    return loss, e


def _np_sgd(params, grads, bufs):
    for p, g, buf in zip(params, grads, bufs):
        buf *= MOMENTUM          # zero on the first step: buf = g, as torch.optim.SGD
        buf += g
        p -= LR * buf


def _np_mlp_forward(P, x):
    """Linear-ReLU-...-Linear: (the logits, the input of every Linear)."""
    acts, h, n = [x], x, len(P) // 2
    for i in range(n):
        h = h @ P[2 * i].T
        h += P[2 * i + 1]
        if i < n - 1:
            np.maximum(h, 0, out=h)
            acts.append(h)
    return h, acts


def _np_mlp_train(state):
    P = [a.copy() for a in state["params"]]
    bufs = [np.zeros_like(a) for a in P]
    x, y = state["x"].copy(), state["y"].copy()

    def step():
        logits, acts = _np_mlp_forward(P, x)
        loss, d = _np_xent(logits, y)
        grads = [None] * len(P)
        for i in reversed(range(len(acts))):
            grads[2 * i] = d.T @ acts[i]
            grads[2 * i + 1] = d.sum(axis=0)
            if i:
                d = d @ P[2 * i]
                d *= acts[i] > 0          # relu's mask, from its output
        _np_sgd(P, grads, bufs)
        return loss
    return Impl(step, params=lambda: [a.copy() for a in P])


def _np_mlp_infer(state):
    P = [a.copy() for a in state["params"]]
    x = state["x"].copy()
    return Impl(lambda: _np_mlp_forward(P, x)[0])


def _np_ln_gelu(state):
    g, b = (a.copy() for a in state["params"])
    x = state["x"].copy()
    c = np.float32(math.sqrt(2.0 / math.pi))

    def f():
        mu = x.mean(axis=-1, keepdims=True)
        h = x - mu
        var = np.mean(h * h, axis=-1, keepdims=True)
        h *= 1.0 / np.sqrt(var + np.float32(EPS))
        h *= g
        h += b
        t = h * h
        t *= np.float32(0.044715)
        t += 1.0
        t *= h
        t *= c
        np.tanh(t, out=t)
        t += 1.0
        t *= h
        t *= np.float32(0.5)
        return t
    return Impl(f)


def _np_conv3x3(xp, w, b):
    """3x3 conv of a zero-padded NHWC input, im2col: returns (NHWC output, the columns)."""
    from numpy.lib.stride_tricks import sliding_window_view
    win = sliding_window_view(xp, (3, 3), axis=(1, 2))             # [N, H, W, C, 3, 3]
    n, h, wd = win.shape[:3]
    cols = win.reshape(n * h * wd, -1)                              # (c, kh, kw) order, as w
    out = cols @ w.reshape(w.shape[0], -1).T
    out += b
    return out.reshape(n, h, wd, -1), cols


def _np_pool2(a):
    n, h, w, c = a.shape
    r = a.reshape(n, h // 2, 2, w // 2, 2, c)
    return r.max(axis=(2, 4)), r


def _np_pool2_back(r, p, dp):
    """The gradient goes to the max of each window (ties only arise between zeros after relu,
    whose gradient relu's mask drops)."""
    mask = r == p[:, :, None, :, None, :]
    return (mask * dp[:, :, None, :, None, :]).reshape(r.shape[0], r.shape[1] * 2, r.shape[3] * 2, r.shape[5])


def _np_cnn_train(state):
    P = [a.copy() for a in state["params"]]
    bufs = [np.zeros_like(a) for a in P]
    x = np.ascontiguousarray(state["x"].transpose(0, 2, 3, 1))      # NHWC
    y = state["y"].copy()
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))

    def step():
        w1, b1, w2, b2, w3, b3 = P
        n = x.shape[0]
        h1, cols1 = _np_conv3x3(xp, w1, b1)
        np.maximum(h1, 0, out=h1)
        p1, r1 = _np_pool2(h1)
        p1p = np.pad(p1, ((0, 0), (1, 1), (1, 1), (0, 0)))
        h2, cols2 = _np_conv3x3(p1p, w2, b2)
        np.maximum(h2, 0, out=h2)
        p2, r2 = _np_pool2(h2)
        flat = p2.transpose(0, 3, 1, 2).reshape(n, -1)               # torch's NCHW flatten
        logits = flat @ w3.T
        logits += b3
        loss, d = _np_xent(logits, y)
        g3, gb3 = d.T @ flat, d.sum(axis=0)
        dp2 = (d @ w3).reshape(p2.shape[0], p2.shape[3], p2.shape[1], p2.shape[2]).transpose(0, 2, 3, 1)
        dh2 = _np_pool2_back(r2, p2, dp2)
        dh2 *= h2 > 0
        dh2 = dh2.reshape(-1, dh2.shape[-1])
        g2, gb2 = (dh2.T @ cols2).reshape(w2.shape), dh2.sum(axis=0)
        dcols = (dh2 @ w2.reshape(w2.shape[0], -1)).reshape(*p1.shape[:3], *w2.shape[1:])
        dp1p = np.zeros_like(p1p)
        hh, ww = p1.shape[1:3]
        for i in range(3):
            for j in range(3):
                dp1p[:, i:i + hh, j:j + ww, :] += dcols[..., i, j]
        dh1 = _np_pool2_back(r1, p1, dp1p[:, 1:-1, 1:-1, :])
        dh1 *= h1 > 0
        dh1 = dh1.reshape(-1, dh1.shape[-1])
        g1, gb1 = (dh1.T @ cols1).reshape(w1.shape), dh1.sum(axis=0)
        _np_sgd(P, [g1, gb1, g2, gb2, g3, gb3], bufs)
        return loss
    return Impl(step, params=lambda: [a.copy() for a in P])


_NUMPY = {"mlp_train": _np_mlp_train, "mlp_infer": _np_mlp_infer, "ln_gelu": _np_ln_gelu,
          "cnn_train": _np_cnn_train}


STREAM_BYTES = 128 << 20         # each array of the bandwidth copy: 4x a 32 MiB L3


def copy_same(state):
    """np.copyto of ln_gelu's x into a preallocated y of the same shape."""
    x = state["x"].copy()
    y = np.empty_like(x)
    return Impl(lambda: np.copyto(y, x))


def copy_stream():
    """The copy-bandwidth probe: np.copyto between two STREAM_BYTES arrays (out of cache)."""
    src = np.ones(STREAM_BYTES // 4, dtype=np.float32)
    dst = np.empty_like(src)
    return Impl(lambda: np.copyto(dst, src)), 2 * src.nbytes


def floor_ms(state, bandwidth_gbs):
    """Reading x once and writing y once at `bandwidth_gbs` (GB/s), in ms."""
    return 2 * state["x"].nbytes / (bandwidth_gbs * 1e9) * 1e3


# ---- PyTorch ------------------------------------------------------------------------------------
def _torch_compile(f):
    """torch.compile(f), f given private globals first: dynamo stores its compiled graphs as
    globals of the compiled function's module (callables carrying .named_parameters), which
    gc.compile would otherwise find when it scans this module's globals for named tensors."""
    import torch
    g = {"__builtins__": __builtins__, "__name__": __name__ + "._torch_compiled"}
    g.update({n: f.__globals__[n] for n in f.__code__.co_names if n in f.__globals__})
    return torch.compile(types.FunctionType(f.__code__, g, f.__name__, f.__defaults__, f.__closure__))


def _torch_impl(family, state, compiled):
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


# ---- JAX ------------------------------------------------------------------------------------------
def _jax_impl(family, state):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    P = [jnp.asarray(a) for a in state["params"]]
    x = jnp.asarray(state["x"])
    if family == "ln_gelu":
        g, b = P

        @jax.jit
        def f(x):
            mu = x.mean(-1, keepdims=True)
            var = ((x - mu) ** 2).mean(-1, keepdims=True)
            return jax.nn.gelu((x - mu) * jax.lax.rsqrt(var + EPS) * g + b, approximate=True)
        return Impl(lambda: f(x).block_until_ready())

    def mlp(P, x):
        n = len(P) // 2
        h = x
        for i in range(n):
            h = h @ P[2 * i].T + P[2 * i + 1]
            if i < n - 1:
                h = jax.nn.relu(h)
        return h

    def cnn(P, x):
        w1, b1, w2, b2, w3, b3 = P

        def conv(h, w, b):
            return jax.lax.conv_general_dilated(h, w, (1, 1), ((1, 1), (1, 1)),
                                                dimension_numbers=("NCHW", "OIHW", "NCHW")) + b[None, :, None, None]

        def pool(h):
            return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        h = pool(jax.nn.relu(conv(x, w1, b1)))
        h = pool(jax.nn.relu(conv(h, w2, b2)))
        return h.reshape(h.shape[0], -1) @ w3.T + b3
    if family == "mlp_infer":
        f = jax.jit(mlp)
        return Impl(lambda: f(P, x).block_until_ready())
    net = mlp if family == "mlp_train" else cnn
    y = jnp.asarray(state["y"].astype(np.int32))

    def loss_fn(P, x, y):
        logits = net(P, x)
        lse = jax.nn.logsumexp(logits, axis=-1)
        return jnp.mean(lse - jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0])

    @jax.jit
    def step(P, bufs, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(P, x, y)
        bufs = [MOMENTUM * m + g for m, g in zip(bufs, grads)]
        return [p - LR * m for p, m in zip(P, bufs)], bufs, loss
    cur = {"P": P, "bufs": [jnp.zeros_like(p) for p in P]}

    def call():
        cur["P"], cur["bufs"], loss = step(cur["P"], cur["bufs"], x, y)
        return loss.block_until_ready()
    return Impl(call, params=lambda: [np.asarray(p) for p in cur["P"]])


# ---- measuring ----------------------------------------------------------------------------------
def thread_env(n) -> dict:
    """The environment that caps every framework's CPU threads at n: OpenMP (torch, graphc's
    llvm runtime), OpenBLAS / MKL (numpy, graphc eager), GRAPHC_NUM_THREADS (llvm executables)
    and XLA (jax). Read when each library loads, so set it before importing them."""
    n = int(n)
    flags = os.environ.get("XLA_FLAGS", "")
    xla = f"--xla_cpu_multi_thread_eigen={'true' if n > 1 else 'false'} intra_op_parallelism_threads={n}"
    return {"OMP_NUM_THREADS": str(n), "OPENBLAS_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n),
            "GRAPHC_NUM_THREADS": str(n), "XLA_FLAGS": f"{flags} {xla}".strip()}


_THREADS = None                 # set by limit_threads


def limit_threads(n):
    """Cap every framework at n CPU threads, as far as this process still allows: sets
    thread_env(n) (for libraries not loaded yet, and for compile_times' subprocesses), limits
    the BLAS/OpenMP pools already loaded (threadpoolctl, when installed) and torch's pool.
    Oversubscribed spinning worker threads (OpenBLAS, OpenMP) of several frameworks in one
    process on a small shared machine turn into slowdowns of 10x and more; with one thread each
    the columns are stable and compare like with like."""
    global _THREADS
    _THREADS = int(n)
    os.environ.update(thread_env(n))
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=int(n))
    except ImportError:
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(n))


SETTLE_S = 0.3       # idle workers spin after a call before they sleep: OpenBLAS ~0.1 s, OpenMP runtimes up to 0.2 s


def time_interleaved(calls: dict, repeat, warmup=2, block=5, settle=SETTLE_S) -> dict:
    """Median ms per call of each callable over `repeat` timed calls, taken in rounds: in each
    round every callable (in a rotating order) waits `settle` seconds -- so the worker threads
    the previous framework left spinning (OpenBLAS's, OpenMP's) have gone to sleep instead of
    competing for the cores -- makes one untimed call (a cold cache, its own pool waking up),
    then up to `block` timed calls. `warmup` untimed calls each come first."""
    for f in calls.values():
        for _ in range(warmup):
            f()
    names = list(calls)
    ts = {n: [] for n in names}
    r = 0
    while len(ts[names[0]]) < repeat:
        k = r % len(names)
        for n in names[k:] + names[:k]:
            f = calls[n]
            if settle and len(names) > 1:
                time.sleep(settle)
            f()
            for _ in range(min(block, repeat - len(ts[n]))):
                t0 = time.perf_counter()
                f()
                ts[n].append((time.perf_counter() - t0) * 1e3)
        r += 1
    return {n: statistics.median(v) for n, v in ts.items()}


def rel_err(a, b) -> float:
    """max |a - b| / max(max |b|, 1e-6): the relative disagreement of a with the reference b."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-6))


def pass_stats(compiled_fn, args) -> dict:
    """Counts from the compiled graph (what bench/passes.py prints)."""
    from .passes.memory import memory_report
    from .passes.stats import bytes_moved, kernel_count
    cf = getattr(compiled_fn, "_compiled", compiled_fn)
    e = cf.entry(*args)
    names = [n for n, _ in e.passes.stages]
    before = e.passes.stage("dce") if "dce" in names else e.passes.stages[0][1]
    final = e.passes.final
    row = {"traced_nodes": e.passes.stages[0][1].primitive_count(),
           "primitive_nodes": before.primitive_count(),
           "kernels": kernel_count(final),
           "bytes_moved_unfused": bytes_moved(before),
           "bytes_moved": bytes_moved(final)}
    if any("buffers" in n.attrs for n in final.nodes):
        row.update(memory_report(final))
    return row


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0][:160]}" if msg else type(e).__name__


def run_one(name, backend=None, repeat=10, others=True, torch_compile=True, jax=True,
            compile_times=False) -> dict:
    """Every column of one workload, side by side (see the module docstring); backend None:
    gc.compile's default (llvm on the CPU)."""
    from .backends import default
    backend = backend or default()
    w = WORKLOADS[name]
    state = w.init()
    row = {"workload": name, "description": w.doc, "backend": backend, "repeat": repeat,
           "threads": _THREADS or "default"}
    cols = ["eager", "compiled", "numpy"]
    if others:
        cols += ["torch"] + (["torch_compile"] if torch_compile else []) + (["jax"] if jax else [])
    impls, outs = {}, {}
    for c in cols:
        try:
            im = w.impl(c, state, backend)
            if im is None:                       # framework not installed: no column
                continue
            outs[c] = [im.to_numpy(im.call()).copy() for _ in range(2)]
        except Exception as e:                   # noqa: BLE001 -- reported per column, as "n/a"
            if c in ("eager", "compiled", "numpy"):
                raise
            row[f"{c}_error"] = _short(e)
            continue
        impls[c] = im
    ref = outs["eager"]
    row["max_rel_err"] = {c: max(rel_err(a, b) for a, b in zip(o, ref)) for c, o in outs.items() if c != "eager"}
    bad = {c: e for c, e in row["max_rel_err"].items() if not e <= TOL}
    if bad:
        row["mismatch"] = bad
    if w.kind == "train":
        row["first_loss"] = float(ref[0])
    calls = {c: im.call for c, im in impls.items()}
    if w.family == "ln_gelu":
        calls["copy_same"] = copy_same(state).call
        stream, stream_bytes = copy_stream()
        calls["copy_stream"] = stream.call
    times = time_interleaved(calls, repeat, warmup=2)
    if "copy_stream" in times:
        row["copy_bandwidth_gbs"] = stream_bytes / (times.pop("copy_stream") * 1e-3) / 1e9
        row["copy_floor_ms"] = floor_ms(state, row["copy_bandwidth_gbs"])
        row["x_bytes"] = state["x"].nbytes
    for c, t in times.items():
        row[f"{c}_ms"] = t
    row["ratio"] = row["eager_ms"] / row["compiled_ms"] if row["compiled_ms"] else float("nan")
    row.update(pass_stats(impls["compiled"].fn, impls["compiled"].args))
    if compile_times:
        row.update(_compile_times(name, backend))
    return row


def run(names=None, backend=None, repeat=10, others=True, progress=True, torch_compile=True, jax=True,
        compile_times=False) -> list:
    names = list(names or WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown workload(s) {unknown}; workloads: {', '.join(WORKLOADS)}")
    it = names
    bar = None
    if progress:
        try:
            from tqdm import tqdm
            it = bar = tqdm(names, desc="bench", unit="workload", leave=False)
        except ImportError:
            pass
    rows = []
    for n in it:
        if bar is not None:
            bar.set_postfix_str(n)
        rows.append(run_one(n, backend=backend, repeat=repeat, others=others, torch_compile=torch_compile,
                            jax=jax, compile_times=compile_times))
    return rows


# ---- compile time: fresh subprocesses, one shared disk cache ------------------------------------
def compile_probe(name, backend="llvm", steady=5) -> dict:
    """In this (fresh) process: build the compiled graphc step and time its first calls. The calls
    that traced cost `compile_ms` more than a steady-state call."""
    from . import backends
    t0 = time.perf_counter()
    backends.prepare(backend)      # once per process, whatever is compiled: reported on its own
    init_ms = (time.perf_counter() - t0) * 1e3
    w = WORKLOADS[name]
    im = w.impl("compiled", w.init(), backend)
    f = getattr(im.fn, "_compiled", im.fn)
    ts, traced = [], []
    for _ in range(4 + steady):
        n = len(f.traces)
        t0 = time.perf_counter()
        im.call()
        ts.append((time.perf_counter() - t0) * 1e3)
        traced.append(len(f.traces) > n)
    k = max(i for i, t in enumerate(traced) if t) + 1        # calls up to the last trace
    later = statistics.median(ts[k:])
    out = {"compile_ms": sum(ts[:k]) - k * later, "first_calls_ms": ts[:k], "steady_ms": later,
           "traces": k, "backend_init_ms": init_ms}
    st = f.stats(*im.args)
    for key in ("compile_ms", "cache_hit"):
        if key in st:
            out["backend_" + key] = st[key]
    return out


_PROBE = "import json, sys; from graphc import bench; print(json.dumps(bench.compile_probe(sys.argv[1], sys.argv[2])))"


def compile_times(name, backend="llvm", warm_runs=2) -> dict:
    """Cold and warm compile time of workload `name` (ms): fresh subprocesses sharing a new, empty
    GRAPHC_CACHE_DIR -- the first is cold, the next `warm_runs` hit the disk cache (median)."""
    with tempfile.TemporaryDirectory(prefix="graphc-bench-cache-") as d:
        env = dict(os.environ, GRAPHC_CACHE_DIR=d)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        res = []
        for _ in range(1 + warm_runs):
            p = subprocess.run([sys.executable, "-c", _PROBE, name, backend], env=env, capture_output=True,
                               text=True, timeout=600)
            if p.returncode:
                raise RuntimeError(f"compile probe of {name} failed:\n{p.stderr[-2000:]}")
            res.append(json.loads(p.stdout.strip().splitlines()[-1]))
    cold, warm = res[0], res[1:]
    r = {"compile_cold_ms": cold["compile_ms"],
         "compile_warm_ms": statistics.median(x["compile_ms"] for x in warm),
         "backend_init_cold_ms": cold["backend_init_ms"],
         "backend_init_warm_ms": statistics.median(x["backend_init_ms"] for x in warm)}
    if "backend_compile_ms" in cold:
        r.update(backend_compile_cold_ms=cold["backend_compile_ms"],
                 backend_compile_warm_ms=statistics.median(x["backend_compile_ms"] for x in warm),
                 cold_cache_hit=cold.get("backend_cache_hit"),
                 warm_cache_hit=all(x.get("backend_cache_hit") for x in warm))
    return r


_compile_times = compile_times          # run_one's `compile_times` argument shadows the name


# ---- targets (issue 5) --------------------------------------------------------------------------
def targets(rows) -> list:
    """Issue 5's speed and compile-time targets, each with the measured ratio (lower is better
    except where `op` is ">="): [{"target", "ratio", "limit", "op", "pass", "detail"}]. A target
    whose rows or columns are missing is reported with pass None."""
    by = {r["workload"]: r for r in rows}
    out = []

    def add(target, num, den, op, limit, detail):
        ok = ratio = None
        if num is not None and den:
            ratio = num / den
            ok = ratio <= limit if op == "<=" else ratio >= limit
        out.append({"target": target, "ratio": ratio, "op": op, "limit": limit, "pass": ok, "detail": detail})

    def get(w, key):
        return by.get(w, {}).get(key)
    r = by.get("mlp_train_b128", {})
    refs = {k: r[f"{k}_ms"] for k in ("torch", "torch_compile", "jax") if f"{k}_ms" in r}
    best = min(refs, key=refs.get) if refs else None
    add("mlp_train b128: compiled no slower than the fastest of torch / torch.compile / jax.jit",
        get("mlp_train_b128", "compiled_ms"), refs.get(best), "<=", 1.0,
        f"compiled / {best or '(none measured)'}")
    add("mlp_train b32: compiled >= 3x faster than graphc eager",
        get("mlp_train_b32", "eager_ms"), get("mlp_train_b32", "compiled_ms"), ">=", 3.0, "eager / compiled")
    add("ln_gelu: compiled within 1.5x of the copy floor",
        get("ln_gelu", "compiled_ms"), get("ln_gelu", "copy_floor_ms"), "<=", 1.5,
        "compiled / (bytes at the copy bandwidth)")
    add("mlp_infer b1024: compiled within 1.05x of numpy hand-written",
        get("mlp_infer_b1024", "compiled_ms"), get("mlp_infer_b1024", "numpy_ms"), "<=", 1.05, "compiled / numpy")
    add("cnn_train b64: compiled no slower than torch eager",
        get("cnn_train_b64", "compiled_ms"), get("cnn_train_b64", "torch_ms"), "<=", 1.0, "compiled / torch")
    add("compile mlp_train b128 cold < 1.5 s",
        get("mlp_train_b128", "compile_cold_ms"), 1500.0, "<=", 1.0, "cold ms / 1500 ms")
    add("compile mlp_train b128 warm (disk cache) < 0.1 s",
        get("mlp_train_b128", "compile_warm_ms"), 100.0, "<=", 1.0, "warm ms / 100 ms")
    return out


# ---- text ----------------------------------------------------------------------------------------
def _grid(head, lines):
    lines = [head] + lines
    w = [max(len(l[i]) for l in lines) for i in range(len(head))]
    out = []
    for k, l in enumerate(lines):
        out.append("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(l)))
        if k == 0:
            out.append("  ".join("-" * x for x in w))
    return out


def _present(rows):
    return [(c, label) for c, label in COLUMNS if any(f"{c}_ms" in r or f"{c}_error" in r for r in rows)]


def table(rows) -> str:
    """The speed table as text: medians (ms), then each column's time / graphc compiled's."""
    cols = _present(rows)
    floor = any("copy_floor_ms" in r for r in rows)
    head = ["workload"] + [f"{label} ms" for _, label in cols] + \
        (["copy floor ms", "copyto x ms"] if floor else []) + ["eager/compiled", "kernels", "prims"]
    lines = []
    for r in rows:
        line = [r["workload"]]
        for c, _ in cols:
            line.append(f"{r[c + '_ms']:.2f}" if f"{c}_ms" in r else ("n/a" if f"{c}_error" in r else "-"))
        if floor:
            line.append(f"{r['copy_floor_ms']:.2f}" if "copy_floor_ms" in r else "-")
            line.append(f"{r['copy_same_ms']:.2f}" if "copy_same_ms" in r else "-")
        line += [f"{r['ratio']:.2f}x", str(r.get("kernels", "-")), str(r.get("primitive_nodes", "-"))]
        lines.append(line)
    out = _grid(head, lines)
    others = [(c, label) for c, label in cols if c != "compiled"]
    if others:
        out.append("")
        head = ["workload"] + [f"{label}/compiled" for _, label in others] + \
            (["compiled/floor", "compiled/copyto x"] if floor else [])
        lines = []
        for r in rows:
            line = [r["workload"]]
            for c, _ in others:
                line.append(f"{r[c + '_ms'] / r['compiled_ms']:.2f}x" if f"{c}_ms" in r else
                            ("n/a" if f"{c}_error" in r else "-"))
            if floor:
                line.append(f"{r['compiled_ms'] / r['copy_floor_ms']:.2f}x" if "copy_floor_ms" in r else "-")
                line.append(f"{r['compiled_ms'] / r['copy_same_ms']:.2f}x" if "copy_same_ms" in r else "-")
            lines.append(line)
        out += _grid(head, lines)
    backend = rows[0]["backend"] if rows else "?"
    threads = rows[0].get("threads", "default") if rows else "?"
    out.append(f"(medians of {rows[0]['repeat'] if rows else '?'} interleaved runs; backend={backend}; "
               f"threads={threads}; eager/compiled and X/compiled > 1 mean graphc compiled is faster)")
    for r in rows:
        if "copy_bandwidth_gbs" in r:
            out.append(f"{r['workload']}: copy floor = read x + write y ({2 * r['x_bytes'] / 1e6:.2f} MB) at the copy "
                       f"bandwidth measured in this run, {r['copy_bandwidth_gbs']:.1f} GB/s (np.copyto between two "
                       f"{STREAM_BYTES >> 20} MiB arrays); copyto x = np.copyto of x itself, partly from cache")
    for r in rows:
        for c, label in COLUMNS:
            if f"{c}_error" in r:
                out.append(f"{r['workload']}: {label} n/a ({r[c + '_error']})")
        if "mismatch" in r:
            out.append(f"{r['workload']}: MISMATCH with graphc eager (max relative error > {TOL}): "
                       + ", ".join(f"{c} {e:.2e}" for c, e in r["mismatch"].items()))
    checked = [r for r in rows if r.get("max_rel_err")]
    if checked and not any("mismatch" in r for r in rows):
        worst = max(max(r["max_rel_err"].values()) for r in checked)
        out.append(f"outputs agree with graphc eager (first two calls from the same weights): "
                   f"max relative error {worst:.1e} <= {TOL}")
    return "\n".join(out)


def compile_table(rows) -> str:
    rows = [r for r in rows if "compile_cold_ms" in r]
    if not rows:
        return ""
    has_b = any("backend_compile_cold_ms" in r for r in rows)
    head = ["workload", "cold ms", "warm ms"]
    if has_b:
        head += ["backend build cold ms", "warm ms", "warm cache hit"]
    head += ["backend init cold ms", "warm ms"]
    lines = []
    for r in rows:
        line = [r["workload"], f"{r['compile_cold_ms']:.1f}", f"{r['compile_warm_ms']:.1f}"]
        if has_b:
            line += [f"{r['backend_compile_cold_ms']:.1f}", f"{r['backend_compile_warm_ms']:.1f}",
                     str(r.get("warm_cache_hit"))] if "backend_compile_cold_ms" in r else ["-", "-", "-"]
        line += [f"{r['backend_init_cold_ms']:.1f}", f"{r['backend_init_warm_ms']:.1f}"]
        lines.append(line)
    out = _grid(head, lines)
    out.append("(cold: a fresh process, empty GRAPHC_CACHE_DIR; warm: fresh processes on that cache. "
               "Compile time = the tracing calls minus as many steady calls; backend build = the "
               "executable's own compile_ms; backend init = loading the backend, once per process, "
               "before any compile: not in the compile time)")
    return "\n".join(out)


def targets_text(ts) -> str:
    lines = []
    for t in ts:
        verdict = "n/a " if t["pass"] is None else ("PASS" if t["pass"] else "FAIL")
        ratio = "-" if t["ratio"] is None else f"{t['ratio']:.3f}"
        lines.append([verdict, t["target"], f"{t['detail']} = {ratio} (need {t['op']} {t['limit']:g})"])
    w0 = max(len(l[1]) for l in lines)
    return "\n".join(f"{v}  {t.ljust(w0)}  {d}" for v, t, d in lines)


def bar_chart(rows, path) -> str:
    """A grouped bar chart of the medians (log scale), written to `path` (.png or .svg)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    colors = {"eager": "#8d99ae", "compiled": "#2b9348", "numpy": "#4d908e", "torch": "#ee4c2c",
              "torch_compile": "#f4a261", "jax": "#5e60ce"}
    series = [(label, f"{c}_ms", colors[c]) for c, label in COLUMNS if any(f"{c}_ms" in r for r in rows)]
    n = len(rows)
    fig, ax = plt.subplots(figsize=(max(5, 1.9 * n + 2), 4))
    width = 0.8 / len(series)
    xs = np.arange(n)
    for k, (label, key, color) in enumerate(series):
        vals = [r.get(key, np.nan) for r in rows]
        ax.bar(xs + (k - (len(series) - 1) / 2) * width, vals, width, label=label, color=color)
    for i, r in enumerate(rows):
        ax.annotate(f"{r['ratio']:.2f}x", (xs[i], max(r["eager_ms"], r["compiled_ms"])),
                    ha="center", va="bottom", fontsize=8, xytext=(0, 3), textcoords="offset points")
    ax.set_xticks(xs)
    ax.set_xticklabels([r["workload"] for r in rows], rotation=15, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("median ms per call (log)")
    ax.set_title(f"graphc bench (backend={rows[0]['backend'] if rows else '?'}): side by side")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
