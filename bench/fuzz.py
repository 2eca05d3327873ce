"""The long differential fuzz run, for before a release.

    python bench/fuzz.py                          # 2000 programs on interp + llvm, a fresh seed
    python bench/fuzz.py --examples 20000 --minutes 60 --seed 7
    python bench/fuzz.py --backends llvm --dtype float32 --max-steps 12
    python bench/fuzz.py --cuda-sim --examples 40  # the cuda backend in numba's simulator, tiny shapes

Random user-level programs (tests/support/fuzz_programs.py) run eagerly on graphc in float32/float64,
on torch in float64 where torch is installed, and compiled by each backend (forward, and a train
step with loss.backward() inside the compiled function, called twice); every result is checked
against the eager run and float64 (see tests/test_fuzz.py). Unlike the CI-sized test
(pytest tests/test_fuzz.py), the run keeps going after a failure: each failure is shrunk to a
minimal program, printed as runnable source, and the search restarts with the next seed, until
--examples programs or --minutes have passed. Exit status 1 if anything failed.
The same run under pytest: GRAPHC_FUZZ_EXAMPLES=20000 python -m pytest -m fuzz tests/test_fuzz.py
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "support"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--examples", type=int, default=int(os.environ.get("GRAPHC_FUZZ_EXAMPLES", 2000)),
                   help="programs to try in all (default 2000, or $GRAPHC_FUZZ_EXAMPLES)")
    p.add_argument("--minutes", type=float, default=None, help="stop after this long")
    p.add_argument("--seed", type=int, default=None, help="first hypothesis seed (default: random)")
    p.add_argument("--backends", default="interp,llvm", help="comma-separated (default interp,llvm)")
    p.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    p.add_argument("--max-steps", type=int, default=10, help="ops per program (default 10)")
    p.add_argument("--max-numel", type=int, default=4000, help="largest tensor (default 4000)")
    p.add_argument("--no-specials", action="store_true", help="no nan/inf/0 planted in the inputs")
    p.add_argument("--no-torch", action="store_true", help="skip the torch float64 comparison")
    p.add_argument("--cuda-sim", action="store_true",
                   help="check the cuda backend in numba's CUDA simulator (tiny shapes; slow)")
    p.add_argument("--chunk", type=int, default=200,
                   help="programs per hypothesis run, each in a fresh process (default 200)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        return child(a)
    seed = a.seed if a.seed is not None else random.randrange(2 ** 31)
    deadline = time.time() + 60 * a.minutes if a.minutes else None
    tried = rejected = 0
    failures = []
    passthrough = [x for x in (argv if argv is not None else sys.argv[1:])]
    while tried < a.examples and (deadline is None or time.time() < deadline):
        n = min(a.chunk, a.examples - tried)
        # a fresh process per chunk: every llvm compile keeps ~0.2 MB of native memory
        cmd = [sys.executable, os.path.abspath(__file__), *_strip(passthrough), "--child",
               "--seed", str(seed), "--examples", str(n)]
        if deadline is not None:
            cmd += ["--minutes", str(max(0.1, (deadline - time.time()) / 60))]
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        stats = [ln for ln in r.stdout.splitlines() if ln.startswith("FUZZ-STATS ")]
        if stats:
            _, t, j = stats[-1].split()
            tried, rejected = tried + int(t), rejected + int(j)
        else:
            tried += n
        report = "\n".join(ln for ln in r.stdout.splitlines() if not ln.startswith("FUZZ-STATS "))
        if r.returncode != 0:
            failures.append((seed, report.strip().splitlines()[0] if report.strip() else r.stderr[-300:]))
            print(f"\n=== failure {len(failures)} (seed {seed}) ===")
            print(report.strip() or r.stderr[-4000:])
        print(f"seed {seed}: {tried} programs tried so far ({rejected} rejected near a kink), "
              f"{time.time() - t0:.0f} s", flush=True)
        seed += 1
    print(f"\n{tried} programs, {len(failures)} failure(s)")
    for s, line in failures:
        print(f"  seed {s}: {line[:200]}")
    return 1 if failures else 0


def _strip(args):
    """argv without --seed/--examples/--minutes/--chunk (the parent sets those per chunk)."""
    out, skip = [], False
    for x in args:
        if skip:
            skip = False
            continue
        if x in ("--seed", "--examples", "--minutes", "--chunk"):
            skip = True
            continue
        if x.split("=")[0] in ("--seed", "--examples", "--minutes", "--chunk"):
            continue
        out.append(x)
    return out


def child(a):
    """One hypothesis run of a.examples programs from a.seed; prints a failure (shrunk) and
    FUZZ-STATS tried rejected; exit status 1 on a failure."""
    if a.cuda_sim:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"          # before numba is first imported
    import warnings
    warnings.simplefilter("ignore")
    from hypothesis import HealthCheck, assume, given, settings
    from hypothesis import seed as hseed
    import fuzz_programs as fp

    backends = tuple(b for b in a.backends.split(",") if b)
    sizes, max_numel, max_steps, max_ndim = fp.SIZES, a.max_numel, a.max_steps, 3
    if a.cuda_sim:
        backends, sizes, max_numel, max_steps, max_ndim = ("cuda",), fp.TINY_SIZES, min(max_numel, 16), \
            min(max_steps, 5), 2
    dtypes = ("float32", "float64") if a.dtype == "both" else (a.dtype,)
    strategy = fp.programs(max_steps=max_steps, sizes=sizes, max_numel=max_numel, max_ndim=max_ndim,
                           dtypes=dtypes, specials=not a.no_specials)
    deadline = time.time() + 60 * a.minutes if a.minutes else None
    stats = {"tried": 0, "rejected": 0}
    last = {}

    @hseed(a.seed)
    @settings(max_examples=a.examples, deadline=None, database=None, derandomize=False, print_blob=False,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(prog):
        if deadline is not None and time.time() > deadline and not last:
            assume(False)
        stats["tried"] += 1
        try:
            fp.check_program(prog, backends=backends, use_torch=not a.no_torch)
        except fp.Rejected:
            stats["rejected"] += 1
            assume(False)
        except Exception as e:
            last["prog"], last["error"] = prog, e
            raise
    status = 0
    try:
        run()
    except Exception as e:              # noqa: BLE001 -- a failure: report it
        prog, err = last.get("prog"), last.get("error", e)
        print(f"{type(err).__name__}: {str(err)[:2000]}")
        print(repr(prog))
        if not isinstance(err, AssertionError):
            traceback.print_exception(type(err), err, err.__traceback__, limit=-4, file=sys.stdout)
        status = 1
    print(f"FUZZ-STATS {stats['tried']} {stats['rejected']}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
