"""The IR's text form round-trips, and the verifier names what is wrong."""
import importlib
import math

import pytest

from graphc import dtypes as dt
from graphc.ir import (Graph, IRParseError, IRVerifyError, TensorType, parse_graph, print_graph,
                       verify)
from graphc.ops import registry
from graphc.ops.registry import Primitive


def T(shape, dtype=dt.float32):
    return TensorType(tuple(shape), dtype)


# ---- fake primitives, so these tests do not depend on graphc.ops ---------------------------

def _add_infer(a, b):
    if a != b:
        raise TypeError(f"test_add: operands differ: {a} vs {b}")
    return a


def _sum_infer(x, axes, keepdim):
    keep = [1 if i in axes else s for i, s in enumerate(x.shape)] if keepdim else \
        [s for i, s in enumerate(x.shape) if i not in axes]
    return T(keep, x.dtype)


def _concat_infer(*xs, axis):
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return T(shape, xs[0].dtype)


FAKES = [
    Primitive("test_add", "elementwise", _add_infer, None, arity=2),
    Primitive("test_full", "constant", lambda shape, value, dtype: T(shape, dtype), None, arity=0,
              attrs=("shape", "value", "dtype")),
    Primitive("test_sum", "reduction", _sum_infer, None, arity=1, attrs=("axes", "keepdim")),
    Primitive("test_concat", "movement", _concat_infer, None, arity=None, attrs=("axis",)),
    Primitive("test_any", "movement", lambda *a, **k: T(()), None, arity=None,
              attrs=("v",)),
]


@pytest.fixture(autouse=True)
def fakes():
    for p in FAKES:
        registry.PRIMITIVES[p.name] = p
    yield
    for p in FAKES:
        registry.PRIMITIVES.pop(p.name, None)


def roundtrip(text):
    g = parse_graph(text)
    printed = print_graph(g, locs=True)
    g2 = parse_graph(printed)
    assert g2 == g
    assert print_graph(g2, locs=True) == printed
    assert [n.loc for n in g2.nodes] == [n.loc for n in g.nodes]
    return g, printed


FAKE_TEXT = """
graph loss_fn(%x: f32[2,3], state %w: f32[2,3], state %w.grad: f32[2,3] "w.grad",
              state %v: f32[3] "fc 1.weight") {
  %0: f32[2,3] = test_add(%x, %w)            # model.py:12
  %1: f32[3] = test_sum(%0) {axes=(0,), keepdim=False}
  %2: f32[] = test_full() {shape=(), value=-0.5, dtype=f32}

  # a full-line comment
  %3: f32[4,3] = test_concat(%x, %w)  {axis=0}
  return %1, %3, %1
  update w.grad <- %0
  update "fc 1.weight" <- %1
}
"""


def test_handwritten_roundtrip():
    g, printed = roundtrip(FAKE_TEXT)
    verify(g)
    assert [v.name for v in g.inputs] == ["x", "w", "w.grad", "v"]
    assert [v.kind for v in g.inputs] == ["arg", "state", "state", "state"]
    assert g.inputs[3].label == "fc 1.weight"
    assert g.nodes[0].loc == "model.py:12" and g.nodes[1].loc is None
    assert g.nodes[1].attrs == {"axes": (0,), "keepdim": False}
    assert g.nodes[2].attrs["dtype"] is dt.float32
    assert g.nodes[2].out.type == T(())
    assert [v.name for v in g.outputs] == ["1", "3", "1"]
    assert g.updates[1][0] == "fc 1.weight" and g.updates[1][1] is g.nodes[1].out
    lines = printed.splitlines()
    assert lines[0] == ('graph loss_fn(%x: f32[2,3], state %w: f32[2,3], state %w.grad: f32[2,3], '
                        'state %v: f32[3] "fc 1.weight") {')
    assert lines[1] == "  %0: f32[2,3] = test_add(%x, %w)  # model.py:12"
    assert lines[2] == "  %1: f32[3] = test_sum(%0) {axes=(0,), keepdim=False}"
    assert lines[3] == "  %2: f32[] = test_full() {shape=(), value=-0.5, dtype=f32}"
    assert lines[-3:] == ['  update w.grad <- %0', '  update "fc 1.weight" <- %1', "}"]
    assert "#" not in print_graph(g)        # locs only on request
    assert str(g) == print_graph(g)


def test_messy_whitespace_and_no_outputs():
    text = "\n\n  graph   g  (  %a :f32[ 2 , 2 ] ,state  %b: i64[]  )  {  \n" \
           "%c  :  f32[2,2]=test_add( %a ,%a )\n   return  \n}\n\n# trailing comment\n"
    g, printed = roundtrip(text)
    assert printed == ("graph g(%a: f32[2,2], state %b: i64[]) {\n"
                       "  %c: f32[2,2] = test_add(%a, %a)\n  return\n}")
    assert g.inputs[1].type == T((), dt.int64) and g.outputs == []


def test_empty_and_odd_graph_names():
    for name in ["<lambda>", "", "my fn", "f.g_1"]:
        g = Graph(name)
        g.add_input(T((1,)), label="x")
        g2 = parse_graph(print_graph(g))
        assert g2.name == name and g2 == g


def test_value_names_roundtrip_and_fresh_names_continue():
    g = Graph("f")
    x = g.add_input(T((2,)), label="x")
    a = g.add_node("test_add", [x, x], {}, T((2,)), name="my.val")
    b = g.add_node("test_add", [a, a], {}, T((2,)))
    g.outputs = [b]
    h = parse_graph(print_graph(g))
    assert [n.out.name for n in h.nodes] == ["my.val", "0"]
    assert h.fresh_name() not in {"x", "my.val", "0"}


ATTR_VALUES = [
    0, -3, 2 ** 70, 1.5, -2.25, 1e-30, -0.0, 0.1, math.inf, -math.inf, math.nan,
    True, False, None, "hello", "it's a \"quote\" # not a comment }", b"\x00\xff",
    (), (1,), (0, -1, 2), ((1, 2), (3,), ()), (1.5, math.nan, -math.inf, None, "s"),
    dt.float32, dt.float64, dt.int64, dt.bool_, (dt.int64, dt.bool_),
]


@pytest.mark.parametrize("value", ATTR_VALUES, ids=repr)
def test_attr_values_roundtrip(value):
    g = Graph("f")
    g.add_node("test_any", [], {"v": value}, T(()))
    g2, _ = roundtrip(print_graph(g))
    assert g2 == g
    got = g2.nodes[0].attrs["v"]
    if isinstance(value, float) and math.isnan(value):
        assert math.isnan(got)
    else:
        assert got == value and type(got) is type(value)
    if isinstance(value, float):
        assert math.copysign(1, got) == math.copysign(1, value)


def test_attr_printing_and_normalisation():
    np = pytest.importorskip("numpy")
    g = Graph("f")
    g.add_node("test_any", [], {"v": [np.int64(3), np.float32(0.5), np.bool_(True)]}, T(()))
    assert "{v=(3, 0.5, True)}" in print_graph(g)
    assert parse_graph(print_graph(g)) == g                # lists compare equal to tuples
    h = parse_graph("graph f() {\n %0: f32[] = test_any() {v=[1, +2, float64, float, nan]}\n}")
    assert h.nodes[0].attrs["v"][:4] == (1, 2, dt.float64, dt.float32)
    assert "{v=(1, 2, f64, f32, nan)}" in print_graph(h)
    # equality is strict about kinds: 1, 1.0 and True are different attrs
    texts = [f"graph f() {{\n %0: f32[] = test_any() {{v={v}}}\n}}" for v in ("1", "1.0", "True")]
    a, b, c = (parse_graph(t) for t in texts)
    assert a != b and b != c and a != c
    # unregistered ops print their attrs sorted
    g = Graph("f")
    g.add_node("mystery", [], {"z": 1, "a": 2}, T(()))
    assert "mystery() {a=2, z=1}" in print_graph(g)


@pytest.mark.parametrize("bad", ["__import__('os').system('true')", "1 + 2", "x", "f32.np",
                                 "(lambda: 1)()", "-'s'", "{**d}"])
def test_attr_values_parsed_safely(bad):
    with pytest.raises(IRParseError, match="line 2"):
        parse_graph(f"graph f() {{\n %0: f32[] = test_any() {{v={bad}}}\n}}")


def _parse_error(text):
    with pytest.raises(IRParseError) as e:
        parse_graph(text)
    return str(e.value)


def test_parse_errors_name_line():
    msg = _parse_error("graph f(%x: f32[2]) {\n  %0: f33[2] = test_add(%x, %x)\n}")
    assert "line 2" in msg and "f33" in msg and "%0: f33[2]" in msg
    msg = _parse_error("graph f(%x: f32[2]) {\n  %0: f32[a] = test_add(%x, %x)\n}")
    assert "line 2" in msg and "shape" in msg
    msg = _parse_error("graph f(%x: f32[2]) {\n\n  %0: f32[2] = test_add(%x, %y)\n}")
    assert "line 3" in msg and "%y" in msg
    msg = _parse_error("graph f(%x: f32[2]) {\n  %1: f32[2] = test_add(%x, %0)\n"
                       "  %0: f32[2] = test_add(%x, %x)\n}")
    assert "line 2" in msg and "%0" in msg                      # use before def
    msg = _parse_error("graph f(%x: f32[2]) {\n  this is not IR\n}")
    assert "line 2" in msg and "this is not IR" in msg
    msg = _parse_error("graph f(%x: f32[2]) {\n  return %x\n  update w <- %nope\n}")
    assert "line 3" in msg and "%nope" in msg
    msg = _parse_error("graph f(%x: f32[2]) {\n  return %x, %q\n}")
    assert "line 2" in msg and "%q" in msg
    msg = _parse_error("graph f(%x: f32[2]) {\n  %x: f32[2] = test_add(%x, %x)\n}")
    assert "line 2" in msg and "twice" in msg
    msg = _parse_error("graph f(%x: f32[2], %x: f32[2]) {\n}")
    assert "line 1" in msg and "twice" in msg
    msg = _parse_error("graph f(%x: f32[2]) {\n  return %x\n")
    assert "missing closing" in msg
    msg = _parse_error("graph f(%x: f32[2]) {\n}\n%0: f32[2] = test_add(%x, %x)")
    assert "line 3" in msg
    msg = _parse_error("grph f() {\n}")
    assert "line 1" in msg
    msg = _parse_error("graph f(%x f32[2]) {\n}")
    assert "line 1" in msg
    msg = _parse_error("graph f() {\n  %0: f32[] = test_any() {v=1, v=2}\n}")
    assert "line 2" in msg
    assert "line 1" in _parse_error("   \n")
    assert issubclass(IRParseError, ValueError)


# ---- verifier ------------------------------------------------------------------------------

def _small():
    return parse_graph(FAKE_TEXT)


def _verify_error(g):
    with pytest.raises(IRVerifyError) as e:
        verify(g)
    return str(e.value)


def test_verify_accepts_and_returns_graph():
    g = _small()
    assert verify(g) is g
    assert issubclass(IRVerifyError, ValueError)


def test_verify_wrong_out_type():
    g = parse_graph("graph f(%x: f32[2]) {\n  %0: f32[3] = test_add(%x, %x)\n}")
    msg = _verify_error(g)
    assert "%0: f32[3] = test_add(%x, %x)" in msg and "f32[2]" in msg
    g = parse_graph("graph f(%x: f32[2]) {\n  %0: f64[2] = test_add(%x, %x)\n}")
    assert "f64[2]" in _verify_error(g)


def test_verify_infer_failure_keeps_message():
    g = parse_graph("graph f(%x: f32[2], %y: f32[3]) {\n  %0: f32[2] = test_add(%x, %y)\n}")
    msg = _verify_error(g)
    assert "%0: f32[2] = test_add(%x, %y)" in msg and "operands differ" in msg


def test_verify_use_before_def():
    g = _small()
    g.nodes[0], g.nodes[1] = g.nodes[1], g.nodes[0]
    msg = _verify_error(g)
    assert "%1: f32[3] = test_sum(%0)" in msg and "%0" in msg
    # identity, not name: a value of the same name from another graph is not defined here
    g, other = _small(), _small()
    g.nodes[1].inputs[0] = other.nodes[0].out
    assert "test_sum" in _verify_error(g)


def test_verify_unknown_op_arity_and_attrs():
    g = parse_graph("graph f(%x: f32[2]) {\n  %0: f32[2] = frobnicate(%x)\n}")
    assert "unknown op 'frobnicate'" in _verify_error(g)
    g = parse_graph("graph f(%x: f32[2]) {\n  %0: f32[2] = test_add(%x)\n}")
    assert "takes 2 inputs" in _verify_error(g)
    g = parse_graph("graph f(%x: f32[2]) {\n  %0: f32[] = test_sum(%x) {axes=(0,)}\n}")
    msg = _verify_error(g)
    assert "%0: f32[] = test_sum(%x) {axes=(0,)}" in msg and "keepdim" in msg
    g = parse_graph("graph f(%x: f32[2]) {\n"
                    "  %0: f32[] = test_sum(%x) {axes=(0,), keepdim=False, bogus=1}\n}")
    assert "bogus" in _verify_error(g)


def test_verify_updates_outputs_and_inputs():
    g = parse_graph("graph f(%x: f32[2], state %w: f32[3] \"fc.w\") {\n"
                    "  %0: f32[2] = test_add(%x, %x)\n  update fc.w <- %0\n}")
    msg = _verify_error(g)
    assert "fc.w" in msg and "f32[3]" in msg and "f32[2]" in msg
    g = _small()
    g.updates.append(g.updates[0])
    assert "twice" in _verify_error(g)
    g = _small()
    g.outputs.append(_small().nodes[0].out)
    assert "return value %0" in _verify_error(g)
    g = _small()
    g.updates.append(("new", _small().nodes[0].out))
    assert "%0" in _verify_error(g)
    g = _small()
    g.inputs[0].kind = "weird"
    assert "kind" in _verify_error(g)
    g = _small()
    g.nodes[2].out.name = "0"
    assert "defined twice" in _verify_error(g)
    g = _small()
    g.nodes[0].out.producer = g.nodes[1]
    assert "producer" in _verify_error(g)
    # an update of a label that is not a state input (a new slot) is fine
    g = _small()
    g.updates.append(("brand.new", g.nodes[0].out))
    verify(g)


# ---- Graph.copy ----------------------------------------------------------------------------

def test_copy_equal_and_independent():
    g = _small()
    c = g.copy()
    assert c == g and print_graph(c, locs=True) == print_graph(g, locs=True)
    assert all(a is not b for a, b in zip(c.nodes, g.nodes))
    verify(c)
    c.nodes[1].attrs["keepdim"] = True
    assert c != g
    c = g.copy()
    c.nodes[0].loc = "elsewhere.py:1"
    assert c == g                                               # locs are not structure
    c = g.copy()
    c.updates.pop()
    assert c != g
    assert g != "graph" and not (g == 3)


# ---- the real primitives, once graphc.ops registers them -----------------------------------

def _real_ops():
    importlib.import_module("graphc.ops")       # an import error is a failure, not a skip
    assert "matmul" in registry.PRIMITIVES, "graphc.ops registers no primitives"


REAL_TEXT = """
graph mlp(%x: f32[4,3], %y: i64[4], state %w: f32[3,2] "fc.weight", state %b: f32[2] "fc.bias") {
  %0: f32[4,2] = matmul(%x, %w) {transpose_a=False, transpose_b=False}  # model.py:3
  %1: f32[1,2] = reshape(%b) {shape=(1, 2)}
  %2: f32[4,2] = broadcast_to(%1) {shape=(4, 2)}
  %3: f32[4,2] = add(%0, %2)
  %4: f32[] = full() {shape=(), value=-inf, dtype=f32}
  %5: f32[4,2] = broadcast_to(%4) {shape=(4, 2)}
  %6: b1[4,2] = gt(%3, %5)
  %7: f32[4,2] = where(%6, %3, %5)
  %8: i64[4] = argmax(%7) {axis=1, keepdim=False}
  %9: b1[4] = eq(%8, %y)
  %10: f32[4] = cast(%9) {dtype=f32}
  %11: f32[] = sum(%10) {axes=(0,), keepdim=False}
  %12: f32[2,4] = permute(%7) {perm=(1, 0)}
  %13: f32[4,1] = slice(%7) {starts=(0, 1), stops=(4, 2), steps=(1, 1)}
  %14: f32[4,3] = concat(%13, %7) {axis=1}
  %15: f32[4,2] = tanh(%3)
  return %11, %12, %14, %15
  update fc.bias <- %b
}
"""


def test_real_primitives_roundtrip_and_verify():
    _real_ops()
    g, printed = roundtrip(REAL_TEXT)
    verify(g)
    assert "  %1: f32[1,2] = reshape(%b) {shape=(1, 2)}" in printed.splitlines()
    bad = parse_graph(REAL_TEXT.replace("%3: f32[4,2] = add(%0, %2)", "%3: f32[4,2] = add(%0, %1)"))
    msg = _verify_error(bad)
    assert "%3: f32[4,2] = add(%0, %1)" in msg
    bad = parse_graph(REAL_TEXT.replace("%10: f32[4] = cast", "%10: f64[4] = cast"))
    assert "%10: f64[4] = cast(%9) {dtype=f32}" in _verify_error(bad)


def test_verify_catches_inputs_edited_behind_the_graphs_back():
    """A node's inputs list mutated in place leaves the kept use-lists stale: the verifier (run
    after every pass) says so instead of letting a later pass read wrong users."""
    g = parse_graph("graph f(%x: f32[2], %y: f32[2]) {\n  %0: f32[2] = test_add(%x, %x)\n}")
    verify(g)
    g.nodes[0].inputs[1] = g.inputs[1]
    with pytest.raises(IRVerifyError, match="use-lists"):
        verify(g)
