"""JIT compilation (native CPU), the BLAS/libm/thread-pool symbols, the object-code disk cache, and
the executable.

BLAS: numpy's wheel bundles OpenBLAS built with 64-bit integers and a `scipy_` symbol prefix
(numpy.libs/libscipy_openblas64_*.so: scipy_cblas_sgemm64_, scipy_cblas_dgemm64_). We dlopen
it with RTLD_GLOBAL and hand the addresses to LLVM with add_symbol, so generated code calls it
directly. libm symbols (tanhf, erff, ...) resolve from the process; the thread pool's
`graphc_pool_run` (pool.py, parallel kernels) is registered the same way.

Compilation: the module is optimised (O3 pipeline), lowered to an object file with a native
target machine (tm.emit_object) and the object is loaded into an MCJIT engine
(add_object_file). The object is cached on disk under a key hashing everything that decides
the code (see `cache_key`), so a second process only loads it.

The cache holds machine code that the process jumps into, so nothing is loaded unchecked:
every file starts with a header line holding the sha256 of (key, file kind, contents) and the
length, verified before the bytes reach MCJIT (a truncated, empty or corrupted entry is deleted
and recompiled, with a CacheWarning); and a cache directory that is not owned by this user
(or root) or that group/others can write is not used at all (see `_usable_dir`), as ssh
refuses such key files. The digest is not a signature: it catches corruption, and the
ownership/mode checks keep other users' files out.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import hashlib
import os
import platform
import stat
import tempfile
import threading
import time
import warnings
import weakref

import numpy as np

_LOCK = threading.Lock()
_STATE = {}
GEMM = {"float32": "scipy_cblas_sgemm64_", "float64": "scipy_cblas_dgemm64_"}
# OpenBLAS's thread count (process-wide). While a graph splits GEMMs across its own pool threads,
# OpenBLAS is held at one thread so the two pools never compete for the cores.
BLAS_THREADS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_")
CODEGEN_VERSION = "graphc-llvm-21"    # bump when what a cached object means changes outside the sources below
PAR_THRESHOLD = 32768                  # elements of work below which a kernel stays serial


class _Log:
    """The `kernels` channel of graphc.logs (GRAPHC_LOG=kernels)."""

    @staticmethod
    def info(msg, *args):
        from ...logs import log
        log("kernels", msg, *args)


_log = _Log()


class CacheWarning(RuntimeWarning):
    """The native-code disk cache was not used as asked: an entry failed verification (deleted
    and recompiled), or the cache directory is not safe to load code from (caching off)."""


class LLVMRuntimeError(RuntimeError):
    """A check compiled in by GRAPHC_BOUNDS_CHECK=1 failed inside generated code."""


class BoundsError(LLVMRuntimeError, IndexError):
    """An index (gather/scatter index, computed offset) outside its buffer (GRAPHC_BOUNDS_CHECK=1)."""


class DivisionByZero(LLVMRuntimeError, ZeroDivisionError):
    """Integer division by zero (GRAPHC_BOUNDS_CHECK=1)."""


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


# ---- process-wide initialisation ------------------------------------------------------------------------
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


# the futex syscall numbers the thread pool (pool.py, built on this module) needs, per machine
_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}


def pool_supported() -> bool:
    """Can graphc's thread pool run here (Linux futexes)? (pool.supported())"""
    return platform.system() == "Linux" and platform.machine().lower() in _SYS_FUTEX


def init():
    """Initialise LLVM once; the native target, and the BLAS/libm symbols."""
    with _LOCK:
        if _STATE:
            return _STATE
        import llvmlite
        import llvmlite.binding as llvm
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        path = _openblas_path()
        if path is None:
            raise NotImplementedError("llvm backend: numpy's bundled OpenBLAS (scipy_cblas_?gemm64_) was not found")
        cpu, features = llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
        lib, core = _blas_instance(path, features)
        for sym in GEMM.values():
            llvm.add_symbol(sym, ctypes.cast(getattr(lib, sym), ctypes.c_void_p).value)
        blas_threads = all(hasattr(lib, sym) for sym in BLAS_THREADS)
        for sym in BLAS_THREADS if blas_threads else ():
            llvm.add_symbol(sym, ctypes.cast(getattr(lib, sym), ctypes.c_void_p).value)
        libm = ctypes.CDLL("libm.so.6")
        for sym in ("tanh", "tanhf", "erf", "erff", "exp", "expf", "log", "logf", "sin", "sinf",
                    "cos", "cosf", "pow", "powf", "fmod", "fmodf", "floor", "floorf"):
            llvm.add_symbol(sym, ctypes.cast(getattr(libm, sym), ctypes.c_void_p).value)
        _STATE.update(llvm=llvm, blas=path, blas_core=core, libs=(lib, libm), pool=pool_supported(),
                      blas_threads=blas_threads,
                      triple=llvm.get_process_triple(), cpu=cpu, features=features,
                      versions=f"llvmlite {llvmlite.__version__} llvm {llvm.llvm_version_info}")
        return _STATE


def has_fma() -> bool:
    """Does the host have FMA, so that vecmath's polynomials use llvm.fma (one rounding, one
    instruction)? Without it they multiply then add, each rounded (docs/numerics.md)."""
    return "+fma" in init()["features"].split(",")


def has_scalef() -> bool:
    """Does the host have AVX-512F, so that llvm.ldexp on vectors is one vscalef instruction
    (without it LLVM calls libm's ldexp per element)? GRAPHC_LLVM_LDEXP=0/1 overrides (tests)."""
    v = os.environ.get("GRAPHC_LLVM_LDEXP", "").strip()
    if v:
        return v.lower() in ("1", "true", "yes", "on")
    return "+avx512f" in init()["features"].split(",")


# The small code model: constants are addressed relative to the instruction pointer, often as a
# broadcast memory operand (`vfmadd213ps .LCPI0_3(%rip){1to16}, ...`). The JIT default (large)
# needs a movabsq into a register for every constant-pool address, and a loop that runs out of
# registers does that inside the loop (ln_gelu's output loop: 15 of its 57 instructions). It is
# safe because llvmlite's memory manager (use_lmm=True in load_object) maps each object's code,
# read-only and writable sections as one contiguous block, so every RIP-relative offset inside
# an object fits in 32 bits; calls to BLAS/libm/the pool, anywhere in memory, go through the
# stubs the runtime linker makes for PLT32 relocations.
CODE_MODEL = "small"


def target_machine():
    """A native target machine (host CPU and features). One per JIT: the MCJIT engine takes
    ownership of the target machine it is given, so none is shared."""
    st = init()
    llvm = st["llvm"]
    target = llvm.Target.from_triple(st["triple"])
    return target.create_target_machine(cpu=st["cpu"], features=st["features"], opt=3, reloc="pic", codemodel=CODE_MODEL)


def codegen_sources(_memo={}):
    """sha256 of the code generator's own source (every module of this package and the kernel
    helpers it shares with the CUDA backend): an edited codegen never loads an object that an
    older one compiled, even when nobody bumped CODEGEN_VERSION (it happened: objects that a
    reverted experiment had cached under a version string were loaded when the string was
    reused, and computed a wrong sigmoid)."""
    if "sha" not in _memo:
        here = os.path.dirname(os.path.abspath(__file__))
        files = sorted(glob.glob(os.path.join(here, "*.py"))) + [os.path.join(os.path.dirname(here), "kernels.py")]
        h = hashlib.sha256()
        for f in files:
            with open(f, "rb") as fh:
                h.update(fh.read())
        _memo["sha"] = h.hexdigest()
    return _memo["sha"]


def cache_key(graph_text, options):
    """sha256 of what decides the object code: the printed planned graph, the codegen options
    (threads, checks, threshold), the target (triple, CPU, features), llvmlite/LLVM versions, the
    BLAS symbols, CODEGEN_VERSION and the codegen's source (codegen_sources)."""
    st = init()
    h = hashlib.sha256()
    for part in (CODEGEN_VERSION, codegen_sources(), st["versions"], st["triple"], st["cpu"], st["features"],
                 repr(sorted(options.items())), repr(sorted(GEMM.items())), graph_text):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def optimise_and_emit(ir_module):
    """O3 pipeline, then native object code; (object bytes, optimised IR text)."""
    st = init()
    llvm = st["llvm"]
    tm = target_machine()
    ir_module.triple = st["triple"]
    ir_module.data_layout = str(tm.target_data)
    mod = llvm.parse_assembly(str(ir_module))
    mod.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return tm.emit_object(mod), str(mod)


def cached_object(name, build):
    """Object code of a runtime module (`build()` -> ir.Module, e.g. the thread pool), from the
    disk cache when this codegen, LLVM and target built it before."""
    key = cache_key(f"runtime module {name}", {})
    d = cache_dir()
    obj = _cache_read(d, key)
    if obj is None:
        obj, text = optimise_and_emit(build())
        _cache_write(d, key, obj, text)
    return obj


def load_object(obj):
    """An MCJIT engine holding the object code (relocated against the registered symbols)."""
    st = init()
    llvm = st["llvm"]
    tm = target_machine()
    empty = llvm.parse_assembly(f'target triple = "{st["triple"]}"\n')
    engine = llvm.create_mcjit_compiler(empty, tm, use_lmm=True)
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    return engine


def emit_assembly(ir_text):
    st = init()
    mod = st["llvm"].parse_assembly(ir_text)
    return target_machine().emit_assembly(mod)


# ---- the disk cache: verified entries in a private directory ---------------------------------------------
# An entry is two files, <key>.ll (the optimised IR, for .llvm_ir) and <key>.o (object code, written
# last: it completes the entry). Each is one header line and the contents:
#     b"graphc-cache 1 sha256=<hex> len=<bytes>\n" + contents
# with the digest over (key, extension, contents): a file copied under another key does not verify.
_MAGIC = b"graphc-cache 1"
_WARNED = set()          # (directory, problem): an unusable directory is reported once per process


def _digest(key, ext, data):
    h = hashlib.sha256()
    for part in (_MAGIC, key.encode(), ext.encode()):
        h.update(part)
        h.update(b"\0")
    h.update(data)
    return h.hexdigest()


def _pack(key, ext, data):
    return b"%s sha256=%s len=%d\n" % (_MAGIC, _digest(key, ext, data).encode(), len(data)) + data


def _unpack(blob, key, ext):
    """(contents, None) when blob is a complete, intact entry for (key, ext), else (None, why)."""
    head, nl, data = blob.partition(b"\n")
    parts = head.split(b" ")
    if not nl or len(parts) != 4 or b" ".join(parts[:2]) != _MAGIC or not parts[2].startswith(b"sha256=") \
            or not parts[3].startswith(b"len="):
        return None, "empty file" if not blob else "no valid header (garbage, or written by another graphc)"
    try:
        n = int(parts[3][4:])
    except ValueError:
        return None, "no valid header"
    if len(data) != n:
        return None, f"truncated or extended ({len(data)} bytes, the header says {n})"
    if parts[2][7:].decode("ascii", "replace") != _digest(key, ext, data):
        return None, "sha256 mismatch (corrupted, or an entry of another key)"
    return data, None


def _unsafe(st, kind):
    """Why a cache directory or file with this stat result must not be trusted, or None.
    Like ssh with its keys: owned by this user (or root), not writable by group or others."""
    if kind == "directory" and not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if kind == "file" and not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if not hasattr(os, "geteuid"):      # no POSIX owners and modes (Windows)
        return None
    uid = os.geteuid()
    if st.st_uid not in (uid, 0):
        return f"owned by uid {st.st_uid}, not by this user (uid {uid})"
    if st.st_mode & 0o022:
        return f"writable by group or others (mode {stat.S_IMODE(st.st_mode):#o})"
    return None


def _usable_dir(d, create=False):
    """d if the disk cache may read (and, create=True, write) there, else None. A directory that
    someone else owns or can write is refused with a CacheWarning, once per process: whoever can
    write there could place any object under a key, and graphc would run it. A missing one is
    created 0700 when writing."""
    if d is None:
        return None
    try:
        st = os.stat(d)
    except FileNotFoundError:
        if not create:
            return None
        try:
            os.makedirs(d, mode=0o700, exist_ok=True)
            st = os.stat(d)
        except OSError as e:     # a read-only home must not break compilation
            _log.info("llvm backend: could not create the object cache %s: %s", d, e)
            return None
    except OSError as e:
        _log.info("llvm backend: object cache %s: %s", d, e)
        return None
    problem = _unsafe(st, "directory")
    if problem is None:
        return d
    if (d, problem) not in _WARNED:
        _WARNED.add((d, problem))
        msg = (f"graphc: not using the native-code cache {d}: {problem}; anyone who can write "
               f"there could make graphc run their code. Compiling without a disk cache; use a "
               f"private directory (chmod 700, owned by you) or GRAPHC_CACHE_DIR=off")
        _log.info("llvm backend: %s", msg)
        warnings.warn(msg, CacheWarning, stacklevel=2)
    return None


def _reject(path, why):
    """A cache file that failed verification: say so, delete it (it is recompiled and rewritten)."""
    msg = f"graphc: native-code cache entry {path} rejected: {why}; deleted, recompiling"
    _log.info("llvm backend: %s", msg)
    warnings.warn(msg, CacheWarning, stacklevel=3)
    try:
        os.unlink(path)
    except OSError:
        pass


def _cache_read(d, key, ext=".o"):
    """The verified contents of a cache file (bytes), or None: no cache, no entry, or an entry
    that failed its checks (then deleted, with a CacheWarning). Nothing unverified reaches MCJIT."""
    d = _usable_dir(d)
    if d is None:
        return None
    path = os.path.join(d, key + ext)
    try:     # O_NOFOLLOW: a symlink planted as an entry is not followed
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        _reject(path, f"cannot be opened ({e.strerror})")
        return None
    with os.fdopen(fd, "rb") as f:
        problem = _unsafe(os.fstat(f.fileno()), "file")     # of the file opened, not of a path
        blob = f.read() if problem is None else b""
    data, why = _unpack(blob, key, ext) if problem is None else (None, problem)
    if why is not None:
        _reject(path, why)
    return data


def _cache_write(d, key, obj, ir_text):
    d = _usable_dir(d, create=True)
    if d is None:
        return
    try:
        for ext, data in ((".ll", ir_text.encode()), (".o", obj)):     # .o last: it marks the entry complete
            fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")           # mode 0600
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(_pack(key, ext, data))
                os.replace(tmp, os.path.join(d, key + ext))
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
    except OSError as e:     # a full disk must not break compilation
        _log.info("llvm backend: could not write the object cache in %s: %s", d, e)


def _cycle_hz(cycles, _cache={}):
    """The rate of the cycle counter (llvm.readcyclecounter: the TSC on x86), measured once
    against time.perf_counter."""
    if "hz" not in _cache:        # 5 ms of counting against the clock (no sleep: it is in the first compile)
        c0, t0 = cycles(), time.perf_counter()
        t1 = t0
        while t1 - t0 < 0.005:
            t1 = time.perf_counter()
        c1 = cycles()
        _cache["hz"] = (c1 - c0) / (t1 - t0) if c1 > c0 else 1e9
    return _cache["hz"]


# ---- the executable -------------------------------------------------------------------------------------
_ENTRY_T = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_c_char, _addressof = ctypes.c_char, ctypes.addressof
_EXECUTABLES = weakref.WeakSet()      # live executables, whose call locks a forked child re-creates


def _after_fork_in_child():
    """fork() copies a lock held by another thread as held, and that thread does not exist in the
    child: its next call of the same executable (or first init) would wait forever. The child
    has one thread, so every lock starts free. (The thread pool restarts itself: pool.py.)"""
    global _LOCK
    _LOCK = threading.Lock()
    for exe in list(_EXECUTABLES):
        exe._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class LLVMExecutable:
    """callable(list of input arrays, in graph.inputs order) -> [outputs..., update values...].

    One ctypes call per invocation: the pointer table [arena, inputs..., fresh outputs...]
    (allocated once, refilled per call) is handed to the generated entry, which runs every
    kernel. `.llvm_ir` is the optimised module, `.llvm_ir_unoptimized` what codegen emitted,
    `.asm` the native assembly (the last two computed on first use). `.compile_ms` is what
    building this executable cost, `.cache_hit` whether its object code came from the disk
    cache, `.threads` / `.parallel_kernels` / `.checks` how it was generated."""

    def __init__(self, graph, builder, options):
        t0 = time.perf_counter()
        from ...ir import print_graph
        self.graph = graph
        self._builder = builder
        self.options = dict(options)
        self.threads = options["threads"]
        self.checks = options["checks"]
        self.cache_dir = cache_dir()
        self.cache_key = cache_key(print_graph(graph), options)
        obj = _cache_read(self.cache_dir, self.cache_key)
        self.cache_hit = obj is not None
        self._ir_text = self._ir_unopt = self._asm = None
        if obj is None or self.checks:     # checks: the build also makes the table of check messages
            module = builder.build()
            self._ir_unopt = str(module)
        if obj is None:
            obj, self._ir_text = optimise_and_emit(module)
            _cache_write(self.cache_dir, self.cache_key, obj, self._ir_text)
        self._engine = load_object(obj)
        from .codegen import ENTRY, ERRORS
        self._fn = _ENTRY_T(self._engine.get_function_address(ENTRY))
        self.parallel_kernels = builder.parallel_names
        self._err = None
        self._prof = None
        if options.get("profile"):
            from .codegen import PROFILE
            self._prof = {n: ctypes.c_int64.from_address(self._engine.get_global_value_address(f"{PROFILE}_{n}"))
                          for n, k in enumerate(graph.nodes) if k.attrs["kind"] != "view"}
            self._cycles = ctypes.CFUNCTYPE(ctypes.c_int64)(self._engine.get_function_address(PROFILE + "_cycles"))
        if self.checks:
            self._err = ctypes.c_int64.from_address(self._engine.get_global_value_address(ERRORS))
            self._err_value = ctypes.c_int64.from_address(self._engine.get_global_value_address(ERRORS + "_value"))
            self._check_table = builder.check_table
        size = builder.scratch_offset() + builder.scratch_bytes
        raw = np.zeros(size + 64, dtype=np.uint8)
        start = (-raw.ctypes.data) % 64
        self.arena = raw[start:start + size]
        self._n_in = len(graph.inputs)
        names = [v.name for v in graph.inputs]
        self._written = [names.index(n) for n, _ in graph.updates if n in names]
        self._in_types = [(tuple(v.type.shape), np.dtype(v.type.dtype.np)) for v in graph.inputs]
        # (shape, dtype, has bytes): an empty output has no buffer for from_buffer to take
        self._outs = [(tuple(v.type.shape), np.dtype(v.type.dtype.np), v.type.nbytes > 0) for v in builder.out_values]
        self._slots = (ctypes.c_void_p * (1 + self._n_in + len(self._outs)))()
        self._slots[0] = self.arena.ctypes.data
        self._slots_addr = ctypes.addressof(self._slots)
        self._last_in = [None] * (1 + self._n_in)     # input array objects whose pointers the slots hold
        self._lock = threading.Lock()                   # see __call__
        _EXECUTABLES.add(self)                          # its lock is reset in a forked child
        results = list(graph.outputs) + [v for _, v in graph.updates]
        self._results = [self._resolver(builder, v) for v in results]
        # which results are arrays made for this call alone (an output slot seen first, or an arena copy)
        seen, self.fresh_results = set(), []
        for v in results:
            where = builder.buffer(v)
            self.fresh_results.append(v.name not in builder.inputs and where[0] in ("out", "arena")
                                      and where not in seen)
            seen.add(where)
        self.compile_ms = (time.perf_counter() - t0) * 1e3
        _log.info("llvm %s: compiled in %.1f ms (%s), %d thread(s), %d parallel kernel(s)%s",
                  graph.name, self.compile_ms, "disk cache hit" if self.cache_hit else "cold",
                  self.threads, len(self.parallel_kernels), ", bounds checks on" if self.checks else "")

    # -- text, on demand
    @property
    def llvm_ir(self):
        """The optimised module as LLVM IR text."""
        if self._ir_text is None:
            text = _cache_read(self.cache_dir, self.cache_key, ".ll")
            self._ir_text = text.decode() if text is not None else optimise_and_emit(self._builder.build())[1]
        return self._ir_text

    @property
    def llvm_ir_unoptimized(self):
        if self._ir_unopt is None:
            self._ir_unopt = str(self._builder.build())
        return self._ir_unopt

    @property
    def asm(self):
        """Native assembly of the optimised module."""
        if self._asm is None:
            self._asm = emit_assembly(self.llvm_ir)
        return self._asm

    def _resolver(self, builder, v):
        where, i = builder.buffer(v)
        shape, dt = tuple(v.type.shape), v.type.dtype.np
        if v.name in builder.inputs:
            return lambda ins, outs, i=i: ins[i]
        if where == "in":          # state written in place (maybe through a view)
            return lambda ins, outs, i=i: ins[i] if ins[i].shape == shape else ins[i].reshape(shape)
        if where == "out":
            return lambda ins, outs, i=i: outs[i] if outs[i].shape == shape else outs[i].reshape(shape)
        nbytes = v.type.nbytes
        return lambda ins, outs, i=i: self.arena[i:i + nbytes].view(dt).reshape(shape).copy()

    def __call__(self, arrays):
        # one arena and one pointer table per executable, and the native call releases the GIL:
        # a second Python thread calling the same graph waits for the first (different graphs
        # run at the same time)
        with self._lock:
            return self._call(arrays)

    def _call(self, arrays):
        if len(arrays) != self._n_in:
            raise ValueError(f"{self.graph.name}: expected {self._n_in} inputs, got {len(arrays)}")
        slots = self._slots
        last = self._last_in
        ins, fixups = [], None
        k = 1
        for a, (shape, dt) in zip(arrays, self._in_types):
            if a.__class__ is not np.ndarray:
                a = np.asarray(a)
            if a.shape != shape or (a.dtype is not dt and a.dtype != dt):
                self._bad_input(k - 1, a)
            if not a.flags.c_contiguous:
                c = np.ascontiguousarray(a)
                (fixups := fixups or []).append((a, c))
                slots[k] = c.ctypes.data
                last[k] = None
                a = c
            elif a is not last[k]:   # the same array object as last call: its slot already holds its pointer
                slots[k] = a.ctypes.data
                last[k] = a          # held: its buffer cannot be freed or resized while cached
            ins.append(a)
            k += 1
        outs = []
        for s, d, nonempty in self._outs:
            o = np.empty(s, dtype=d)
            # the address of a fresh array: from_buffer costs half of what o.ctypes.data does
            slots[k] = _addressof(_c_char.from_buffer(o)) if nonempty else o.ctypes.data
            outs.append(o)
            k += 1
        self._fn(self._slots_addr)
        if self._err is not None and self._err.value:
            self._raise()
        res = [r(ins, outs) for r in self._results]
        if fixups:   # non-contiguous inputs ran on copies: write state back, return the caller's arrays
            written = {id(ins[i]) for i in self._written}
            for a, c in fixups:
                if id(c) in written:      # read-only inputs (a broadcast view) are not written back
                    a[...] = c
            swap = {id(c): a for a, c in fixups}
            res = [swap.get(id(r), r) for r in res]
        return res

    def kernel_profile(self, reset=False):
        """Seconds spent in each kernel over all calls so far (GRAPHC_PROFILE=1 / profile=True):
        [{"kernel", "kind", "ops", "seconds"}] in schedule order, views left out."""
        if self._prof is None:
            raise RuntimeError(f"{self.graph.name}: compiled without profiling; set GRAPHC_PROFILE=1 "
                               "or compile with profile=True")
        hz = _cycle_hz(self._cycles)
        rows = []
        for n, k in enumerate(self.graph.nodes):
            if k.attrs["kind"] == "view":
                continue
            rows.append({"kernel": f"k{n}_{k.attrs['kind']}", "kind": k.attrs["kind"],
                         "ops": [m.op for m in k.body.nodes], "seconds": self._prof[n].value / hz})
            if reset:
                self._prof[n].value = 0
        return rows

    def _bad_input(self, k, a):
        g = self.graph
        raise ValueError(f"{g.name}: input %{g.inputs[k].name} expects {g.inputs[k].type}, "
                         f"got {a.dtype}{list(a.shape)}")

    def _raise(self):
        code, detail = self._err.value, self._err_value.value
        self._err.value = self._err_value.value = 0
        kernel, what, limit, kind = self._check_table[code - 1]
        if kind == "div":
            raise DivisionByZero(f"llvm backend (GRAPHC_BOUNDS_CHECK): kernel {kernel}: {what}: "
                                 "integer division by zero")
        raise BoundsError(f"llvm backend (GRAPHC_BOUNDS_CHECK): kernel {kernel}: {what}: "
                          f"index {detail} out of bounds [0, {limit})")
