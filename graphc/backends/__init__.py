"""Backends turn a planned Graph into an executable: callable(list of arrays) -> list of arrays
(the graph's outputs, then the values of its updates)."""
from __future__ import annotations

_BACKENDS = {}
_PREPARE = {}


def register(name, compile_fn, prepare=None):
    """`prepare()`: the backend's one-time setup in a process (its native runtime), which its
    first compile would otherwise pay."""
    _BACKENDS[name] = compile_fn
    if prepare is not None:
        _PREPARE[name] = prepare


def prepare(name):
    """Load backend `name` and its runtime now (what the first compile in a process pays once:
    for llvm the code generator's modules, LLVM's native target, the BLAS and libm symbols)."""
    get(name)
    fn = _PREPARE.get(name)
    if fn is not None:
        fn()


def get(name):
    if name not in _BACKENDS:
        _load(name)
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(sorted(_BACKENDS))}") from None


def default() -> str:
    """The backend gc.compile uses when none is named: GRAPHC_BACKEND if set, else "llvm" (native
    code) where llvmlite and numpy's bundled OpenBLAS are present, else "interp"."""
    import os
    name = os.environ.get("GRAPHC_BACKEND", "").strip()
    if name:
        get(name)      # an unknown name fails here, naming the variable's value
        return name
    return "llvm" if _llvm_available() else "interp"


def _llvm_available() -> bool:
    import importlib.util
    if importlib.util.find_spec("llvmlite") is None:
        return False
    from .llvm.runtime import _openblas_path
    return _openblas_path() is not None


def _load(name):
    if name in ("interp", "interpreter"):
        from . import interpreter  # noqa: F401
    elif name == "llvm":
        from . import llvm  # noqa: F401
    elif name == "cuda":
        from . import cuda  # noqa: F401


from . import interpreter  # noqa: E402,F401
