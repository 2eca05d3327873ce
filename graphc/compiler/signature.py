"""A call's signature: its arguments flattened to leaves (numpy arrays as tensors), each leaf's
spec in the cache key, the fast key of an all-tensor call, and the words that say which
argument changed when a new signature is traced."""
from __future__ import annotations

import inspect

import numpy as np

from .. import autograd as _ag
from .. import dtypes as _dtypes
from .. import tracing as _tr
from ..tensor import Tensor


def _arrays_as_tensors(leaves, name, fn, args, kwargs):
    """numpy arrays among the argument leaves as tensors (no copy), so that they are graph
    inputs like tensors: shape and dtype in the signature, values read at every call. Left as
    they were, an array would be captured into the trace as a constant (keyed by id): mutate it
    and the next call would still compute with the old values. Sharing memory, an in-place
    update by the compiled function lands in the caller's array (as with torch.from_numpy).
    Inside the function the argument is a graphc tensor."""
    out = None
    for i, x in enumerate(leaves):
        if isinstance(x, np.ndarray):
            out = out or list(leaves)
            a = np.asarray(x)               # a subclass (memmap, matrix) as a plain array view
            try:
                dt = _dtypes.from_numpy(a.dtype)
            except TypeError:
                labels = _arg_labels(fn, args, kwargs, None)
                lbl = labels[i] if i < len(labels) else f"arg{i}"
                raise TypeError(f"{name}: argument '{lbl}' is a numpy array of dtype {a.dtype}, which graphc "
                                "does not support (float32, float64, int64, bool); convert it first, "
                                "e.g. arr.astype(np.float32)") from None
            out[i] = Tensor._wrap(a, dtype=dt)
    return leaves if out is None else out


def _leaf_spec(x):
    if isinstance(x, Tensor):
        if x._value is not None:
            raise _tr.TraceError("a tracer escaped the compiled function that traced it and was passed "
                                 "to a compiled function as an argument; tracers have no data outside "
                                 "their trace: return the tensor instead of storing it")
        return ("T", tuple(x.shape), x.dtype.name, bool(x.requires_grad),
                bool(x.requires_grad and x.is_leaf))
    if x is None or isinstance(x, (bool, int, float, str, bytes, complex)):
        return ("S", type(x).__name__, x)
    return ("O", type(x).__name__, id(x))


def _grad_agnostic(key):
    """The signature key without the tensors' requires_grad / is_leaf flags (see _lookup_relaxed)."""
    return (key[0], tuple(s[:3] if s[0] == "T" else s for s in key[1]), key[2])


def _fast_key(args):
    """For a call whose arguments are all eager tensors: a key equivalent to the full signature
    key ((args, {}) flattens to exactly these leaves); None otherwise."""
    specs = []
    for x in args:
        if x.__class__ is not Tensor or x._value is not None:
            return None
        rg = x.requires_grad
        specs.append((x._data.shape, x.dtype, rg, rg and x.grad_fn is None))
    return (tuple(specs), _ag.is_grad_enabled())


def _what_changed(a, b):
    if a[0] == b[0] == "T":
        what = [w for w, i in (("shape", 1), ("dtype", 2), ("requires_grad", 3)) if a[i] != b[i]]
        if a[3] == b[3] and a[4] != b[4]:
            what.append("is_leaf")
        return f" ({', '.join(what)} change)"
    if a[0] == b[0] == "S":
        return " (python scalar change: python values are static in the graph)"
    return ""


def _describe_leaf(spec):
    if spec[0] == "T":
        return f"tensor {spec[2]}{list(spec[1])}" + (
            "" if not spec[3] else " requiring grad" if spec[4] else " requiring grad (non-leaf)")
    if spec[0] == "S":
        return "None" if spec[2] is None else f"{spec[1]} {spec[2]!r}"
    return f"{spec[1]} object at {spec[2]:#x}"


def _arg_labels(fn, args, kwargs, treedef_leaves):
    """A readable label for each flattened argument leaf: x, batch[0], opts['lr']..."""
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        names = []
    labels = []

    def walk(obj, label):
        if isinstance(obj, (tuple, list)):
            for i, o in enumerate(obj):
                walk(o, f"{label}[{i}]")
        elif isinstance(obj, dict):
            for k, o in obj.items():
                walk(o, f"{label}[{k!r}]")
        else:
            labels.append(label)

    for i, a in enumerate(args):
        walk(a, names[i] if i < len(names) and not names[i].startswith("*") else f"arg{i}")
    for k, v in kwargs.items():
        walk(v, k)
    return labels
