"""The seed programs and examples run, eagerly and compiled, and agree."""
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow      # every test here takes seconds (pytest -m "not slow" skips them)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = ["tensors", "regression", "classifier", "convnet", "custom_loss", "checkpoint", "higher_order"]


def _run(args, cwd, **env_extra):
    env = dict(os.environ, PYTHONPATH=ROOT, **env_extra)
    r = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{args} failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r.stdout


def _final(out):
    m = re.search(r"^final: (\S+)$", out, re.M)
    assert m, out
    return float(m.group(1))


# regression.py trains with lr=0.1 on the edge of stability, which amplifies the last-bit
# differences of native tanh (a few ulp from numpy's). With manual_seed(0)'s stream since issue 13
# (its first draw is no longer 0.0) the loss falls smoothly to ~0.036 by step 180, then spikes,
# and the step it spikes at moves with those last bits (final 0.57 eager, 0.32 on llvm): so on
# llvm the losses printed every 50 steps must agree, not the final one. The interpreter runs
# numpy's kernels and agrees exactly.
# convnet.py: on an AVX-512 host where graphc's GEMMs run OpenBLAS's SkylakeX kernels and eager
# numpy's run Haswell's (docs/llvm.md, "The kernels OpenBLAS picks"), the two sum in different
# orders: the losses agree to 1e-7 for two steps, then max-pool ties that break the other way
# reroute gradients and the gap grows ~5x a step (2e-4 after 10; 1e-7 with
# GRAPHC_BLAS_CORETYPE=numpy).
LOOSE = {("convnet", "llvm"): 1e-3}
CHAOTIC = {("regression", "llvm")}


def _epochs(out):
    return [float(v) for v in re.findall(r"^epoch \d+: loss (\S+)$", out, re.M)]


@pytest.mark.parametrize("backend", ["interp", "llvm"])
@pytest.mark.parametrize("name", SEEDS)
def test_seed_program_eager_and_compiled_agree(name, backend, tmp_path):
    path = os.path.join(ROOT, "examples", "seeds", f"{name}.py")
    eager = _run([path], tmp_path)
    compiled_out = _run([path, "--compile"], tmp_path, GRAPHC_BACKEND=backend)
    if (name, backend) in CHAOTIC:
        assert len(_epochs(eager)) >= 4
        assert _epochs(compiled_out) == pytest.approx(_epochs(eager), rel=1e-3)
        return
    assert _final(compiled_out) == pytest.approx(_final(eager), rel=LOOSE.get((name, backend), 1e-5), abs=1e-6)


def test_demo_runs(tmp_path):
    out = _run([os.path.join(ROOT, "examples", "demo.py")], tmp_path)
    assert "max parameter difference" in out and "update" in out


def test_digits_mlp_reaches_95_percent_both_ways():
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        import digits
    finally:
        sys.path.pop(0)
    rows = digits.main(["--model", "mlp", "--epochs", "8"])
    name, acc_eager, acc_compiled = rows[0][:3]
    # "95%" within the spread over seeds: 8 epochs give 0.950-0.969 for manual_seed(0..5) (seed 0:
    # 341 of the 359 test digits, 0.9499, since issue 13 changed its stream); a broken model is < 0.9
    assert acc_eager >= 0.94 and acc_compiled >= 0.94
    assert acc_compiled == pytest.approx(acc_eager, abs=0.01)
