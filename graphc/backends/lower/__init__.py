"""Kernel lowering shared by the native backends: a fused kernel body's values at a point, as a
small loop/index IR (expr.py: hash-consed expressions with the index algebra; maps.py: the
movement ops' index maps; walk.py: the one body walker). The llvm and cuda backends only render
it (llvm/render.py: LLVM IR; cuda/render.py: numba source). Backend-neutral: never imports
llvmlite or numba."""
from . import expr, maps, walk  # noqa: F401
from .walk import Lowering  # noqa: F401
