"""The import layering of graphc/ is one-way: no circle among module-level imports, and no import
placed inside a function to dodge one (one that would close a circle if it moved to the module's
top). Imports inside functions for another reason (numba, llvmlite, nn/optim loaded lazily) are
fine. The check parses graphc/ itself (ast + networkx); ../shared/tools/layering.py reports the
same circles with file sizes.

Layers, bottom up: dtypes, mode, device, ir, ops.registry -> autograd -> tensor -> ops ->
passes -> tracing -> compiler; backends register with device (and with backends.register).
"""
from __future__ import annotations

import ast
import os
import sys

import networkx as nx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "graphc")

# Function-level imports known to close a circle if moved to the top, each with its reason.
# A new one fails the test; one listed here that no longer closes a circle fails it too (so the
# list shrinks as they are fixed). Key: (importing module, imported module).
KNOWN_DODGES = {
}


def _modules():
    mods = {}
    for d, dirs, files in os.walk(PKG):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        for f in files:
            if f.endswith(".py"):
                p = os.path.join(d, f)
                name = os.path.relpath(p, ROOT)[:-3].replace(os.sep, ".")
                if name.endswith(".__init__"):
                    name = name[: -len(".__init__")]
                mods[name] = p
    return mods


def _resolve(cur, is_pkg, level, module):
    if level == 0:
        return module
    base = cur.split(".") if is_pkg else cur.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _top_level_nodes(tree):
    """ids of the import statements that run when the module is imported (module body, also inside
    module-level if/try/with and class bodies), as opposed to those inside a function."""
    out = set()

    def walk(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.add(id(child))
            walk(child)
    walk(tree)
    return out


def import_graphs():
    """(top, inner): module -> module graphs of graphc's imports at import time and inside
    functions; each edge carries the line of (one of) its import statements."""
    mods = _modules()
    top, inner = nx.DiGraph(), nx.DiGraph()
    top.add_nodes_from(mods)
    inner.add_nodes_from(mods)
    for name, path in mods.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        is_pkg = path.endswith("__init__.py")
        at_top = _top_level_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                m = _resolve(name, is_pkg, node.level, node.module)
                targets = [m] + [f"{m}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rsplit(".", 1)[0] if "." in t else ""
                # a package's own __init__ is not an edge from inside it (it has run already)
                if not t or t == name or name.startswith(t + "."):
                    continue
                g = top if id(node) in at_top else inner
                if not g.has_edge(name, t):
                    g.add_edge(name, t, line=node.lineno)
    return top, inner


def _describe(g, cycle):
    return " -> ".join(f"{a} (line {g.edges[a, b]['line']})" for a, b in zip(cycle, cycle[1:] + cycle[:1])) \
        + f" -> {cycle[0]}"


def test_no_import_circle_among_module_level_imports():
    top, _ = import_graphs()
    circles = [sorted(c) for c in nx.strongly_connected_components(top) if len(c) > 1]
    details = []
    for comp in circles:
        details.append(_describe(top, [e[0] for e in nx.find_cycle(top.subgraph(comp))]))
    assert not circles, "import circles in graphc/:\n  " + "\n  ".join(details)


def test_no_import_circle_counting_function_level_imports():
    """Also no circle through imports inside functions (both ends lazy, as llvm's pool <-> runtime
    once were): ../shared/tools/layering.py counts these too."""
    top, inner = import_graphs()
    both = nx.compose(inner, top)
    circles = [sorted(c) for c in nx.strongly_connected_components(both) if len(c) > 1]
    details = [_describe(both, [e[0] for e in nx.find_cycle(both.subgraph(c))]) for c in circles]
    assert not circles, "import circles in graphc/ (counting function-level imports):\n  " + "\n  ".join(details)


def dodges():
    """Function-level imports a -> b where b already reaches a through module-level imports:
    moved to the top they would close a circle. {(a, b): (line, the path b -> ... -> a)}."""
    top, inner = import_graphs()
    out = {}
    for a, b, data in inner.edges(data=True):
        if top.has_edge(a, b):
            continue
        if nx.has_path(top, b, a):
            out[(a, b)] = (data["line"], nx.shortest_path(top, b, a))
    return out


def test_no_function_level_import_dodges_a_circle():
    found = dodges()
    new = {k: v for k, v in found.items() if k not in KNOWN_DODGES}
    fixed = sorted(k for k in KNOWN_DODGES if k not in found)
    msg = [f"{a}:{line} imports {b} inside a function; at the top it would close the circle "
           f"{' -> '.join([a] + path)}" for (a, b), (line, path) in sorted(new.items())]
    assert not new, "function-level imports that dodge an import circle:\n  " + "\n  ".join(msg)
    assert not fixed, f"no longer dodging a circle, remove from KNOWN_DODGES: {fixed}"


def test_the_dispatch_mode_and_device_are_leaves():
    """mode.py and device.py import nothing from graphc: every layer may consult them."""
    top, inner = import_graphs()
    for leaf in ("graphc.mode", "graphc.device"):
        assert not list(top.successors(leaf)) and not list(inner.successors(leaf)), \
            (leaf, list(top.successors(leaf)), list(inner.successors(leaf)))


def test_the_check_sees_a_new_circle(tmp_path, monkeypatch):
    """A circle among two modules and a function-level import dodging one are both found."""
    pkg = tmp_path / "graphc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("from .a import x\n")
    (pkg / "c.py").write_text("from . import d\n")
    (pkg / "d.py").write_text("def f():\n    from . import c\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    monkeypatch.setattr(sys.modules[__name__], "PKG", str(pkg))
    top, _ = import_graphs()
    assert [sorted(c) for c in nx.strongly_connected_components(top) if len(c) > 1] == [["graphc.a", "graphc.b"]]
    assert set(dodges()) == {("graphc.d", "graphc.c")}
