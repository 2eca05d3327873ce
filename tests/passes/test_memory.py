"""Scheduling and memory planning: the plan is valid, tight, and the interpreter run inside the
arena gives the same results as the unplanned graph."""
import numpy as np
import pytest

import graphc as gc
import graphc.nn.functional as F
from graphc.backends.interpreter import Interpreter, PlannedInterpreter
from graphc.ir import parse_graph, print_graph, verify
from graphc.ir.buffer import Buffer
from graphc.passes.fusion import fuse
from graphc.passes.memory import PlanError, memory_report, plan_memory, validate_plan
from graphc.passes.schedule import peak_live_bytes, schedule


def _plan(g):
    p = plan_memory(schedule(fuse(g)))
    verify(p)
    validate_plan(p)
    assert parse_graph(print_graph(p)) == p
    return p


def _inputs(g, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(v.type.shape).astype(v.type.dtype.np) if v.type.dtype.is_floating_point
            else rng.integers(0, 2, v.type.shape).astype(v.type.dtype.np) for v in g.inputs]


def _same_results(g, p, seed=0):
    a, b = _inputs(g, seed), _inputs(g, seed)
    for x, y in zip(Interpreter(g)(a), PlannedInterpreter(p)(b)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    return a, b


CHAIN = """graph f(%x: f32[16,16]) {
  %0: f32[16,16] = exp(%x)
  %1: f32[16] = sum(%0) {axes=(1,), keepdim=False}
  %2: f32[16] = sum(%0) {axes=(0,), keepdim=False}
  %3: f32[16] = mul(%1, %2)
  %4: f32[16,16] = broadcast_to(%3) {shape=(16, 16)}
  %5: f32[16,16] = mul(%0, %4)
  %6: f32[16,16] = sin(%5)
  %7: f32[16] = max(%6) {axes=(0,), keepdim=False}
  %8: f32[] = sum(%7) {axes=(0,), keepdim=False}
  return %8
}"""


def test_plan_is_valid_and_results_match_on_hand_written_ir():
    g = parse_graph(CHAIN)
    p = _plan(g)
    _same_results(g, p)
    rep = memory_report(p)
    assert rep["arena_bytes"] <= rep["naive_bytes"]
    assert rep["arena_bytes"] >= rep["lower_bound_bytes"]


def test_graph_inputs_are_never_written():
    g = parse_graph(CHAIN)
    p = _plan(g)
    a = _inputs(g)
    before = [x.copy() for x in a]
    PlannedInterpreter(p)(a)
    for x, y in zip(a, before):
        np.testing.assert_array_equal(x, y)


def test_state_update_is_written_in_place_and_old_value_readers_run_first():
    g = parse_graph("""graph step(%x: f32[8], state %w: f32[8]) {
      %0: f32[8] = mul(%x, %w)
      %1: f32[] = sum(%0) {axes=(0,), keepdim=False}
      %2: f32[8] = sub(%w, %x)
      return %1
      update w <- %2
    }""")
    p = _plan(g)
    assert any(b == Buffer("state", state="w") for n in p.nodes for b in n.attrs["buffers"]), print_graph(p)
    a = _inputs(g)
    w_before = a[1].copy()
    out = PlannedInterpreter(p)(a)
    np.testing.assert_allclose(out[0], np.sum(a[0] * w_before), rtol=1e-6)
    np.testing.assert_allclose(a[1], w_before - a[0])          # written into w's own buffer
    assert out[1] is a[1]


def test_in_place_reuse_of_a_dying_input():
    g = parse_graph("""graph f(%x: f32[64,64]) {
      %0: f32[64] = sum(%x) {axes=(1,), keepdim=False}
      %1: f32[64,64] = exp(%x)
      %2: f32[64] = max(%1) {axes=(0,), keepdim=False}
      %3: f32[64] = add(%0, %2)
      %4: f32[64] = tanh(%3)
      return %4
    }""")
    p = _plan(g)
    _same_results(g, p)


def test_validator_rejects_overlapping_live_buffers():
    g = parse_graph(CHAIN)
    p = _plan(g)
    arena_nodes = [n for n in p.nodes if any(b.kind == "arena" for b in n.attrs["buffers"])]
    assert len(arena_nodes) >= 2
    # put every arena buffer at offset 0: two of them are alive together
    for n in arena_nodes:
        n.attrs["buffers"] = tuple(Buffer("arena", offset=0) if b.kind == "arena" else b
                                    for b in n.attrs["buffers"])
    with pytest.raises(PlanError, match="overlap"):
        validate_plan(p)


def test_validator_rejects_misaligned_offsets_and_late_state_readers():
    g = parse_graph(CHAIN)
    p = _plan(g)
    n = next(n for n in p.nodes if any(b.kind == "arena" for b in n.attrs["buffers"]))
    n.attrs["buffers"] = tuple(Buffer("arena", offset=8) if b.kind == "arena" else b for b in n.attrs["buffers"])
    with pytest.raises(PlanError, match="aligned"):
        validate_plan(p)
    g2 = parse_graph("""graph step(%x: f32[8], state %w: f32[8]) {
      %0: f32[8] = kernel(%w, %x) {kind='pointwise', buffers=('state:w',)}
        graph k0(%w: f32[8], %x: f32[8]) {
          %0: f32[8] = sub(%w, %x)
          return %0
        }
      %1: f32[8] = kernel(%w) {kind='pointwise', buffers=('out',)}
        graph k1(%w: f32[8]) {
          %1: f32[8] = exp(%w)
          return %1
        }
      return %1
      update w <- %0
    }""")
    with pytest.raises(PlanError, match="read later"):
        validate_plan(g2)


def _mlp_step(batch=16, sizes=(32, 24, 16, 10)):
    gc.manual_seed(0)
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [gc.nn.Linear(a, b), gc.nn.ReLU()]
    model = gc.nn.Sequential(*layers[:-1])
    opt = gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    x, y = gc.randn(batch, sizes[0]), gc.randint(0, sizes[-1], (batch,))
    f = gc.compile(step)
    f(x, y)                      # second trace has the .grad state too
    return f.graph(x, y, stage="autodiff")


def test_training_step_plan_is_tight_and_correct():
    g = _mlp_step()
    p = _plan(g)
    rep = memory_report(p)
    assert rep["arena_bytes"] <= 1.10 * rep["lower_bound_bytes"]
    assert rep["arena_bytes"] <= 0.5 * rep["naive_bytes"]
    rng = np.random.default_rng(0)
    a = [np.abs(rng.standard_normal(v.type.shape)).astype(v.type.dtype.np) if v.type.dtype.is_floating_point
         else rng.integers(0, 2, v.type.shape).astype(v.type.dtype.np) for v in g.inputs]
    b = [x.copy() for x in a]
    for x, y in zip(Interpreter(g)(a), PlannedInterpreter(p)(b)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_schedule_is_deterministic_and_not_worse_than_trace_order():
    g = fuse(_mlp_step())
    s1, s2 = schedule(g), schedule(g)
    assert [n.out.name for n in s1.nodes] == [n.out.name for n in s2.nodes]
    keep = {v.name for v in g.outputs} | {v.name for _, v in g.updates}
    assert peak_live_bytes(s1.nodes, keep) <= peak_live_bytes(g.nodes, keep)


def test_a_matmul_result_never_overwrites_an_input_its_epilogue_reads():
    g = parse_graph("""graph f(%a: f32[4,4], %b: f32[4,4], state %r: f32[4,4]) {
      %0: f32[4,4] = matmul(%a, %b) {transpose_a=False, transpose_b=False}
      %1: f32[4,4] = add(%0, %r)
      return %1
      update r <- %0
    }""")
    p = _plan(g)
    assert not any(b == Buffer("state", state="r") for n in p.nodes for b, v in zip(n.attrs["buffers"], n.outs)
                   if v.name == "0"), print_graph(p)
    _same_results(g, p)
