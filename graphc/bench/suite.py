"""Running the suite: every column of a workload side by side in one process.

Like with like: every implementation starts from the same float32 weights and inputs (drawn
once with numpy from a fixed seed), is called twice, and its outputs (the loss of the first and
of the second step, which depends on the first update; or the forward's output) are checked
against graphc eager's within `TOL` relative; a disagreement is reported in the row
("mismatch") and in the table. Then all of them are timed in interleaved rounds
(timing.time_interleaved), with ln_gelu's copy floor (floor.py) beside them."""
from __future__ import annotations

import numpy as np

from . import compile_time, floor, peers as _peers, timing
from .workloads import WORKLOADS

TOL = 1e-3                  # relative agreement required between implementations


def rel_err(a, b) -> float:
    """max |a - b| / max(max |b|, 1e-6): the relative disagreement of a with the reference b."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-6))


def pass_stats(compiled_fn, args) -> dict:
    """Counts from the compiled graph (what bench/passes.py prints)."""
    from ..passes.memory import memory_report
    from ..passes.stats import bytes_moved, kernel_count
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
    if final.is_planned:
        row.update(memory_report(final))
    return row


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0][:160]}" if msg else type(e).__name__


def _columns(others, torch_compile, jax):
    cols = ["eager", "compiled", "numpy"]
    if others:
        cols += ["torch"] + (["torch_compile"] if torch_compile else []) + (["jax"] if jax else [])
    return cols


def run_one(name, backend=None, repeat=10, others=True, torch_compile=True, jax=True,
            compile_times=False, peers=None) -> dict:
    """Every column of one workload, side by side; backend None: gc.compile's default (llvm on
    the CPU); peers: where the non-graphc columns come from (peers.load's argument)."""
    from ..backends import default
    backend = backend or default()
    p = _peers.load(peers)
    w = WORKLOADS[name]
    state = w.init()
    row = {"workload": name, "description": w.doc, "backend": backend, "repeat": repeat,
           "threads": timing.threads(), "peers": p.path}
    if not p:
        row["peers_missing"] = p.missing
    impls, outs = {}, {}
    for c in _columns(others, torch_compile, jax):
        try:
            im = w.impl(c, state, backend, p)
            if im is None:                       # framework not installed, or no peers: no column
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
        calls["copy_same"] = floor.copy_same(state).call
        stream, stream_bytes = floor.copy_stream()
        calls["copy_stream"] = stream.call
    times = timing.time_interleaved(calls, repeat, warmup=2)
    if "copy_stream" in times:
        row["copy_bandwidth_gbs"] = stream_bytes / (times.pop("copy_stream") * 1e-3) / 1e9
        row["copy_floor_ms"] = floor.floor_ms(state, row["copy_bandwidth_gbs"])
        row["x_bytes"] = state["x"].nbytes
    for c, t in times.items():
        row[f"{c}_ms"] = t
    row["ratio"] = row["eager_ms"] / row["compiled_ms"] if row["compiled_ms"] else float("nan")
    row.update(pass_stats(impls["compiled"].fn, impls["compiled"].args))
    if compile_times:
        row.update(compile_time.compile_times(name, backend))
    return row


def run(names=None, backend=None, repeat=10, others=True, progress=True, torch_compile=True, jax=True,
        compile_times=False, peers=None) -> list:
    """run_one of each workload in `names` (default: all), with a progress bar (tqdm) if wanted."""
    names = list(names or WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown workload(s) {unknown}; workloads: {', '.join(WORKLOADS)}")
    peers = _peers.load(peers)
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
                            jax=jax, compile_times=compile_times, peers=peers))
    return rows
