"""The medians of a run as a grouped bar chart (matplotlib, imported when drawing)."""
from __future__ import annotations

import numpy as np

from .columns import COLUMNS

COLORS = {"eager": "#8d99ae", "compiled": "#2b9348", "numpy": "#4d908e", "torch": "#ee4c2c",
          "torch_compile": "#f4a261", "jax": "#5e60ce"}


def bar_chart(rows, path) -> str:
    """A grouped bar chart of the medians (log scale), written to `path` (.png or .svg)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    series = [(label, f"{c}_ms", COLORS[c]) for c, label in COLUMNS if any(f"{c}_ms" in r for r in rows)]
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
