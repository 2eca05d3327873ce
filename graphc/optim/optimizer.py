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

import warnings
from collections import defaultdict

import numpy as np

from .. import tracing as _tr
from ..autograd import no_grad, enable_grad
from ..tensor import Tensor
from .param_group import ParamGroup, _name, _sync_mirror  # noqa: F401 (re-exported)
from .scalars import (_Required, _eager, _is_number, _like, _new_scalar,  # noqa: F401 (re-exported)
                      _scalar_dtype, check_nonnegative, required)
from .step_guard import _MISSING, _StepGuard, _fits_mirror, _guarded_step, _same  # noqa: F401


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
        """Reset the gradients: to None (the default), or to zeros in place (tracing.reset_grads)."""
        _tr.reset_grads((p for g in self.param_groups for p in g["params"]), set_to_none)

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
