"""Eager cuda: every primitive runs on device arrays as a cached single-op kernel.

`run(prim, operands, attrs)` builds a one-node graph for (op, operand types, attrs), plans it
with the ordinary pass pipeline and generates its kernel(s) with the same codegen that
`gc.compile(backend="cuda")` uses, once per key; later calls with the same key only allocate
the output and launch (`launch.Launcher`). No host copies: operands are device arrays, except
single values (a Python scalar or a 0-d CPU tensor, possibly broadcast), which torch also lets
CPU tensors be: each is a cached one-element device array, broadcast inside the kernel.

A primitive the codegen cannot express raises NotImplementedError naming it ("... is
unsupported on cuda"); nothing silently falls back to the host.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from ...device import register as _register_device
from ... import dtypes as _dt
from ...ir import Graph, TensorType
from ...ir.buffer import buffer_of
from . import _numba
from .codegen import Config, generate
from .device_array import DeviceArray
from .launch import Launcher
from .runtime import ALIGN, _module

_KERNELS: dict = {}                # key -> OpKernel (or the NotImplementedError it raised)
_SCALARS: OrderedDict = OrderedDict()   # (dtype, value bits) -> one-element DeviceArray
_MAX_SCALARS = 4096
COUNTS = {"ops": 0}                # eager cuda ops run (bench/gpu.py: microseconds per op)


class HostScalar:
    """A single value from the host taking part in a device op (shape: as the op sees it)."""
    __slots__ = ("value", "shape", "dtype")

    def __init__(self, value, shape, dtype):
        self.value, self.shape, self.dtype = value, tuple(shape), np.dtype(dtype)


def _freeze(v):
    if isinstance(v, float):
        return ("f", v.hex() if not math.isnan(v) else "nan")
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


def _spec(x):
    if isinstance(x, HostScalar):
        return ("s", x.shape, x.dtype.str)
    return ("d", x.shape, x.dtype.str)


def _device_scalar(x: HostScalar):
    key = (x.dtype.str, np.asarray(x.value, dtype=x.dtype).tobytes())
    d = _SCALARS.get(key)
    if d is None:
        d = DeviceArray.from_host(np.asarray(x.value, dtype=x.dtype).reshape(()))
        _SCALARS[key] = d
        if len(_SCALARS) > _MAX_SCALARS:
            _SCALARS.popitem(last=False)
    else:
        _SCALARS.move_to_end(key)
    return d


class OpKernel:
    """One primitive for one operand signature: planned graph, compiled launches, per-call binding."""

    def __init__(self, prim, specs, attrs):
        from ...ops.registry import PRIMITIVES
        from ...passes.manager import run_passes
        self.name = prim.name
        g = Graph(f"cuda_{prim.name}")
        vals = []
        for i, (kind, shape, dt) in enumerate(specs):
            d = _dt.from_numpy(np.dtype(dt))
            if kind == "d":
                vals.append(g.add_input(TensorType(shape, d), label=f"x{i}"))
                continue
            s = g.add_input(TensorType((), d), label=f"s{i}")
            if shape != ():
                b = PRIMITIVES["broadcast_to"]
                s = g.add_node("broadcast_to", [s], {"shape": shape}, b.infer(s.type, shape=shape))
            vals.append(s)
        out = g.add_node(prim.name, vals, dict(attrs), prim.infer(*[v.type for v in vals], **attrs))
        g.outputs = [out]
        self.out_type = out.type
        plan = run_passes(g).final
        self.graph = plan
        self.identity = None
        if plan.outputs[0] in plan.inputs:          # e.g. stop_gradient: the input itself
            self.identity = plan.inputs.index(plan.outputs[0])
        cfg = Config(simulator=_numba.simulator())
        self.sim = cfg.simulator
        try:
            gens, self.source = generate(plan, cfg)
        except NotImplementedError as e:
            raise NotImplementedError(f"graphc: the operation '{prim.name}' is unsupported on cuda "
                                      f"(the cuda code generator cannot express it: {e})") from None
        ns = _module(self.source, g.name)
        self._layout(plan, gens)
        self.launches = []
        for _, kg in gens:
            for ln in kg.launches:
                ops = [self._operand(v) for v in ln.operands]
                self.launches.append((Launcher(ns[ln.name], ln.grid, ln.block), ops))

    def _layout(self, plan, gens):
        from ...passes.memory import arena_bytes
        self.input_index = {v.name: i for i, v in enumerate(plan.inputs)}
        self.producer = {v.name: k for k in plan.nodes for v in k.outs}
        out_names = [v.name for v in plan.outputs]
        scratch = max([kg.scratch.nbytes for _, kg in gens if getattr(kg, "scratch", None) is not None] or [0])
        self._arena_bytes = arena_bytes(plan)
        self._scratch_off = (self._arena_bytes + ALIGN - 1) // ALIGN * ALIGN
        total = self._scratch_off + scratch
        self.arena = _numba.cuda().device_array(max(total, 1), dtype=np.uint8) if total else None
        self.out_slot = {n: j for j, n in enumerate(out_names)}

    def _view(self, off, t):
        flat = self.arena[off:off + max(t.nbytes, t.dtype.itemsize)]
        return flat.view(t.dtype.np)[:t.numel]

    def _operand(self, v):
        """("in", i) | ("out", j) | ("fixed", device array): where launch operand v lives."""
        if isinstance(v, tuple):                       # ("scratch", type)
            return ("fixed", self._view(self._scratch_off, v[1]))
        if v.name in self.input_index:
            return ("in", self.input_index[v.name])
        k = self.producer[v.name]
        buf = buffer_of(k, v)
        if buf.kind == "view":
            return self._operand(k.inputs[0])
        if buf.kind == "out" and v.name in self.out_slot:
            return ("out", self.out_slot[v.name])
        if buf.kind == "arena":
            return ("fixed", self._view(buf.offset, v.type))
        raise NotImplementedError(f"graphc: the operation '{self.name}' is unsupported on cuda "
                                  f"(buffer {str(buf)!r} in its one-op graph)")

    def __call__(self, flats, out=None):
        if self.identity is not None:
            return None
        t = self.out_type
        if out is None:
            out = DeviceArray.empty(t.shape, t.dtype.np)
        outs = (out.flat,)
        if self.sim:       # the simulator computes with numpy scalars, which warn where a GPU wraps
            with np.errstate(all="ignore"):
                for launcher, ops in self.launches:
                    launcher(*[flats[i] if k == "in" else outs[i] if k == "out" else i for k, i in ops])
            return out
        for launcher, ops in self.launches:
            launcher(*[flats[i] if k == "in" else outs[i] if k == "out" else i for k, i in ops])
        return out


def kernel_for(prim, operands, attrs) -> OpKernel:
    specs = tuple(_spec(x) for x in operands)
    key = (prim.name, specs, _freeze(attrs))
    k = _KERNELS.get(key)
    if k is None:
        try:
            k = OpKernel(prim, specs, attrs)
        except NotImplementedError as e:
            k = e
        _KERNELS[key] = k
    if isinstance(k, NotImplementedError):
        raise NotImplementedError(str(k))
    return k


def run(prim, operands, attrs, out=None) -> DeviceArray:
    """Primitive `prim` on operands (DeviceArray or HostScalar); a new DeviceArray (or `out`,
    which may be an operand: pointwise kernels load every point before storing it)."""
    k = kernel_for(prim, operands, attrs)
    COUNTS["ops"] += 1
    flats = [(_device_scalar(x) if isinstance(x, HostScalar) else x).flat for x in operands]
    if k.identity is not None:
        src = operands[k.identity]
        if out is not None:
            out[...] = src
            return out
        return src if isinstance(src, DeviceArray) else _device_scalar(src).copy()
    return k(flats, out)


def fill(dst: DeviceArray, value):
    """dst[...] = value, one `full` kernel writing into dst."""
    from ...ops.registry import PRIMITIVES
    d = _dt.from_numpy(dst.dtype)
    v = bool(value) if d is _dt.bool_ else float(value) if d.is_floating_point else int(value)
    run(PRIMITIVES["full"], [], {"shape": dst.shape, "value": v, "dtype": d}, out=dst)


def cache_info() -> dict:
    return {"kernels": len(_KERNELS), "scalars": len(_SCALARS)}


# cuda's device mode: graphc.device moves storage and graphc.tensor.apply runs eager ops through it
_register_device("cuda", storage=DeviceArray, to_device=DeviceArray.from_host,
                          to_host=DeviceArray.copy_to_host, run=run, HostScalar=HostScalar, fill=fill)
