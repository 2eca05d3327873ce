"""graphc: a deep-learning framework that runs the same PyTorch-style code two ways --
eagerly with an autograd tape, or traced into an IR, optimized by compiler passes and run by
a backend -- so the two can be compared side by side."""
from __future__ import annotations

from . import dtypes as _dtypes
from .dtypes import (bool_ as bool, float32, float64, int64, DType as dtype,  # noqa: F401
                     get_default_dtype, set_default_dtype, promote_types, result_type)
from .tensor import Tensor, Size  # noqa: F401
from .ops import library as _library  # noqa: F401  (registers the primitives, installs Tensor's methods)
from .ops.functional import (  # noqa: F401
    full, zeros, ones, empty, full_like, zeros_like, ones_like, empty_like, arange, linspace, eye,
    cast, broadcast_to, broadcast_shapes, exp, log, sqrt, rsqrt, tanh, sigmoid, sin, cos, erf,
    neg, abs, sign, log1p, expm1, square, reciprocal, add, sub, mul, div, true_divide, divide, pow,
    maximum, minimum, atan2, lt, le, gt, ge, eq, ne, logical_not, logical_and, logical_or, logical_xor,
    where, clamp, clip, masked_fill, sum, mean, var, std, amax, amin, argmax, argmin, max, min,
    any, all, logsumexp, norm, detach, clone, reshape, flatten, unsqueeze, squeeze, permute,
    transpose, swapaxes, t, cat, concat, concatenate, stack, split, chunk, unbind, narrow,
    matmul, mm, bmm, dot, outer, take_along_axis, gather, index_select,
    floor_divide, remainder, floor, ceil,
    tril, triu, flip, fliplr, flipud, roll, movedim, moveaxis, broadcast_tensors, meshgrid, diag,
    diagonal, diag_embed, repeat_interleave, numel, lerp, isnan, isinf, isfinite, isposinf, isneginf,
    nan_to_num, allclose, isclose, round, trunc, fix, frac, fmod, prod, cumsum, cumprod, addmm,
    baddbmm, addbmm, addmv, einsum, scatter, scatter_reduce, index_add, index_copy, index_fill,
    sort, argsort, topk, msort, nonzero, argwhere, masked_select, unique, unique_consecutive,
    count_nonzero,
)
from .ops.sampling import multinomial, bernoulli  # noqa: F401
from .ops.functional.scattering import scatter_add  # noqa: F401  (torch's argument order)
from .ops.functional import linalg  # noqa: F401  (graphc.linalg: vector_norm, matrix_norm, norm)
from .ops.creation import (  # noqa: F401
    tensor, as_tensor, from_numpy, scalar_tensor, Generator, default_generator, manual_seed, seed,
    initial_seed, rand, randn, randint, rand_like, randn_like, randint_like, randperm, normal,
)
from .ops.composites import relu, softmax, log_softmax  # noqa: F401
from .autograd import no_grad, enable_grad, set_grad_enabled, is_grad_enabled  # noqa: F401
from . import autograd  # noqa: F401
from .device import device  # noqa: F401
from .tracing import TraceError  # noqa: F401
from .compiler import RecompileWarning, compile  # noqa: F401
from .transforms import grad, value_and_grad  # noqa: F401
from .serialization import save, load  # noqa: F401
from . import testing  # noqa: F401

float = float32  # noqa: A001  (torch.float)
double = float64
long = int64

__version__ = "0.1.0"


def is_tensor(x) -> bool:
    return isinstance(x, Tensor)


from . import cuda  # noqa: E402,F401  (graphc.cuda: is_available, device_count, synchronize)


def __getattr__(name):
    # nn/optim import lazily so `import graphc` stays light
    if name in ("nn", "optim", "utils"):
        import importlib
        mod = importlib.import_module(f".{name}", __name__)
        globals()[name] = mod
        return mod
    raise AttributeError(f"module 'graphc' has no attribute {name!r}")
