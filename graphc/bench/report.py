"""The rows of a run as text: the speed table (medians, then every column's time over graphc
compiled's), its notes (copy floor, n/a columns, mismatches, missing peers), and the compile
time table."""
from __future__ import annotations

from .columns import COLUMNS
from .floor import STREAM_BYTES
from .suite import TOL


def grid(head, lines):
    """Aligned text columns: the first left-aligned, the others right-aligned, a rule under head."""
    lines = [head] + lines
    w = [max(len(l[i]) for l in lines) for i in range(len(head))]
    out = []
    for k, l in enumerate(lines):
        out.append("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(l)))
        if k == 0:
            out.append("  ".join("-" * x for x in w))
    return out


def present(rows):
    """The (column, label) pairs some row measured or reported n/a."""
    return [(c, label) for c, label in COLUMNS if any(f"{c}_ms" in r or f"{c}_error" in r for r in rows)]


def _cell(r, c, fmt):
    return fmt(r) if f"{c}_ms" in r else ("n/a" if f"{c}_error" in r else "-")


def _medians(rows, cols, floor):
    head = ["workload"] + [f"{label} ms" for _, label in cols] + \
        (["copy floor ms", "copyto x ms"] if floor else []) + ["eager/compiled", "kernels", "prims"]
    lines = []
    for r in rows:
        line = [r["workload"]] + [_cell(r, c, lambda r, c=c: f"{r[c + '_ms']:.2f}") for c, _ in cols]
        if floor:
            line.append(f"{r['copy_floor_ms']:.2f}" if "copy_floor_ms" in r else "-")
            line.append(f"{r['copy_same_ms']:.2f}" if "copy_same_ms" in r else "-")
        line += [f"{r['ratio']:.2f}x", str(r.get("kernels", "-")), str(r.get("primitive_nodes", "-"))]
        lines.append(line)
    return grid(head, lines)


def _ratios(rows, others, floor):
    head = ["workload"] + [f"{label}/compiled" for _, label in others] + \
        (["compiled/floor", "compiled/copyto x"] if floor else [])
    lines = []
    for r in rows:
        line = [r["workload"]] + [_cell(r, c, lambda r, c=c: f"{r[c + '_ms'] / r['compiled_ms']:.2f}x")
                                  for c, _ in others]
        if floor:
            line.append(f"{r['compiled_ms'] / r['copy_floor_ms']:.2f}x" if "copy_floor_ms" in r else "-")
            line.append(f"{r['compiled_ms'] / r['copy_same_ms']:.2f}x" if "copy_same_ms" in r else "-")
        lines.append(line)
    return grid(head, lines)


def _notes(rows):
    out = []
    for r in rows:
        if "copy_bandwidth_gbs" in r:
            out.append(f"{r['workload']}: copy floor = read x + write y ({2 * r['x_bytes'] / 1e6:.2f} MB) at the copy "
                       f"bandwidth measured in this run, {r['copy_bandwidth_gbs']:.1f} GB/s (np.copyto between two "
                       f"{STREAM_BYTES >> 20} MiB arrays); copyto x = np.copyto of x itself, partly from cache")
    missing = next((r["peers_missing"] for r in rows if "peers_missing" in r), None)
    if missing:
        out.append(f"peers not available, numpy by hand, torch, torch.compile and jax.jit not measured: {missing}")
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
    return out


def table(rows) -> str:
    """The speed table as text: medians (ms), then each column's time / graphc compiled's."""
    cols = present(rows)
    floor = any("copy_floor_ms" in r for r in rows)
    out = _medians(rows, cols, floor)
    others = [(c, label) for c, label in cols if c != "compiled"]
    if others:
        out += [""] + _ratios(rows, others, floor)
    backend = rows[0]["backend"] if rows else "?"
    threads = rows[0].get("threads", "default") if rows else "?"
    out.append(f"(medians of {rows[0]['repeat'] if rows else '?'} interleaved runs; backend={backend}; "
               f"threads={threads}; eager/compiled and X/compiled > 1 mean graphc compiled is faster)")
    return "\n".join(out + _notes(rows))


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
    out = grid(head, lines)
    out.append("(cold: a fresh process, empty GRAPHC_CACHE_DIR; warm: fresh processes on that cache. "
               "Compile time = the tracing calls minus as many steady calls; backend build = the "
               "executable's own compile_ms; backend init = loading the backend, once per process, "
               "before any compile: not in the compile time)")
    return "\n".join(out)
