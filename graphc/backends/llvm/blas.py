"""The OpenBLAS whose GEMMs generated code calls.

numpy's wheel bundles OpenBLAS built with 64-bit integers and a `scipy_` symbol prefix
(numpy.libs/libscipy_openblas64_*.so: scipy_cblas_sgemm64_, scipy_cblas_dgemm64_). target.init
dlopens it with RTLD_GLOBAL and hands the addresses to LLVM with add_symbol, so generated code
calls it directly; on a host where numpy's instance chose slower kernels than the CPU allows, a
private copy is loaded instead (`_blas_instance`). libm symbols (tanhf, erff, ...) resolve from
the process; the thread pool's `graphc_pool_run` (pool.py) is registered the same way."""
from __future__ import annotations

import ctypes
import glob
import os
import tempfile

import numpy as np

from .settings import _log

GEMM = {"float32": "scipy_cblas_sgemm64_", "float64": "scipy_cblas_dgemm64_"}
# OpenBLAS's thread count (process-wide). While a graph splits GEMMs across its own pool threads,
# OpenBLAS is held at one thread so the two pools never compete for the cores.
BLAS_THREADS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_")


def _openblas_path():
    base = os.path.dirname(os.path.dirname(np.__file__))
    for pat in ("numpy.libs/libscipy_openblas64_*.so*", "numpy.libs/libopenblas64_*.so*",
                "numpy/.dylibs/libscipy_openblas64_*"):
        hits = sorted(glob.glob(os.path.join(base, pat)))
        if hits:
            return hits[0]
    return None


AVX512_CORE = "SkylakeX"
_AVX512 = ("+avx512f", "+avx512bw", "+avx512dq", "+avx512vl")   # what OpenBLAS's SkylakeX kernels use


def _corename(lib):
    try:
        f = lib.scipy_openblas_get_corename64_
    except AttributeError:
        return None
    f.restype = ctypes.c_char_p
    return f().decode()


def _blas_instance(path, features):
    """(library handle, core name) of the OpenBLAS whose ?gemm the generated code calls.

    numpy's OpenBLAS picks its kernels by CPU model, and on AMD Zen 4 it picks Haswell's
    (AVX2) although the CPU has AVX-512: measured here, sgemm at 250 GFLOP/s where its own
    SkylakeX kernels reach 460. OpenBLAS reads OPENBLAS_CORETYPE only when it is loaded,
    and numpy has loaded it long before; so on such a host graphc loads a private copy of
    the same library file (a copy: the loader would hand back the loaded instance for the
    same file) with OPENBLAS_CORETYPE=SkylakeX. numpy's own instance is left alone.
    GRAPHC_BLAS_CORETYPE: "auto" (default), "numpy" (numpy's instance as it is) or an
    OpenBLAS core name to load (SkylakeX, Haswell, ...)."""
    shared = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    want = os.environ.get("GRAPHC_BLAS_CORETYPE", "auto").strip() or "auto"
    have = _corename(shared)
    if want.lower() == "numpy" or have is None:
        return shared, have
    if want.lower() == "auto":
        if have.lower() not in ("haswell", "zen") or not all(f in features.split(",") for f in _AVX512):
            return shared, have
        want = AVX512_CORE
    if want.lower() == have.lower():
        return shared, have
    try:
        lib = _load_private_blas(path, want)
    except OSError as e:
        _log.info("llvm backend: private OpenBLAS (%s) not loaded (%s); using numpy's (%s)", want, e, have)
        return shared, have
    got = _corename(lib)
    if got is None or got.lower() != want.lower():
        _log.info("llvm backend: OpenBLAS core %s requested, %s loaded; using numpy's (%s)", want, got, have)
        return shared, have
    return lib, got


def _load_private_blas(path, core):
    """Copy numpy's OpenBLAS file (once per numpy install, to ~/.cache/graphc/blas, or a
    temporary directory) and load the copy, RTLD_LOCAL, with OPENBLAS_CORETYPE=core."""
    st = os.stat(path)
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    d = os.path.join(home, "graphc", "blas")
    try:
        os.makedirs(d, exist_ok=True)
    except OSError:
        d = os.path.join(tempfile.gettempdir(), f"graphc-{os.getuid()}-blas")
        os.makedirs(d, exist_ok=True)
    copy = os.path.join(d, f"{st.st_size}-{int(st.st_mtime)}-{os.path.basename(path)}")
    if not os.path.exists(copy):
        fd, tmp = tempfile.mkstemp(dir=d)
        with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
            out.write(src.read())
        os.chmod(tmp, 0o755)
        os.replace(tmp, copy)
    old = os.environ.get("OPENBLAS_CORETYPE")
    os.environ["OPENBLAS_CORETYPE"] = core
    try:
        return ctypes.CDLL(copy, mode=ctypes.RTLD_LOCAL)
    finally:
        if old is None:
            os.environ.pop("OPENBLAS_CORETYPE", None)
        else:
            os.environ["OPENBLAS_CORETYPE"] = old
