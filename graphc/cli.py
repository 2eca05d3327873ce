"""The `graphc` command (also `python -m graphc`).

    graphc demo      [--steps N] [--out report.html]     train a small MLP eagerly and compiled
    graphc dump      FILE.py:FUNCTION [--stage S|all] [--out DIR] [--locs]
    graphc viz       FILE.py:FUNCTION --out graph.svg [--stage S] [--collapse]
    graphc report    FILE.py:FUNCTION --out report.html
    graphc explain   FILE.py:FUNCTION [--calls N]
    graphc bench     [NAME ...] [--backend B] [--repeat N] [--json] [--plot bench.png] [--compile-times]
                     [--threads N] [--peers PATH]

FILE.py:FUNCTION names a function in a Python file: a compiled one (gc.compile / @gc.compile)
or a plain one (compiled here, with --backend). The file says what to call it with, by either
of two conventions (the first found wins):

    FUNCTION_example_args = (x, y)          # a module-level tuple of positional arguments
    EXAMPLE_ARGS = {"FUNCTION": (x, y)}     # a module-level dict: function name -> tuple

The value may also be a zero-argument callable returning the tuple, or a *list* of tuples: the
function is then called with each in turn (explain shows what retraced and why), and dump/viz
show the graph for the last one. Before dumping or drawing, the function is called once with
the arguments (a training step then reaches its steady state: .grad buffers exist).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys


class UsageError(Exception):
    pass


# ---- loading FILE.py:FUNCTION -------------------------------------------------------------------
def load_target(spec: str):
    """(module, function name, function) for 'path/to/file.py:NAME'."""
    if ":" not in spec:
        raise UsageError(f"expected FILE.py:FUNCTION, got {spec!r}")
    path, name = spec.rsplit(":", 1)
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    path = os.path.abspath(path)
    modname = "_graphc_cli_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    d = os.path.dirname(path)
    if d not in sys.path:
        sys.path.insert(0, d)
    s = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(s)
    sys.modules[modname] = mod
    s.loader.exec_module(mod)
    if not hasattr(mod, name):
        fns = [k for k, v in vars(mod).items() if callable(v) and not k.startswith("_")
               and (getattr(v, "__module__", modname) in (modname, None)
                    or str(getattr(v, "__module__", "")).startswith("graphc.compiler"))]
        raise UsageError(f"{path} has no {name!r}; callables defined there: {', '.join(fns) or 'none'}")
    return mod, name, getattr(mod, name)


def example_arg_sets(mod, name):
    """The list of argument tuples the file gives for `name` (see the module docstring)."""
    val = getattr(mod, f"{name}_example_args", None)
    if val is None:
        ex = getattr(mod, "EXAMPLE_ARGS", None)
        if isinstance(ex, dict) and name in ex:
            val = ex[name]
    if val is None:
        raise UsageError(
            f"{mod.__file__} does not say what to call {name} with: define "
            f"`{name}_example_args = (arg, ...)` or `EXAMPLE_ARGS = {{{name!r}: (arg, ...)}}` in it")
    if callable(val) and not isinstance(val, (tuple, list)):
        val = val()
    if isinstance(val, list):
        sets = [tuple(v) if isinstance(v, (tuple, list)) else (v,) for v in val]
    elif isinstance(val, tuple):
        sets = [val]
    else:
        sets = [(val,)]
    if not sets:
        raise UsageError(f"the example arguments for {name} are an empty list")
    return sets


def compiled_target(spec, backend=None):
    """(CompiledFunction, [argument tuples]) for FILE.py:FUNCTION."""
    import graphc as gc
    from .viz import compiled_of
    mod, name, fn = load_target(spec)
    sets = example_arg_sets(mod, name)
    if not hasattr(compiled_of(fn), "entry"):
        fn = gc.compile(fn, backend=backend)
    return compiled_of(fn), sets


def _warm(cf, sets):
    for a in sets:
        cf(*a)
    return sets[-1]


# ---- commands -----------------------------------------------------------------------------------
def cmd_dump(a):
    cf, sets = compiled_target(a.target, a.backend)
    args = _warm(cf, sets)
    passes = cf.entry(*args).passes
    from .ir.text import print_graph
    names = [n for n, _ in passes.stages]
    if a.stage == "all":
        chosen = list(enumerate(passes.stages))
    elif a.stage in ("final", "last"):
        chosen = [(len(names) - 1, passes.stages[-1])]
    elif a.stage in names:
        k = names.index(a.stage)
        chosen = [(k, passes.stages[k])]
    else:
        _bad_stage(a.stage, names)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
    for i, (n, g) in chosen:
        text = print_graph(g, locs=a.locs)
        t = passes.times_ms.get(n)
        if a.out:
            p = os.path.join(a.out, f"{g.name}.{i:02d}.{n}.ir")
            with open(p, "w") as f:
                f.write(text + "\n")
            print(p)
        else:
            print(f"# ---- {i:02d} {n}" + ("" if t is None else f"  ({t:.2f} ms)"))
            print(text)
            print()
    return 0


def _bad_stage(s, names):
    raise UsageError(f"unknown stage {s!r}; stages are: {', '.join(names)}, final, all")


def cmd_viz(a):
    from . import viz
    cf, sets = compiled_target(a.target, a.backend)
    args = _warm(cf, sets)
    names = cf.stages(*args)
    if a.stage not in names and a.stage not in ("final", "last"):
        _bad_stage(a.stage, names)
    viz.visualize(cf, a.out, *args, stage=a.stage, collapse=a.collapse)
    print(a.out)
    return 0


def cmd_report(a):
    from .report import write_report
    cf, sets = compiled_target(a.target, a.backend)
    args = _warm(cf, sets)
    write_report(cf, a.out, *args, collapse=a.collapse)
    print(a.out)
    return 0


def cmd_explain(a):
    cf, sets = compiled_target(a.target, a.backend)
    for _ in range(a.calls):
        for args in sets:
            cf(*args)
    args = sets[-1]
    e = cf.entry(*args)
    traced = e.passes.stages[0][1]
    final = e.passes.final
    print(f"{cf.name}: compiled with backend={cf.backend}")
    print(f"\nWhat was traced (for the last argument set): graph {traced.name}, "
          f"{traced.primitive_count()} primitives traced; final graph: {final.primitive_count()} primitives in "
          f"{len(final.kernels())} kernels")
    print("  arguments:")
    for v in traced.arg_inputs():
        print(f"    %{v.name}: {v.type}  '{v.label}'")
    st = traced.state_inputs()
    print(f"  captured state ({len(st)} tensors read from the closure, globals, modules, optimizers):")
    for v in st:
        print(f"    %{v.name}: {v.type}  '{v.label}'")
    print(f"  outputs: " + (", ".join(f"%{v.name}: {v.type}" for v in traced.outputs) or "none"))
    if traced.updates:
        print(f"  write-backs ({len(traced.updates)}: state the call updates in place):")
        for lbl, v in traced.updates:
            print(f"    {lbl} <- %{v.name}: {v.type}")
    else:
        print("  write-backs: none")
    print("\nTraces (what retraced and why):")
    print(cf.explain())
    return 0


def cmd_bench(a):
    from . import bench
    if a.list:
        for n, f in bench.WORKLOADS.items():
            print(f"{n:18s} {f.doc}")
        return 0
    unknown = [n for n in a.names if n not in bench.WORKLOADS]
    if unknown:
        raise UsageError(f"unknown workload(s) {', '.join(unknown)}; workloads: {', '.join(bench.WORKLOADS)}")
    try:
        peers = bench.load_peers(a.peers)
    except (OSError, ImportError) as e:
        raise UsageError(f"--peers {a.peers}: {e}") from None
    if a.threads:
        bench.limit_threads(a.threads)
    rows = bench.run(a.names or None, backend=a.backend, repeat=a.repeat, others=not a.no_others,
                     progress=not a.json, torch_compile=not a.no_torch_compile, compile_times=a.compile_times,
                     peers=peers)
    if a.plot:
        bench.bar_chart(rows, a.plot)
    if a.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        print(bench.table(rows))
        if a.compile_times:
            print()
            print(bench.compile_table(rows))
        if a.plot:
            print(f"bar chart: {a.plot}")
    return 0


def cmd_demo(a):
    import time
    import numpy as np
    import graphc as gc
    import graphc.nn.functional as F
    from .report import write_report
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None

    def build(seed):
        gc.manual_seed(seed)
        l1, l2 = gc.nn.Linear(784, 128), gc.nn.Linear(128, 10)
        opt = gc.optim.SGD(list(l1.parameters()) + list(l2.parameters()), lr=0.1, momentum=0.9)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(l2(F.relu(l1(x))), y)
            loss.backward()
            opt.step()
            return loss
        return step

    gc.manual_seed(0)
    x, y = gc.randn(64, 784), gc.randint(0, 10, (64,))
    eager = build(1)
    comp = gc.compile(build(1), backend=a.backend)
    print("Training a 784-128-10 MLP (batch 64, SGD momentum) eagerly and compiled, same seed:")
    print("step  eager loss   compiled loss")
    it = range(a.steps)
    if tqdm is not None:
        it = tqdm(it, desc="demo: training", unit="step", leave=False)
    rows = []
    for i in it:
        rows.append((i, eager(x, y).item(), comp(x, y).item()))

    def median_ms(f, n=a.repeat):
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            f(x, y)
            ts.append((time.perf_counter() - t0) * 1e3)
        return float(np.median(ts))
    for i, le, lc in rows[:3] + ([("...", None, None)] if len(rows) > 4 else []) + rows[3:][-1:]:
        if le is None:
            print(" ...")
        else:
            print(f"{i:4d}  {le:10.6f}   {lc:10.6f}")
    worst = max(abs(le - lc) / max(1.0, abs(le)) for _, le, lc in rows)
    print(f"largest relative loss difference: {worst:.2e}")
    te, tc = median_ms(eager), median_ms(comp)
    print(f"\n            median ms/step (of {a.repeat} steps after training)")
    print(f"eager       {te:10.3f}")
    print(f"compiled    {tc:10.3f}   (backend={comp.backend})")
    print(f"ratio       {te / tc:10.2f}x  (eager / compiled)")
    print()
    print(comp.explain())
    if a.out:
        write_report(comp, a.out, x, y)
        print(f"\nreport: {a.out}")
    return 0


# ---- argument parsing ---------------------------------------------------------------------------
_TARGET_HELP = ("FILE.py:FUNCTION; the file defines FUNCTION_example_args = (args...) or "
                "EXAMPLE_ARGS = {'FUNCTION': (args...)}")


def build_parser():
    from . import bench
    p = argparse.ArgumentParser(prog="graphc", description="graphc: look at, draw and measure compiled graphs.",
                                epilog="Run `graphc COMMAND --help` for each command.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def target_cmd(name, help_, fn):
        s = sub.add_parser(name, help=help_, description=help_ + "\n\n" + _conventions(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        s.add_argument("target", help=_TARGET_HELP)
        s.add_argument("--backend", default=None,
                       help="backend for a plain function (default: llvm where available, GRAPHC_BACKEND overrides)")
        s.set_defaults(func=fn)
        return s

    s = sub.add_parser("demo", help="train a small MLP eagerly and compiled, print times, write the report")
    s.add_argument("--steps", type=int, default=20, help="training steps (default 20)")
    s.add_argument("--repeat", type=int, default=20, help="timed steps per median (default 20)")
    s.add_argument("--backend", default=None, help="default: llvm where available (GRAPHC_BACKEND overrides)")
    s.add_argument("--out", default="graphc-report.html", help="HTML report path ('' for none)")
    s.set_defaults(func=cmd_demo)

    s = target_cmd("dump", "print (or write) the IR after each pass", cmd_dump)
    s.add_argument("--stage", default="all", help="a pass name, traced, final, or all (default)")
    s.add_argument("--out", help="directory to write one NN.stage.ir file per stage into")
    s.add_argument("--locs", action="store_true", help="end each node line with its source location")

    s = target_cmd("viz", "draw the graph (.svg, .png or .dot by extension)", cmd_viz)
    s.add_argument("--out", required=True, help="picture path: graph.svg, graph.png or graph.dot")
    s.add_argument("--stage", default="final", help="traced, a pass name, or final (default)")
    s.add_argument("--collapse", action="store_true", help="one box per kernel / per source line")

    s = target_cmd("report", "write the self-contained HTML report (every pass, kernels, memory)", cmd_report)
    s.add_argument("--out", default="graphc-report.html")
    s.add_argument("--collapse", action="store_true", default=None, help="collapse every picture")

    s = target_cmd("explain", "what was traced, what was captured, what retraced and why", cmd_explain)
    s.add_argument("--calls", type=int, default=2,
                   help="call with each example argument set this many times (default 2)")

    s = sub.add_parser("bench", help="eager vs compiled benchmark suite",
                       description="Side by side in one process, medians and ratios per workload: graphc "
                       "eager, graphc compiled, and the peers: numpy by hand, and torch eager, torch.compile "
                       "and jax.jit when installed (the repository's bench/peers; --peers PATH). The issue-5 "
                       "run with targets: python bench/llvm.py."
                       "\n\nworkloads:\n" + "\n".join(
                           f"  {n:18s} {f.doc}" for n, f in bench.WORKLOADS.items()),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("names", nargs="*", metavar="NAME", help="workloads to run (default: all)")
    s.add_argument("--backend", default=None, help="default: llvm where available (GRAPHC_BACKEND overrides)")
    s.add_argument("--repeat", type=int, default=10, help="timed calls per measurement (default 10)")
    s.add_argument("--json", action="store_true", help="print the rows as JSON")
    s.add_argument("--plot", default="graphc-bench.png", help="bar chart path ('' for none)")
    s.add_argument("--no-others", action="store_true", help="skip the torch / torch.compile / jax columns")
    s.add_argument("--no-torch-compile", action="store_true",
                   help="skip the torch.compile column (its first call compiles for seconds per workload)")
    s.add_argument("--threads", type=int, default=0,
                   help="cap every framework at N CPU threads (default 0: each library's default)")
    s.add_argument("--compile-times", action="store_true",
                   help="also measure graphc compile time, cold and warm (fresh subprocesses on a new disk cache)")
    s.add_argument("--peers", default=None, metavar="PATH",
                   help="where the numpy / torch / torch.compile / jax implementations are: a folder like "
                        "the repository's bench/peers (or bench/ itself); default: bench/peers next to the "
                        "graphc package when it exists; '' for none (graphc's columns only)")
    s.add_argument("--list", action="store_true", help="list the workloads and exit")
    s.set_defaults(func=cmd_bench)
    return p


def _conventions():
    return ("The file says what to call FUNCTION with:\n"
            "  FUNCTION_example_args = (x, y)        # a tuple of positional arguments\n"
            "  EXAMPLE_ARGS = {'FUNCTION': (x, y)}   # or a dict: function name -> tuple\n"
            "(or a zero-argument callable returning it, or a list of tuples: called in turn).\n"
            "FUNCTION may be compiled (@gc.compile) or plain (compiled with --backend).")


def main(argv=None):
    p = build_parser()
    a = p.parse_args(argv)
    if not getattr(a, "func", None):
        p.print_help()
        return 2
    try:
        return a.func(a) or 0
    except UsageError as e:
        print(f"graphc {a.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyError as e:       # unknown stage from PassResult.stage
        print(f"graphc {a.command}: error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
