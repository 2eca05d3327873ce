"""A compiled graph that runs where its inputs are: the chosen backend for host arrays, the cuda
backend (device-resident, `CudaExecutable.run_on_device`) for cuda tensors' storage.

`gc.compile(f)` wraps every executable it builds in `FollowInputs`: a call whose inputs include a
DeviceArray runs on the cuda backend, compiled on first use (with the compile's backend options
when its backend is "cuda"); outputs stay on the device. A CPU input among cuda inputs raises
torch's device error naming the argument, except a 0-d value (a step count, a learning-rate
mirror), which takes part as a scalar would. Everything else (attributes such as `llvm_ir`,
`fresh_results`) is the host executable's.
"""
from __future__ import annotations

from ...device import device
from .device_array import DeviceArray


class FollowInputs:
    __slots__ = ("host", "graph", "_backend", "_options", "_cuda", "_device_fresh", "_host_fresh",
                 "fresh_results")

    def __init__(self, host, graph, backend, options):
        self.host = host
        self.graph = graph
        self._backend, self._options = backend, dict(options or {})
        self._cuda = self._device_fresh = None
        # per output of the last call: allocated for that call alone (read by the compiler after a call)
        self.fresh_results = self._host_fresh = getattr(host, "fresh_results", None)

    @property
    def cuda(self):
        """The device-resident cuda executable of this graph (built on first use)."""
        if self._cuda is None:
            device("cuda").check_available()
            if self._backend == "cuda" and hasattr(self.host, "run_on_device"):
                self._cuda = self.host
            else:
                from . import compile as cuda_compile
                self._cuda = cuda_compile(self.graph, **(self._options if self._backend == "cuda" else {}))
            self._device_fresh = self._cuda.fresh_device_results
        return self._cuda

    def __call__(self, arrays):
        if DeviceArray in map(type, arrays):
            exe = self.cuda
            self.fresh_results = self._device_fresh
            return exe.run_on_device(arrays)
        self.fresh_results = self._host_fresh
        return self.host(arrays)

    def __getattr__(self, name):
        return getattr(self.host, name)
