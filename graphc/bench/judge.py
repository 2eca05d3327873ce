"""Issue 5's speed and compile-time targets, judged from the rows of a run (bench/llvm.py)."""
from __future__ import annotations


def targets(rows) -> list:
    """Each target with the measured ratio (lower is better except where `op` is ">="):
    [{"target", "ratio", "limit", "op", "pass", "detail"}]. A target whose rows or columns are
    missing is reported with pass None."""
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


def targets_text(ts) -> str:
    lines = []
    for t in ts:
        verdict = "n/a " if t["pass"] is None else ("PASS" if t["pass"] else "FAIL")
        ratio = "-" if t["ratio"] is None else f"{t['ratio']:.3f}"
        lines.append([verdict, t["target"], f"{t['detail']} = {ratio} (need {t['op']} {t['limit']:g})"])
    w0 = max(len(l[1]) for l in lines)
    return "\n".join(f"{v}  {t.ljust(w0)}  {d}" for v, t, d in lines)
