"""Every primitive is complete: walks the registry (graphc/ops/registry.py) and names each gap.

For each primitive:
  VJP decision   differentiable is True (a vjp rule) or False (explicitly not differentiable)
  lowering       on every backend: interp runs the record's numpy impl; llvm and cuda have a
                 scalar rule (llvm/scalar.py, cuda/scalar.py RULES) or lower it structurally
                 (backends/kernels.py STRUCTURAL: movement, sources, reductions, matmul,
                 opaque) -- or the primitive has a decomposition they expand
  conformance    tested: numpy-reference cases in tests/test_primitives.py (CASES, run by
                 test_primitive), gradient cases in tests/test_gradients.py (GRAD_CASES, run by
                 test_primitive_vjp) when differentiable, and on llvm and cuda: its reference
                 cases compiled and compared with the interpreter (tests/primitive_conformance.py:
                 test_llvm_conformance here, test_primitive_conformance in tests/cuda_sim_cases.py,
                 the simulator), or a backend test naming it in tests/test_llvm.py /
                 tests/cuda_sim_cases.py (the primitive's name as a string in a test function or a
                 module-level list: the op of a `node(g, op, ...)`, or of a node in IR text)

test_report lists what covers every primitive (pytest -s); a new primitive registered without
rules or tests fails here, naming what it lacks (test_a_new_primitive_without_rules_is_a_gap).

Graph-level ops (registry.GRAPH_OPS: the `grad` placeholders loss.backward() records while
tracing) are no primitives: a pass of the pipeline expands them before any backend runs, so
none may have a lowering, and the compiler refuses a graph that still holds one
(test_graph_ops_are_expanded_by_a_pass_and_lowered_by_no_backend).
"""
import ast
import importlib.util
import pathlib
import re

import pytest

import graphc  # noqa: F401  (registers every primitive)
from graphc.backends import kernels as K
from graphc.backends.cuda import scalar as CS
from graphc.backends.llvm import scalar as LS
from graphc.ops.registry import GRAPH_OPS, PRIMITIVES, Primitive, register, unregister

TESTS = pathlib.Path(__file__).parent.parent
BACKEND_TESTS = {"llvm": "backends/llvm/test_llvm.py", "cuda": "backends/cuda/cuda_sim_cases.py"}
CONFORMANCE = {"llvm": "tests/ops/test_op_coverage.py::test_llvm_conformance",
               "cuda": "tests/backends/cuda/cuda_sim_cases.py::test_primitive_conformance"}

# Gaps known and owned elsewhere: (primitive, check) -> why. The test fails if one is fixed
# (remove it here) as much as on a new gap.
KNOWN_GAPS = {}     # (primitive, gap) -> why it is accepted for now; empty: none


def _load(filename):
    spec = importlib.util.spec_from_file_location(f"_coverage_{pathlib.Path(filename).stem}", TESTS / filename)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _strings_by_place(filename):
    """String literal -> [test function or module-level name holding it] in a test file."""
    tree = ast.parse((TESTS / filename).read_text())
    found = {}
    for top in tree.body:
        if isinstance(top, ast.FunctionDef) and top.name.startswith("test_"):
            place = top.name
        elif isinstance(top, ast.Assign) and isinstance(top.targets[0], ast.Name):
            place = top.targets[0].id
        else:
            continue
        for n in ast.walk(top):
            if isinstance(n, ast.Constant) and isinstance(n.value, str):
                # the string itself (an op name), and the ops of graph text in it (parse_graph)
                for op in {n.value, *_IR_OP.findall(n.value)}:
                    found.setdefault(op, [])
                    if place not in found[op]:
                        found[op].append(place)
    return found


_IR_OP = re.compile(r"= ([a-z_][a-z0-9_]*)\(")      # `%3: f32[2,4] = add(%0, %1)` in IR text
_CACHE = {}


def _coverage_sources():
    if not _CACHE:
        _CACHE["cases"] = set(_load("ops/test_primitives.py").CASES)
        _CACHE["grads"] = set(_load("tensor/test_gradients.py").GRAD_CASES)
        for be, f in BACKEND_TESTS.items():
            _CACHE[be] = _strings_by_place(f)
    return _CACHE


def lowering(p, backend):
    """How `backend` lowers primitive p: 'impl', 'rule', 'structural', 'decomposition', or None."""
    if backend == "interp":
        return "impl" if callable(p.impl) else "decomposition" if p.decomposition else None
    rules = {"llvm": LS.RULES, "cuda": CS.RULES}[backend]
    if p.name in rules:
        return "rule"
    if p.name in K.STRUCTURAL:
        return "structural"
    return "decomposition" if p.decomposition is not None else None


def conformance(p):
    """check -> the tests covering primitive p (empty where none does)."""
    src = _coverage_sources()
    res = {"numpy reference": ["tests/ops/test_primitives.py::test_primitive"] if p.name in src["cases"] else []}
    if p.differentiable:
        res["gradient"] = ["tests/tensor/test_gradients.py::test_primitive_vjp"] if p.name in src["grads"] else []
    import primitive_conformance as PC
    generic = [f"{CONFORMANCE[be]}[{p.name}]" for be in BACKEND_TESTS] if PC.cases(p.name) else []
    for be, f in BACKEND_TESTS.items():
        named = [f"tests/{f}::{place}" for place in src[be].get(p.name, [])]
        res[f"{be} test"] = [w for w in generic if w.startswith(CONFORMANCE[be])] + named
    return res


def gaps(primitives=None):
    """{(primitive, check): what is missing} over the registry."""
    out = {}
    for p in (primitives or PRIMITIVES).values():
        if p.differentiable is None:
            out[(p.name, "vjp decision")] = "no vjp rule and not declared differentiable=False"
        for be in ("interp", "llvm", "cuda"):
            if lowering(p, be) is None:
                out[(p.name, f"lowering on {be}")] = f"no {be} rule and no decomposition"
        for check, where in conformance(p).items():
            if not where:
                out[(p.name, f"conformance: {check}")] = "no test names it"
    return out


def _describe(found):
    return "\n".join(f"  {name}: {check}: {why}" for (name, check), why in sorted(found.items()))


def test_every_primitive_is_complete():
    found = gaps()
    new = {k: v for k, v in found.items() if k not in KNOWN_GAPS}
    fixed = [k for k in KNOWN_GAPS if k not in found]
    assert not new, "primitives with gaps:\n" + _describe(new)
    assert not fixed, f"known gaps that are fixed now (remove them from KNOWN_GAPS): {fixed}"


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_llvm_conformance(name):
    """The primitive's reference cases, compiled by llvm, equal the interpreter's results (the
    cuda backend runs the same in tests/backends/cuda/cuda_sim_cases.py::test_primitive_conformance)."""
    pytest.importorskip("llvmlite")
    import primitive_conformance as PC
    from graphc.backends import get
    for c in PC.cases(name):
        PC.check(c, get("llvm"))


def test_report():
    """What covers each primitive (pytest -s tests/ops/test_op_coverage.py::test_report)."""
    lines = []
    for p in PRIMITIVES.values():
        low = ", ".join(f"{be}={lowering(p, be)}" for be in ("interp", "llvm", "cuda"))
        cov = "; ".join(f"{c}: {' '.join(w) or '-'}" for c, w in conformance(p).items())
        lines.append(f"{p.name}: differentiable={p.differentiable} fusion={p.fusion} {low}; {cov}")
    print("\n" + "\n".join(lines))
    assert len(lines) == len(PRIMITIVES)


@pytest.fixture
def dummy():
    """A primitive registered without any rule or test, removed afterwards."""
    import numpy as np
    p = register(Primitive("coverage_dummy", "elementwise", lambda x: x, np.negative, None, arity=1))
    try:
        yield p
    finally:
        unregister("coverage_dummy")
    assert "coverage_dummy" not in PRIMITIVES


def test_a_new_primitive_without_rules_is_a_gap(dummy):
    found = gaps({dummy.name: dummy})
    assert set(found) == {("coverage_dummy", c) for c in (
        "vjp decision", "lowering on llvm", "lowering on cuda", "conformance: numpy reference",
        "conformance: llvm test", "conformance: cuda test")}, _describe(found)
    assert ("coverage_dummy", "vjp decision") in gaps()       # and the registry walk sees it


def test_a_decomposition_counts_as_a_lowering(dummy):
    dummy.decomposition = lambda x: -x
    assert lowering(dummy, "llvm") == lowering(dummy, "cuda") == "decomposition"


@pytest.mark.parametrize("backend", ["interp", "llvm"])
def test_no_rule_and_no_decomposition_fails_compiling_naming_op_backend_and_line(dummy, backend):
    import numpy as np
    import graphc as gc
    from graphc.tensor import apply

    def f(x):
        return apply("coverage_dummy", x * 2) + 1     # the line the error names

    if backend == "interp":     # the interpreter runs the record's impl: it has a lowering
        np.testing.assert_array_equal(gc.compile(f, backend="interp")(gc.tensor(np.ones(3, np.float32))).numpy(),
                                      np.full(3, -1.0, np.float32))
        return
    with pytest.raises(NotImplementedError) as e:
        gc.compile(f, backend=backend)(gc.tensor(np.ones(3, np.float32)))
    msg = str(e.value)
    assert "'coverage_dummy'" in msg and f"{backend} backend" in msg and "test_op_coverage.py:" in msg, msg


def test_a_backend_without_a_rule_expands_the_decomposition(monkeypatch):
    """rsqrt's decomposition (1 / sqrt(x)) stands in where a backend has no rsqrt rule."""
    import numpy as np
    import graphc as gc
    monkeypatch.delitem(LS.RULES, "rsqrt")
    x = np.linspace(0.5, 3.0, 12, dtype=np.float32).reshape(3, 4)
    f = gc.compile(lambda t: (t.rsqrt() * 2).sum(1), backend="llvm")
    np.testing.assert_allclose(f(gc.tensor(x)).numpy(), (2 / np.sqrt(x)).sum(1), rtol=1e-6)
    body = f.entry(gc.tensor(x)).fn.passes.final.nodes[0].body
    assert "rsqrt" not in [n.op for n in body.nodes] and "sqrt" in [n.op for n in body.nodes]


@pytest.mark.parametrize("name", sorted(GRAPH_OPS))
def test_graph_ops_are_expanded_by_a_pass_and_lowered_by_no_backend(name):
    from graphc.passes.manager import DEFAULT_PASSES, REQUIRED
    op = GRAPH_OPS[name]
    assert name not in PRIMITIVES, f"{name} is a graph-level op and a primitive"
    assert op.expanded_by in dict(DEFAULT_PASSES), f"{name}: no pass {op.expanded_by!r} in the pipeline"
    assert op.expanded_by in REQUIRED, f"{name}: the pass {op.expanded_by!r} expanding it can be switched off"
    for be, rules in (("llvm", LS.RULES), ("cuda", CS.RULES)):
        assert name not in rules, f"{name} has a {be} rule, but no backend should ever see it"
    assert name not in K.STRUCTURAL
    assert not hasattr(op, "impl") and not hasattr(op, "vjp")


def test_the_grad_placeholder_reaching_a_backend_is_refused():
    import graphc as gc
    from graphc.ir import parse_graph
    g = parse_graph("""graph f(%x: f32[2]) {
      %0: f32[] = sum(%x) {axes=(0,), keepdim=False}
      %1: f32[] = full() {shape=(), value=1.0, dtype=f32}
      %2: f32[2] = grad(%0, %1, %x) {group=0, outputs=1, cut=(), create_graph=False}  # model.py:3
      return %2
    }""")
    f = gc.compile(lambda x: x, backend="interp")
    with pytest.raises(RuntimeError, match=r"`grad` node \(%2, from model.py:3\).*autodiff pass expands"):
        f._backend_compile(g)
