"""Tensor: eager numpy data with an autograd tape, or a tracer that records IR nodes.

Every operation reaches `apply(primitive_name, *tensors, **attrs)`. Eagerly it runs the
primitive's numpy implementation now and records a BackwardNode when gradients are wanted;
while a compiled function is being traced it appends a node to the trace's graph instead.

The ops themselves (x + y, x.sum(), x[i], x.add_(y), ...) are installed onto Tensor as methods
by graphc.ops.functional (methods.py), which builds on this module: this one does not import it.
"""
from __future__ import annotations

import weakref

import numpy as np

from . import autograd as _ag
from . import dtypes as _dt
from . import mode as _tracing
from .device import CPU, CUDA0, cuda_device, device as _device, device_mode, mismatch, move
from .ir.graph import TensorType
from .ops.registry import PRIMITIVES, Primitive as _Primitive


class Size(tuple):
    """A tensor's shape: a tuple that prints like torch.Size."""

    def __repr__(self) -> str:
        return f"graphc.Size([{', '.join(str(s) for s in self)}])"

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n


class Tensor:
    __slots__ = ("_data", "_value", "_trace", "_dtype", "_requires_grad", "grad_fn", "_grad",
                 "_version", "_base", "_accum", "__weakref__")
    # numpy defers to the Tensor's reflected operators (as for torch): np.float64(2) * t is a
    # Tensor with t's history, not a numpy array that silently drops it
    __array_priority__ = 1000

    # ---- construction ----------------------------------------------------------------------
    def __init__(self, *args, **kwargs):
        raise TypeError("create tensors with graphc.tensor(data), graphc.zeros(shape), ... "
                        "(graphc.Tensor(...) is not a constructor)")

    @classmethod
    def _new(cls, data, value, trace, dtype, requires_grad):
        t = object.__new__(cls)
        t._data, t._value, t._trace, t._dtype = data, value, trace, dtype
        t.requires_grad = requires_grad       # checked: only floating tensors may require grad
        t.grad_fn = t._grad = t._base = t._accum = None
        t._version = [0]
        return t

    @classmethod
    def _wrap(cls, data: np.ndarray, requires_grad: bool = False, dtype=None):
        """An eager tensor around a numpy array (no copy)."""
        return cls._new(data, None, None, dtype or _dt.from_numpy(data.dtype), requires_grad)

    @classmethod
    def _tracer(cls, trace, value, requires_grad=False):
        """A tracer: a tensor standing for an IR value while `trace` records."""
        return cls._new(None, value, trace, value.type.dtype, requires_grad)

    @classmethod
    def _alias(cls, t, grad_fn=None):
        """Same storage and version counter as t, a different autograd identity."""
        a = object.__new__(Tensor)
        a._data, a._value, a._trace, a._dtype = t._data, t._value, t._trace, t._dtype
        a._requires_grad = grad_fn is not None
        a.grad_fn = grad_fn
        a._grad = None
        a._version = t._version
        a._base = t._base if t._base is not None else t
        a._accum = None
        return a

    # ---- metadata --------------------------------------------------------------------------
    @property
    def shape(self) -> Size:
        return Size(self._data.shape if self._data is not None else self._value.type.shape)

    def size(self, dim=None):
        s = self.shape
        return s if dim is None else s[_dim(dim, len(s))]

    @property
    def dtype(self) -> _dt.DType:
        return self._dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return self.shape.numel()

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def is_floating_point_(self) -> bool:
        return self._dtype.is_floating_point

    def is_floating_point(self) -> bool:
        return self._dtype.is_floating_point

    @property
    def device(self):
        return CUDA0 if type(self._data) is not np.ndarray and self._data is not None else CPU

    def to(self, *args, **kwargs):
        """tensor.to(device), .to(dtype), .to(other), as torch: the same tensor when nothing
        changes, else a converted copy (a device move is differentiable: ToCopyBackward)."""
        dtype = kwargs.pop("dtype", None)
        dev = kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        copy = kwargs.pop("copy", False)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                dtype, dev = a.dtype, a.device
            elif isinstance(a, _dt.DType) or a in (float, int, bool):
                dtype = a
            elif isinstance(a, (str, _device)):
                if isinstance(a, str) and a in _dt._BY_NAME and a not in ("cpu", "cuda"):
                    dtype = a
                else:
                    dev = a
            else:
                raise TypeError(f"to() received an invalid combination of arguments: {a!r}")
        t = self
        if dev is not None:
            t = _to_device(t, _device(dev).check_available())
        if dtype is not None:
            dtype = _dt.as_dtype(dtype)
            t = t if t._dtype is dtype else apply("cast", t, dtype=dtype)
        return t.clone() if copy and t is self else t

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to(cuda_device(device))

    def type(self, dtype=None):
        if dtype is None:
            return f"graphc.{self._dtype.name.capitalize()}Tensor"
        return self.to(dtype)

    @property
    def is_cuda(self) -> bool:
        return type(self._data) is not np.ndarray and self._data is not None

    @property
    def is_tracer(self) -> bool:
        return self._value is not None

    def _type(self) -> TensorType:
        if self._value is not None:
            return self._value.type
        return TensorType(self._data.shape, self._dtype)

    # ---- data access -----------------------------------------------------------------------
    def _host(self) -> np.ndarray:
        """The data as a numpy array: the storage itself on the CPU, a host copy of a cuda tensor."""
        d = self._data
        return d if type(d) is np.ndarray else d.copy_to_host()

    def numpy(self) -> np.ndarray:
        if self._value is not None:
            _tracing.data_dependent(self, ".numpy()")
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self._host()

    def __array__(self, dtype=None, copy=None):
        if self._value is not None:
            _tracing.data_dependent(self, "numpy.asarray()")
        a = self._host()
        return a.astype(dtype) if dtype is not None else a

    def item(self):
        if self._value is not None:
            _tracing.data_dependent(self, ".item()")
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
        return self._host().reshape(()).item()

    def tolist(self):
        if self._value is not None:
            _tracing.data_dependent(self, ".tolist()")
        return self._host().tolist()

    def __bool__(self) -> bool:
        if self._value is not None:
            _tracing.data_dependent(self, "a Python `if`/`while`/`and`/`or` on a tensor (bool())")
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous")
        return bool(self._host().reshape(()))

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._dtype is not _dt.int64 or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        if self._value is not None:
            return f"tracer({self._value!r}, requires_grad={self.requires_grad})"
        d = self._host()
        # as torch: whole numbers print as `1.`, anything else with 4 fixed decimals
        whole = d.dtype.kind != "f" or not d.size or bool(np.all(~np.isfinite(d) | (d == np.round(d))))
        body = np.array2string(d, separator=", ", prefix="tensor(", precision=4,
                               floatmode="maxprec_equal" if whole else "fixed")
        extra = []
        if self._dtype not in (_dt.get_default_dtype(), _dt.int64, _dt.bool_) or (
                self._data.size == 0 and self._dtype is not _dt.get_default_dtype()):
            extra.append(f"dtype={self._dtype!r}")
        if self.is_cuda:
            extra.insert(0, "device='cuda:0'")
        if self.grad_fn is not None:
            extra.append(f"grad_fn=<{self.grad_fn.name}>")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extra) + ")"

    # ---- autograd --------------------------------------------------------------------------
    @property
    def grad(self):
        trace = _tracing.active()
        if trace is not None:
            return trace.read_grad(self)
        return self._grad

    @grad.setter
    def grad(self, value):
        trace = _tracing.active()
        if trace is not None:
            return trace.write_grad(self, value)
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got {type(value).__name__}")
            if tuple(value.shape) != tuple(self.shape):
                raise RuntimeError(f"assigned grad has data of a different size: {list(value.shape)} vs {list(self.shape)}")
        self._grad = value

    def backward(self, gradient=None, retain_graph=None, create_graph=False):
        _ag.backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph)

    def requires_grad_(self, requires_grad: bool = True):
        if requires_grad and not self._dtype.is_floating_point:
            raise RuntimeError(_NOT_FLOAT_GRAD)
        if not self.is_leaf:
            if requires_grad:       # a non-leaf already requires grad: a no-op, as in torch
                return self
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want "
                               "to use a computed variable in a subgraph that doesn't require "
                               "differentiation use var_no_grad = var.detach().")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self):
        if self.grad_fn is None:
            return self
        if self.grad_fn.retained is None:
            self.grad_fn.retained = []
        self.grad_fn.retained.append(weakref.ref(self))
        return self

    def detach(self):
        if self._value is not None:
            return self._trace.detach(self)
        d = Tensor._alias(self)
        d._base = self._base
        return d

    def detach_(self):
        self.grad_fn = None
        self.requires_grad = False
        return self

    @property
    def data(self):
        return self.detach()

    @data.setter
    def data(self, other):
        if self._value is not None or other._value is not None:
            raise _tracing.TraceError("assigning .data while tracing is not supported; use copy_ under no_grad")
        self._data = other._data
        self._dtype = other._dtype

    # ---- in-place ----------------------------------------------------------------------------
    def _inplace(self, fn, *args):
        """Run out-of-place fn(self, *args), then make self hold the result (torch's in-place)."""
        trace = _tracing.active()
        if trace is not None:
            return trace.inplace(self, fn, args)
        for t in (self,) + args:
            if isinstance(t, Tensor) and t._value is not None:
                _tracing.escaped(t, "an in-place operation")
        if getattr(self._data, "copied_view", False):
            raise NotImplementedError(
                "graphc: an in-place operation on a view (permute, slice, expand, ...) of a cuda tensor "
                "is unsupported on cuda: there the view is a copy, so the write would not reach the "
                "tensor it views; use the out-of-place form")
        grad_mode = _ag.is_grad_enabled()
        if grad_mode and self.requires_grad and self.is_leaf:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        tracked = grad_mode and (self.requires_grad or any(
            isinstance(a, Tensor) and a.requires_grad for a in args))
        src = self
        if tracked:
            if self._base is not None:
                # the base tensor would need the new history too (torch's CopySlices); without it
                # its gradient would be silently wrong, so refuse
                raise RuntimeError("an in-place operation that records gradient history on a view "
                                   "(a slice, reshape, expand, ... of another tensor) is not supported "
                                   "by graphc's autograd; use the out-of-place form")
            # the VJP may read the old value: give it a snapshot that nothing will modify
            src = Tensor._wrap(self._data.copy(), dtype=self._dtype)
            src.requires_grad, src.grad_fn, src._accum = self.requires_grad, self.grad_fn, None
            if self.requires_grad:
                src._accum = self._accum
        new = fn(src, *args)
        if new._dtype is not self._dtype:
            # torch computes in the promoted type and casts back, unless that would lower the
            # category (float -> int, int -> bool): f32 += f64 is fine, i64 += 0.5 is not
            if new._dtype.category > self._dtype.category:
                raise RuntimeError(f"result type {_dt.scalar_type_name(new._dtype)} can't be cast to the "
                                   f"desired output type {_dt.scalar_type_name(self._dtype)}")
            new = apply("cast", new, dtype=self._dtype)
        if tuple(new.shape) != tuple(self.shape):
            raise RuntimeError(f"output with shape {list(self.shape)} doesn't match the broadcast shape {list(new.shape)}")
        if type(new._data) is not type(self._data):
            raise mismatch(self.device, new.device)
        if not self._data.flags.writeable:
            raise RuntimeError("unsupported operation: this tensor is an expanded view (broadcast_to/expand) "
                               "and more than one element refers to a single memory location; call .clone() first")
        self._data[...] = new._data
        self._version[0] += 1
        if tracked:
            self.grad_fn = new.grad_fn
            self.requires_grad = new.requires_grad
        return self


def _dim(d: int, ndim: int) -> int:
    n = max(ndim, 1)
    if not -n <= d < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {d})")
    return d % n


def apply(name: str, *inputs: Tensor, **attrs) -> Tensor:
    """Apply primitive `name`: run it eagerly (on the inputs' device), or record it into the
    active trace."""
    prim = PRIMITIVES[name]
    trace = _tracing.active()
    if trace is not None:
        return trace.record(prim, inputs, attrs)
    on_cuda = False
    for t in inputs:
        if t._value is not None:
            _tracing.escaped(t, f"the operation '{name}'")
        if type(t._data) is not np.ndarray:
            on_cuda = True
    in_types = tuple(t._type() for t in inputs)
    out_type = prim.infer(*in_types, **attrs)
    if on_cuda:
        out = _run_cuda(prim, inputs, attrs, out_type)
    else:
        with np.errstate(all="ignore"):
            data = prim.impl(*[t._data for t in inputs], **attrs)
        if not isinstance(data, np.ndarray) or data.dtype != out_type.dtype.np:
            data = np.asarray(data, dtype=out_type.dtype.np)
        out = Tensor._wrap(data, dtype=out_type.dtype)
        if prim.category == "movement" and len(inputs) == 1 and np.may_share_memory(data, inputs[0]._data):
            base = inputs[0]
            out._version = base._version
            out._base = base._base if base._base is not None else base
    if (prim.vjp is not None and out_type.dtype.is_floating_point and _ag.is_grad_enabled()
            and any(t.requires_grad for t in inputs)):
        out.grad_fn = _ag.BackwardNode(prim, inputs, out, attrs, in_types)
        out._requires_grad = True            # floating (checked above)
    return out


# ---- requires_grad ---------------------------------------------------------------------------------
_NOT_FLOAT_GRAD = "only Tensors of floating point dtype can require gradients"
_REQUIRES_GRAD = Tensor.__dict__["_requires_grad"]     # the slot; read through it at C speed


def _set_requires_grad(t, value):
    """`t.requires_grad = value`: checked as requires_grad_ and the constructors check it (torch
    raises for an integer or bool tensor however the flag is set)."""
    if value and not t._dtype.is_floating_point:
        raise RuntimeError(_NOT_FLOAT_GRAD)
    _REQUIRES_GRAD.__set__(t, bool(value))


Tensor.requires_grad = property(_REQUIRES_GRAD.__get__, _set_requires_grad,
                                doc="does autograd record operations on this tensor")


# ---- devices ---------------------------------------------------------------------------------------
# movement primitives whose numpy result is a view of the input: on cuda reshape is a true alias,
# the others are copies standing for a view (writing into them in place raises)
_VIEW_OPS = ("reshape", "permute", "slice", "broadcast_to")


def _run_cuda(prim, inputs, attrs, out_type):
    """One primitive on cuda operands (device arrays; single host values mix in as scalars)."""
    eager = device_mode("cuda")        # the cuda backend's registered eager mode (loads numba)
    operands = []
    for t in inputs:
        d = t._data
        if type(d) is np.ndarray:
            if not _single_value(d):
                cuda_first = type(inputs[0]._data) is not np.ndarray
                raise mismatch("cuda:0", "cpu") if cuda_first else mismatch("cpu", "cuda:0")
            operands.append(eager.HostScalar(d[(0,) * d.ndim], d.shape, d.dtype))
        else:
            operands.append(d)
    if prim.name == "reshape" and type(operands[0]) is not eager.HostScalar:
        data = operands[0].reshape(out_type.shape)           # the same device memory
    else:
        data = eager.run(prim, operands, attrs)
        if prim.name in _VIEW_OPS and type(operands[0]) is not eager.HostScalar and data is not operands[0]:
            data.copied_view = True
    out = Tensor._wrap(data, dtype=out_type.dtype)
    if prim.name in _VIEW_OPS and len(inputs) == 1 and type(inputs[0]._data) is not np.ndarray:
        base = inputs[0]
        out._version = base._version
        out._base = base._base if base._base is not None else base
    return out


def apply_on(device, name: str, **attrs) -> Tensor:
    """apply() of a source primitive (full, iota, constant: no tensor inputs) made on `device`
    (None: the CPU; ignored while tracing, where the compiled call's inputs decide)."""
    if device is None or _tracing.active() is not None:
        return apply(name, **attrs)
    if _device(device).check_available().type == "cpu":
        return apply(name, **attrs)
    eager = device_mode("cuda")
    prim = PRIMITIVES[name]
    out_type = prim.infer(**attrs)
    return Tensor._wrap(eager.run(prim, [], attrs), dtype=out_type.dtype)


def _single_value(a: np.ndarray) -> bool:
    """A CPU array holding one value (0-d, or a broadcast of one element): it mixes with cuda
    tensors as a scalar would, as torch lets 0-d CPU tensors do."""
    return a.ndim == 0 or (a.size > 0 and not any(a.strides))


def _to_device(t: Tensor, dev) -> Tensor:
    """t on device `dev` (a graphc.device): t itself when it is there already, else a copy that
    autograd sees as ToCopyBackward."""
    if t._value is not None or t.device == dev:
        return t
    out = Tensor._wrap(move(t._data, dev), dtype=t._dtype)
    if _ag.is_grad_enabled() and t.requires_grad:
        out.grad_fn = _ag.BackwardNode(_TO_COPY, (t,), out, {"device": dev, "src": t.device}, (t._type(),))
        out.requires_grad = True
    return out


def _to_copy_vjp(ctx, g):
    return (_to_device(g, ctx.attrs["src"]),)


_TO_COPY = _Primitive("to_copy", "movement", infer=lambda x, **a: x, impl=None, vjp=_to_copy_vjp, arity=1,
                      saves=(), doc="a device move (Tensor.to(device)); not in the registry")

_ag.TensorLike.register(Tensor)
