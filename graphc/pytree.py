"""Flatten nested Python containers (tuple, list, dict, namedtuple) into leaves and back."""
from __future__ import annotations


def flatten(obj):
    leaves = []
    return leaves, _flatten(obj, leaves)


def _flatten(obj, leaves):
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return ("namedtuple", type(obj), tuple(_flatten(x, leaves) for x in obj))
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, None, tuple(_flatten(x, leaves) for x in obj))
    if isinstance(obj, dict):
        keys = list(obj.keys())
        return ("dict", tuple(keys), tuple(_flatten(obj[k], leaves) for k in keys))
    leaves.append(obj)
    return ("leaf", None, ())


def unflatten(treedef, leaves):
    if treedef[0] == "leaf":          # a single tensor: the common result of a compiled call
        return leaves[0]
    it = iter(leaves)
    return _build(treedef, it)


def _build(td, it):
    kind, meta, kids = td
    if kind == "leaf":
        return next(it)
    vals = [_build(k, it) for k in kids]
    if kind == "namedtuple":
        return meta(*vals)
    if kind == "tuple":
        return tuple(vals)
    if kind == "list":
        return vals
    return dict(zip(meta, vals))


def treedef_key(td):
    """A hashable form of a treedef (namedtuple types by identity)."""
    kind, meta, kids = td
    return (kind, id(meta) if kind == "namedtuple" else meta, tuple(treedef_key(k) for k in kids))
