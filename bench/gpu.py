"""The GPU check for the cuda backend: one unattended script for a machine with an NVIDIA GPU.

    pip install -e . "numba-cuda[cu12]"  # ([cu13] for a CUDA 13 driver; + torch with CUDA, optional)
    python bench/gpu.py                  # OUT=/some/dir python bench/gpu.py  -> $OUT/gpu.json

1. device name and versions;
2. correctness at full size, cuda vs the interpreter: MLP train step 784-512-256-10 b128
   (2 steps: losses and parameters), layer_norm + gelu [4096, 1024], a 512^3 matmul;
3. benchmarks (medians; device time with CUDA events around the launches only):
   device-to-device copy bandwidth (a plain numba copy kernel) vs a generated fused
   elementwise kernel and the generated ln_gelu row-reduction kernel (% of copy bandwidth);
   mlp_train b128 step (graphc cuda, whole call with host<->device copies, and device time
   only; graphc eager on the CPU; torch CUDA eager when importable); float32 matmul 4096^3
   TFLOP/s; launch overhead in microseconds per launch (numba's ordinary dispatch vs graphc's
   eager and prepared launch paths);
4. device tensors (everything stays on the GPU): graphc eager GPU vs graphc compiled GPU for the
   mlp_train step and ln_gelu (wall time per call, eager microseconds per op), checked against
   the CPU.
Prints one table; writes JSON to $OUT/gpu.json when OUT is set. Every section has a time limit
(SIGALRM) and records its error instead of stopping the script.
"""
from __future__ import annotations

import json
import os
import platform
import signal
import statistics
import sys
import time
import traceback

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import graphc.backends.cuda._numba as _shim  # noqa: E402  (numpy shim before numba.cuda)

try:
    cuda = _shim.cuda()
except ImportError as e:
    sys.exit(f"bench/gpu.py: {e}\n  pip install -e . 'numba-cuda[cu12]'   (or [cu13] for a CUDA 13 driver)")

import graphc as gc  # noqa: E402
import graphc.nn as nn  # noqa: E402
import graphc.nn.functional as F  # noqa: E402
from graphc.backends import get  # noqa: E402
from graphc.backends.interpreter import PlannedInterpreter  # noqa: E402
from graphc.ir import parse_graph  # noqa: E402
from graphc.passes.manager import run_passes  # noqa: E402

RESULTS = {"checks": {}, "bench": {}, "errors": {}, "info": {}}
# GRAPHC_GPU_SMOKE=1 (with NUMBA_ENABLE_CUDASIM=1): the same script on tiny sizes, to check it
# runs end to end without a GPU; the numbers mean nothing then.
SMOKE = os.environ.get("GRAPHC_GPU_SMOKE") == "1"
D_IN, H1, H2, B = (16, 8, 8, 4) if SMOKE else (784, 512, 256, 128)
ROWS, COLS = (4, 16) if SMOKE else (4096, 1024)
MM_CHECK, MM_BENCH = (8, 8) if SMOKE else (512, 4096)
T_START = time.time()
BUDGET = 7 * 60          # the whole script stays under 8 minutes on an H100


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout("section time limit")


signal.signal(signal.SIGALRM, _alarm)


def section(name, limit=90):
    def deco(fn):
        left = BUDGET - (time.time() - T_START)
        if left < 10:
            RESULTS["errors"][name] = "skipped: out of time budget"
            print(f"[{name}] skipped (time budget)", flush=True)
            return fn
        signal.alarm(int(min(limit, left)))
        t0 = time.time()
        try:
            fn()
            print(f"[{name}] ok ({time.time() - t0:.1f}s)", flush=True)
        except BaseException as e:           # noqa: BLE001 - record and go on
            if isinstance(e, KeyboardInterrupt):
                raise
            RESULTS["errors"][name] = f"{type(e).__name__}: {e}"
            print(f"[{name}] FAILED: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(limit=6)
        finally:
            signal.alarm(0)
        return fn
    return deco


def device_ms(fn, repeat=20, warmup=3):
    """Median device milliseconds of fn() (launches only) with CUDA events (the simulator has
    none: wall-clock there)."""
    if SMOKE or _shim.simulator():
        return wall_ms(fn, repeat=2, warmup=1)
    for _ in range(warmup):
        fn()
    cuda.synchronize()
    times = []
    for _ in range(repeat):
        a, b = cuda.event(), cuda.event()
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def wall_ms(fn, repeat=10, warmup=2, sync=True):
    if SMOKE:
        repeat, warmup = 2, 1
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if sync:
            cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if sync:
            cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def close(a, b, rtol, atol):
    a, b = np.asarray(a), np.asarray(b)
    err = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)) /
                       (atol + rtol * np.abs(b.astype(np.float64))))) if a.size else 0.0
    return err <= 1.0, err


# ---- workloads ------------------------------------------------------------------------------------------
def mlp(backend, compiled=True, batch=B, device=None):
    gc.manual_seed(0)
    model = nn.Sequential(nn.Linear(D_IN, H1), nn.ReLU(), nn.Linear(H1, H2), nn.ReLU(), nn.Linear(H2, 10))
    if device is not None:
        model.to(device)
    opt = gc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gc.manual_seed(1)
    x, y = gc.randn(batch, D_IN, device=device), gc.randint(0, 10, (batch,), device=device)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    f = gc.compile(step, backend=backend or "interp") if compiled else step
    return f, (x, y), model


def ln_gelu_fn(device=None):
    gc.manual_seed(0)
    g, b = gc.randn(COLS, device=device), gc.randn(COLS, device=device)
    x = gc.randn(ROWS, COLS, device=device)
    return (lambda x: F.gelu(F.layer_norm(x, (COLS,)) * g + b, approximate="tanh")), x


def planned(src):
    return run_passes(parse_graph(src)).final


# ---- 1. info ------------------------------------------------------------------------------------------
@section("info", 60)
def _info():
    import numba
    info = RESULTS["info"]
    dev = cuda.get_current_device()
    name = getattr(dev, "name", "CUDA simulator")
    info["device"] = name.decode() if isinstance(name, bytes) else str(name)
    info["compute_capability"] = list(getattr(dev, "compute_capability", ()))
    info["simulator"] = _shim.simulator()
    info["python"] = platform.python_version()
    info["numpy"] = np.__version__
    info["numba"] = numba.__version__
    try:
        from importlib.metadata import version
        info["numba_cuda"] = version("numba-cuda")
    except Exception as e:   # noqa: BLE001
        info["numba_cuda"] = f"? ({e})"
    try:
        info["cuda_runtime"] = ".".join(map(str, cuda.runtime.get_version()))
    except Exception as e:   # noqa: BLE001
        info["cuda_runtime"] = f"? ({e})"
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_cuda"] = bool(torch.cuda.is_available())
    except Exception:        # noqa: BLE001
        info["torch"] = None
        info["torch_cuda"] = False
    for k, v in info.items():
        print(f"  {k}: {v}")


# ---- 2. correctness at full size ---------------------------------------------------------------------------
@section("check_mlp_train_b128", 240)
def _check_mlp():
    out = {}
    for backend in ("cuda", "interp"):
        f, (x, y), model = mlp(backend)
        losses = [float(f(x, y).item()) for _ in range(2)]
        out[backend] = (losses, {k: v.detach().numpy().copy() for k, v in model.state_dict().items()})
    ok, err = close(out["cuda"][0], out["interp"][0], 1e-4, 1e-5)
    for k in out["interp"][1]:
        o, e = close(out["cuda"][1][k], out["interp"][1][k], 1e-3, 1e-5)
        ok, err = ok and o, max(err, e)
    RESULTS["checks"][f"mlp_train_b{B}"] = {"ok": ok, "max_err_over_tol": err, "losses": out["cuda"][0],
                                           "losses_interp": out["interp"][0]}


@section("check_ln_gelu", 90)
def _check_ln_gelu():
    fn, x = ln_gelu_fn()
    a = gc.compile(fn, backend="cuda")(x).numpy()
    b = gc.compile(fn, backend="interp")(x).numpy()
    ok, err = close(a, b, 1e-4, 1e-5)
    RESULTS["checks"][f"ln_gelu_{ROWS}x{COLS}"] = {"ok": ok, "max_err_over_tol": err}


@section("check_matmul_512", 90)
def _check_matmul():
    n = MM_CHECK
    p = planned(f"""graph mm(%a: f32[{n},{n}], %b: f32[{n},{n}]) {{
      %0: f32[{n},{n}] = matmul(%a, %b) {{transpose_a=False, transpose_b=False}}
      return %0
    }}""")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    got = get("cuda")(p)([a, b])[0]
    want = PlannedInterpreter(p)([a, b])[0]
    ok, err = close(got, want, 1e-3, 1e-3)
    RESULTS["checks"][f"matmul_{MM_CHECK}"] = {"ok": ok, "max_err_over_tol": err}


# ---- 3. benchmarks -------------------------------------------------------------------------------------------
N_BW = 1024 if SMOKE else 1 << 26      # 64 Mi float32 = 256 MiB per buffer


@cuda.jit
def _copy(src, dst):
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        dst[i] = src[i]


@section("bench_bandwidth", 120)
def _bandwidth():
    bench = RESULTS["bench"]
    src = cuda.to_device(np.random.default_rng(0).standard_normal(N_BW, dtype=np.float32))
    dst = cuda.device_array(N_BW, dtype=np.float32)
    sms = 1 if SMOKE else cuda.get_current_device().MULTIPROCESSOR_COUNT
    launch = _copy[sms * 8, 8 if SMOKE else 256]
    ms = device_ms(lambda: launch(src, dst))
    copy_gbs = 2 * N_BW * 4 / ms / 1e6
    bench["copy_GBps"] = copy_gbs
    # a fused elementwise kernel over the same size: two inputs, one output
    p = planned(f"""graph ew(%x: f32[{N_BW}], %y: f32[{N_BW}]) {{
      %0: f32[{N_BW}] = mul(%x, %y)
      %1: f32[{N_BW}] = tanh(%0)
      %2: f32[{N_BW}] = add(%1, %x)
      return %2
    }}""")
    exe = get("cuda")(p)
    ms = device_ms(exe.run_device)
    gbs = 3 * N_BW * 4 / ms / 1e6
    bench["fused_elementwise_GBps"] = gbs
    bench["fused_elementwise_pct_of_copy"] = 100 * gbs / copy_gbs
    # the ln_gelu kernel(s)
    fn, x = ln_gelu_fn()
    f = gc.compile(fn, backend="cuda")
    f(x)
    exe = get("cuda")(f.graph(x))
    rng = np.random.default_rng(0)
    exe([rng.standard_normal(v.type.shape).astype(v.type.dtype.np) for v in exe.graph.inputs])
    ms = device_ms(exe.run_device)
    gbs = 2 * ROWS * COLS * 4 / ms / 1e6
    bench["ln_gelu_device_ms"] = ms
    bench["ln_gelu_kernels"] = len(exe.launches)
    bench["ln_gelu_GBps"] = gbs
    bench["ln_gelu_pct_of_copy"] = 100 * gbs / copy_gbs
    bench["ln_gelu_call_ms"] = wall_ms(lambda: f(x))


@section("bench_mlp_train_b128", 200)
def _bench_mlp():
    bench = RESULTS["bench"]
    f, (x, y), _ = mlp("cuda")
    f(x, y)
    f(x, y)
    bench["mlp_cuda_call_ms"] = wall_ms(lambda: f(x, y), repeat=20)
    exe = get("cuda")(f.graph(x, y))
    bench["mlp_cuda_kernels"] = len(exe.launches)
    # device time of the same planned step (inputs already on the device)
    ins = [np.zeros(v.type.shape, v.type.dtype.np) for v in exe.graph.inputs]
    exe(ins)
    bench["mlp_cuda_device_ms"] = device_ms(exe.run_device)
    fe, (x, y), _ = mlp(None, compiled=False)
    bench["mlp_eager_cpu_ms"] = wall_ms(lambda: fe(x, y), repeat=10, sync=False)
    try:
        import torch
        if torch.cuda.is_available():
            torch.manual_seed(0)
            dev = "cuda"
            m = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256),
                                    torch.nn.ReLU(), torch.nn.Linear(256, 10)).to(dev)
            o = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
            tx, ty = torch.randn(128, 784, device=dev), torch.randint(0, 10, (128,), device=dev)

            def tstep():
                o.zero_grad()
                torch.nn.functional.cross_entropy(m(tx), ty).backward()
                o.step()
            for _ in range(3):
                tstep()
            torch.cuda.synchronize()
            ts = []
            for _ in range(20):
                t0 = time.perf_counter()
                tstep()
                torch.cuda.synchronize()
                ts.append((time.perf_counter() - t0) * 1e3)
            bench["mlp_torch_cuda_eager_ms"] = statistics.median(ts)
    except Exception as e:   # noqa: BLE001
        bench["mlp_torch_cuda_eager_ms"] = f"n/a ({type(e).__name__})"


@section("bench_matmul_4096", 150)
def _bench_matmul():
    n = MM_BENCH
    p = planned(f"""graph mm(%a: f32[{n},{n}], %b: f32[{n},{n}]) {{
      %0: f32[{n},{n}] = matmul(%a, %b) {{transpose_a=False, transpose_b=False}}
      return %0
    }}""")
    exe = get("cuda")(p)
    rng = np.random.default_rng(0)
    exe([rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)])
    ms = device_ms(exe.run_device, repeat=5, warmup=1)
    RESULTS["bench"][f"matmul_{n}_ms"] = ms
    RESULTS["bench"][f"matmul_{n}_TFLOPs"] = 2 * n ** 3 / ms / 1e9


@section("bench_launch_overhead", 60)
def _bench_launch():
    bench = RESULTS["bench"]
    n = 20 if SMOKE else 2000
    r = gc.cuda.launch_overhead_us(n)       # a tiny kernel launched n times back to back, per launch
    for k in ("numba_dispatch_us", "numba_configured_us", "graphc_eager_us", "graphc_prepared_us"):
        bench[f"launch_{k}"] = r[k]
    bench["launch_eager_path"], bench["launch_prepared_path"] = r["eager_path"], r["prepared_path"]
    RESULTS["checks"]["launch_probe"] = {"ok": r["correct"]}
    # a compiled graph's own prepared launch (the path run_device takes)
    p = planned("""graph tiny(%x: f32[1]) {
      %0: f32[1] = neg(%x)
      return %0
    }""")
    exe = get("cuda")(p)
    exe([np.ones(1, np.float32)])
    _, launch, _ = exe.launches[0]
    for _ in range(100 if not SMOKE else 2):
        launch()
    cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        launch()
    cuda.synchronize()
    bench["launch_overhead_us"] = (time.perf_counter() - t0) / n * 1e6
    bench["launch_overhead_path"] = launch.path


# ---- 4. device tensors: eager GPU vs compiled GPU ------------------------------------------------------------
def _eager_ops(fn):
    from graphc.backends.cuda import eager
    before = eager.COUNTS["ops"]
    fn()
    return eager.COUNTS["ops"] - before


@section("device_mlp_train_b128", 200)
def _device_mlp():
    bench, checks = RESULTS["bench"], RESULTS["checks"]
    runs = {}
    for name, dev, compiled in (("eager_gpu", "cuda", False), ("compiled_gpu", "cuda", True),
                                ("eager_cpu", None, False)):
        f, (x, y), model = mlp(None, compiled=compiled, device=dev)
        losses = [float(f(x, y).item()) for _ in range(2)]
        runs[name] = losses
        if dev is not None:
            assert all(p.is_cuda for p in model.parameters())
            if not compiled:
                bench["mlp_eager_gpu_ops_per_step"] = _eager_ops(lambda: f(x, y))
            bench[f"mlp_{name}_ms"] = wall_ms(lambda: f(x, y), repeat=10 if compiled else 5)
    for name in ("eager_gpu", "compiled_gpu"):
        ok, err = close(runs[name], runs["eager_cpu"], 1e-4, 1e-5)
        checks[f"mlp_{name}_vs_cpu"] = {"ok": ok, "max_err_over_tol": err, "losses": runs[name]}
    ops = bench.get("mlp_eager_gpu_ops_per_step")
    if ops:
        bench["mlp_eager_gpu_us_per_op"] = bench["mlp_eager_gpu_ms"] * 1e3 / ops


@section("device_ln_gelu", 120)
def _device_ln_gelu():
    bench, checks = RESULTS["bench"], RESULTS["checks"]
    fn, x = ln_gelu_fn()
    want = fn(x).numpy()
    dev_fn, xc = ln_gelu_fn("cuda")          # the same numbers, made on the device
    compiled = gc.compile(dev_fn)
    for name, f in (("eager_gpu", dev_fn), ("compiled_gpu", compiled)):
        out = f(xc)
        assert out.is_cuda
        ok, err = close(out.numpy(), want, 1e-4, 1e-5)
        checks[f"ln_gelu_{name}_vs_cpu"] = {"ok": ok, "max_err_over_tol": err}
        bench[f"ln_gelu_{name}_ms"] = wall_ms(lambda: f(xc))
    ops = _eager_ops(lambda: dev_fn(xc))
    bench["ln_gelu_eager_gpu_ops"] = ops
    bench["ln_gelu_eager_gpu_us_per_op"] = bench["ln_gelu_eager_gpu_ms"] * 1e3 / max(ops, 1)


# ---- report --------------------------------------------------------------------------------------------
def report():
    rows = [("device", RESULTS["info"].get("device"))]
    for k, v in RESULTS["checks"].items():
        rows.append((f"check {k}", "OK" if v.get("ok") else f"MISMATCH (err/tol {v.get('max_err_over_tol'):.3g})"))
    for k, v in RESULTS["bench"].items():
        rows.append((k, f"{v:.4g}" if isinstance(v, float) else v))
    for k, v in RESULTS["errors"].items():
        rows.append((f"ERROR {k}", v[:100]))
    w = max(len(r[0]) for r in rows)
    print("\n" + "-" * (w + 40))
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    print("-" * (w + 40))
    RESULTS["total_s"] = time.time() - T_START
    out = os.environ.get("OUT")
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "gpu.json"), "w") as fh:
            json.dump(RESULTS, fh, indent=2, default=str)
        print(f"wrote {os.path.join(out, 'gpu.json')}")


report()
ok = all(v.get("ok") for v in RESULTS["checks"].values()) and not RESULTS["errors"]
sys.exit(0 if ok else 1)
