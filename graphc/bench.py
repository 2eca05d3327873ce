"""The benchmark suite behind `graphc bench`: eager vs compiled, per workload.

    graphc bench                         # every workload, interpreter backend
    graphc bench mlp_train_b128 ln_gelu --backend interp --repeat 20 --json

For each workload the same step is built twice from the same seed, once run eagerly (dynamic
graph, numpy kernel per op) and once through gc.compile; after warm-up calls (a training step
retraces once, when .grad first exists) each is timed `repeat` times and the medians are
reported with the ratio eager / compiled (> 1: compiling is faster). When PyTorch (CPU) or JAX
are importable, the same workload in them is timed too (torch eager; jax.jit) for reference.
Pass statistics (primitive nodes, kernels, bytes moved, memory plan) come from the compiled
graph, as in bench/passes.py.

Workloads (docs/benchmarks.md):
  mlp_train_b128  784-512-256-10 MLP, cross-entropy, SGD momentum, batch 128 (fwd+bwd+update)
  mlp_train_b32   the same, batch 32
  mlp_infer_b1024 the same MLP, forward only, batch 1024
  ln_gelu         tanh-GELU(layer_norm(x) * g + b), x [4096, 1024]
  cnn_train_b64   conv3x3(1->8) relu maxpool2 linear(1568->10), SGD momentum, batch 64
"""
from __future__ import annotations

import statistics
import time

import numpy as np

WORKLOADS = {}


def workload(name, doc):
    def deco(fn):
        fn.doc = doc
        WORKLOADS[name] = fn
        return fn
    return deco


# ---- graphc workloads: each returns (fn, args) for mode "eager" or "compiled" -----------------
def _mlp(gc, nn):
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))


def _train_step(gc, model, loss_fn):
    opt = gc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def _mlp_train(batch, backend, compiled):
    import graphc as gc
    import graphc.nn as nn
    import graphc.nn.functional as F
    gc.manual_seed(0)
    model = _mlp(gc, nn)
    step = _train_step(gc, model, F.cross_entropy)
    x, y = gc.randn(batch, 784), gc.randint(0, 10, (batch,))
    return (gc.compile(step, backend=backend) if compiled else step), (x, y)


@workload("mlp_train_b128", "784-512-256-10 MLP training step (SGD momentum), batch 128")
def mlp_train_b128(backend="interp", compiled=True):
    return _mlp_train(128, backend, compiled)


@workload("mlp_train_b32", "784-512-256-10 MLP training step (SGD momentum), batch 32")
def mlp_train_b32(backend="interp", compiled=True):
    return _mlp_train(32, backend, compiled)


@workload("mlp_infer_b1024", "784-512-256-10 MLP forward, batch 1024, no grad")
def mlp_infer_b1024(backend="interp", compiled=True):
    import graphc as gc
    import graphc.nn as nn
    gc.manual_seed(0)
    model = _mlp(gc, nn)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    def infer(x):
        return model(x)
    x = gc.randn(1024, 784)
    return (gc.compile(infer, backend=backend) if compiled else infer), (x,)


@workload("ln_gelu", "tanh-GELU(layer_norm(x) * g + b), x [4096, 1024]")
def ln_gelu(backend="interp", compiled=True):
    import graphc as gc
    import graphc.nn.functional as F
    gc.manual_seed(0)
    x, g, b = gc.randn(4096, 1024), gc.randn(1024), gc.randn(1024)

    def f(x):
        return F.gelu(F.layer_norm(x, (1024,)) * g + b, approximate="tanh")
    return (gc.compile(f, backend=backend) if compiled else f), (x,)


@workload("cnn_train_b64", "conv3x3(1->8)-relu-maxpool2-linear(1568->10) training step, batch 64")
def cnn_train_b64(backend="interp", compiled=True):
    import graphc as gc
    import graphc.nn as nn
    import graphc.nn.functional as F
    gc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(8 * 14 * 14, 10))
    step = _train_step(gc, model, F.cross_entropy)
    x, y = gc.randn(64, 1, 28, 28), gc.randint(0, 10, (64,))
    return (gc.compile(step, backend=backend) if compiled else step), (x, y)


# ---- reference frameworks (optional) ------------------------------------------------------------
def _torch_fn(name):
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    tnn = torch.nn
    F = torch.nn.functional

    def mlp():
        return tnn.Sequential(tnn.Linear(784, 512), tnn.ReLU(), tnn.Linear(512, 256), tnn.ReLU(), tnn.Linear(256, 10))

    def train(model, x, y):
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        return step
    if name.startswith("mlp_train"):
        b = int(name.rsplit("b", 1)[1])
        return train(mlp(), torch.randn(b, 784), torch.randint(0, 10, (b,)))
    if name == "mlp_infer_b1024":
        m, x = mlp().eval(), torch.randn(1024, 784)

        def infer():
            with torch.no_grad():
                return m(x)
        return infer
    if name == "ln_gelu":
        x, g, b = torch.randn(4096, 1024), torch.randn(1024), torch.randn(1024)
        return lambda: F.gelu(F.layer_norm(x, (1024,)) * g + b, approximate="tanh")
    if name == "cnn_train_b64":
        m = tnn.Sequential(tnn.Conv2d(1, 8, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
                           tnn.Linear(8 * 14 * 14, 10))
        return train(m, torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,)))
    return None


def _jax_fn(name):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    key = jax.random.PRNGKey(0)
    if name == "ln_gelu":
        x = jax.random.normal(key, (4096, 1024))
        g, b = jnp.ones(1024), jnp.zeros(1024)

        @jax.jit
        def f(x):
            m = x.mean(-1, keepdims=True)
            v = ((x - m) ** 2).mean(-1, keepdims=True)
            return jax.nn.gelu((x - m) / jnp.sqrt(v + 1e-5) * g + b, approximate=True)
        return lambda: f(x).block_until_ready()
    if name == "mlp_infer_b1024":
        ks = jax.random.split(key, 4)
        ws = [jax.random.normal(k, s) * 0.05 for k, s in zip(ks, [(784, 512), (512, 256), (256, 10)])]
        x = jax.random.normal(ks[3], (1024, 784))

        @jax.jit
        def f(x):
            h = jax.nn.relu(x @ ws[0])
            h = jax.nn.relu(h @ ws[1])
            return h @ ws[2]
        return lambda: f(x).block_until_ready()
    return None


# ---- measuring ---------------------------------------------------------------------------------
def time_ms(fn, repeat, warmup=2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


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


def run_one(name, backend="interp", repeat=10, others=True) -> dict:
    make = WORKLOADS[name]
    eager, eargs = make(backend=backend, compiled=False)
    comp, cargs = make(backend=backend, compiled=True)
    row = {"workload": name, "description": make.doc, "backend": backend, "repeat": repeat}
    row["eager_ms"] = time_ms(lambda: eager(*eargs), repeat)
    row["compiled_ms"] = time_ms(lambda: comp(*cargs), repeat, warmup=3)
    row["ratio"] = row["eager_ms"] / row["compiled_ms"] if row["compiled_ms"] else float("nan")
    row.update(pass_stats(comp, cargs))
    if others:
        t = _torch_fn(name)
        if t is not None:
            row["torch_ms"] = time_ms(t, repeat)
        j = _jax_fn(name)
        if j is not None:
            row["jax_ms"] = time_ms(j, repeat)
    return row


def run(names=None, backend="interp", repeat=10, others=True, progress=True) -> list:
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
        rows.append(run_one(n, backend=backend, repeat=repeat, others=others))
    return rows


def table(rows) -> str:
    """The speed table as text."""
    has_t = any("torch_ms" in r for r in rows)
    has_j = any("jax_ms" in r for r in rows)
    head = ["workload", "eager ms", "compiled ms", "eager/compiled", "kernels", "prims"]
    if has_t:
        head += ["torch ms"]
    if has_j:
        head += ["jax.jit ms"]
    lines = [head]
    for r in rows:
        line = [r["workload"], f"{r['eager_ms']:.2f}", f"{r['compiled_ms']:.2f}", f"{r['ratio']:.2f}x",
                str(r.get("kernels", "-")), str(r.get("primitive_nodes", "-"))]
        if has_t:
            line.append(f"{r['torch_ms']:.2f}" if "torch_ms" in r else "-")
        if has_j:
            line.append(f"{r['jax_ms']:.2f}" if "jax_ms" in r else "-")
        lines.append(line)
    w = [max(len(l[i]) for l in lines) for i in range(len(head))]
    out = []
    for k, l in enumerate(lines):
        out.append("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(l)))
        if k == 0:
            out.append("  ".join("-" * x for x in w))
    backend = rows[0]["backend"] if rows else "?"
    out.append(f"(medians of {rows[0]['repeat'] if rows else '?'} runs; backend={backend}; "
               "eager/compiled > 1 means compiling is faster)")
    return "\n".join(out)


def bar_chart(rows, path) -> str:
    """A grouped bar chart of the medians (log scale), written to `path` (.png or .svg)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    series = [("eager", "eager_ms", "#8d99ae"), ("compiled", "compiled_ms", "#2b9348")]
    if any("torch_ms" in r for r in rows):
        series.append(("torch eager", "torch_ms", "#ee4c2c"))
    if any("jax_ms" in r for r in rows):
        series.append(("jax.jit", "jax_ms", "#5e60ce"))
    n = len(rows)
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * n + 2), 4))
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
    ax.set_title(f"graphc bench (backend={rows[0]['backend'] if rows else '?'}): eager vs compiled")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
