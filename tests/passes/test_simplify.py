"""The simplification passes (graphc/passes/simplify.py): dce, cse, fold_constants and the
algebraic rule table of simplify; the matmul transpose flags they rely on.

Most tests are hand-written IR in, expected IR out (compared as parsed graphs). Every pass must
leave its input graph untouched and produce a graph that verifies. The end-to-end tests run real
traced training steps and random graphs through the interpreter before and after."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

import graphc as gc
from graphc import dtypes as _dt
from graphc.backends.interpreter import Interpreter
from graphc.ir import Graph, TensorType, parse_graph, print_graph, verify
from graphc.ops.registry import PRIMITIVES
from graphc.passes import simplify as S
from graphc.passes.simplify import RULES, cse, dce, fold_constants, simplify
from graphc.tensor import apply
from graphc.testing import gradcheck

PASSES = {"simplify": simplify, "cse": cse, "fold_constants": fold_constants, "dce": dce}


def G(text: str) -> Graph:
    g = parse_graph(textwrap.dedent(text))
    verify(g)
    return g


def run_pass(fn, g: Graph) -> Graph:
    """fn(g), checking that g is untouched (text and structure) and the result verifies."""
    text, copy = print_graph(g, locs=True), g.copy()
    out = fn(g)
    assert out is not g
    assert print_graph(g, locs=True) == text and g == copy, f"{fn.__name__} modified its input"
    verify(out)
    assert parse_graph(print_graph(out)) == out
    return out


def check(fn, before: str, after: str):
    out = run_pass(fn, G(before))
    want = G(after)
    assert out == want, f"got:\n{print_graph(out)}\nwant:\n{print_graph(want)}"
    return out


def only(rule):
    """simplify with just this one rule (then dce)."""
    def f(g):
        return simplify(g, rules=[rule])
    f.__name__ = f"simplify[{rule.__name__}]"
    return f


# ---- dce ------------------------------------------------------------------------------------

def test_dce_drops_unused_nodes_keeps_outputs_and_updates():
    check(dce, """
        graph f(%x: f32[3], state %w: f32[3]) {
          %0: f32[3] = exp(%x)
          %1: f32[3] = neg(%x)
          %2: f32[3] = add(%0, %w)
          %3: f32[3] = log(%2)
          %4: f32[3] = sin(%3)
          return %2
          update w <- %4
        }""", """
        graph f(%x: f32[3], state %w: f32[3]) {
          %0: f32[3] = exp(%x)
          %2: f32[3] = add(%0, %w)
          %3: f32[3] = log(%2)
          %4: f32[3] = sin(%3)
          return %2
          update w <- %4
        }""")


def test_dce_keeps_nothing_when_nothing_is_read():
    check(dce, """
        graph f(%x: f32[3]) {
          %0: f32[3] = exp(%x)
          return %x
        }""", """
        graph f(%x: f32[3]) {
          return %x
        }""")


# ---- cse ------------------------------------------------------------------------------------

def test_cse_merges_same_op_inputs_and_attrs_transitively():
    check(cse, """
        graph f(%x: f32[2,3]) {
          %0: f32[2,3] = exp(%x)
          %1: f32[2,3] = exp(%x)
          %2: f32[2,3] = add(%0, %x)
          %3: f32[2,3] = add(%1, %x)
          %4: f32[3,2] = permute(%2) {perm=(1, 0)}
          %5: f32[3,2] = permute(%3) {perm=(1, 0)}
          %6: f32[3,2] = mul(%4, %5)
          return %6, %5
        }""", """
        graph f(%x: f32[2,3]) {
          %0: f32[2,3] = exp(%x)
          %2: f32[2,3] = add(%0, %x)
          %4: f32[3,2] = permute(%2) {perm=(1, 0)}
          %6: f32[3,2] = mul(%4, %4)
          return %6, %4
        }""")


def test_cse_distinguishes_attrs_operand_order_and_inputs():
    src = """
        graph f(%x: f32[2,3], %y: f32[2,3]) {
          %0: f32[2,3] = sub(%x, %y)
          %1: f32[2,3] = sub(%y, %x)
          %2: f32[2,3] = exp(%x)
          %3: f32[2,3] = exp(%y)
          %4: f32[3] = sum(%x) {axes=(0,), keepdim=False}
          %5: f32[1,3] = sum(%x) {axes=(0,), keepdim=True}
          %6: f32[2] = sum(%x) {axes=(1,), keepdim=False}
          return %0, %1, %2, %3, %4, %5, %6
        }"""
    check(cse, src, src)


def test_cse_attr_equality_is_exact():
    # 1 != 1.0 != True, 0.0 != -0.0, nan == nan, dtypes compare by name
    check(cse, """
        graph f() {
          %0: f32[] = full() {shape=(), value=1.0, dtype=f32}
          %1: f32[] = full() {shape=(), value=1.0, dtype=f32}
          %2: f32[] = full() {shape=(), value=nan, dtype=f32}
          %3: f32[] = full() {shape=(), value=nan, dtype=f32}
          %4: f32[] = full() {shape=(), value=0.0, dtype=f32}
          %5: f32[] = full() {shape=(), value=-0.0, dtype=f32}
          %6: i64[] = full() {shape=(), value=1, dtype=i64}
          %7: b1[] = full() {shape=(), value=True, dtype=b1}
          %8: f64[] = full() {shape=(), value=1.0, dtype=f64}
          %9: i64[2] = constant() {shape=(2,), dtype=i64, data=(1, 2)}
          %10: i64[2] = constant() {shape=(2,), dtype=i64, data=(1, 2)}
          %11: i64[2] = constant() {shape=(2,), dtype=i64, data=(2, 1)}
          return %0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11
        }""", """
        graph f() {
          %0: f32[] = full() {shape=(), value=1.0, dtype=f32}
          %2: f32[] = full() {shape=(), value=nan, dtype=f32}
          %4: f32[] = full() {shape=(), value=0.0, dtype=f32}
          %5: f32[] = full() {shape=(), value=-0.0, dtype=f32}
          %6: i64[] = full() {shape=(), value=1, dtype=i64}
          %7: b1[] = full() {shape=(), value=True, dtype=b1}
          %8: f64[] = full() {shape=(), value=1.0, dtype=f64}
          %9: i64[2] = constant() {shape=(2,), dtype=i64, data=(1, 2)}
          %11: i64[2] = constant() {shape=(2,), dtype=i64, data=(2, 1)}
          return %0, %0, %2, %2, %4, %5, %6, %7, %8, %9, %9, %11
        }""")


def test_cse_merges_uniform_and_keeps_updates_and_inputs_apart():
    # uniform is counter-based: the same state gives the same numbers. Two state inputs are
    # never merged, even when they hold equal types.
    check(cse, """
        graph f(state %rng: i64[2], state %a: f32[2], state %b: f32[2]) {
          %0: f32[2] = uniform(%rng) {shape=(2,), dtype=f32}
          %1: f32[2] = uniform(%rng) {shape=(2,), dtype=f32}
          %2: f32[2] = add(%0, %a)
          %3: f32[2] = add(%1, %a)
          %4: f32[2] = add(%0, %b)
          return %2
          update a <- %3
          update b <- %4
        }""", """
        graph f(state %rng: i64[2], state %a: f32[2], state %b: f32[2]) {
          %0: f32[2] = uniform(%rng) {shape=(2,), dtype=f32}
          %2: f32[2] = add(%0, %a)
          %4: f32[2] = add(%0, %b)
          return %2
          update a <- %2
          update b <- %4
        }""")


# ---- fold_constants -------------------------------------------------------------------------

def test_fold_elementwise_of_fulls_to_full_any_size_and_cascade():
    check(fold_constants, """
        graph f(%x: f32[1000,1000]) {
          %0: f32[] = full() {shape=(), value=2.0, dtype=f32}
          %1: f32[1000,1000] = broadcast_to(%0) {shape=(1000, 1000)}
          %2: f32[1000,1000] = full() {shape=(1000, 1000), value=0.5, dtype=f32}
          %3: f32[1000,1000] = mul(%1, %2)
          %4: f32[1000,1000] = exp(%3)
          %5: f32[1000,1000] = add(%x, %4)
          return %5
        }""", """
        graph f(%x: f32[1000,1000]) {
          %0: f32[] = full() {shape=(), value=2.0, dtype=f32}
          %1: f32[1000,1000] = full() {shape=(1000, 1000), value=2.0, dtype=f32}
          %2: f32[1000,1000] = full() {shape=(1000, 1000), value=0.5, dtype=f32}
          %3: f32[1000,1000] = full() {shape=(1000, 1000), value=1.0, dtype=f32}
          %4: f32[1000,1000] = full() {shape=(1000, 1000), value=%s, dtype=f32}
          %5: f32[1000,1000] = add(%x, %4)
          return %5
        }""".replace("%s", repr(float(np.exp(np.float32(1.0))))))


def test_fold_respects_exact_dtypes():
    out = check(fold_constants, """
        graph f() {
          %0: f32[] = full() {shape=(), value=0.1, dtype=f32}
          %1: f64[] = cast(%0) {dtype=f64}
          %2: i64[] = full() {shape=(), value=7, dtype=i64}
          %3: i64[] = full() {shape=(), value=2, dtype=i64}
          %4: i64[] = mul(%2, %3)
          %5: b1[] = lt(%2, %3)
          %6: f32[] = cast(%2) {dtype=f32}
          %7: i64[] = cast(%0) {dtype=i64}
          return %1, %4, %5, %6, %7
        }""", """
        graph f() {
          %0: f32[] = full() {shape=(), value=0.1, dtype=f32}
          %1: f64[] = full() {shape=(), value=0.10000000149011612, dtype=f64}
          %2: i64[] = full() {shape=(), value=7, dtype=i64}
          %3: i64[] = full() {shape=(), value=2, dtype=i64}
          %4: i64[] = full() {shape=(), value=14, dtype=i64}
          %5: b1[] = full() {shape=(), value=False, dtype=b1}
          %6: f32[] = full() {shape=(), value=7.0, dtype=f32}
          %7: i64[] = full() {shape=(), value=0, dtype=i64}
          return %1, %4, %5, %6, %7
        }""")
    values = {n.out.name: n.attrs["value"] for n in out.nodes}
    assert type(values["1"]) is float and type(values["6"]) is float
    assert type(values["4"]) is int and type(values["7"]) is int
    assert type(values["5"]) is bool


def test_fold_small_results_to_constant_large_ones_stay():
    check(fold_constants, """
        graph f() {
          %0: i64[2,3] = iota() {shape=(2, 3), axis=1, dtype=i64}
          %1: i64[3] = sum(%0) {axes=(0,), keepdim=False}
          %2: f32[2] = constant() {shape=(2,), dtype=f32, data=(1.5, -inf)}
          %3: f32[2] = neg(%2)
          %4: i64[100] = iota() {shape=(100,), axis=0, dtype=i64}
          %5: i64[100] = neg(%4)
          %6: i64[3] = constant() {shape=(3,), dtype=i64, data=(4, 4, 4)}
          %7: i64[3] = abs(%6)
          return %1, %3, %5, %7
        }""", """
        graph f() {
          %0: i64[2,3] = iota() {shape=(2, 3), axis=1, dtype=i64}
          %1: i64[3] = constant() {shape=(3,), dtype=i64, data=(0, 2, 4)}
          %2: f32[2] = constant() {shape=(2,), dtype=f32, data=(1.5, -inf)}
          %3: f32[2] = constant() {shape=(2,), dtype=f32, data=(-1.5, inf)}
          %4: i64[100] = iota() {shape=(100,), axis=0, dtype=i64}
          %5: i64[100] = neg(%4)
          %6: i64[3] = constant() {shape=(3,), dtype=i64, data=(4, 4, 4)}
          %7: i64[3] = full() {shape=(3,), value=4, dtype=i64}
          return %1, %3, %5, %7
        }""")


def test_fold_leaves_non_constant_inputs_errors_and_signed_zeros_alone():
    src = """
        graph f(%x: f32[2]) {
          %0: f32[2] = full() {shape=(2,), value=1.0, dtype=f32}
          %1: f32[2] = add(%x, %0)
          %2: i64[] = full() {shape=(), value=2, dtype=i64}
          %3: i64[] = full() {shape=(), value=-1, dtype=i64}
          %4: i64[] = pow(%2, %3)
          return %1, %4
        }"""
    check(fold_constants, src, src)          # %4 would raise: it stays, to fail at run time
    check(fold_constants, """
        graph f() {
          %0: f32[2] = constant() {shape=(2,), dtype=f32, data=(0.0, -0.0)}
          %1: f32[2] = neg(%0)
          %2: f32[2] = constant() {shape=(2,), dtype=f32, data=(nan, nan)}
          %3: f32[2] = abs(%2)
          return %1, %3
        }""", """
        graph f() {
          %0: f32[2] = constant() {shape=(2,), dtype=f32, data=(0.0, -0.0)}
          %1: f32[2] = constant() {shape=(2,), dtype=f32, data=(-0.0, 0.0)}
          %2: f32[2] = constant() {shape=(2,), dtype=f32, data=(nan, nan)}
          %3: f32[2] = full() {shape=(2,), value=nan, dtype=f32}
          return %1, %3
        }""")


def test_fold_evaluates_with_the_interpreter_semantics():
    g = G("""
        graph f() {
          %0: f64[2,3] = iota() {shape=(2, 3), axis=0, dtype=f64}
          %1: f64[3,2] = iota() {shape=(3, 2), axis=1, dtype=f64}
          %2: f64[2,2] = matmul(%0, %1) {transpose_a=False, transpose_b=False}
          %3: f64[2,2] = exp(%2)
          %4: f64[2,2] = full() {shape=(2, 2), value=3.0, dtype=f64}
          %5: f64[2,2] = div(%3, %4)
          %6: f64[2] = max(%5) {axes=(1,), keepdim=False}
          return %5, %6
        }""")
    out = run_pass(fold_constants, g)
    assert [n.op for n in dce(out).nodes] == ["constant", "constant"]
    for a, b in zip(Interpreter(g)([]), Interpreter(out)([])):
        np.testing.assert_array_equal(a, b)


# ---- simplify: one rule at a time -------------------------------------------------------------

ONE = """%c: f32[] = full() {shape=(), value=1.0, dtype=f32}
          %o: f32[2,3] = broadcast_to(%c) {shape=(2, 3)}"""
ZERO = """%c: f32[] = full() {shape=(), value=0.0, dtype=f32}
          %o: f32[2,3] = broadcast_to(%c) {shape=(2, 3)}"""
IDENT = """
        graph f(%x: f32[2,3]) {
          return %x
        }"""

CASES = [
    ("mul_one_right", f"""
        graph f(%x: f32[2,3]) {{
          {ONE}
          %0: f32[2,3] = mul(%x, %o)
          return %0
        }}""", IDENT),
    ("mul_one_left", """
        graph f(%x: i64[2,3]) {
          %c: i64[2,3] = full() {shape=(2, 3), value=1, dtype=i64}
          %0: i64[2,3] = mul(%c, %x)
          return %0
        }""", """
        graph f(%x: i64[2,3]) {
          return %x
        }"""),
    ("add_zero_right", f"""
        graph f(%x: f32[2,3]) {{
          {ZERO}
          %0: f32[2,3] = add(%x, %o)
          return %0
        }}""", IDENT),
    ("add_zero_left", f"""
        graph f(%x: f32[2,3]) {{
          {ZERO}
          %0: f32[2,3] = add(%o, %x)
          return %0
        }}""", IDENT),
    ("sub_zero", """
        graph f(%x: f32[2,3]) {
          %c: f32[3] = full() {shape=(3,), value=0.0, dtype=f32}
          %r: f32[1,3] = reshape(%c) {shape=(1, 3)}
          %o: f32[2,3] = broadcast_to(%r) {shape=(2, 3)}
          %0: f32[2,3] = sub(%x, %o)
          return %0
        }""", IDENT),
    ("div_one", f"""
        graph f(%x: f32[2,3]) {{
          {ONE}
          %0: f32[2,3] = div(%x, %o)
          return %0
        }}""", IDENT),
    ("pow_one", f"""
        graph f(%x: f32[2,3]) {{
          {ONE}
          %0: f32[2,3] = pow(%x, %o)
          return %0
        }}""", IDENT),
    ("sub_self_int", """
        graph f(%x: i64[2,3]) {
          %0: i64[2,3] = sub(%x, %x)
          return %0
        }""", """
        graph f(%x: i64[2,3]) {
          %1: i64[2,3] = full() {shape=(2, 3), value=0, dtype=i64}
          return %1
        }"""),
    ("neg_neg", """
        graph f(%x: f32[2,3]) {
          %0: f32[2,3] = neg(%x)
          %1: f32[2,3] = neg(%0)
          %2: f32[2,3] = neg(%1)
          return %1, %2
        }""", """
        graph f(%x: f32[2,3]) {
          %2: f32[2,3] = neg(%x)
          return %x, %2
        }"""),
    ("not_not", """
        graph f(%x: b1[4]) {
          %0: b1[4] = logical_not(%x)
          %1: b1[4] = logical_not(%0)
          return %1
        }""", """
        graph f(%x: b1[4]) {
          return %x
        }"""),
    ("reshape_noop", """
        graph f(%x: f32[2,3]) {
          %0: f32[2,3] = reshape(%x) {shape=(2, 3)}
          return %0
        }""", IDENT),
    ("reshape_reshape", """
        graph f(%x: f32[2,3]) {
          %0: f32[6] = reshape(%x) {shape=(6,)}
          %1: f32[3,2] = reshape(%0) {shape=(3, 2)}
          %2: f32[1,6] = reshape(%1) {shape=(1, 6)}
          return %1, %2
        }""", """
        graph f(%x: f32[2,3]) {
          %3: f32[3,2] = reshape(%x) {shape=(3, 2)}
          %4: f32[1,6] = reshape(%x) {shape=(1, 6)}
          return %3, %4
        }"""),
    ("permute_identity", """
        graph f(%x: f32[2,3]) {
          %0: f32[2,3] = permute(%x) {perm=(0, 1)}
          return %0
        }""", IDENT),
    ("permute_permute", """
        graph f(%x: f32[2,3,4]) {
          %0: f32[3,4,2] = permute(%x) {perm=(1, 2, 0)}
          %1: f32[4,3,2] = permute(%0) {perm=(1, 0, 2)}
          return %1
        }""", """
        graph f(%x: f32[2,3,4]) {
          %2: f32[4,3,2] = permute(%x) {perm=(2, 1, 0)}
          return %2
        }"""),
    ("broadcast_noop", """
        graph f(%x: f32[2,3]) {
          %0: f32[2,3] = broadcast_to(%x) {shape=(2, 3)}
          return %0
        }""", IDENT),
    ("broadcast_full", """
        graph f() {
          %0: f32[] = full() {shape=(), value=0.5, dtype=f32}
          %1: f32[2,3] = broadcast_to(%0) {shape=(2, 3)}
          return %1
        }""", """
        graph f() {
          %2: f32[2,3] = full() {shape=(2, 3), value=0.5, dtype=f32}
          return %2
        }"""),
    ("broadcast_broadcast", """
        graph f(%x: f32[3]) {
          %0: f32[2,3] = broadcast_to(%x) {shape=(2, 3)}
          %1: f32[4,2,3] = broadcast_to(%0) {shape=(4, 2, 3)}
          return %1
        }""", """
        graph f(%x: f32[3]) {
          %2: f32[4,2,3] = broadcast_to(%x) {shape=(4, 2, 3)}
          return %2
        }"""),
    ("cast_noop", """
        graph f(%x: f32[2,3]) {
          %0: f32[2,3] = cast(%x) {dtype=f32}
          return %0
        }""", IDENT),
    ("stop_gradient", """
        graph f(%x: f32[2,3]) {
          %0: f32[2,3] = stop_gradient(%x)
          return %0
        }""", IDENT),
    ("where_same", """
        graph f(%x: f32[2,3], %c: b1[2,3]) {
          %0: f32[2,3] = where(%c, %x, %x)
          return %0
        }""", """
        graph f(%x: f32[2,3], %c: b1[2,3]) {
          return %x
        }"""),
    ("where_const_cond", """
        graph f(%x: f32[2,3], %y: f32[2,3]) {
          %t: b1[] = full() {shape=(), value=True, dtype=b1}
          %T: b1[2,3] = broadcast_to(%t) {shape=(2, 3)}
          %f: b1[2,3] = full() {shape=(2, 3), value=False, dtype=b1}
          %0: f32[2,3] = where(%T, %x, %y)
          %1: f32[2,3] = where(%f, %x, %y)
          return %0, %1
        }""", """
        graph f(%x: f32[2,3], %y: f32[2,3]) {
          return %x, %y
        }"""),
    ("slice_all", """
        graph f(%x: f32[2,3]) {
          %0: f32[2,3] = slice(%x) {starts=(0, 0), stops=(2, 3), steps=(1, 1)}
          return %0
        }""", IDENT),
    ("pad_nothing", """
        graph f(%x: f32[2,3]) {
          %0: f32[2,3] = pad(%x) {lo=(0, 0), hi=(0, 0), interior=(0, 0), value=0.0}
          return %0
        }""", IDENT),
    ("concat_single", """
        graph f(%x: f32[2,3]) {
          %0: f32[2,3] = concat(%x) {axis=0}
          return %0
        }""", IDENT),
    ("reduce_no_axes", """
        graph f(%x: f32[2,3]) {
          %0: f32[2,3] = sum(%x) {axes=(), keepdim=False}
          %1: f32[2,3] = max(%0) {axes=(), keepdim=True}
          return %1
        }""", IDENT),
    ("fold_transpose_into_matmul", """
        graph f(%x: f32[5,3,4], %y: f32[5,2,3]) {
          %0: f32[5,4,3] = permute(%x) {perm=(0, 2, 1)}
          %1: f32[5,3,2] = permute(%y) {perm=(0, 2, 1)}
          %2: f32[5,4,2] = matmul(%0, %1) {transpose_a=False, transpose_b=False}
          %3: f32[5,4,4] = matmul(%0, %x) {transpose_a=False, transpose_b=False}
          %4: f32[5,3,3] = matmul(%0, %0) {transpose_a=True, transpose_b=False}
          return %2, %3, %4, %1
        }""", """
        graph f(%x: f32[5,3,4], %y: f32[5,2,3]) {
          %1: f32[5,3,2] = permute(%y) {perm=(0, 2, 1)}
          %5: f32[5,4,2] = matmul(%x, %y) {transpose_a=True, transpose_b=True}
          %6: f32[5,4,4] = matmul(%x, %x) {transpose_a=True, transpose_b=False}
          %7: f32[5,3,3] = matmul(%x, %x) {transpose_a=False, transpose_b=True}
          return %5, %6, %7, %1
        }"""),
    ("transpose_matmul_output", """
        graph f(%a: f32[4,3], %b: f32[3,2]) {
          %0: f32[4,2] = matmul(%a, %b) {transpose_a=False, transpose_b=False}
          %1: f32[2,4] = permute(%0) {perm=(1, 0)}
          return %1
        }""", """
        graph f(%a: f32[4,3], %b: f32[3,2]) {
          %2: f32[2,4] = matmul(%b, %a) {transpose_a=True, transpose_b=True}
          return %2
        }"""),
]


@pytest.mark.parametrize("name,before,after", CASES, ids=[c[0] for c in CASES])
def test_rule(name, before, after):
    rule = next(r for r in RULES if r.__name__ == name)
    check(only(rule), before, after)
    check(simplify, before, after)        # the whole table agrees
    g, want = G(before), G(after)         # and the rewrite computes the same thing
    rng = np.random.default_rng(0)
    args = [_sample(v.type, rng) for v in g.inputs]
    for a, b in zip(Interpreter(g)(args), Interpreter(want)(args)):
        np.testing.assert_array_equal(a, b)


def test_every_rule_has_a_case_and_a_pattern_docstring():
    assert {c[0] for c in CASES} == {r.__name__ for r in RULES}
    for name, pattern in S.rule_table():
        assert "->" in pattern, name


def test_every_rule_is_in_the_docs():
    import pathlib
    doc = pathlib.Path(__file__).resolve().parents[2] / "docs" / "passes.md"
    assert doc.exists(), f"{doc} not found"
    text = doc.read_text()
    missing = [r.__name__ for r in RULES if f"`{r.__name__}`" not in text]
    assert not missing, f"rules missing from docs/passes.md: {missing}"


# ---- simplify: where rules must not fire --------------------------------------------------

NOT_FIRING = [
    ("float x - x (inf - inf is nan)", """
        graph f(%x: f32[2,3]) {
          %0: f32[2,3] = sub(%x, %x)
          return %0
        }"""),
    ("x * 0, x + 1, x - 1, x / 2, 0 - x are not identities", """
        graph f(%x: f32[2,3]) {
          %a: f32[2,3] = full() {shape=(2, 3), value=0.0, dtype=f32}
          %b: f32[2,3] = full() {shape=(2, 3), value=1.0, dtype=f32}
          %c: f32[2,3] = full() {shape=(2, 3), value=2.0, dtype=f32}
          %0: f32[2,3] = mul(%x, %a)
          %1: f32[2,3] = add(%x, %b)
          %2: f32[2,3] = sub(%x, %b)
          %3: f32[2,3] = div(%x, %c)
          %4: f32[2,3] = sub(%a, %x)
          %5: f32[2,3] = div(%b, %x)
          return %0, %1, %2, %3, %4, %5
        }"""),
    ("a permute of the same type that still moves elements", """
        graph f(%x: f32[3,3], %y: f32[2,2,2]) {
          %0: f32[3,3] = permute(%x) {perm=(1, 0)}
          %1: f32[2,2,2] = permute(%y) {perm=(2, 0, 1)}
          return %0, %1
        }"""),
    ("a non-constant or non-full operand", """
        graph f(%x: f32[2], %y: f32[2]) {
          %0: f32[2] = constant() {shape=(2,), dtype=f32, data=(1.0, 0.0)}
          %1: f32[2] = mul(%x, %0)
          %2: f32[2] = add(%x, %0)
          %3: f32[2] = mul(%x, %y)
          %4: f32[2] = iota() {shape=(2,), axis=0, dtype=f32}
          %5: f32[2] = add(%x, %4)
          return %1, %2, %3, %5
        }"""),
    ("casts, reshapes, permutes, slices that do change something", """
        graph f(%x: f32[2,3], %i: i64[4]) {
          %0: f64[2,3] = cast(%x) {dtype=f64}
          %1: f32[2,3] = cast(%0) {dtype=f32}
          %2: f32[3,2] = reshape(%x) {shape=(3, 2)}
          %3: f32[3,2] = permute(%x) {perm=(1, 0)}
          %4: f32[2,2] = slice(%x) {starts=(0, 1), stops=(2, 3), steps=(1, 1)}
          %5: f32[2,2] = slice(%x) {starts=(0, 0), stops=(2, 3), steps=(1, 2)}
          %6: i64[2] = slice(%i) {starts=(0,), stops=(4,), steps=(2,)}
          %7: f32[1,3] = sum(%x) {axes=(0,), keepdim=True}
          return %1, %2, %3, %4, %5, %6, %7
        }"""),
    ("double not, double neg, where: only of the same values", """
        graph f(%x: f32[2], %y: f32[2], %c: b1[2]) {
          %0: f32[2] = neg(%x)
          %1: f32[2] = abs(%0)
          %2: f32[2] = where(%c, %x, %y)
          %3: b1[2] = logical_not(%c)
          %4: b1[2] = logical_and(%3, %c)
          %5: b1[2] = full() {shape=(2,), value=True, dtype=b1}
          %6: f32[2] = mul(%x, %0)
          %7: f32[2] = where(%c, %6, %1)
          %8: f32[2] = where(%4, %7, %2)
          return %8
        }"""),
    ("permutes that are not a swap of the last two dims stay out of matmul", """
        graph f(%x: f32[3,3,3], %y: f32[3,3,3]) {
          %0: f32[3,3,3] = permute(%x) {perm=(1, 0, 2)}
          %1: f32[3,3,3] = matmul(%0, %y) {transpose_a=False, transpose_b=False}
          %2: f32[3,3,3] = permute(%x) {perm=(2, 1, 0)}
          %3: f32[3,3,3] = matmul(%y, %2) {transpose_a=False, transpose_b=False}
          return %1, %3
        }"""),
    ("a transposed matmul output with other readers is not recomputed", """
        graph f(%a: f32[4,3], %b: f32[3,2]) {
          %0: f32[4,2] = matmul(%a, %b) {transpose_a=False, transpose_b=False}
          %1: f32[2,4] = permute(%0) {perm=(1, 0)}
          return %1, %0
        }"""),
]


@pytest.mark.parametrize("why,src", NOT_FIRING, ids=[c[0] for c in NOT_FIRING])
def test_rules_do_not_fire(why, src):
    g = G(src)
    check(simplify, src, print_graph(dce(g)))


def test_x_times_one_keeps_the_broadcast_of_x():
    # the broadcast x has the product's shape; x itself (f32[3]) would not
    check(simplify, """
        graph f(%x: f32[3]) {
          %0: f32[2,3] = full() {shape=(2, 3), value=1.0, dtype=f32}
          %1: f32[2,3] = broadcast_to(%x) {shape=(2, 3)}
          %2: f32[2,3] = mul(%1, %0)
          %3: f32[3] = sum(%2) {axes=(0,), keepdim=False}
          return %3
        }""", """
        graph f(%x: f32[3]) {
          %1: f32[2,3] = broadcast_to(%x) {shape=(2, 3)}
          %3: f32[3] = sum(%1) {axes=(0,), keepdim=False}
          return %3
        }""")


def test_a_rule_giving_the_wrong_type_is_ignored():
    def bad_shape(n, m):
        """mul(broadcast_to(x), y) -> x (a broken rule: x has another shape)"""
        if n.op == "mul" and n.inputs[0].producer is not None:
            return n.inputs[0].producer.inputs[0]

    def bad_dtype(n, m):
        """lt(x, y) -> x (a broken rule: x is not bool)"""
        if n.op == "lt":
            return n.inputs[0]
    src = """
        graph f(%x: f32[3]) {
          %0: f32[2,3] = broadcast_to(%x) {shape=(2, 3)}
          %1: f32[2,3] = mul(%0, %0)
          %2: b1[2,3] = lt(%1, %0)
          return %1, %2
        }"""
    check(lambda g: simplify(g, rules=[bad_shape, bad_dtype]), src, src)


def test_rules_chain_to_a_fixpoint():
    check(simplify, """
        graph f(%x: f32[2,3], %y: i64[2]) {
          %0: f32[3,2] = permute(%x) {perm=(1, 0)}
          %1: f32[2,3] = permute(%0) {perm=(1, 0)}
          %2: f32[6] = reshape(%1) {shape=(6,)}
          %3: f32[2,3] = reshape(%2) {shape=(2, 3)}
          %4: f32[2,3] = stop_gradient(%3)
          %5: f32[2,3] = neg(%4)
          %6: f32[2,3] = neg(%5)
          %c: f32[] = full() {shape=(), value=1.0, dtype=f32}
          %r: f32[1,1] = reshape(%c) {shape=(1, 1)}
          %o: f32[2,3] = broadcast_to(%r) {shape=(2, 3)}
          %7: f32[2,3] = mul(%6, %o)
          %8: f32[2,3] = cast(%7) {dtype=f32}
          %9: i64[2] = sub(%y, %y)
          %10: i64[2] = add(%y, %9)
          return %8, %10
        }""", """
        graph f(%x: f32[2,3], %y: i64[2]) {
          return %x, %y
        }""")


def test_simplify_leaves_kernel_nodes_alone():
    src = """
        graph f(%x: f32[2]) {
          %0: f32[2] = neg(%x)
          %k: f32[2] = kernel(%0) {kind="pointwise"}
            graph k(%a: f32[2]) {
              %1: f32[2] = neg(%a)
              %2: f32[2] = neg(%1)
              return %2
            }
          %3: f32[2] = kernel(%0) {kind="pointwise"}
            graph k(%a: f32[2]) {
              %1: f32[2] = neg(%a)
              %2: f32[2] = neg(%1)
              return %2
            }
          %4: f32[2] = neg(%k)
          %5: f32[2] = neg(%4)
          return %5, %3
        }"""
    after = src.replace("""          %4: f32[2] = neg(%k)
          %5: f32[2] = neg(%4)
          return %5, %3""", "          return %k, %3")
    for fn in (simplify, cse, fold_constants, dce):
        out = run_pass(fn, G(src))
        assert out == G(after if fn is simplify else src)


# ---- matmul transpose flags ------------------------------------------------------------------

@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("batch", [(), (2,)])
def test_matmul_transpose_flags_values_and_gradients(ta, tb, batch):
    rng = np.random.default_rng(1)
    m, k, n = 3, 4, 2
    a = rng.standard_normal(batch + ((k, m) if ta else (m, k)))
    b = rng.standard_normal(batch + ((n, k) if tb else (k, n)))
    out = apply("matmul", gc.tensor(a), gc.tensor(b), transpose_a=ta, transpose_b=tb)
    want = (np.swapaxes(a, -1, -2) if ta else a) @ (np.swapaxes(b, -1, -2) if tb else b)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12)
    assert tuple(out.shape) == batch + (m, n)
    assert gradcheck(lambda x, y: apply("matmul", x, y, transpose_a=ta, transpose_b=tb),
                     [gc.tensor(a, dtype=gc.float64), gc.tensor(b, dtype=gc.float64)])


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_matmul_transpose_flags_second_order_gradients(ta, tb):
    rng = np.random.default_rng(2)
    a = gc.tensor(rng.standard_normal((3, 3)), dtype=gc.float64)
    b = gc.tensor(rng.standard_normal((3, 3)), dtype=gc.float64)

    def grad_a(x, y):
        x = x if x.requires_grad else x.detach().requires_grad_()
        out = apply("matmul", x, y, transpose_a=ta, transpose_b=tb)
        (gx,) = gc.autograd.grad((out * out).sum(), [x], create_graph=True)
        return gx
    assert gradcheck(grad_a, [a, b])


def test_matmul_infer_checks_flags_and_shapes():
    from graphc import dtypes as dt
    infer = PRIMITIVES["matmul"].infer
    t = TensorType
    assert infer(t((4, 3), dt.float32), t((2, 3), dt.float32),
                 transpose_a=False, transpose_b=True) == t((4, 2), dt.float32)
    assert infer(t((3, 4), dt.float32), t((3, 2), dt.float32),
                 transpose_a=True, transpose_b=False) == t((4, 2), dt.float32)
    with pytest.raises(RuntimeError):
        infer(t((4, 3), dt.float32), t((3, 2), dt.float32), transpose_a=True, transpose_b=False)
    with pytest.raises(TypeError):
        infer(t((4, 3), dt.float32), t((3, 2), dt.float32), transpose_a=0, transpose_b=False)
    assert PRIMITIVES["matmul"].attrs == ("transpose_a", "transpose_b")


# ---- real traced graphs -----------------------------------------------------------------------

def _sample(t: TensorType, rng) -> np.ndarray:
    if t.dtype.is_floating_point:
        return rng.standard_normal(t.shape).astype(t.dtype.np)
    if t.dtype is _dt.bool_:
        return rng.random(t.shape) < 0.5
    return rng.integers(0, 3, t.shape).astype(t.dtype.np)


def _inputs(g: Graph, args, state):
    it = iter(args)
    return [np.array(next(it).numpy()) if v.kind == "arg" else np.array(state[v.label]) for v in g.inputs]


def _state_of(tensors: dict) -> dict:
    return {k: v.detach().numpy().copy() for k, v in tensors.items()}


def _all_passes(g):
    return dce(simplify(fold_constants(cse(g))))


def _check_same_results(g, inputs, passes, rtol=0.0):
    s = g
    for p in passes:
        s = run_pass(p, s)
    want, got = Interpreter(g)(inputs), Interpreter(s)(inputs)
    assert len(want) == len(got)
    for a, b in zip(want, got):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0)
    return s


def test_traced_linear_softmax_training_step():
    gc.manual_seed(0)
    w = gc.randn(20, 10, requires_grad=True)
    b = gc.zeros(10, requires_grad=True)

    def step(x, y):
        loss = gc.nn.functional.cross_entropy(x @ w + b, y)
        loss.backward()
        with gc.no_grad():
            w.sub_(0.1 * w.grad)
            b.sub_(0.1 * b.grad)
            w.grad = None
            b.grad = None
        return loss

    x, y = gc.randn(8, 20), gc.randint(0, 10, (8,))
    g = gc.compile(step).graph(x, y, stage="autodiff")
    inputs = _inputs(g, [x, y], _state_of({"w": w, "b": b}))
    for passes in ([simplify], [cse], [fold_constants], [dce], [cse, fold_constants, simplify, dce]):
        s = _check_same_results(g, inputs, passes, rtol=1e-5)
        if passes != [dce]:
            assert len(s.nodes) <= len(g.nodes)
    s = _check_same_results(g, inputs, [simplify], rtol=1e-5)
    assert len(s.nodes) < len(g.nodes)
    assert not any(n.op == "stop_gradient" for n in s.nodes)
    # the backward's x^T @ g became one matmul with transpose_a
    assert not any(n.op == "permute" for n in s.nodes)
    assert any(n.op == "matmul" and n.attrs["transpose_a"] for n in s.nodes)


def test_traced_mlp_with_momentum_sgd():
    gc.manual_seed(0)
    model = gc.nn.Sequential(gc.nn.Linear(6, 8), gc.nn.ReLU(), gc.nn.Linear(8, 3))
    opt = gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = gc.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    x, y = gc.randn(5, 6), gc.randint(0, 3, (5,))
    f = gc.compile(step)
    f(x, y)                                   # creates the optimizer's momentum buffers
    g = f.graph(x, y, stage="autodiff")
    rng = np.random.default_rng(0)
    inputs = [_sample(v.type, rng) if v.kind == "state" else None for v in g.inputs]
    inputs[0], inputs[1] = x.numpy(), y.numpy()
    s = _check_same_results(g, inputs, [cse, fold_constants, simplify, cse, dce], rtol=1e-5)
    assert len(s.nodes) < len(g.nodes) - 10
    assert not any(n.op == "permute" for n in s.nodes)       # every transpose went into a matmul
    assert sum(n.op == "matmul" for n in s.nodes) == sum(n.op == "matmul" for n in g.nodes)
    for order in ([simplify], [fold_constants, dce], [cse], [dce, simplify, cse, fold_constants]):
        _check_same_results(g, inputs, order, rtol=1e-5)


# ---- random graphs ----------------------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402



from randgraphs import random_graphs  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(g=random_graphs(), order=st.lists(st.sampled_from(sorted(PASSES)), min_size=1, max_size=5),
       seed=st.integers(0, 2 ** 16))
def test_random_graphs_keep_their_values_under_any_pass_order(g, order, seed):
    rng = np.random.default_rng(seed)
    inputs = [(rng.integers(-2, 3, v.type.shape)).astype(v.type.dtype.np) for v in g.inputs]
    want = Interpreter(g)(inputs)
    s = g
    for name in order:
        s = run_pass(PASSES[name], s)
        got = Interpreter(s)(inputs)
        for a, b in zip(want, got):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)
    if "simplify" in order:
        assert len(s.nodes) <= len(g.nodes)
