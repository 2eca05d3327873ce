"""ir.Graph's level and its edit methods (use-lists, replace_all_uses, insert, erase)."""
import pytest

import graphc as gc
from graphc import dtypes as dt
from graphc.ir import parse_graph, print_graph
from graphc.ir.graph import Graph, TensorType

T = TensorType((2, 3), dt.float32)


def _graph():
    g = Graph("f")
    x = g.add_input(T, label="x")
    a = g.add_node("neg", [x], {}, T)
    b = g.add_node("add", [a, a], {}, T)
    g.outputs = [b]
    return g, x, a, b


def test_uses_replace_insert_erase():
    g, x, a, b = _graph()
    assert g.uses(a) == [b.producer] and g.users()[a.name] == [b.producer, b.producer]
    assert g.is_used(b) and g.is_used(x)
    with pytest.raises(ValueError, match="reads it"):
        g.erase(a.producer)
    c = g.insert_after(a.producer, g.make_node("exp", [x], {}, T))
    assert [n.out for n in g.nodes] == [a, c, b]
    assert g.replace_all_uses(a, c) == 2 and g.uses(a) == []
    g.erase(a.producer)
    assert [n.out for n in g.nodes] == [c, b]
    d = g.insert_before(c.producer, g.make_node("neg", [x], {}, T))
    assert g.replace_all_uses(b, d) == 1 and g.outputs == [d]
    with pytest.raises(ValueError, match="permutation"):
        g.reorder(g.nodes[:1])
    assert len({n.out.name for n in g.nodes}) == 3


def test_level_through_the_pipeline_and_the_text():
    x = gc.randn(4, 8)
    f = gc.compile(lambda x: gc.relu(x) * 2.0, backend="interp")
    levels = {name: g.level for name, g in f.entry(x).passes.stages}
    assert levels["traced"] == levels["dce"] == "traced"
    assert levels["fusion"] == levels["schedule"] == "kernels" and levels["memory"] == "planned"
    for name, g in f.entry(x).passes.stages:
        assert parse_graph(print_graph(g)).level == g.level == g.copy().level
    g = f.entry(x).passes.final
    assert g.is_fused and g.is_planned and not g.is_traced
    with pytest.raises(ValueError):
        g.level = "fused"
