"""graphc.viz (graph pictures) and graphc.memplot (memory plan pictures)."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

import graphc as gc
import graphc.nn as nn
import graphc.nn.functional as F
from graphc import viz
from graphc.ir.text import format_node

needs_dot = pytest.mark.skipif(not viz.have_dot(), reason="Graphviz `dot` not installed")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def train_step():
    gc.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    @gc.compile
    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    args = (gc.randn(8, 16), gc.randint(0, 10, (8,)))
    step(*args)
    return step, args


def assert_svg(path_or_text, is_text=False):
    text = path_or_text if is_text else open(path_or_text, encoding="utf-8").read()
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag.endswith("svg")


def assert_png(path):
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) > 100 and data[:8] == PNG_MAGIC


def test_dot_marks_inputs_state_updates_clusters_and_types():
    step, args = train_step()
    final = step.graph(*args)
    dot = viz.to_dot(final)
    assert dot.startswith("digraph")
    assert "subgraph \"cluster_k" in dot                      # fused kernels as clusters
    assert "arg x" in dot and "state model.0.weight" in dot   # args vs captured state
    assert "update model.0.weight" in dot and "write-back" in dot
    assert "f32[8,16]" in dot and "i64[8]" in dot             # edge labels: type
    # tooltips carry the full node text
    k = final.kernels()[0]
    first_line = format_node(k.body.nodes[0], locs=True).splitlines()[0]
    assert first_line.replace('"', '\\"') in dot
    # categories coloured
    assert viz.CATEGORY_COLORS["contraction"] in dot
    assert any(c in dot for c in viz.KERNEL_COLORS.values())


def test_collapse_draws_one_box_per_kernel_and_groups_primitives_by_line():
    step, args = train_step()
    final = step.graph(*args)
    dot = viz.to_dot(final, collapse=True)
    assert "cluster_" not in dot
    assert dot.count("kernel [") == len(final.kernels())
    traced = step.graph(*args, stage="traced")
    full, coll = viz.to_dot(traced), viz.to_dot(traced, collapse=True)
    assert coll.count("->") < full.count("->")
    assert "ops)" in coll                          # a box standing for several primitives of one line
    # automatic collapse past max_nodes
    assert "cluster_" not in viz.to_dot(final, max_nodes=5)


@needs_dot
@pytest.mark.parametrize("stage", ["traced", "fusion", "final"])
@pytest.mark.parametrize("collapse", [False, True])
def test_render_svg_png_dot(tmp_path, stage, collapse):
    step, args = train_step()
    g = step.graph(*args, stage=stage)
    for ext in ("svg", "png", "dot"):
        p = tmp_path / f"g.{ext}"
        viz.render(g, p, collapse=collapse)
        assert p.exists() and p.stat().st_size > 0
    assert_svg(tmp_path / "g.svg")
    assert "<title>" in (tmp_path / "g.svg").read_text()        # SVG tooltips
    assert_png(tmp_path / "g.png")
    assert (tmp_path / "g.dot").read_text().startswith("digraph")


@needs_dot
def test_visualize_compiled_function(tmp_path):
    step, args = train_step()
    p = viz.visualize(step, tmp_path / "step.svg", *args, stage="final")
    assert_svg(p)
    with pytest.raises(KeyError):
        viz.visualize(step, tmp_path / "x.svg", *args, stage="no_such_pass")


def test_render_without_dot_says_how_to_install(tmp_path, monkeypatch):
    step, args = train_step()
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    with pytest.raises(viz.GraphvizNotFound, match="apt-get install -y graphviz"):
        viz.render(step.graph(*args), tmp_path / "g.svg")
    viz.render(step.graph(*args), tmp_path / "g.dot")           # DOT text needs no Graphviz
    assert (tmp_path / "g.dot").read_text().startswith("digraph")


def test_render_rejects_unknown_extension(tmp_path):
    step, args = train_step()
    with pytest.raises(ValueError, match="extension"):
        viz.render(step.graph(*args), tmp_path / "g.bmp")


def test_memory_plot_png_and_svg(tmp_path):
    pytest.importorskip("matplotlib")
    from graphc.memplot import buffers, memory_svg, plot_memory
    from graphc.passes.memory import memory_report
    step, args = train_step()
    final = step.graph(*args)
    bufs = buffers(final)
    assert bufs and all(off + sz <= memory_report(final)["arena_bytes"] for _, _, _, off, sz, _ in bufs)
    plot_memory(final, tmp_path / "m.png")
    plot_memory(final, tmp_path / "m.svg")
    assert_png(tmp_path / "m.png")
    assert_svg(tmp_path / "m.svg")
    svg = memory_svg(final)
    assert_svg(svg, is_text=True)
    assert "naive" in svg and "lower bound" in svg
    with pytest.raises(ValueError, match="planned"):
        plot_memory(step.graph(*args, stage="traced"))
