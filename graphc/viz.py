"""Pictures of graphc graphs, drawn by Graphviz.

    from graphc import viz
    viz.to_dot(graph)                        # DOT text, no Graphviz needed
    viz.render(graph, "g.svg")               # .dot / .svg / .png by extension (needs `dot`)
    viz.visualize(compiled_fn, "g.svg", *example_args, stage="final", collapse=False)

What the picture shows:
  * primitives coloured by their registry category (elementwise, reduction, movement,
    contraction, index, constant, random); kernels by kind (pointwise, reduction, matmul,
    view, opaque)
  * every edge labelled with the value's type, e.g. f32[32,10]
  * fused kernels as clusters (a box around the primitives of the kernel's body)
  * graph inputs: arguments (green) and captured state (orange, with its label)
  * outputs (blue) and write-backs of state (red, dashed edge "update W")
  * in SVG, hovering a node shows its full IR text (graphc.ir.text.format_node)

collapse=True keeps large graphs legible: each kernel is one box listing its ops, and
consecutive primitives outside kernels that come from the same source line (node.loc) are
merged into one box (at most group_size=8 per box).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter

from .ir.graph import Graph
from .ir.text import format_node, format_input

CATEGORY_COLORS = {
    "elementwise": "#cfe8ff",
    "reduction": "#ffd6a5",
    "movement": "#fff3b0",
    "contraction": "#e4c1f9",
    "index": "#c7f9cc",
    "constant": "#e9ecef",
    "random": "#ffc6d9",
}
KERNEL_COLORS = {
    "pointwise": "#a0c4ff",
    "reduction": "#ffadad",
    "matmul": "#bdb2ff",
    "view": "#fdffb6",
    "opaque": "#d0d0d0",
}
ARG_COLOR, STATE_COLOR, OUT_COLOR, UPDATE_COLOR = "#b9fbc0", "#ffcf99", "#9bf6ff", "#ff8fa3"

INSTALL_HINT = ("Graphviz's `dot` program was not found on PATH. Install it: "
                "`apt-get install -y graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) or "
                "`conda install graphviz`; and the Python package with `pip install graphviz` "
                "(or `pip install 'graphc[tools]'`). Writing a .dot file needs neither.")


class GraphvizNotFound(RuntimeError):
    """Rendering .svg/.png needs Graphviz's `dot` program."""


def category_of(op: str) -> str | None:
    from .ops.registry import PRIMITIVES
    p = PRIMITIVES.get(op)
    return getattr(p, "category", None)


def _q(s) -> str:
    """A DOT double-quoted string."""
    s = str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{s}"'


def _tip(s: str) -> str:
    # tooltips: DOT escapes newlines as \n; keep them as real line breaks in SVG titles
    return _q(s)


def _short_attrs(node, limit=40) -> str:
    from .ir.text import format_value
    parts = []
    for k, v in node.attrs.items():
        if k in ("buffers", "kind"):
            continue
        parts.append(f"{k}={format_value(v)}")
    s = ", ".join(parts)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _op_summary(nodes, per_line=4) -> str:
    c = Counter(n.op for n in nodes)
    items = [f"{op}" + (f" x{k}" if k > 1 else "") for op, k in c.items()]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "\n".join(lines)


class _Dot:
    def __init__(self, name):
        self.lines = [f"digraph {_q(name)} {{",
                      '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, nodesep=0.25, ranksep=0.35];',
                      '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, '
                      'fillcolor="#ffffff"];',
                      '  edge [fontname="Helvetica", fontsize=8, color="#555555"];']
        self.edges = set()

    def node(self, nid, indent="  ", **attrs):
        a = ", ".join(f"{k}={v}" for k, v in attrs.items())
        self.lines.append(f"{indent}{_q(nid)} [{a}];")

    def edge(self, a, b, label=None, **attrs):
        key = (a, b, label)
        if key in self.edges:
            return
        self.edges.add(key)
        if label is not None:
            attrs["label"] = _q(label)
        a_ = ", ".join(f"{k}={v}" for k, v in attrs.items())
        self.lines.append(f"  {_q(a)} -> {_q(b)}" + (f" [{a_}]" if a_ else "") + ";")

    def text(self):
        return "\n".join(self.lines + ["}"]) + "\n"


def to_dot(graph: Graph, collapse: bool = False, title: str | None = None,
           max_nodes: int | None = None, group_size: int = 8) -> str:
    """The graph as Graphviz DOT text (see the module docstring for what is drawn).

    collapse: one box per kernel (with its op list), and for primitives outside kernels one
    box per run of consecutive nodes from the same source line (node.loc), at most
    `group_size` nodes per box. max_nodes: if set and the graph has more nodes (counting kernel
    bodies), collapse is switched on automatically."""
    if max_nodes is not None and graph.primitive_count() > max_nodes:
        collapse = True
    d = _Dot(graph.name)
    label = title if title is not None else f"graph {graph.name}"
    d.lines.append(f"  label={_q(label)}; labelloc=t;")
    src = {}                    # value name -> dot node id that produces it

    # inputs
    for v in graph.inputs:
        nid = f"in:{v.name}"
        src[v.name] = nid
        if v.kind == "state":
            d.node(nid, label=_q(f"state {v.label}\n{v.type}"), shape="cylinder",
                   fillcolor=_q(STATE_COLOR), tooltip=_tip("captured state: " + format_input(v)))
        else:
            d.node(nid, label=_q(f"arg {v.label}\n{v.type}"), shape="invhouse",
                   fillcolor=_q(ARG_COLOR), tooltip=_tip("argument: " + format_input(v)))

    def prim(nid, n, indent="  "):
        cat = category_of(n.op)
        attrs = _short_attrs(n)
        lbl = n.op + (f"\n{attrs}" if attrs else "")
        d.node(nid, indent, label=_q(lbl), fillcolor=_q(CATEGORY_COLORS.get(cat, "#ffffff")),
               tooltip=_tip(format_node(n, locs=True) + (f"\ncategory: {cat}" if cat else "")))

    def in_edges(nid, n, env):
        for v in n.inputs:
            s = env.get(v.name)
            if s is not None and s != nid:
                d.edge(s, nid, str(v.type))

    if collapse:
        # kernels: one box each; primitives: runs of consecutive nodes from the same source
        # line, at most `group_size` per box
        groups, order = {}, []         # group key -> list of nodes
        run_key, run_len, k = None, 0, 0
        for i, n in enumerate(graph.nodes):
            if n.op == "kernel" or n.body is not None:
                key, run_key = ("k", i), None
            elif n.loc:
                if run_key is not None and run_key[1] == str(n.loc) and run_len < group_size:
                    key = run_key
                    run_len += 1
                else:
                    k += 1
                    key = run_key = ("loc", str(n.loc), k)
                    run_len = 1
            else:
                key, run_key = ("n", i), None
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append(n)
        gid = {}
        for j, key in enumerate(order):
            nid = f"g{j}"
            nodes = groups[key]
            for n in nodes:
                for v in n.outs:
                    gid[v.name] = nid
            if key[0] == "k":
                n = nodes[0]
                kind = n.attrs.get("kind", "kernel")
                body = _op_summary(n.body.nodes) if n.body is not None else ""
                outs = ", ".join(f"%{v.name}" for v in n.outs)
                lbl = f"kernel [{kind}] -> {outs}\n{body}"
                d.node(nid, label=_q(lbl), fillcolor=_q(KERNEL_COLORS.get(kind, "#d0d0d0")),
                       tooltip=_tip(format_node(n, locs=True)))
            elif len(nodes) == 1:
                prim(nid, nodes[0])
            else:
                cats = Counter(category_of(n.op) for n in nodes)
                cat = cats.most_common(1)[0][0]
                lbl = f"{key[1]}  ({len(nodes)} ops)\n{_op_summary(nodes)}"
                d.node(nid, label=_q(lbl), fillcolor=_q(CATEGORY_COLORS.get(cat, "#ffffff")),
                       tooltip=_tip("\n".join(format_node(n, locs=True) for n in nodes)))
        env = dict(src)
        env.update(gid)
        for n in graph.nodes:
            me = gid[n.out.name]
            for v in n.inputs:
                s = env.get(v.name)
                if s is not None and s != me:
                    d.edge(s, me, str(v.type))
        src = env
    else:
        for i, n in enumerate(graph.nodes):
            if n.body is None:
                nid = f"n{i}"
                prim(nid, n)
                in_edges(nid, n, src)
                src[n.out.name] = nid
                continue
            # a kernel: a cluster holding its body's primitives
            kind = n.attrs.get("kind", "kernel")
            body = n.body
            benv = {}
            for bv, ov in zip(body.inputs, n.inputs):
                benv[bv.name] = src.get(ov.name)
            color = KERNEL_COLORS.get(kind, "#d0d0d0")
            d.lines.append(f"  subgraph {_q(f'cluster_k{i}')} {{")
            bufs = n.attrs.get("buffers")
            extra = f"  buffers={[str(b) for b in bufs]}" if bufs else ""
            d.lines.append(f"    label={_q(f'kernel {body.name} [{kind}]' + extra)}; style=\"rounded,filled\"; "
                           f"fillcolor={_q(color + '55')}; color={_q(color)}; fontsize=10;")
            d.lines.append(f"    tooltip={_tip(format_node(n, locs=True))};")
            ids = []
            for j, bn in enumerate(body.nodes):
                nid = f"n{i}.{j}"
                ids.append((nid, bn))
                prim(nid, bn, indent="    ")
                benv[bn.out.name] = nid
            if not body.nodes:      # an empty body: draw the kernel as a box
                nid = f"n{i}"
                d.node(nid, "    ", label=_q(f"kernel [{kind}]"), fillcolor=_q(color),
                       tooltip=_tip(format_node(n, locs=True)))
                for v in n.inputs:
                    if src.get(v.name):
                        d.edge(src[v.name], nid, str(v.type))
                for v in n.outs:
                    benv_out = nid
                    src[v.name] = benv_out
                d.lines.append("  }")
                continue
            d.lines.append("  }")
            for nid, bn in ids:
                in_edges(nid, bn, benv)
            for bo, ov in zip(body.outputs, n.outs):
                src[ov.name] = benv.get(bo.name)

    # outputs and write-backs
    for k, v in enumerate(graph.outputs):
        nid = f"out:{k}"
        d.node(nid, label=_q(f"output {k}\n%{v.name}: {v.type}"), shape="house",
               fillcolor=_q(OUT_COLOR), tooltip=_tip(f"returned value {k}: %{v.name}: {v.type}"))
        s = src.get(v.name)
        if s is not None:
            d.edge(s, nid, str(v.type), color=_q("#1d3557"))
    for k, (lbl, v) in enumerate(graph.updates):
        nid = f"upd:{k}"
        d.node(nid, label=_q(f"update {lbl}\n<- %{v.name}"), shape="cylinder",
               fillcolor=_q(UPDATE_COLOR), tooltip=_tip(f"write-back: update {lbl} <- %{v.name}: {v.type}"))
        s = src.get(v.name)
        if s is not None:
            d.edge(s, nid, f"{v.type} (write-back)", style="dashed", color=_q("#d62828"))
    return d.text()


def have_dot() -> bool:
    return shutil.which("dot") is not None


def dot_to(dot_text: str, fmt: str) -> bytes:
    """Run Graphviz on DOT text; fmt is 'svg' or 'png' (or any format dot knows)."""
    if not have_dot():
        raise GraphvizNotFound(INSTALL_HINT)
    try:
        import graphviz  # the PyPI package: a thin wrapper over the same program
        return graphviz.Source(dot_text).pipe(format=fmt)
    except ImportError:
        pass
    r = subprocess.run(["dot", f"-T{fmt}"], input=dot_text.encode(), capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"dot failed: {r.stderr.decode(errors='replace')}")
    return r.stdout


def to_svg(graph: Graph, **kwargs) -> str:
    """The picture as SVG text (for inlining in HTML)."""
    return dot_to(to_dot(graph, **kwargs), "svg").decode("utf-8")


def render(graph: Graph, path, collapse: bool = False, **kwargs) -> str:
    """Write the picture of `graph` to `path`: .dot (DOT text), .svg or .png (drawn by
    Graphviz's `dot`; a clear GraphvizNotFound error says how to install it if missing).
    Returns the path."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    text = to_dot(graph, collapse=collapse, **kwargs)
    if ext in ("dot", "gv"):
        with open(path, "w") as f:
            f.write(text)
        return path
    if ext not in ("svg", "png", "pdf"):
        raise ValueError(f"render: unsupported extension .{ext} (use .dot, .svg, .png or .pdf)")
    data = dot_to(text, ext)
    with open(path, "wb") as f:
        f.write(data)
    return path


def compiled_of(fn):
    """The CompiledFunction behind gc.compile(...) (a CompiledModule wraps one)."""
    inner = getattr(fn, "_compiled", None)
    return inner if inner is not None else fn


def visualize(compiled_fn, path, *args, stage: str = "final", collapse: bool = False, **kwargs):
    """Draw the graph compiled_fn has for these arguments after the pass `stage` ("traced",
    a pass name, or "final") to `path` (.dot/.svg/.png). Keyword arguments other than
    `collapse`/`stage` are passed to the compiled function."""
    cf = compiled_of(compiled_fn)
    g = cf.entry(*args, **kwargs).passes.stage(stage)
    return render(g, path, collapse=collapse, title=f"{g.name} after {stage}")
