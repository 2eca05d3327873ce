"""The IR printer and the canonical form: what Graph.__str__ and Graph.__eq__ use.

It reads graphs, nodes and values by their attributes and imports nothing of ir.graph, so
graph.py imports it at its top; ir.text (the parser, which builds Graphs) re-exports it.
"""
from __future__ import annotations

import json
import math
import re

import numpy as np

from .. import dtypes as _dt
from ..ops import registry as _registry


# ---- printing -----------------------------------------------------------------------------

_BARE = re.compile(r"[A-Za-z0-9_.]+\Z")


def _label(s: str, quote: bool = False) -> str:
    """A label or graph name: bare when it is letters, digits, _ and ., else a quoted string."""
    return s if (not quote and _BARE.match(s)) else json.dumps(s)


def _scalar(v):
    """numpy scalars behave like the Python scalars they hold."""
    if isinstance(v, np.generic):
        return v.item()
    return v


def format_value(v) -> str:
    """An attribute value as the literal the parser reads back."""
    v = _scalar(v)
    if isinstance(v, _dt.DType):
        return v.short
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (tuple, list)):
        items = [format_value(x) for x in v]
        return "(" + items[0] + ",)" if len(items) == 1 else "(" + ", ".join(items) + ")"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{format_value(k)}: {format_value(x)}" for k, x in v.items()) + "}"
    return repr(v)   # int, bool, None, str, bytes


def _ordered_attrs(node) -> list:
    """Attrs in the primitive's declared order (unknown keys, and unknown ops, sorted)."""
    prim = _registry.PRIMITIVES.get(node.op)
    order = [k for k in prim.attrs if k in node.attrs] if prim is not None else []
    return order + sorted(k for k in node.attrs if k not in order)


def format_node(node, locs: bool = False) -> str:
    """One node as its printed line (without indentation); a kernel's line is followed by its
    body graph, indented."""
    args = ", ".join("%" + v.name for v in node.inputs)
    outs = ", ".join(f"%{v.name}: {v.type}" for v in node.outs)
    s = f"{outs} = {node.op}({args})"
    if node.attrs:
        s += " {" + ", ".join(f"{k}={format_value(node.attrs[k])}" for k in _ordered_attrs(node)) + "}"
    if locs and node.loc:
        s += "  # " + " ".join(str(node.loc).split())
    if node.body is not None:
        s += "\n" + "\n".join("  " + line for line in print_graph(node.body, locs).splitlines())
    return s


def format_input(v) -> str:
    s = ("state " if v.kind == "state" else "") + f"%{v.name}: {v.type}"
    if v.label != v.name:
        s += " " + _label(v.label, quote=True)
    return s


def print_graph(g: Graph, locs: bool = False) -> str:
    """The graph as text; with locs=True each node line ends with `# file.py:line`."""
    lines = [f"graph {_label(g.name)}(" + ", ".join(format_input(v) for v in g.inputs) + ") {"]
    lines += ["  " + line for n in g.nodes for line in format_node(n, locs).splitlines()]
    lines.append("  return" + ("" if not g.outputs else " " + ", ".join("%" + v.name for v in g.outputs)))
    lines += [f"  update {_label(lbl)} <- %{v.name}" for lbl, v in g.updates]
    lines.append("}")
    return "\n".join(lines)


# ---- canonical form -----------------------------------------------------------------------

def _norm(v):
    """A hashable, comparable form of an attr value: nan == nan, 1 != 1.0 != True, lists == tuples."""
    v = _scalar(v)
    if isinstance(v, _dt.DType):
        return ("dtype", v.name)
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, float):
        return ("float", repr(v))
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (tuple, list)):
        return tuple(_norm(x) for x in v)
    if isinstance(v, dict):
        return ("dict", tuple(sorted(((_norm(k), _norm(x)) for k, x in v.items()), key=repr)))
    return v


def structure(g: Graph) -> tuple:
    """The canonical nested tuple Graph.__eq__ compares; locs are left out."""
    return (
        g.name,
        tuple((v.name, str(v.type), v.kind, v.label) for v in g.inputs),
        tuple((n.op, tuple(v.name for v in n.inputs),
               tuple(sorted((k, _norm(x)) for k, x in n.attrs.items())),
               tuple((v.name, str(v.type)) for v in n.outs),
               structure(n.body) if n.body is not None else None) for n in g.nodes),
        tuple(v.name for v in g.outputs),
        tuple((lbl, v.name) for lbl, v in g.updates),
    )
