"""Issue 5's benchmark: every workload with backend="llvm", all columns side by side in ONE
process, medians of --repeat interleaved runs, compile times (cold, warm) and the targets.

    python bench/llvm.py --repeat 20
    python bench/llvm.py mlp_train_b32 ln_gelu --repeat 5 --no-compile-times --json

Every framework runs with its library's default threads (all cores, as the issue's reference
numbers were taken), or --threads N each. Between one framework's timed block and the next the
bench waits 0.3 s, so the previous framework's spinning worker threads (OpenBLAS spins ~0.1 s
after a call, OpenMP runtimes up to 0.2 s) have gone to sleep instead of competing for the
cores (graphc/bench/timing.py: time_interleaved).

Columns: graphc eager and graphc compiled (llvm) from the package (graphc/bench/), and the
peers of this folder's peers/: numpy by hand, torch eager, torch.compile and jax.jit (the last
three when installed); ln_gelu's copy floor (x's bytes read and written at the copy bandwidth
measured in the run) and np.copyto of x. Every implementation starts from the same weights and
the bench checks that their outputs agree before timing. The targets section gives each issue-5
target with the measured ratio and PASS/FAIL (n/a where a column it needs is missing).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys


def _threads_arg(argv):
    """--threads N (default 0: library defaults) from argv, before numpy loads: OpenBLAS and
    OpenMP read their thread counts once, when loaded (bench.limit_threads then sets the rest)."""
    n = "0"
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            n = argv[i + 1]
        elif a.startswith("--threads="):
            n = a.split("=", 1)[1]
    return int(n) if n.isdigit() else 0


_THREADS = _threads_arg(sys.argv[1:])
if _THREADS > 0:
    for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_v] = str(_THREADS)

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "peers")          # numpy by hand, torch, torch.compile, jax.jit
sys.path.insert(0, os.path.dirname(HERE))

from graphc import bench  # noqa: E402


def environment() -> dict:
    import numpy as np
    env = {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
           "machine": platform.machine()}
    for mod in ("torch", "jax"):
        try:
            env[mod] = __import__(mod).__version__
        except ImportError:
            env[mod] = None
    return env


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME", help=f"workloads (default: all): {', '.join(bench.WORKLOADS)}")
    p.add_argument("--repeat", type=int, default=20, help="timed rounds per workload (default 20)")
    p.add_argument("--backend", default="llvm", help="graphc backend of the compiled column (default llvm)")
    p.add_argument("--json", action="store_true", help="print rows, targets and environment as JSON")
    p.add_argument("--no-compile-times", action="store_true", help="skip the cold/warm compile subprocesses")
    p.add_argument("--no-torch-compile", action="store_true", help="skip the torch.compile column")
    p.add_argument("--no-jax", action="store_true", help="skip the jax.jit column")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for every framework (default 0: each library's default, all cores; "
                        "1: one thread each)")
    a = p.parse_args(argv)
    if a.threads > 0:
        bench.limit_threads(a.threads)
    unknown = [n for n in a.names if n not in bench.WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {', '.join(unknown)}; workloads: {', '.join(bench.WORKLOADS)}")
    env = environment()
    rows = bench.run(a.names or None, backend=a.backend, repeat=a.repeat, progress=not a.json,
                     torch_compile=not a.no_torch_compile, jax=not a.no_jax, compile_times=not a.no_compile_times,
                     peers=PEERS)
    ts = bench.targets(rows)
    if a.json:
        env["threads"] = a.threads or "library defaults"
        print(json.dumps({"environment": env, "rows": rows, "targets": ts}, indent=2, default=str))
        return 0
    print(f"graphc bench, backend={a.backend}, {env['date_utc']}; {env['cpus']} cpus, threads per framework: "
          f"{a.threads or 'library defaults'}; numpy {env['numpy']}, torch {env['torch'] or 'not installed'}, "
          f"jax {env['jax'] or 'not installed'}")
    print()
    print(bench.table(rows))
    ct = bench.compile_table(rows)
    if ct:
        print()
        print("compile time of the graphc compiled step:")
        print(ct)
    print()
    print("targets (issue 5):")
    print(bench.targets_text(ts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
