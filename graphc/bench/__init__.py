"""The benchmark suite behind `graphc bench` and bench/llvm.py: every implementation of a
workload side by side, in one process.

    graphc bench                         # every workload, the default backend (llvm)
    graphc bench mlp_train_b128 ln_gelu --backend llvm --repeat 20 --json
    graphc bench --peers ~/graphc/bench  # an installed graphc, the repository's peers
    python bench/llvm.py --repeat 20     # issue 5: llvm backend, all columns, compile times, targets

Columns, per workload (docs/benchmarks.md):
  eager          graphc eager (dynamic graph, a numpy kernel per op)
  compiled       gc.compile(step, backend=...)
  numpy          the same step written by hand in numpy (forward, backward and SGD momentum by
                 hand for the training steps; float32)
  torch          PyTorch eager (CPU), when torch imports
  torch.compile  torch.compile of the same torch step; a failure is reported per workload as
                 "n/a (reason)"
  jax.jit        jax.jit of the same step (jax.value_and_grad + a functional momentum update),
                 when jax imports
  copy floor     ln_gelu only: the bytes of reading x once and writing y once at the copy
                 bandwidth measured in the same run (floor.py)
  copyto x       ln_gelu only: np.copyto of x itself into a preallocated y, timed like the others

graphc's own columns are here; numpy, torch, torch.compile and jax.jit are the peers, which live
outside the package (the repository's bench/peers/; peers.py says how they are found). Without
them the suite runs graphc's columns only and its table says so.

The modules, one idea each:
  columns.py        the columns, Impl (one implementation), the shared hyperparameters
  workloads.py      the workloads, their shared initial state, Workload.impl(column)
  steps.py          graphc's own implementations (eager, compiled)
  peers.py          finding and loading the peer implementations
  floor.py          ln_gelu's copy floor (the bandwidth probe)
  timing.py         interleaved medians in one process; capping every framework's threads
  suite.py          run / run_one: check the columns agree, time them, the rows
  compile_time.py   cold and warm compile time in fresh processes on a new disk cache
  judge.py          issue 5's targets judged from the rows
  report.py         the rows as text tables
  plot.py           the rows as a bar chart
"""
from __future__ import annotations

from .columns import COLUMNS, EPS, LR, MOMENTUM, PEER_COLUMNS, Impl
from .compile_time import compile_probe, compile_times, fresh_processes
from .floor import STREAM_BYTES, copy_same, copy_stream, floor_ms
from .peers import Peers, default_path as default_peers_path, load as load_peers
from .plot import bar_chart
from .report import compile_table, table
from .suite import TOL, pass_stats, rel_err, run, run_one
from .judge import targets, targets_text
from .timing import SETTLE_S, limit_threads, thread_env, time_interleaved
from .workloads import SEED, WORKLOADS, Workload

__all__ = ["COLUMNS", "EPS", "LR", "MOMENTUM", "PEER_COLUMNS", "Impl", "compile_probe", "compile_times",
           "fresh_processes", "STREAM_BYTES", "copy_same", "copy_stream", "floor_ms", "Peers",
           "default_peers_path", "load_peers", "bar_chart", "compile_table", "table", "TOL", "pass_stats",
           "rel_err", "run", "run_one", "targets", "targets_text", "SETTLE_S", "limit_threads", "thread_env",
           "time_interleaved", "SEED", "WORKLOADS", "Workload"]
