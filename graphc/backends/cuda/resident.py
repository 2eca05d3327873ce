"""Device-resident calls of a compiled graph: cuda tensors in, cuda tensors out, no host copies.

    exe.run_on_device([DeviceArray | 0-d numpy array, ...]) -> [outputs..., update values...]

State inputs (parameters, optimizer buffers: tensors the function captured) are **bound**: the
kernels read and update them in the caller's own device memory, so an in-place update costs
nothing extra. The launches are re-prepared only when the identity of the state's storage
changes (a new optimizer buffer, a module moved), which is rare. Argument inputs (a new batch
every call) are copied device -> device into their slots in the arena, so the prepared launches
stay valid. Outputs are copied out of the arena into fresh DeviceArrays (the arena is reused by
the next call). A 0-d CPU value (an optimizer's step count, a learning-rate mirror) and the
random generator's state (`rng`, i64[2]: dropout in a compiled step draws from the same stream
as on the CPU) take part through their slots: copied in, and copied back (8 or 16 bytes device
-> host) if the graph updates them.

If two inputs share storage, nothing is bound for that call: every input is copied into its slot
and updated state copied back, as the memory plan assumes distinct input buffers.
"""
from __future__ import annotations

import numpy as np

from ...device import mismatch
from .device_array import DeviceArray
from .launch import Launcher, PreparedLaunch


class ResidentCall:
    def __init__(self, exe):
        self.exe = exe
        g = exe.graph
        self.state = [i for i, v in enumerate(g.inputs) if v.kind == "state"]
        self.written = set(exe._written)
        self._key = None               # identity of the bound state storage
        self._launches = None
        self._bound = self._bound_ids = frozenset()
        self._results = [self._result(v) for v in list(g.outputs) + [v for _, v in g.updates]]

    def _result(self, v):
        exe = self.exe
        kind, x = exe.where(v)
        shape, t = tuple(v.type.shape), v.type
        if kind == "in":     # an input returned, or state updated in place: the caller's array
            return lambda ins, i=x: ins[i] if tuple(ins[i].shape) == shape else ins[i].reshape(shape)
        view = exe._view(x, t)

        def fresh(ins):
            out = DeviceArray.empty(shape, t.dtype.np)
            if t.numel:
                out.flat.copy_to_device(view)
            return out
        return fresh

    # ---- binding --------------------------------------------------------------------------------------
    def _bind(self, arrays, key):
        exe = self.exe
        flats = [a.flat if type(a) is DeviceArray else None for a in arrays]
        ids = [id(f) for f in flats if f is not None]
        shared = len(ids) != len(set(ids))
        bound = frozenset() if shared else frozenset(
            i for i in self.state if flats[i] is not None and arrays[i].size)
        launches = []
        for _, fn, grid, block, specs in exe.launch_specs:
            args = [flats[s[1]] if isinstance(s, tuple) and s[1] in bound
                    else exe._in_views[s[1]] if isinstance(s, tuple) else s for s in specs]
            launches.append(PreparedLaunch(Launcher(fn, grid, block), args))
        self._launches, self._bound = launches, bound
        self._bound_ids = frozenset(id(flats[i]) for i in bound)
        self._key = None if shared else key

    def __call__(self, arrays, labels=None):
        exe = self.exe
        g = exe.graph
        if len(arrays) != len(g.inputs):
            raise ValueError(f"{g.name}: expected {len(g.inputs)} inputs, got {len(arrays)}")
        for k, (a, v) in enumerate(zip(arrays, g.inputs)):
            if tuple(a.shape) != v.type.shape or a.dtype != v.type.dtype.np:
                raise ValueError(f"{g.name}: input %{v.name} expects {v.type}, got {a.dtype}{list(a.shape)}")
            if type(a) is not DeviceArray and a.ndim != 0 and not (v.kind == "state" and v.label == "rng"):
                lbl = (labels or {}).get(k) or v.label or v.name
                raise RuntimeError(f"{mismatch('cuda:0', 'cpu').args[0]} (argument '{lbl}' is on cpu; the "
                                   "compiled call runs on cuda:0)")
        key = tuple(id(arrays[i].flat) if type(arrays[i]) is DeviceArray else None for i in self.state)
        if key != self._key or self._launches is None:
            self._bind(arrays, key)
        bound, ids = self._bound, self._bound_ids
        if ids and any(type(a) is DeviceArray and id(a.flat) in ids and k not in bound
                       for k, a in enumerate(arrays)):
            self._bind(arrays, key)            # an argument aliases bound state: copy everything
            bound = self._bound
        for k, a in enumerate(arrays):
            if k in bound:
                continue
            if type(a) is DeviceArray:
                if a.size:
                    exe._in_views[k].copy_to_device(a.flat)
            else:
                exe._in_views[k].copy_to_device(np.asarray(a).reshape(-1))
        if exe.cfg.simulator:
            with np.errstate(all="ignore"):     # the simulator's numpy scalars warn where a GPU wraps
                for launch in self._launches:
                    launch()
        else:
            for launch in self._launches:
                launch()
        for i in self.written:
            if i in bound:
                continue
            a = arrays[i]
            if type(a) is DeviceArray:
                if a.size:
                    a.flat.copy_to_device(exe._in_views[i])
            else:                                  # a 0-d host value or the generator's state
                a[...] = exe._in_views[i].copy_to_host().reshape(a.shape)
        return [r(arrays) for r in self._results]

    @property
    def launch_paths(self):
        return [ln.path for ln in self._launches or ()]
