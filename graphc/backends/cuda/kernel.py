"""`KernelGen`: the source and launches of one kernel node -- its `@cuda.jit` functions (one, or
two or three launches for a split matmul, scatter_add, fold), their constants and operands.
The kernels of each kind come from pointwise.py, reduction.py, matmul.py and opaque.py.
"""
from __future__ import annotations

from ..lower import Lowering
from .matmul import MatmulGen
from .opaque import OpaqueGen
from .pointwise import PointwiseGen
from .reduction import ReductionGen
from .scalar import NP, _isb, _isf


class KernelGen(PointwiseGen, ReductionGen, MatmulGen, OpaqueGen):
    """Source and launches of one kernel node (generate() has checked that codegen supports it)."""

    def __init__(self, kernel, index, cfg):
        self.kernel, self.index, self.cfg = kernel, index, cfg
        self.kind = kernel.attrs["kind"]
        self.base = f"k{index}_{self.kind}"
        self.consts = []           # (name, dtype, data)
        self.arg_of = {}
        self.lines = []
        self.launches = []

    def constant(self, dt, data):
        name = f"{self.base}_const{len(self.consts)}"
        self.consts.append((name, dt, list(data)))
        return name

    def lowering(self, given=()):
        """The body's values at a point (backends/lower): loads from the buffers bound so far
        (arg_of), `given` nodes for the names in `given` (sources the kernel supplies)."""
        body = self.kernel.body
        vals = {v.name: v for v in body.inputs}
        vals.update((n.out.name, n.out) for n in body.nodes)
        return Lowering(self.kernel, {n: vals[n].type for n in self.arg_of},
                        {n: vals[n].type.dtype for n in given})

    def header(self, name, operands):
        """def line; operands are (value or None, arg name)."""
        k = self.kernel
        self.lines.append("")
        self.lines.append("")
        self.lines.append("@cuda.jit")
        self.lines.append(f"def {name}({', '.join(a for _, a in operands)}):")
        ops = ", ".join(n.op for n in k.body.nodes)
        self.lines.append(f"    # kernel %{k.out.name} ({self.kind}): {ops}"[:160])

    def bind_inputs(self):
        body = self.kernel.body
        ins = []
        for i, v in enumerate(body.inputs):
            self.arg_of[v.name] = f"in{i}"
            ins.append((self.kernel.inputs[i], f"in{i}"))
        outs = [(self.kernel.outs[j], f"out{j}") for j in range(len(body.outputs))]
        return ins, outs

    def build(self):
        getattr(self, "_" + self.kind)()
        src = []
        for name, dt, data in self.consts:
            vals = ", ".join(repr(bool(x)) if _isb(dt) else repr(int(x)) if not _isf(dt) else repr(float(x))
                             for x in data)
            vals = vals.replace("inf", "INF").replace("nan", "NAN")
            src.append(f"{name} = np.array([{vals}], dtype={NP[dt.np.name]})")
        return "\n".join(src + self.lines) + "\n"

    # -- kinds
    def _view(self):
        """A view aliases its input's device buffer: no kernel is generated for it."""
