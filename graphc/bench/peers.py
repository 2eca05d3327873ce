"""Finding the peer implementations: the same workloads written in numpy by hand, torch eager,
torch.compile and jax.jit. They live outside the package, in the repository's bench/peers/
(graphc itself never imports torch or jax); `graphc bench` and bench/llvm.py load them from

    --peers PATH      a peers folder (holding __init__.py), a folder holding peers/ (the
                      repository's bench/), or one .py file; '' for none
    (default)         bench/peers/ next to the graphc package, when it exists (a checkout, or an
                      editable install); otherwise none: graphc's own columns only, and the
                      table says the peers are not available

A peers module defines IMPLS = {column: impl(family, state) -> Impl or None (None: that
framework is not installed)} for columns among columns.PEER_COLUMNS, importing its frameworks
inside impl."""
from __future__ import annotations

import importlib.util
import os
import sys

_LOADED = {}                      # resolved file -> Peers


class Peers:
    """The loaded peers: impls {column: impl} (the module's own IMPLS), path (what was loaded),
    module, and missing (why there are none, when there are none)."""

    def __init__(self, impls=None, path=None, missing=None, module=None):
        self.impls, self.path, self.missing = ({} if impls is None else impls), path, missing
        self.module = module

    def impl(self, column, family, state):
        """The column's Impl of `family`, or None (the column is not available)."""
        f = self.impls.get(column)
        return None if f is None else f(family, state)

    def __bool__(self):
        return bool(self.impls)


def default_path():
    """bench/peers/ next to the graphc package (its repository), or None."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = os.path.join(root, "bench", "peers")
    return p if os.path.isfile(os.path.join(p, "__init__.py")) else None


def _entry(path):
    """The file to load for `path`: PATH/__init__.py, PATH/peers/__init__.py or PATH itself."""
    for f in (os.path.join(path, "__init__.py"), os.path.join(path, "peers", "__init__.py")):
        if os.path.isfile(f):
            return f
    if os.path.isfile(path) and path.endswith(".py"):
        return path
    raise FileNotFoundError(f"no peer implementations at {path!r} (want a folder with __init__.py, "
                            f"a folder holding peers/, or a .py file)")


def load(path=None) -> Peers:
    """The peers at `path` (None: default_path(); '': none), loaded once per file."""
    if isinstance(path, Peers):
        return path
    if path is None:
        path = default_path()
        if path is None:
            return Peers(missing="no bench/peers/ next to the graphc package; --peers PATH names one "
                                 "(a checkout's bench/peers)")
    if path == "":
        return Peers(missing="--peers ''")
    f = os.path.realpath(_entry(os.path.expanduser(path)))
    if f not in _LOADED:
        name = f"graphc_bench_peers_{len(_LOADED)}"
        is_pkg = os.path.basename(f) == "__init__.py"
        spec = importlib.util.spec_from_file_location(
            name, f, submodule_search_locations=[os.path.dirname(f)] if is_pkg else None)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod                  # before running it: its relative imports find it
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            del sys.modules[name]
            raise
        impls = getattr(mod, "IMPLS", None)
        if not isinstance(impls, dict):
            raise ImportError(f"{f} defines no IMPLS dict of peer implementations")
        _LOADED[f] = Peers(impls, os.path.dirname(f) if is_pkg else f, module=mod)
    return _LOADED[f]
