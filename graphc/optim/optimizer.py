"""The Optimizer base: param groups, per-parameter state, zero_grad, state_dict.

An optimizer's step() is ordinary graphc code, so it runs eagerly or is traced into a compiled
training step. Three rules make the traced form correct on every later call of the compiled
step, not only the one it was traced from:

1. Parameters and state change only through in-place tensor ops (add_, mul_, addcdiv_, copy_,
   lerp_, ...) under no_grad; while tracing these become write-backs.
2. Per-parameter state is created eagerly, even in the middle of a trace
   (`tracing.suspended()`), so it is a concrete tensor that the trace captures as state.
   A tracer is never stored in `self.state`.
3. Whatever changes from step to step is a tensor, never a Python number that the trace would
   bake in: the step count is a 0-d tensor in the state, and a param group's numeric
   hyperparameters are read through `ParamGroup.hyper(key)`, which while tracing returns a 0-d
   float64 tensor mirroring `group[key]`. Setting `group["lr"] = x` (an LR scheduler does
   this) updates the mirror in place, so a compiled step sees the new value without a retrace.

What stays static in a compiled step: booleans (nesterov, amsgrad, maximize, centered, ...),
and whether a coefficient is zero (weight_decay == 0 skips the term, momentum == 0 skips the
buffer). A traced step() registers guards on them (`Trace.add_guard`): every group setting the
step read as a Python value (`group[key]`), which for a number also read through `hyper(key)`
means only its zero-ness; the param groups and their params; the identity of every state tensor.
When one fails the compiled function retraces and explain() names the optimizer and the setting.
"""
from __future__ import annotations

import functools
import numbers
import warnings
import weakref
from collections import defaultdict

import numpy as np

from .. import dtypes as _dt
from .. import tracing as _tr
from ..autograd import no_grad, enable_grad
from ..tensor import Tensor



def check_nonnegative(**settings):
    """Reject negative settings with torch's messages ("Invalid learning rate: -1")."""
    for name, v in settings.items():
        what = {"lr": "learning rate", "eps": "epsilon value"}.get(name, f"{name} value")
        if not 0.0 <= v:
            raise ValueError(f"Invalid {what}: {v}")

class _Required:
    def __repr__(self):
        return "<required parameter>"


required = _Required()


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _scalar_dtype():
    """The dtype of 'step' counters: torch's _get_scalar_dtype (float64 iff the default is)."""
    return _dt.float64 if _dt.get_default_dtype() is _dt.float64 else _dt.float32


def _eager(fn, *args, **kwargs):
    """Run fn eagerly under no_grad, even while a trace is being recorded."""
    with _tr.suspended(), no_grad():
        return fn(*args, **kwargs)


def _like(x, p):
    """A hyperparameter or scalar coefficient (Python number, or 0-d float64 tensor while
    tracing) ready to combine with parameter p: tensors are cast to p's dtype, as torch casts a
    Python scalar (without this a 0-d float32 parameter would be promoted to float64)."""
    if isinstance(x, Tensor) and x.dtype is not p.dtype:
        from ..ops import functional as F
        return F.cast(x, p.dtype)
    return x


def _new_scalar(value, dtype=_dt.float64) -> Tensor:
    from ..ops import functional as F
    return _eager(F.full, (), float(value), dtype=dtype)


# ---- param groups ----------------------------------------------------------------------------------
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


# ---- guards of a traced step --------------------------------------------------------------------------
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


# ---- the base class --------------------------------------------------------------------------------
class Optimizer:
    """Base class of graphc optimizers (torch.optim.Optimizer's interface).

    Subclasses define `step()` with the rules in this module's docstring and may override
    `_init_state(p, group)` (the state of a parameter, created eagerly on first use). A
    subclass's step() is wrapped so that, while traced, it registers guards (`_StepGuard`)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is not None and not getattr(step, "_graphc_guarded", False):
            cls.step = _guarded_step(step)

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = defaultdict(dict)
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors "
                            f"or dicts, but got {type(params).__name__}")
        if isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but "
                            "the ordering of tensors in sets will change between runs. Please use a list instead.")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for g in params:
            self.add_param_group(g)

    # ---- groups ------------------------------------------------------------------------------
    def add_param_group(self, param_group):
        """Add a group of parameters with its own options (missing ones come from the defaults)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        ps = param_group["params"]
        if isinstance(ps, Tensor):
            ps = [ps]
        elif isinstance(ps, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but "
                            "the ordering of tensors in sets will change between runs. Please use a list instead.")
        else:
            ps = list(ps)
        for p in ps:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if p.is_tracer:
                raise _tr.TraceError("an optimizer was given a tensor created inside a compiled function")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
            if not p.dtype.is_floating_point:
                raise ValueError(f"can't optimize a tensor of dtype {p.dtype.name}")
        if len({id(p) for p in ps}) != len(ps):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; "
                          "in future, this will cause an error", UserWarning, stacklevel=3)
        for k, v in self.defaults.items():
            if v is required and k not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {k}")
        group = ParamGroup({k: v for k, v in param_group.items() if k != "params"})
        group["params"] = ps
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in ps):
            raise ValueError("some parameters appear in more than one parameter group")
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group):
        """Validate a group's options (subclasses raise ValueError like torch)."""

    # ---- gradients ---------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True):
        """Reset the gradients: to None (the default), or to zeros in place."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None          # no read first: a traced step then does not depend on it
                    continue
                grad = p.grad
                if grad is None:
                    continue
                if grad.is_tracer:         # while tracing: a new value for the .grad slot
                    from ..ops import functional as F
                    with no_grad():
                        p.grad = F.zeros_like(grad)
                    continue
                if grad.grad_fn is not None or grad.requires_grad:
                    grad.detach_()
                try:
                    with no_grad():
                        grad.zero_()
                except RuntimeError:        # e.g. a read-only (broadcast) gradient array
                    from ..ops import functional as F
                    p.grad = _eager(F.zeros_like, p)

    # ---- stepping ----------------------------------------------------------------------------
    def step(self, closure=None):
        raise NotImplementedError(f"{type(self).__name__} must define step() (Optimizer is a base class)")

    @staticmethod
    def _closure(closure):
        if closure is None:
            return None
        with enable_grad():
            return closure()

    def _state(self, p, group):
        """The state dict of parameter p, created (eagerly, also while tracing) on first use."""
        st = self.state[p]
        if not st:
            with _tr.suspended(), no_grad():
                self._init_state(p, group, st)
        return st

    def _init_state(self, p, group, st):
        pass

    # ---- state_dict --------------------------------------------------------------------------
    def _param_index(self):
        return {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}

    def state_dict(self):
        """torch's layout: {'state': {index: {name: value}}, 'param_groups': [{..., 'params': [index, ...]}]}.

        Parameters are numbered across the groups in order. Tensors in 'state' are copies, so
        the dict does not change when the optimizer keeps stepping."""
        index = self._param_index()
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            packed["params"] = [index[id(p)] for p in g["params"]]
            groups.append(packed)
        state = {}
        for p, st in self.state.items():
            if isinstance(p, Tensor) and id(p) in index:
                state[index[id(p)]] = {k: (_eager(v.clone) if isinstance(v, Tensor) else v)
                                       for k, v in st.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a state_dict from state_dict() (graphc's or torch.optim's: torch tensors and numpy
        arrays are accepted). Raises ValueError, changing nothing, if the groups do not match.

        State tensors that already exist with the same shape are overwritten in place, so a
        compiled step that captured them stays valid."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("loaded state dict must be a dict with keys 'state' and 'param_groups'")
        saved_groups = list(state_dict["param_groups"])
        groups = self.param_groups
        if len(groups) != len(saved_groups):
            raise ValueError(f"loaded state dict has a different number of parameter groups "
                             f"({len(saved_groups)}) than the optimizer ({len(groups)})")
        for i, (g, sg) in enumerate(zip(groups, saved_groups)):
            if "params" not in sg:
                raise ValueError(f"loaded state dict's parameter group {i} has no 'params'")
            if len(g["params"]) != len(sg["params"]):
                raise ValueError(f"loaded state dict contains a parameter group that doesn't match the "
                                 f"size of optimizer's group: group {i} has {len(sg['params'])} parameters "
                                 f"in the state dict and {len(g['params'])} in the optimizer")
        id_map = {}
        for g, sg in zip(groups, saved_groups):
            for idx, p in zip(sg["params"], g["params"]):
                id_map[idx] = p

        # build everything first; only then change the optimizer
        new_state = {}
        for k, st in state_dict["state"].items():
            if k not in id_map:
                raise ValueError(f"loaded state dict has state for parameter {k!r}, which no parameter "
                                 "group lists")
            p = id_map[k]
            if not isinstance(st, dict):
                raise ValueError(f"loaded state of parameter {k!r} is not a dict")
            conv = {}
            for name, v in st.items():
                t = _as_graphc(v)
                if t is None:
                    conv[name] = v
                    continue
                if name != "step" and p.dtype.is_floating_point and t.dtype.is_floating_point:
                    t = _cast(t, p.dtype)
                if t.ndim > 0 and tuple(t.shape) != tuple(p.shape):
                    raise ValueError(f"loaded state '{name}' of parameter {k!r} has shape {list(t.shape)}, "
                                     f"but the parameter has shape {list(p.shape)}")
                conv[name] = t
            new_state[id(p)] = (p, conv)
        new_groups = []
        for g, sg in zip(groups, saved_groups):
            new_groups.append({k: (tuple(v) if isinstance(v, list) and k == "betas" else v)
                               for k, v in sg.items() if k != "params"})

        # commit
        for g, ng in zip(groups, new_groups):
            g.update(ng)
        old_state = self.state
        self.state = defaultdict(dict)
        for pid, (p, conv) in new_state.items():
            old = old_state.get(p, {})
            st = {}
            for name, v in conv.items():
                o = old.get(name)
                if (isinstance(v, Tensor) and isinstance(o, Tensor) and tuple(o.shape) == tuple(v.shape)
                        and o.dtype is v.dtype):
                    _eager(o.copy_, v)          # keep the tensor: a compiled step may hold it
                    st[name] = o
                elif isinstance(v, Tensor):
                    st[name] = _eager(v.clone)
                else:
                    st[name] = v
            self.state[p] = st
        self._after_load()

    def _after_load(self):
        """Hook for subclasses with state outside `self.state`."""

    def __repr__(self):
        s = type(self).__name__ + " ("
        for i, g in enumerate(self.param_groups):
            s += f"\nParameter Group {i}"
            for k in sorted(g):
                if k != "params":
                    s += f"\n    {k}: {g[k]}"
        return s + "\n)"


def _cast(t, dtype):
    from ..ops import functional as F
    return _eager(F.cast, t, dtype)


def _as_graphc(v):
    """v as a concrete graphc Tensor (from graphc, torch or numpy), or None if not a tensor."""
    if isinstance(v, Tensor):
        if v.is_tracer:
            raise _tr.TraceError("a state dict holding tracers cannot be loaded")
        return v.detach()
    if isinstance(v, np.ndarray):
        arr = v
    elif hasattr(v, "detach") and hasattr(v, "numpy") and hasattr(v, "shape"):   # torch.Tensor
        arr = v.detach().cpu().numpy()
    else:
        return None
    from ..ops.creation import tensor
    return _eager(tensor, np.array(arr, copy=True))
