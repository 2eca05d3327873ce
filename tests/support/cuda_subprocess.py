"""Run a module of simulator cases in a subprocess (numba picks the CUDA simulator at its first
import, and other tests in the main process import numba normally)."""
import os
import subprocess
import sys
import tempfile
from glob import glob

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))     # tests/


def run_cases(module, env, *extra, timeout=300):
    """pytest `module` (a file in tests/) in a subprocess with `env` added; the CompletedProcess.
    Hypothesis's storage (example database, constants cache) goes to a temporary directory, never
    into the checkout."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
           *glob(os.path.join(HERE, "**", module), recursive=True), *extra]     # basenames are unique
    with tempfile.TemporaryDirectory(prefix="graphc-hypothesis-") as storage:
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", HYPOTHESIS_STORAGE_DIRECTORY=storage, **env)
        return subprocess.run(cmd, cwd=os.path.dirname(HERE), env=env, capture_output=True, text=True,
                              timeout=timeout)


def simulator_env():
    return {"NUMBA_ENABLE_CUDASIM": "1"}


def assert_simulator_run_passes(module, *extra, timeout=300):
    """Run `module` in the CUDA simulator (run_cases) and fail unless it exited 0 with tests
    passed and none skipped: a cases module that skipped itself (numba-cuda missing, the wrong
    environment) must not count as a pass."""
    r = run_cases(module, simulator_env(), *extra, timeout=timeout)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    last = r.stdout.strip().split("\n")[-1]
    assert " passed" in last and "skipped" not in last and "failed" not in last, out[-3000:]
    return r
