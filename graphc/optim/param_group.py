"""ParamGroup: a param group that is a plain dict to users and, while a step is traced, mirrors
each numeric hyperparameter it reads as a 0-d tensor (so a compiled step sees a new learning
rate without retracing; see optimizer.py's docstring, rule 3)."""
from __future__ import annotations

import weakref

from .. import tracing as _tr
from ..tensor import Tensor
from .scalars import _eager, _is_number, _new_scalar


class ParamGroup(dict):
    """One parameter group. For users it is a plain dict ({'params': [...], 'lr': ..., ...}).

    It also keeps, lazily, a 0-d float64 tensor mirroring each numeric hyperparameter that a
    traced step has read (a tuple of them for tuple values such as Adam's betas). `hyper(key)`
    returns the Python value eagerly and the mirror while tracing, so a compiled step reads the
    hyperparameter as captured state; assigning `group[key] = value` updates the mirror in place.
    """

    def _mirrors(self):
        m = self.__dict__.get("_mirror")
        if m is None:
            m = self.__dict__["_mirror"] = {}
        return m

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        if key != "params" and _tr.active() is not None:
            self._note_read(key, value, raw=True)
        return value

    def get(self, key, default=None):
        return self[key] if key in self else default

    def _note_read(self, key, value, raw):
        """Remember, per trace, which settings a traced step read (as Python values: raw; or
        through hyper()), for the optimizer's guards."""
        tr = _tr.active()
        reads = self.__dict__.get("_reads")
        if reads is None or reads[0]() is not tr:
            reads = self.__dict__["_reads"] = (weakref.ref(tr), {}, set())
        if raw:
            reads[1].setdefault(key, value)
        else:
            reads[2].add(key)

    def _reads_in(self, tr):
        """({key: value read raw}, {keys read through hyper()}) during trace tr."""
        reads = self.__dict__.get("_reads")
        if reads is None or reads[0]() is not tr:
            return {}, set()
        return reads[1], reads[2]

    def __setitem__(self, key, value):
        if isinstance(value, Tensor) and key != "params" and not value.is_tracer and value.numel() == 1:
            value = float(value.item())        # a 1-element tensor hyperparameter: keep its value
        dict.__setitem__(self, key, value)
        m = self.__dict__.get("_mirror")
        if m and key in m:
            if not _sync_mirror(m[key], value):
                del m[key]                     # no longer numeric (or a different arity): drop it

    def __delitem__(self, key):
        dict.__delitem__(self, key)
        self._mirrors().pop(key, None)

    def pop(self, key, *default):
        self._mirrors().pop(key, None)
        return dict.pop(self, key, *default)

    def popitem(self):
        k, v = dict.popitem(self)
        self._mirrors().pop(k, None)
        return k, v

    def clear(self):
        self._mirrors().clear()
        dict.clear(self)

    def update(self, *args, **kwargs):
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def __reduce_ex__(self, protocol):
        # pickle/deepcopy as a ParamGroup without the mirrors (they are rebuilt on demand)
        return (ParamGroup, (dict(self),))

    def __copy__(self):
        return ParamGroup(dict(self))

    def __init__(self, *args, **kwargs):
        dict.__init__(self)
        self.update(*args, **kwargs)

    def hyper(self, key):
        """group[key] as a step should read it: the Python value when eager; while tracing, for
        a number (or tuple of numbers), the 0-d float64 tensor(s) mirroring it."""
        value = dict.__getitem__(self, key)
        if _tr.active() is None:
            return value
        self._note_read(key, value, raw=False)
        m = self._mirrors()
        mir = m.get(key)
        if mir is not None and _sync_mirror(mir, value):
            return mir
        if _is_number(value):
            mir = _name(_new_scalar(value), key)
        elif isinstance(value, tuple) and value and all(_is_number(v) for v in value):
            mir = tuple(_name(_new_scalar(v), f"{key}.{i}") for i, v in enumerate(value))
        else:
            return value                     # booleans, None, strings: static
        m[key] = mir
        return mir

    def mirror(self, key):
        """The tensor mirror of group[key] if a traced step has created one (for inspection)."""
        return self.__dict__.get("_mirror", {}).get(key)


def _name(t, label):
    """Give a mirror a readable label in traced graphs (`state %lr: f64[]`), where the tracing
    module offers a registry of names for library-owned tensors."""
    names = getattr(_tr, "KNOWN_NAMES", None)
    if isinstance(names, dict):
        key = id(t)
        names[key] = label
        weakref.finalize(t, names.pop, key, None)
    return t


def _sync_mirror(mir, value) -> bool:
    """Make the mirror hold value (in place); False if value no longer fits the mirror."""
    if isinstance(mir, tuple):
        if not (isinstance(value, (tuple, list)) and len(value) == len(mir)
                and all(_is_number(v) for v in value)):
            return False
        for t, v in zip(mir, value):
            _sync_mirror(t, v)
        return True
    if not _is_number(value):
        return False
    if mir.item() != float(value):
        _eager(mir.fill_, float(value))
    return True
