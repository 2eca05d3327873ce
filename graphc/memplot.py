"""A picture of a planned graph's memory: every arena buffer as a rectangle spanning the
schedule steps it is alive (x: from the kernel that writes it to the last one that reads it)
and the bytes it occupies in the arena (y: offset .. offset + size). Naive, planned (arena) and
lower-bound totals are in the title (graphc.passes.memory.memory_report).

    from graphc.memplot import plot_memory
    plot_memory(compiled_fn.entry(*args).passes.final, "memory.png")   # or .svg
"""
from __future__ import annotations

import io
import os

from .ir.buffer import buffers_of
from .ir.graph import Graph


def _mb(n):
    return f"{n / 1e6:.3f} MB" if n >= 1e5 else f"{n / 1e3:.1f} KB"


def buffers(graph: Graph):
    """[(value, first step, last step, offset, nbytes, kernel kind)] for the arena buffers of
    a planned graph (its kernels carry `buffers` annotations)."""
    from .passes.memory import _lifetimes
    step, last, root = _lifetimes(graph)
    out = []
    for t, n in enumerate(graph.nodes):
        bufs = buffers_of(n)
        if not bufs:
            continue
        for k, v in enumerate(n.outs):
            b = bufs[k] if k < len(bufs) else None
            if b is not None and b.kind == "arena":
                out.append((v, t, max(last.get(v.name, t), t), b.offset, v.type.nbytes,
                            n.attrs.get("kind", n.op)))
    return out


def is_planned(graph: Graph) -> bool:
    return graph.is_planned


def plot_memory(graph: Graph, path=None, title: str | None = None):
    """Draw the memory plan; write it to `path` (.png or .svg) if given. Returns the matplotlib
    Figure. Raises ValueError if the graph has not been through the memory pass."""
    if not is_planned(graph):
        raise ValueError("plot_memory needs a planned graph (the 'memory' stage / 'final'): "
                         "no kernel of this graph carries a `buffers` annotation")
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from .passes.memory import memory_report
    from .viz import KERNEL_COLORS

    rep = memory_report(graph)
    bufs = buffers(graph)
    nsteps = max(len(graph.nodes), 1)
    fig, ax = plt.subplots(figsize=(min(4 + 0.35 * nsteps, 16), 5))
    top = max([off + sz for _, _, _, off, sz, _ in bufs] + [rep["arena_bytes"], 1])
    for v, s, e, off, sz, kind in bufs:
        ax.add_patch(Rectangle((s - 0.45, off), (e - s) + 0.9, max(sz, top * 0.004),
                               facecolor=KERNEL_COLORS.get(kind, "#cccccc"), edgecolor="#333333",
                               linewidth=0.6, alpha=0.9))
        if sz > top * 0.06:
            ax.text((s + e) / 2, off + sz / 2, f"%{v.name}\n{v.type}", ha="center", va="center",
                    fontsize=7, clip_on=True)
    ax.axhline(rep["arena_bytes"], color="#d62828", linestyle="--", linewidth=1,
               label=f"arena {_mb(rep['arena_bytes'])}")
    if rep["lower_bound_bytes"]:
        ax.axhline(rep["lower_bound_bytes"], color="#2a9d8f", linestyle=":", linewidth=1,
                   label=f"lower bound {_mb(rep['lower_bound_bytes'])}")
    ax.set_xlim(-0.8, nsteps - 0.2)
    ax.set_ylim(0, top * 1.08)
    ax.set_xlabel("schedule step (kernel index)")
    ax.set_ylabel("arena offset (bytes)")
    ax.legend(loc="upper right", fontsize=8)
    head = title or f"memory plan of {graph.name}"
    ax.set_title(f"{head}\nnaive {_mb(rep['naive_bytes'])}   planned arena {_mb(rep['arena_bytes'])}   "
                 f"lower bound {_mb(rep['lower_bound_bytes'])}   fresh per call {_mb(rep['fresh_bytes'])}",
                 fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    if path is not None:
        path = os.fspath(path)
        ext = os.path.splitext(path)[1].lower().lstrip(".") or "png"
        fig.savefig(path, format=ext, dpi=110)
        plt.close(fig)
    return fig


def memory_svg(graph: Graph, title: str | None = None) -> str:
    """The memory plan picture as SVG text (for inlining in HTML)."""
    import matplotlib.pyplot as plt
    fig = plot_memory(graph, title=title)
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    return buf.getvalue()
