"""What every cuda codegen module shares: the check that codegen supports a kernel (naming the
kernel and op when it does not), and `Launch`, one launch a kernel's source needs."""
from __future__ import annotations

from .. import kernels as _K
from .scalar import ELEMENTWISE, _isb


def unsupported(kernel, op, why=""):
    return _K.unsupported("cuda", kernel, op, why)


_space = _K.reduction_space


def check_kernel(k):
    """Raise NotImplementedError naming the kernel and op for anything codegen cannot do."""
    _K.check_kernel(k, "cuda", ELEMENTWISE,
                    check_reduction=lambda r: "on bool" if r.op != "sum" and _isb(r.inputs[0].type.dtype) else None)


class Launch:
    """One kernel launch: function name in the source, operands (graph values or 'scratch'
    with a dtype), and its grid/block."""

    def __init__(self, name, operands, grid, block):
        self.name, self.operands, self.grid, self.block = name, operands, grid, block
