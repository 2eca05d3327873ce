"""The cuda backend in numba's CUDA simulator == PlannedInterpreter, on tiny shapes.

Not collected by the main test run (the simulator must be chosen before numba is first
imported in a process): tests/backends/cuda/test_cuda_sim.py runs this module in a subprocess with
NUMBA_ENABLE_CUDASIM=1. Run it alone with
    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/backends/cuda/cuda_sim_cases.py

With GRAPHC_CUDA_PTX=1 instead (no simulator), the same cases compile every generated kernel
to PTX for a real GPU (sm_90) with NVVM, no GPU needed -- the typing the simulator cannot
check -- and compare the interpreter with itself. Skips where NVVM is missing
(pip install "numba-cuda[cu13]").
"""
import os

import numpy as np
import pytest

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
PTX = not SIM and os.environ.get("GRAPHC_CUDA_PTX") == "1"
if not (SIM or PTX):
    pytest.skip("run with NUMBA_ENABLE_CUDASIM=1 or GRAPHC_CUDA_PTX=1 (tests/backends/cuda/test_cuda_sim.py does)",
                allow_module_level=True)
pytest.importorskip("numba_cuda", reason="numba-cuda is not installed")
if PTX:
    import graphc.backends.cuda._numba as _shim   # noqa: E402
    try:
        _shim.cuda().compile_ptx(lambda a: None, "void(float32[::1])", cc=(9, 0))
    except Exception as e:     # noqa: BLE001
        pytest.skip(f"NVVM not available for PTX compilation: {type(e).__name__}", allow_module_level=True)

import graphc as gc                                     # noqa: E402
import graphc.nn as nn                                  # noqa: E402
import graphc.nn.functional as F                        # noqa: E402
from graphc import dtypes as _dt                        # noqa: E402
from graphc.backends import get                         # noqa: E402
from graphc.backends.interpreter import PlannedInterpreter  # noqa: E402
from graphc.ir import Graph, TensorType, parse_graph    # noqa: E402
from graphc.ops.registry import PRIMITIVES              # noqa: E402
from graphc.passes.manager import run_passes            # noqa: E402

cuda_compile = get("cuda")
if PTX:
    from graphc.backends import cuda as _cuda_backend   # noqa: E402
    from graphc.backends import register               # noqa: E402
    from graphc.backends.cuda.codegen import Config, generate   # noqa: E402
    from graphc.backends.cuda.runtime import ptx         # noqa: E402

    class _PTXChecked(PlannedInterpreter):
        """Every kernel compiled to PTX; runs as the interpreter."""

        def __init__(self, graph, **opts):
            _cuda_backend.check_planned(graph)
            cfg = Config(simulator=False, **opts)
            self.ptx = ptx(graph, cfg)
            self.source = generate(graph, cfg)[1]
            super().__init__(graph)

        def cuda_source(self):
            return self.source

    def cuda_compile(graph, **opts):   # noqa: F811
        return _PTXChecked(graph, **opts)
    register("cuda", cuda_compile)
# the simulator computes with numpy scalars, which warn on uint64 wrap-around (splitmix64),
# x/0 and nan; a GPU does the same arithmetic silently
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def plan(g):
    return run_passes(g).final


def inputs_for(g, seed=0, positive=False):
    rng = np.random.default_rng(seed)
    res = []
    for v in g.inputs:
        t = v.type
        if t.dtype.is_floating_point:
            a = rng.standard_normal(t.shape) * 2
            if positive:
                a = np.abs(a) + 0.1
            res.append(np.asarray(a, dtype=t.dtype.np))
        elif t.dtype is _dt.bool_:
            res.append(np.asarray(rng.integers(0, 2, t.shape), dtype=bool))
        else:
            res.append(np.asarray(rng.integers(-5, 6, t.shape), dtype=np.int64))
    return res


def check(g, ins=None, rtol=1e-5, atol=1e-6, planned=False, seed=0):
    p = g if planned else plan(g)
    ins = inputs_for(p, seed) if ins is None else ins
    a = [x.copy() for x in ins]
    b = [x.copy() for x in ins]
    exe = cuda_compile(p)
    got = exe(a)
    want = PlannedInterpreter(p)(b)
    assert len(got) == len(want)
    for x, y in zip(got, want):
        assert x.shape == y.shape and x.dtype == y.dtype, (x.shape, x.dtype, y.shape, y.dtype)
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, equal_nan=True)
        else:
            np.testing.assert_array_equal(x, y)
    for x, y in zip(a, b):     # state written in place identically
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, equal_nan=True)
    return exe, p


def node(g, op, inputs, **attrs):
    return g.add_node(op, inputs, attrs, PRIMITIVES[op].infer(*[v.type for v in inputs], **attrs))


# ---- every kernel kind ----------------------------------------------------------------------------------
def test_pointwise_reduction_matmul_kernels_and_source():
    g = parse_graph("""graph f(%x: f32[4,4], %w: f32[4,3]) {
      %0: f32[4,4] = exp(%x)
      %1: f32[4] = sum(%0) {axes=(1,), keepdim=False}
      %2: f32[4] = sum(%0) {axes=(0,), keepdim=False}
      %3: f32[4] = mul(%1, %2)
      %4: f32[4,4] = broadcast_to(%3) {shape=(4, 4)}
      %5: f32[4,4] = mul(%0, %4)
      %6: f32[4,4] = sin(%5)
      %7: f32[4] = max(%6) {axes=(0,), keepdim=False}
      %8: f32[] = sum(%7) {axes=(0,), keepdim=False}
      %9: f32[4,3] = matmul(%6, %w) {transpose_a=False, transpose_b=False}
      %10: f32[4,3] = tanh(%9)
      return %8, %10
    }""")
    exe, p = check(g, rtol=1e-4, atol=1e-5)      # f32 sums in another order (tree vs sequential)
    kinds = {k.attrs["kind"] for k in p.nodes}
    assert {"reduction", "matmul"} <= kinds
    src = exe.cuda_source()
    assert "@cuda.jit" in src and "cuda.shared.array" in src and "cuda.syncthreads()" in src
    compile(src, "<cuda_source>", "exec")     # readable, valid Python


def test_opaque_fold_scatter_add_and_view():
    g = parse_graph("""graph f(%c: f32[1,8,4], %x: f32[3,4], %i: i64[3,2], %s: f32[3,2]) {
      %0: f32[1,2,3,3] = fold(%c) {output_size=(3, 3), kernel=(2, 2), stride=(1, 1), padding=(0, 0), dilation=(1, 1)}
      %1: f32[1,2,3,3] = exp(%0)
      %2: f32[3,4] = scatter_add(%x, %i, %s) {axis=1}
      %3: f32[3,4] = mul(%2, %2)
      %4: f32[18] = reshape(%0) {shape=(18,)}
      %5: f32[] = sum(%4) {axes=(0,), keepdim=False}
      return %1, %3, %5
    }""")
    p = plan(g)
    ins = inputs_for(p)
    ins[2] = np.array([[0, 3], [1, 1], [2, 0]], dtype=np.int64)
    check(p, ins, planned=True)


def test_unplanned_graph_and_unsupported_op_raise():
    g = parse_graph("""graph f(%x: f32[3]) {
      %0: f32[3] = exp(%x)
      return %0
    }""")
    with pytest.raises(NotImplementedError, match="not memory-planned"):
        cuda_compile(g)
    p = plan(g)
    p.nodes[0].body.nodes[0].op = "mystery"
    with pytest.raises(NotImplementedError, match="mystery"):
        cuda_compile(p)


# ---- every primitive's reference cases (tests/support/primitive_conformance.py) -------------------------------
CUDA_REFUSES = {("max", "bool"), ("argmax", "bool")}    # reductions the generator refuses, naming them


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_primitive_conformance(name):
    import primitive_conformance as PC
    for c in PC.cases(name):
        if (name, c.inputs[0].dtype.name if c.inputs else None) in CUDA_REFUSES:
            with pytest.raises(NotImplementedError, match=f"'{name}' is not supported: on bool"):
                PC.check(c, cuda_compile)
            continue
        try:
            PC.check(c, cuda_compile)
        except (OverflowError, ValueError) as e:
            # the simulator runs Python's math, which raises outside its domain (exp(1000),
            # log(0)) where a GPU returns inf / nan
            if not (SIM and "math" in str(e)):
                raise


# ---- every elementwise primitive ------------------------------------------------------------------------
FLOAT_UNARY = ["neg", "abs", "sign", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "sin", "cos",
               "erf", "floor", "stop_gradient"]
BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "floor_divide", "remainder",
          "lt", "le", "gt", "ge", "eq", "ne"]


def _graph(ops, dt, shape, n_in):
    g = Graph("e")
    xs = [g.add_input(TensorType(shape, dt), label=f"x{i}") for i in range(n_in)]
    g.outputs = [node(g, op, xs) for op in ops]
    return g


@pytest.mark.parametrize("dt", [_dt.float32, _dt.float64])
def test_float_unary(dt):
    for shape in [(), (5,)]:
        # the simulator runs Python's math, which raises outside the domain (a GPU gives nan):
        # log/sqrt/rsqrt see positive inputs only
        for ops, positive in ((FLOAT_UNARY, True), ([o for o in FLOAT_UNARY if o not in ("log", "sqrt", "rsqrt")], False)):
            g = _graph(ops, dt, shape, 1)
            p = plan(g)
            check(p, inputs_for(p, positive=positive), planned=True, rtol=3e-6 if dt is _dt.float32 else 1e-12,
                  atol=1e-6 if dt is _dt.float32 else 1e-12)


def test_int_unary():
    check(_graph(["neg", "abs", "sign", "stop_gradient"], _dt.int64, (7,), 1))


@pytest.mark.parametrize("dt", [_dt.float32, _dt.float64, _dt.int64])
def test_binary(dt):
    ops = [o for o in BINARY if not (o == "div" and dt is _dt.int64)]
    g = _graph(ops, dt, (2, 4), 2)
    p = plan(g)
    ins = inputs_for(p)
    if dt is _dt.int64:
        ins[1][ins[1] == 0] = 3
        ins[1] = np.where(np.array([o == "pow" for o in ops]).any(), np.abs(ins[1]), ins[1])
    else:
        ins[0] = np.abs(ins[0]) + np.asarray(0.1, dtype=ins[0].dtype)   # pow of a negative base is nan
    check(p, ins, planned=True, rtol=3e-6 if dt is _dt.float32 else 1e-12)


def test_casts_bool_ops_where():
    shape = (3,)
    for src in (_dt.float32, _dt.float64, _dt.int64, _dt.bool_):
        g = Graph("c")
        x = g.add_input(TensorType(shape, src), label="x")
        g.outputs = [node(g, "cast", [x], dtype=dst) for dst in (_dt.float32, _dt.float64, _dt.int64, _dt.bool_)
                     if dst is not src]
        check(g)
    g = Graph("b")
    x = g.add_input(TensorType(shape, _dt.bool_), label="x")
    y = g.add_input(TensorType(shape, _dt.bool_), label="y")
    f = g.add_input(TensorType(shape, _dt.float32), label="f")
    h = g.add_input(TensorType(shape, _dt.float32), label="h")
    g.outputs = [node(g, "logical_not", [x]), node(g, "logical_and", [x, y]),
                 node(g, "logical_or", [x, y]), node(g, "eq", [x, y]), node(g, "where", [x, f, h])]
    check(g)


@pytest.mark.parametrize("dt", [_dt.float32, _dt.float64])
def test_float_binary(dt):
    g = _graph(["atan2"], dt, (2, 4), 2)
    p = plan(g)
    check(p, inputs_for(p), planned=True, rtol=3e-7 if dt is _dt.float32 else 1e-15)


def test_special_float_values():
    g = _graph(["maximum", "minimum", "floor_divide", "remainder", "div", "atan2"], _dt.float64, (8,), 2)
    g2 = _graph(["sigmoid", "sign", "abs", "floor", "tanh"], _dt.float64, (8,), 1)
    vals = np.array([np.nan, np.inf, -np.inf, 0.0, 1.5, -2.5, 7.0, -3.0])
    check(g, [vals.copy(), np.roll(vals, 3)])
    check(g2, [vals.copy()])


# ---- index maps ----------------------------------------------------------------------------------------
def test_broadcast_transpose_slice_pad_concat_gather_iota_constant():
    g = parse_graph("""graph f(%x: f32[3,1,2], %y: f32[2,3], %z: f32[5,5], %i: i64[2,3]) {
      %0: f32[2,3,3,2] = broadcast_to(%x) {shape=(2, 3, 3, 2)}
      %1: f32[3,2] = permute(%y) {perm=(1, 0)}
      %2: f32[2,3,3,2] = broadcast_to(%1) {shape=(2, 3, 3, 2)}
      %3: f32[2,3,3,2] = add(%0, %2)
      %4: f32[2,2] = slice(%z) {starts=(1, 0), stops=(5, 5), steps=(2, 3)}
      %5: f32[4,3] = pad(%4) {lo=(1, 0), hi=(0, 0), interior=(1, 1), value=-1.5}
      %6: f32[4,6] = concat(%5, %5) {axis=1}
      %7: f32[2,3] = take_along_axis(%y, %i) {axis=0}
      %8: f32[2,3] = iota() {shape=(2, 3), axis=1, dtype=float32}
      %9: f32[2,3] = constant() {shape=(2, 3), dtype=float32, data=(1.0, 2.0, 3.0, 4.0, 6.5, -1.0)}
      %10: f32[2,3] = add(%7, %8)
      %11: f32[2,3] = mul(%10, %9)
      %12: f32[24] = reshape(%6) {shape=(24,)}
      %13: f32[3,8] = reshape(%12) {shape=(3, 8)}
      %14: f32[8,3] = permute(%13) {perm=(1, 0)}
      %15: f32[8,3] = exp(%14)
      return %3, %11, %15
    }""")
    p = plan(g)
    ins = inputs_for(p)
    ins[3] = np.array([[0, 1, 1], [1, 0, 0]], dtype=np.int64)
    check(p, ins, planned=True)


def test_unfold_and_uniform_bit_exact():
    g = parse_graph("""graph f(%x: f64[1,2,3,4], %s: i64[2]) {
      %0: f64[1,8,9] = unfold(%x) {kernel=(2, 2), stride=(1, 2), padding=(1, 1), dilation=(2, 1), value=0.5}
      %1: f64[1,8,9] = uniform(%s) {shape=(1, 8, 9), dtype=float64}
      %2: f64[1,8,9] = add(%0, %1)
      %3: f32[5,3] = uniform(%s) {shape=(5, 3), dtype=float32}
      return %2, %3
    }""")
    p = plan(g)
    ins = inputs_for(p)
    ins[1] = np.array([12345, (1 << 62) + 7], dtype=np.int64)
    check(p, ins, planned=True, rtol=0, atol=0)


# ---- reductions ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dt", [_dt.float32, _dt.int64])
def test_reductions(dt):
    for shape, axes in [((7,), (0,)), ((3, 5), (1,)), ((3, 5), (0,)), ((2, 3, 2), (0, 2)), ((3, 0), (1,))]:
        g = Graph("r")
        x = g.add_input(TensorType(shape, dt), label="x")
        outs = [node(g, "sum", [x], axes=axes, keepdim=True)]
        if 0 not in [shape[a] for a in axes]:
            outs.append(node(g, "max", [x], axes=axes, keepdim=False))
            outs.append(node(g, "argmax", [x], axis=axes[-1], keepdim=False))
        g.outputs = outs
        p = plan(g)
        ins = inputs_for(p)
        if ins[0].size:
            ins[0].flat[ins[0].size // 2] = ins[0].max()     # ties: argmax takes the first
        check(p, ins, planned=True)


def test_softmax_style_reduction_with_nan():
    g = parse_graph("""graph f(%x: f64[3,6]) {
      %0: f64[3,1] = max(%x) {axes=(1,), keepdim=True}
      %1: f64[3,6] = broadcast_to(%0) {shape=(3, 6)}
      %2: f64[3,6] = sub(%x, %1)
      %3: f64[3,6] = exp(%2)
      %4: f64[3] = sum(%3) {axes=(1,), keepdim=False}
      %5: f64[3,1] = reshape(%4) {shape=(3, 1)}
      %6: f64[3,6] = broadcast_to(%5) {shape=(3, 6)}
      %7: f64[3,6] = div(%3, %6)
      %8: i64[3] = argmax(%x) {axis=1, keepdim=False}
      return %7, %4, %8
    }""")
    p = plan(g)
    x = np.random.default_rng(0).standard_normal((3, 6))
    x[1, 3] = np.nan
    x[2, 2] = np.nan
    x[2, 5] = np.nan
    check(p, [x], planned=True)


# ---- matmul --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dt", [_dt.float32, _dt.int64])
def test_matmul_flags_epilogue_batched(dt):
    for ta in (False, True):
        for tb in (False, True):
            for batch, (m, k, n) in [((), (3, 5, 2)), ((2,), (2, 1, 3)), ((), (2, 0, 2))]:
                g = Graph("mm")
                a = g.add_input(TensorType(batch + ((k, m) if ta else (m, k)), dt), label="a")
                b = g.add_input(TensorType(batch + ((n, k) if tb else (k, n)), dt), label="b")
                r = g.add_input(TensorType(batch + (m, n), dt), label="r")
                mm = node(g, "matmul", [a, b], transpose_a=ta, transpose_b=tb)
                g.outputs = [node(g, "add", [mm, r]), mm]
                check(g)


def test_matmul_epilogue_through_scratch():
    g = parse_graph("""graph f(%a: f32[3,3], %b: f32[3,3]) {
      %0: f32[3,3] = matmul(%a, %b) {transpose_a=False, transpose_b=False}
      %1: f32[3,3] = permute(%0) {perm=(1, 0)}
      %2: f32[3,3] = add(%0, %1)
      return %2
    }""")
    exe, p = check(g)


def test_matmul_epilogue_in_place_state_update():
    g = parse_graph("""graph step(%x: f32[4,3], %g: f32[4,2], state %w: f32[3,2], state %m: f32[3,2]) {
      %0: f32[3,2] = matmul(%x, %g) {transpose_a=True, transpose_b=False}
      %1: f32[] = full() {shape=(), value=0.9, dtype=float32}
      %2: f32[3,2] = broadcast_to(%1) {shape=(3, 2)}
      %3: f32[3,2] = mul(%m, %2)
      %4: f32[3,2] = add(%3, %0)
      %5: f32[] = full() {shape=(), value=0.1, dtype=float32}
      %6: f32[3,2] = broadcast_to(%5) {shape=(3, 2)}
      %7: f32[3,2] = mul(%4, %6)
      %8: f32[3,2] = sub(%w, %7)
      return %0
      update w <- %8
      update m <- %4
    }""")
    p = plan(g)
    assert any(b.kind == "state" for k in p.nodes for b in k.attrs["buffers"])
    check(p, planned=True)
    ins = inputs_for(p)
    w, m = ins[2], ins[3]
    res = cuda_compile(p)(ins)
    assert res[1] is w and res[2] is m       # written in place, returned as the same arrays


# ---- whole compiled functions: cuda == interp ---------------------------------------------------------
def _mlp_run(backend, steps=3):
    gc.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = gc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gc.manual_seed(1)
    x, y = gc.randn(4, 8), gc.randint(0, 4, (4,))

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    f = gc.compile(step, backend=backend)
    losses = [float(f(x, y).item()) for _ in range(steps)]
    return losses, {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def test_mlp_sgd_momentum_training_steps():
    la, sa = _mlp_run("cuda")
    lb, sb = _mlp_run("interp")
    np.testing.assert_allclose(la, lb, rtol=1e-5)
    assert len(set(np.round(lb, 6))) == len(lb)
    for k in sb:
        np.testing.assert_allclose(sa[k], sb[k], rtol=1e-5, atol=1e-5, err_msg=k)


def _compare(fn, *args):
    a = gc.compile(fn, backend="cuda")(*args)
    b = gc.compile(fn, backend="interp")(*args)
    for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-5, atol=1e-6)


def test_softmax_cross_entropy():
    gc.manual_seed(0)
    x, y = gc.randn(4, 5), gc.randint(0, 5, (4,))
    _compare(lambda x, y: (F.softmax(x, dim=-1), F.cross_entropy(x, y)), x, y)


def test_layer_norm_gelu():
    gc.manual_seed(0)
    x, w, b = gc.randn(3, 8), gc.randn(8), gc.randn(8)
    _compare(lambda x: F.gelu(F.layer_norm(x, (8,), w, b)), x)


def test_random_graphs_sample():
    from hypothesis import HealthCheck, given, settings
    from randgraphs import random_graphs

    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(random_graphs())
    def run(g):
        check(g, rtol=1e-9, atol=1e-9)
    run()


def test_other_launch_shapes():
    """Tile, register-block, k-step and block sizes are options: results do not depend on them."""
    g = parse_graph("""graph f(%a: f32[2,5,3], %b: f32[2,4,3], %x: f32[3,7]) {
      %0: f32[2,5,4] = matmul(%a, %b) {transpose_a=False, transpose_b=True}
      %1: f32[2,5,4] = tanh(%0)
      %2: f32[3,1] = max(%x) {axes=(1,), keepdim=True}
      %3: f32[3,7] = broadcast_to(%2) {shape=(3, 7)}
      %4: f32[3,7] = sub(%x, %3)
      return %1, %4
    }""")
    p = plan(g)
    ins = inputs_for(p)
    want = PlannedInterpreter(p)([x.copy() for x in ins])
    for opts in (dict(tile=1, regs=1, tile_k=1, block=1, red_block=1, max_blocks=1),
                 dict(tile=3, regs=1, tile_k=4, block=5, red_block=8),
                 dict(tile=2, regs=3, tile_k=3, block=3, red_block=2, max_blocks=3)):
        got = cuda_compile(p, **opts)([x.copy() for x in ins])
        for x, y in zip(got, want):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=str(opts))
