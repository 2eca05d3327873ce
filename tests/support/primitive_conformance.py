"""Backend conformance for every primitive: its reference cases (tests/ops/test_primitives.py CASES)
as one-node graphs, compiled by a backend and compared with the interpreter.

Used by tests/ops/test_op_coverage.py (llvm) and tests/backends/cuda/cuda_sim_cases.py (cuda, in the simulator or
compiled to PTX), so a primitive with reference cases is tested on every backend without a
backend test of its own. Of each primitive's cases that must succeed, one per operand
signature (dtypes, ranks, empty or not) and dtype attribute.
"""
import importlib.util
import inspect
import pathlib

import numpy as np

from graphc import dtypes as D
from graphc.backends.interpreter import Interpreter
from graphc.ir.graph import Graph, TensorType
from graphc.ops.registry import PRIMITIVES
from graphc.passes.manager import run_passes

_DT = {np.dtype(np.float32): D.float32, np.dtype(np.float64): D.float64,
       np.dtype(np.int64): D.int64, np.dtype(np.bool_): D.bool_}
_LOADED = []


def _reference_cases():
    if not _LOADED:
        path = pathlib.Path(__file__).parent.parent / "ops" / "test_primitives.py"
        spec = importlib.util.spec_from_file_location("_conformance_test_primitives", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _LOADED.append(mod.CASES)
    return _LOADED[0]


def cases(name):
    """Primitive `name`'s cases to run on a backend."""
    seen, res = set(), []
    for c in _reference_cases().get(name, []):
        sig = (tuple((a.dtype.str, a.ndim, a.size == 0) for a in c.inputs), str(c.attrs.get("dtype")))
        if c.raises is None and sig not in seen:
            seen.add(sig)
            res.append(c)
    return res


def graph(c):
    """The one-node graph of case c (attributes the case leaves out take infer's defaults)."""
    p = PRIMITIVES[c.name]
    attrs = dict(c.attrs)
    for k, prm in inspect.signature(p.infer).parameters.items():
        if k in p.attrs and k not in attrs and prm.default is not inspect.Parameter.empty:
            attrs[k] = prm.default
    g = Graph(c.name)
    ins = [g.add_input(TensorType(a.shape, _DT[a.dtype])) for a in c.inputs]
    g.outputs = [g.add_node(c.name, ins, attrs, p.infer(*[v.type for v in ins], **attrs))]
    return g


def check(c, compile_fn):
    """Run case c compiled by compile_fn (a backend's compile) against the interpreter."""
    g = graph(c)
    want = Interpreter(g)([a.copy() for a in c.inputs])[0]
    got = compile_fn(run_passes(g).final)([a.copy() for a in c.inputs])[0]
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype, want.shape, want.dtype)
    if got.dtype.kind == "f":
        f32 = got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=3e-6 if f32 else 1e-12, atol=1e-6 if f32 else 1e-12,
                                   equal_nan=True, err_msg=repr(c))
    else:
        np.testing.assert_array_equal(got, want, err_msg=repr(c))
