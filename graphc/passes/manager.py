"""The pass manager: an ordered list of named Graph -> Graph passes, each timed, and the IR
dumped after every one when asked."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from ..logs import pass_done as _pass_done
from ..ir import print_graph, verify
from .autodiff import expand_grads
from .fusion import fuse, one_kernel_per_node
from .memory import plan_memory, validate_plan
from .schedule import schedule
from .simplify import cse, dce, fold_constants, simplify


@dataclass
class PassResult:
    stages: list = field(default_factory=list)     # [(name, Graph)], "traced" first
    times_ms: dict = field(default_factory=dict)   # pass name -> milliseconds

    @property
    def final(self):
        return self.stages[-1][1]

    def stage(self, name: str):
        if name in ("final", "last"):
            return self.final
        for n, g in self.stages:
            if n == name:
                return g
        raise KeyError(f"unknown stage {name!r}; stages are: {', '.join(n for n, _ in self.stages)}, final")


def memory(graph):
    """Plan the arena, then prove the plan safe."""
    g = validate_plan(plan_memory(graph))
    g.level = "planned"
    return g


DEFAULT_PASSES = [
    ("verify", verify),
    ("autodiff", expand_grads),
    ("fold_constants", fold_constants),
    ("simplify", simplify),
    ("cse", cse),
    ("dce", dce),
    ("fusion", fuse),
    ("schedule", schedule),
    ("memory", memory),
]

# what stands in for a pass that is switched off, where later passes need its shape of graph
REPLACEMENTS = {"fusion": one_kernel_per_node}

# passes that cannot be switched off, and why
REQUIRED = {"autodiff": "it expands the `grad` placeholders that loss.backward() and "
                        "autograd.grad record while tracing into the backward nodes; no later "
                        "pass and no backend runs a graph that still has them"}


def check_required(enabled):
    """Refuse switching off a pass the pipeline cannot do without (gc.compile asks at once)."""
    for name, why in REQUIRED.items():
        if not (enabled or {}).get(name, True):
            raise ValueError(f"the {name} pass cannot be switched off: {why}")


def check_switches(enabled, passes=None):
    """Refuse unknown pass names and switching off a required one."""
    passes = DEFAULT_PASSES if passes is None else passes
    unknown = set(enabled or {}) - {n for n, _ in passes}
    if unknown:
        raise ValueError(f"unknown pass(es) {sorted(unknown)}; passes are {[n for n, _ in passes]}")
    check_required(enabled)


def run_passes(graph, passes=None, enabled=None, dump_dir=None, verify_each=True) -> PassResult:
    """Run `passes` (default DEFAULT_PASSES) in order; enabled={"fusion": False} switches one
    off (fusion off still wraps every primitive in a kernel of its own, so the scheduler, the
    planner and the backends see the same kind of graph and the numbers compare)."""
    passes = DEFAULT_PASSES if passes is None else passes
    enabled = enabled or {}
    check_switches(enabled, passes)
    res = PassResult(stages=[("traced", graph)])
    if dump_dir:
        os.makedirs(dump_dir, exist_ok=True)
        _dump(dump_dir, 0, "traced", graph)
    for i, (name, fn) in enumerate(passes, start=1):
        if not enabled.get(name, True):
            if name not in REPLACEMENTS:
                continue
            fn = REPLACEMENTS[name]
        t0 = time.perf_counter()
        graph = fn(graph)
        res.times_ms[name] = (time.perf_counter() - t0) * 1e3
        if verify_each and fn is not verify:
            verify(graph)
        _pass_done(graph.name, name, res.times_ms[name], graph)
        res.stages.append((name, graph))
        if dump_dir:
            _dump(dump_dir, len(res.stages) - 1, name, graph)
    return res


def _dump(d, i, name, graph):
    with open(os.path.join(d, f"{graph.name}.{i:02d}.{name}.ir"), "w") as f:
        f.write(print_graph(graph, locs=True) + "\n")
