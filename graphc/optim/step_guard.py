"""The guards of a traced step(): what one optimizer's step took as static (its param groups and
params, the settings read as Python values, which tensors hold its state), checked before the
compiled step is reused; a failure names the optimizer and the setting for explain()."""
from __future__ import annotations

import functools

from .. import tracing as _tr
from ..tensor import Tensor
from .param_group import ParamGroup
from .scalars import _is_number


_MISSING = object()


def _same(a, b):
    if _is_number(a) and _is_number(b):
        return a == b                    # 0 and 0.0 step alike
    return a is b or (type(a) is type(b) and a == b)


def _fits_mirror(then, now):
    """Does a hyperparameter read through hyper() still have a numeric shape its mirror takes?"""
    if isinstance(then, tuple):
        return (isinstance(now, (tuple, list)) and len(now) == len(then)
                and all(_is_number(v) for v in now))
    return _is_number(now)


class _StepGuard:
    """What a traced step() of one optimizer took as static, checked before the compiled step
    is reused: the param groups and their params, the settings read as Python values, and
    which tensors hold the state."""

    def __init__(self, opt, tr):
        self.opt = opt
        self.label = tr.object_label(opt) or type(opt).__name__
        self.groups = list(opt.param_groups)
        self.params = [tuple(dict.__getitem__(g, "params")) for g in self.groups]
        self.settings = []          # (group index, key, value, zero_only)
        for i, g in enumerate(self.groups):
            raw, hyper = g._reads_in(tr) if isinstance(g, ParamGroup) else ({}, set())
            for k, v in raw.items():
                zero_only = k in hyper and _is_number(v)
                self.settings.append((i, k, v, zero_only))
            for k in hyper - set(raw):
                self.settings.append((i, k, dict.get(g, k), None))   # None: mirrored, any number
        self.state = []             # (param, key, value): tensors by identity, others by value
        for ps in self.params:
            for p in ps:
                for k, v in dict(opt.state.get(p, ())).items():
                    self.state.append((p, k, v))
        self.state_keys = {id(p): set(dict(opt.state.get(p, ()))) for ps in self.params for p in ps}

    def __call__(self):
        return self.failure() is None

    def failure(self):
        opt, what = self.opt, f"optimizer '{self.label}' ({type(self.opt).__name__})"
        groups = opt.param_groups
        if len(groups) != len(self.groups) or any(a is not b for a, b in zip(groups, self.groups)):
            return (f"{what}: its param groups changed ({len(self.groups)} when traced, now "
                    f"{len(groups)}: add_param_group?)")
        for i, (g, ps) in enumerate(zip(groups, self.params)):
            now = dict.get(g, "params", ())
            if len(now) != len(ps) or any(a is not b for a, b in zip(now, ps)):
                return (f"{what}: param_groups[{i}]['params'] changed ({len(ps)} parameters when "
                        f"traced, now {len(now)})")
        for i, k, v, zero_only in self.settings:
            now = dict.get(groups[i], k, _MISSING)
            shown = "deleted" if now is _MISSING else repr(now)
            if zero_only is None:
                if not _fits_mirror(v, now):
                    return (f"{what}: param_groups[{i}]['{k}'] changed from {v!r} to {shown}, which "
                            "the compiled step cannot mirror as a tensor")
            elif zero_only:
                if now is _MISSING or not _is_number(now) or (now != 0) != (v != 0):
                    return (f"{what}: param_groups[{i}]['{k}'] changed from {v!r} to {shown} (whether "
                            "it is zero is static in the compiled step)")
            elif not _same(now, v):
                return (f"{what}: param_groups[{i}]['{k}'] changed from {v!r} to {shown} (Python "
                        "settings of a param group are static in the compiled step)")
        for p, k, v in self.state:
            now = dict(opt.state.get(p, ())).get(k, _MISSING)
            if isinstance(v, Tensor):
                if now is not v:
                    how = "was removed" if now is _MISSING else "was replaced by another tensor"
                    return f"{what}: state '{k}' of a parameter {list(p.shape)} {how}"
            elif not _same(now, v):
                return f"{what}: state '{k}' of a parameter {list(p.shape)} changed from {v!r} to {now!r}"
        for ps in self.params:
            for p in ps:
                extra = set(dict(opt.state.get(p, ()))) - self.state_keys[id(p)]
                if extra:
                    return f"{what}: new state {sorted(extra)} for a parameter {list(p.shape)}"
        return None


def _guarded_step(step):
    """Wrap a subclass's step(): when traced, register the guards of what it took as static."""
    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        tr = _tr.active()
        if tr is not None and hasattr(tr, "add_guard"):
            guard = _StepGuard(self, tr)
            tr.add_guard(guard.failure, guard, key=("optimizer-step", id(self)))
        return out
    wrapper._graphc_guarded = True
    return wrapper
