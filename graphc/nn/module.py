"""nn.Module: parameters, buffers and submodules registered by attribute assignment."""
from __future__ import annotations

from collections import OrderedDict

from collections import namedtuple

from .. import tracing as _tracing
from ..tensor import Tensor
from .parameter import Parameter

_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _float64():
    from ..dtypes import float64
    return float64


def _float32():
    from ..dtypes import float32
    return float32


def _cast(t, dtype):
    """A detached copy-or-self of t in dtype, on t's device."""
    from ..autograd import no_grad
    from ..ops import functional as F
    with no_grad():
        return F.cast(Tensor._alias(t) if t.requires_grad else t, dtype)


def _check_device(device):
    """Layers take device= as torch's do; only devices graphc can use are accepted."""
    if device is not None:
        from ..device import device as _device
        _device(device).check_available()


def _place(module, device):
    """A layer built with device=: its parameters and buffers (made and initialised on the CPU,
    so the numbers are the CPU's) moved there."""
    if device is not None:
        module.to(device)


class Module:
    training: bool

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())

    # ---- registration -------------------------------------------------------------------------
    def __setattr__(self, name, value):
        """As torch: a Parameter registers a parameter, a Module a submodule; assigning to a name
        already registered as a parameter / submodule / buffer keeps it registered (None allowed)."""
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError("cannot assign before Module.__init__() call")
        params, bufs, mods = d["_parameters"], d["_buffers"], d["_modules"]

        def drop(*dicts):
            d.pop(name, None)
            for x in dicts:
                x.pop(name, None)
        if isinstance(value, Parameter):
            drop(bufs, mods)
            params[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(graphc.nn.Parameter or None expected)")
            params[name] = None
        elif isinstance(value, Module):
            drop(params, bufs)
            value.__dict__.setdefault("_name", name)   # for error messages that name the layer
            mods[name] = value
        elif name in mods:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                "(graphc.nn.Module or None expected)")
            mods[name] = None
        elif name in bufs:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                "(graphc.Tensor or None expected)")
            bufs[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        for k in ("_parameters", "_buffers", "_modules"):
            if k in d and name in d[k]:
                return d[k][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for d in (self._parameters, self._buffers, self._modules):
            if name in d:
                del d[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(graphc.nn.Parameter or None required)")
        if name in self._buffers or name in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        if param is None:
            self.__dict__.pop(name, None)
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(graphc Tensor or None required)")
        if name in self._parameters or name in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor
        nonpersistent = self.__dict__.setdefault("_non_persistent_buffers", set())
        if persistent:
            nonpersistent.discard(name)
        else:
            nonpersistent.add(name)

    def add_module(self, name, module):
        if module is not None:
            module.__dict__.setdefault("_name", name)
        self._modules[name] = module

    def _describe(self) -> str:
        """How error messages name this layer: Linear 'fc1' (in_features=..., ...)."""
        name = self.__dict__.get("_name")
        return f"{type(self).__name__}{f' {name!r} ' if name else ''}({self.extra_repr()})"

    # ---- traversal ------------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """Every module in the tree, each once (as torch: a module shared under two names is
        listed under the first)."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix="", recurse=True):
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, p in m._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mp}.{name}" if mp else name), p

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True):
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, b in m._buffers.items():
                if b is not None and id(b) not in seen:
                    seen.add(id(b))
                    yield (f"{mp}.{name}" if mp else name), b

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ---- modes and grads -----------------------------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """As Optimizer.zero_grad (tracing.reset_grads): also inside a compiled step."""
        _tracing.reset_grads(self.parameters(), set_to_none)

    def to(self, *args, **kwargs):
        """Module.to(device) / .to(dtype): parameters and buffers (and their .grad) change in
        place, keeping their identity, so an optimizer built before the move still holds them;
        optimizer state created after the move is made on the new device."""
        from ..device import device
        from .. import dtypes as _dt
        dtype = dev = None
        for a in list(args) + list(kwargs.values()):       # check everything before changing anything
            if isinstance(a, _dt.DType) or (isinstance(a, str) and a in _dt._BY_NAME):
                dtype = _dt.as_dtype(a)
            elif isinstance(a, (str, device)):
                dev = device(a).check_available()
            elif isinstance(a, Tensor):                     # .to(other_tensor): its dtype and device
                dtype, dev = a.dtype, a.device
            elif a is not None and not isinstance(a, bool):
                raise TypeError(f"Module.to() got an unexpected argument {a!r}")
        if dev is not None:
            self._move(dev)
        if dtype is not None:
            self._cast_floats(dtype)
        return self

    def _move(self, dev):
        from ..device import move
        for t in list(self.parameters()) + list(self.buffers()):
            if t.device != dev:
                t._data = move(t._data, dev)
                t._version[0] += 1
            g = t._grad
            if g is not None and g._value is None and g.device != dev:
                t._grad = Tensor._wrap(move(g._data, dev), dtype=g.dtype)

    def cuda(self, device=None):
        from ..device import cuda_device
        return self.to(cuda_device(device))

    def _cast_floats(self, dtype):
        if not dtype.is_floating_point:
            raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dtype}")
        for t in list(self.parameters()) + list(self.buffers()):
            if t.dtype.is_floating_point and t.dtype is not dtype:
                t._data = _cast(t, dtype)._data
                t._dtype = dtype
                t._version[0] += 1
                if t._grad is not None and t._grad._value is None:   # the gradient follows, as in torch
                    t._grad = _cast(t._grad, dtype)

    def double(self):
        return self.to(_float64())

    def float(self):
        return self.to(_float32())

    def cpu(self):
        return self.to("cpu")

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- state ------------------------------------------------------------------------------------
    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """name -> tensor for every parameter and persistent buffer, in torch's order (each
        module's parameters, then its buffers, then its children's); shared tensors appear under
        every name. The tensors share storage with the module (detached unless keep_vars)."""
        out = OrderedDict() if destination is None else destination
        skip = self.__dict__.get("_non_persistent_buffers", ())
        for name, t in self._parameters.items():
            if t is not None:
                out[prefix + name] = t if keep_vars else t.detach()
        for name, t in self._buffers.items():
            if t is not None and name not in skip:
                out[prefix + name] = t if keep_vars else t.detach()
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(out, prefix + name + ".", keep_vars)
        return out

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy tensors from state_dict into this module's parameters and buffers, in place.

        Every key, shape and dtype is checked before anything is copied, so a mismatch raises
        and leaves the module exactly as it was."""
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict:
            if unexpected:
                errors.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ". ")
            if missing:
                errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ")
        for k, t in own.items():
            if k not in state_dict:
                continue
            src = state_dict[k]
            if not isinstance(src, Tensor):
                errors.append(f'While copying the parameter named "{k}", expected a tensor, got {type(src).__name__}.')
            elif tuple(src.shape) != tuple(t.shape):
                errors.append(f"size mismatch for {k}: copying a param with shape {src.shape!r} from "
                              f"checkpoint, the shape in current model is {t.shape!r}.")
            elif src.dtype.is_floating_point != t.dtype.is_floating_point and t.dtype.name != "int64":
                errors.append(f"dtype mismatch for {k}: checkpoint has {src.dtype.name}, model has {t.dtype.name}.")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        from ..autograd import no_grad
        with no_grad():
            for k, t in own.items():
                if k in state_dict:
                    src = state_dict[k].detach().to(t.device)        # host <-> device as needed
                    t._data[...] = _cast(src, t.dtype)._data
                    t._version[0] += 1
        return _IncompatibleKeys(missing, unexpected)

    # ---- calling ---------------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"Module [{type(self).__name__}] is missing the required \"forward\" function")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- printing --------------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = []
        extra = self.extra_repr()
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {sub}")
        main = type(self).__name__ + "("
        if extra and not lines:
            return main + extra + ")"
        body = ([extra] if extra else []) + lines
        if not body:
            return main + ")"
        return main + "\n  " + "\n  ".join(body) + "\n)"
