"""GraphFunction: a traced graph, its passes and its backend's executable, built on first use;
its backward graphs built lazily by the autodiff pass. A one-shot graph runs on the
interpreter (_OneShot)."""
from __future__ import annotations

import numpy as np

from .. import autograd as _ag
from ..logs import compiled as _log_compiled, one_shot as _log_one_shot
from .. import tracing as _tr
from .threads import _Tracing


class GraphFunction:
    """A traced graph compiled by a backend, callable on arrays; its backward (built lazily by
    the autodiff pass, one per set of outputs and inputs being differentiated) is another
    GraphFunction, so eager backward through a compiled call also works with create_graph=True.

    The backward recomputes the forward from the saved inputs rather than saving residuals:
    nothing is stored per call but references to the input tensors (checked against their
    version counters when the backward runs, as eager autograd checks saved tensors)."""

    def __init__(self, graph, compiler, nograd=frozenset(), one_shot=False):
        self.graph = graph                  # the graph as traced (the backward is built from it)
        self.compiler = compiler            # CompiledFunction: backend, passes, dump dir
        self.nograd = frozenset(nograd)     # values recorded with grad mode off
        self.one_shot = one_shot            # serves a single call (see `exe`)
        self._passes = None
        self._exe = None
        self._backend_exe = None
        self._requiring = {}
        self._reaching = {}
        self._backward = {}

    @property
    def passes(self):
        if self._passes is None:
            self._passes = self.compiler._run_passes(self.graph)
            _log_compiled(self._passes.final)
        return self._passes

    @property
    def exe(self):
        """What a call runs. Normally the backend's executable of the final graph. A one-shot
        graph (traced while the function created state: an optimizer's first step) serves one
        call, and building native code for it costs far more than running it, so with the llvm
        backend it runs on the reference interpreter, node by node over the traced graph, with
        no passes but autodiff (unless IR dumps were asked for); cuda inputs still take the cuda backend."""
        if self._exe is None:
            if self.one_shot and self.compiler.backend == "llvm" and not self.compiler.dump:
                self._exe = _OneShot(self)
                _log_one_shot(self.graph)
            else:
                self._exe = self.backend_exe
        return self._exe

    @property
    def backend_exe(self):
        """The compile's backend's executable of the final graph (built on first use)."""
        if self._backend_exe is None:
            self._backend_exe = self.compiler._backend_compile(self.passes.final)
        return self._backend_exe

    def outputs_requiring_grad(self, diff_inputs):
        """Indices of the outputs that depend differentiably on the inputs `diff_inputs`."""
        key = tuple(diff_inputs)
        got = self._requiring.get(key)
        if got is None:
            from ..ops.registry import PRIMITIVES
            g = self.graph
            req = {g.inputs[i].name for i in diff_inputs}
            for n in g.nodes:      # a `grad` placeholder is no primitive: not differentiable
                if (n.out.name not in self.nograd and n.out.type.dtype.is_floating_point
                        and getattr(PRIMITIVES.get(n.op), "vjp", None) is not None
                        and any(i.name in req for i in n.inputs)):
                    req.add(n.out.name)
            got = self._requiring[key] = tuple(k for k, v in enumerate(g.outputs)
                                               if v.name in req and v.type.dtype.is_floating_point)
        return got

    def inputs_reaching(self, outs):
        """Indices of the graph inputs that the outputs `outs` depend on (through any node)."""
        key = tuple(outs)
        got = self._reaching.get(key)
        if got is None:
            g = self.graph
            need = {g.outputs[k].name for k in outs}
            for n in reversed(g.nodes):
                if n.out.name in need:
                    need.update(i.name for i in n.inputs)
            got = self._reaching[key] = frozenset(i for i, v in enumerate(g.inputs) if v.name in need)
        return got

    def backward(self, outs, diff_inputs):
        """(GraphFunction, used, where): the backward graph takes this graph's inputs then one
        cotangent per output in `outs`, and returns the gradients of the inputs `diff_inputs`
        that have one (`where[j]`: index of input j's gradient among its outputs, or None);
        `used`: the forward inputs it reads."""
        key = (tuple(outs), tuple(diff_inputs))
        got = self._backward.get(key)
        if got is None:
            with _Tracing():       # it is traced: one thread at a time, and once per key
                got = self._backward.get(key)
                if got is None:
                    got = self._backward[key] = self._build_backward(outs, diff_inputs)
        return got

    def _build_backward(self, outs, diff_inputs):
        """The backward graph, by the pipeline's own route: `grad` placeholders recorded on a
        copy of the forward, then the autodiff pass's expansion -- run here rather than in the
        backward's pipeline, because the backward is itself a GraphFunction that may be
        differentiated again (double backward): its graph and its grad-mode-off set must hold
        the backward nodes, recorded differentiable (create_graph)."""
        from ..passes.autodiff import expand, record_grads
        g = self.graph.copy()
        g.name = self.graph.name + "_backward"
        fwd_outs, g.outputs, g.updates = list(g.outputs), [], []
        n_in = len(g.inputs)
        trace = _tr.Trace(g)
        trace.nograd = set(self.nograd)
        with _tr.tracing(trace), _ag.enable_grad():
            seeds = [trace.tracer(g.add_input(fwd_outs[k].type, "arg", label=f"grad_{fwd_outs[k].name}"))
                     for k in outs]
            grads = record_grads(trace, [fwd_outs[k] for k in outs], seeds, [g.inputs[i] for i in diff_inputs],
                                 create_graph=True)
        where = []
        for gr in grads:
            if gr is None:
                where.append(None)
            else:
                where.append(len(g.outputs))
                g.outputs.append(gr._value)
        g, nograd = expand(g)
        fn = GraphFunction(g, self.compiler, trace.nograd | nograd)
        final = fn.passes.final
        read = {i.name for n in final.nodes for i in n.inputs} | {v.name for v in final.outputs}
        used = [i for i, v in enumerate(final.inputs[:n_in]) if v.name in read]
        return fn, used, where

    @property
    def expanded(self):
        """The graph with its `grad` placeholders expanded: the autodiff stage of the passes
        once they have run, else the pass run on its own (a one-shot graph runs no passes)."""
        if self._passes is not None:
            return self._passes.stage("autodiff")
        from ..passes.autodiff import expand_grads
        return expand_grads(self.graph)


class _OneShot:
    """A one-shot graph's executable (GraphFunction.exe): the reference Interpreter over the
    traced graph (its placeholders expanded) for host arrays; inputs in device memory take the backend path (FollowInputs)."""

    def __init__(self, fn):
        from ..backends.interpreter import Interpreter
        self.fn = fn
        self.host = Interpreter(fn.expanded)

    def __call__(self, arrays):
        if any(type(a) is not np.ndarray for a in arrays):
            from ..backends.cuda.device_array import DeviceArray
            if DeviceArray in map(type, arrays):
                return self.fn.backend_exe(arrays)
        return self.host(arrays)
