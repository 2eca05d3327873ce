"""ir.Graph's level and its edit methods (use-lists, replace_all_uses, insert, erase)."""
import pytest
from hypothesis import given, settings, strategies as st

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


# ---- the kept use-lists -------------------------------------------------------------------

def _fresh_users(g):
    """users() as a scan of the nodes computes it: the reference for the kept lists."""
    u = {}
    for n in g.nodes:
        for v in n.inputs:
            u.setdefault(v.name, []).append(n)
    return u


def _agrees(g):
    g.check_uses()
    assert g.users() == _fresh_users(g)
    for v in list(g.inputs) + [o for n in g.nodes for o in n.outs]:
        assert g.uses(v) == [n for n in g.nodes if any(i is v for i in n.inputs)]


def test_use_lists_follow_every_edit():
    g, x, a, b = _graph()
    _agrees(g)
    assert g.uses(x) == [a.producer] and g.users()[a.name] == [b.producer] * 2
    c = g.insert_before(b.producer, g.make_node("exp", [a], {}, T))       # insert_before
    _agrees(g)
    d = g.insert_after(a.producer, g.make_node("neg", [x], {}, T))        # insert_after
    _agrees(g)
    assert g.uses(x) == [a.producer, d.producer] and g.uses(a) == [c.producer, b.producer]
    e = g.append(g.make_node("mul", [c, d], {}, T))                       # append
    _agrees(g)
    assert g.replace_all_uses(a, d, only=(b.producer,)) == 2              # one node's reads
    _agrees(g)
    assert g.uses(a) == [c.producer] and g.uses(d) == [b.producer, e.producer]
    b.producer.inputs = [x, c]                                            # assigning inputs
    _agrees(g)
    assert g.replace_all_uses(c, d) == 2                                  # every read
    _agrees(g)
    g.erase_all([c.producer, a.producer])                                 # erase_all
    _agrees(g)
    assert a.producer.graph is None and not g.is_used(a)
    g.outputs = [b]
    g.erase(e.producer)                                                   # erase
    _agrees(g)
    g.reorder([d.producer, b.producer])                                   # reorder
    _agrees(g)
    assert g.uses(d) == [b.producer]
    g.nodes = [d.producer]                                                # assigning nodes
    _agrees(g)
    assert b.producer.graph is None and g.uses(x) == [d.producer] and g.uses(d) == []


def test_use_lists_of_copies_parsed_graphs_and_kernel_bodies():
    """Every stage of a training step (autodiff, simplify, fusion, schedule, memory plan)."""
    w = gc.randn(8, 3, requires_grad=True)
    opt = gc.optim.SGD([w], lr=0.1, momentum=0.9)

    def step(x):
        opt.zero_grad()
        loss = (gc.relu(x @ w) * 2.0).sum()
        loss.backward()
        opt.step()
        return loss

    x = gc.randn(4, 8)
    f = gc.compile(step, backend="interp")
    f(x), f(x)                          # the second call traces the steady state (momentum buffers)
    stages = f.entry(x).passes.stages
    assert len(stages) > 5 and any(n.body is not None for _, g in stages for n in g.nodes)
    for _, g in stages:
        _agrees(g)
        _agrees(g.copy())
        _agrees(parse_graph(print_graph(g)))
        for n in g.nodes:
            if n.body is not None:
                _agrees(n.body)


def test_check_uses_catches_edits_that_bypass_the_methods():
    from graphc.ir.graph import UseListError
    g, x, a, b = _graph()
    b.producer.inputs[0] = x                   # mutated in place: the kept lists go stale
    with pytest.raises(UseListError, match="fresh scan"):
        g.check_uses()
    g, x, a, b = _graph()
    g.nodes.pop()                              # the node list mutated in place
    with pytest.raises(UseListError):
        g.check_uses()


def test_a_node_belongs_to_one_graph():
    g, x, a, b = _graph()
    other = Graph("other")
    with pytest.raises(ValueError, match="already a node of graph f"):
        other.append(a.producer)
    with pytest.raises(ValueError, match="not a node of graph other"):
        other.insert_before(a.producer, other.make_node("neg", [x], {}, T))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["append", "before", "after", "replace", "replace_one",
                                           "set_inputs", "erase", "reorder", "copy"]),
                          st.integers(0, 10 ** 6), st.integers(0, 10 ** 6)), max_size=30))
def test_random_edit_sequences_keep_use_lists_equal_to_a_fresh_scan(edits):
    g, x, a, b = _graph()
    for op, i, j in edits:
        nodes = g.nodes
        vals = list(g.inputs) + [n.out for n in nodes]
        pick = lambda k, seq: seq[k % len(seq)]        # noqa: E731
        if op in ("append", "before", "after"):
            if op == "append" or not nodes:
                g.append(g.make_node("add", [pick(i, vals), pick(j, vals)], {}, T))
            else:
                anchor = pick(i, nodes)
                ok = vals[:len(g.inputs) + nodes.index(anchor) + (op == "after")]
                node = g.make_node("add", [pick(j, ok), pick(i + j, ok)], {}, T)
                (g.insert_before if op == "before" else g.insert_after)(anchor, node)
        elif op in ("replace", "replace_one") and nodes:
            n = pick(i, nodes)
            old = pick(j, n.inputs)
            earlier = vals[:len(g.inputs) + nodes.index(n)]
            if op == "replace":      # a graph input is defined before every read of old
                g.replace_all_uses(old, pick(i + j, g.inputs))
            else:
                g.replace_all_uses(old, pick(i + j, earlier), only=(n,))
        elif op == "set_inputs" and nodes:
            n = pick(i, nodes)
            earlier = vals[:len(g.inputs) + nodes.index(n)]
            n.inputs = [pick(j, earlier), pick(i + j, earlier)][:len(n.inputs) or 1]
        elif op == "erase" and nodes:
            n = pick(i, nodes)
            if not g.is_used(n.out):
                g.erase(n)
            else:
                with pytest.raises(ValueError, match="reads it"):
                    g.erase(n)
        elif op == "reorder" and nodes:
            g.reorder(nodes)                      # the same order: a permutation
            with pytest.raises(ValueError, match="permutation"):
                g.reorder(nodes[:-1] + nodes[:1] if len(nodes) > 1 else [])
        elif op == "copy":
            g = g.copy()
        _agrees(g)
