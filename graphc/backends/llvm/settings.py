"""The llvm backend's settings, read from the environment when an executable is built
(GRAPHC_NUM_THREADS, GRAPHC_BOUNDS_CHECK, GRAPHC_PROFILE, GRAPHC_PAR_THRESHOLD,
GRAPHC_PAR_EPILOGUES, GRAPHC_CACHE_DIR), and the `kernels` log channel it reports on."""
from __future__ import annotations

import os

PAR_THRESHOLD = 32768                  # elements of work below which a kernel stays serial


class _Log:
    """The `kernels` channel of graphc.logs (GRAPHC_LOG=kernels)."""

    @staticmethod
    def info(msg, *args):
        from ...logs import log
        log("kernels", msg, *args)


_log = _Log()


# ---- settings (read when an executable is built) ------------------------------------------------------
def num_threads() -> int:
    """GRAPHC_NUM_THREADS, default: the CPUs this process may run on."""
    v = os.environ.get("GRAPHC_NUM_THREADS", "").strip()
    if v:
        try:
            return max(1, int(v))
        except ValueError:
            raise ValueError(f"GRAPHC_NUM_THREADS={v!r}: expected a positive integer") from None
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def bounds_check() -> bool:
    return os.environ.get("GRAPHC_BOUNDS_CHECK", "").strip().lower() in ("1", "true", "yes", "on")


def profiling() -> bool:
    """GRAPHC_PROFILE=1: the entry counts the cycles each kernel takes (exe.kernel_profile())."""
    return os.environ.get("GRAPHC_PROFILE", "").strip().lower() in ("1", "true", "yes", "on")


def par_threshold() -> int:
    v = os.environ.get("GRAPHC_PAR_THRESHOLD", "").strip()
    return int(v) if v else PAR_THRESHOLD


def parallel_epilogues() -> bool:
    """GRAPHC_PAR_EPILOGUES=1: run large matmul epilogues in parallel as well (off by default:
    right after a GEMM, OpenBLAS's worker threads still spin on the cores, see docs/llvm.md)."""
    return os.environ.get("GRAPHC_PAR_EPILOGUES", "").strip().lower() in ("1", "true", "yes", "on")


def cache_dir():
    """GRAPHC_CACHE_DIR (empty or "off": no disk cache), default ~/.cache/graphc/llvm. The path
    as configured; whether it is safe to use is decided at each read and write (_usable_dir)."""
    v = os.environ.get("GRAPHC_CACHE_DIR")
    if v is not None and v.strip().lower() in ("", "0", "off", "none"):
        return None
    return v or os.path.join(os.path.expanduser("~"), ".cache", "graphc", "llvm")
