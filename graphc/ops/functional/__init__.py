"""User-level tensor operations: torch's promotion, broadcasting and argument conventions
on top of the strict primitives. Tensor methods and graphc.* functions land here; VJP rules
use these functions too, so they work eagerly, while tracing and for higher-order grads.

The ops live in this package's modules, one family each, each importing only the families
below it:

    promotion   Python values to tensors, result_type promotion, broadcasting (shared helpers)
    pointwise   elementwise math, arithmetic, comparisons, logic
    filled      full/zeros/ones/empty(_like), iota, arange, linspace, eye, detach, clone
    select      where, clamp/clip, masked_fill
    shapes      reshape/view, flatten, (un)squeeze, permute/transpose, expand, repeat
    joining     slices and padding, cat/stack, split/chunk/unbind
    matmul      matmul, mm, bmm, dot, outer
    gather      take_along_axis, scatter_add, gather
    reductions  sum, mean, var/std, amax/amin, argmax/argmin, max/min, any/all, logsumexp, norm
    indexing    x[index] and x[index] = v, index_select
    windows     unfold, fold
    arrange     tril/triu, flip, roll, movedim, broadcast_tensors, meshgrid, diagonal/diag(_embed),
                repeat_interleave, numel
    rounding    round/trunc/frac, fmod, isnan/isinf/isfinite, nan_to_num, isclose/allclose, lerp
    scans       prod, cumsum, cumprod
    linalg      addmm/baddbmm/addbmm/addmv, linalg.vector_norm/matrix_norm/norm
    einsum      einsum
    sorting     sort/argsort/topk/msort (eager: numpy's argsort; traced: ranks), unique, nonzero,
                argwhere, masked_select (data-dependent shapes: eager only), count_nonzero
    scattering  torch's scatter, scatter_add(input, dim, index, src), scatter_reduce, index_add/copy/fill
    methods     installs them onto Tensor as methods and operators

This module re-exports every one of them, so `graphc.ops.functional.X` names the op wherever
it lives.
"""
from .promotion import (_as, broadcast_shapes, broadcast_to, cast, _is_bool, _prep, _py_abs,  # noqa: F401
                        _py_all, _py_any, _py_max, _py_min, _py_sum, _pyval, _shape_arg,
                        _to_tensor)
from .pointwise import (abs, add, ceil, _cmp, cos, div, divide, eq, erf, exp, floor,  # noqa: F401
                        floor_divide, ge, gt, le, log, logical_and, logical_not, logical_or,
                        logical_xor, lt, maximum, minimum, atan2, mul, ne, neg, pow, reciprocal,
                        remainder, rsqrt, sigmoid, sign, sin, sqrt, square, sub, tanh, _to_bool,
                        true_divide, _unary_float)
from .filled import (arange, clone, detach, _device_of, empty, empty_like, eye, full, full_like,  # noqa: F401
                     iota, linspace, _on, ones, ones_like, _requires, zeros, zeros_like)
from .select import (clamp, clip, _grad_wanted, masked_fill, where)  # noqa: F401
from .accurate import expm1, log1p  # noqa: F401
from .shapes import (expand, expand_as, flatten, _infer_shape, mT, permute, repeat, reshape,  # noqa: F401
                     squeeze, sum_to_shape, swapaxes, t, transpose, unsqueeze, view)
from .joining import (cat, chunk, concat, concatenate, narrow, pad, pad_prim, slice_prim, split,  # noqa: F401
                      stack, unbind)
from .matmul import (bmm, dot, matmul, mm, outer)  # noqa: F401
from .gather import (gather, scatter_add, take_along_axis)  # noqa: F401
from .reductions import (all, amax, amin, any, argmax, argmin, _axes, logsumexp, max, MaxResult,  # noqa: F401
                         mean, min, MinResult, norm, _root0, std, sum, var)
from .indexing import (_advanced, _check_index_bounds, getitem, index_select, _int_index,  # noqa: F401
                       _NewAxisIndex, _normalize_index, setitem)
from .windows import (fold, _pair, unfold)  # noqa: F401
from .arrange import (broadcast_tensors, diag, diag_embed, diagonal, flip, fliplr, flipud,  # noqa: F401
                      meshgrid, moveaxis, movedim, numel, repeat_interleave, roll, tril, triu)
from .rounding import (allclose, fix, fmod, frac, isclose, isfinite, isinf, isnan, isneginf,  # noqa: F401
                       isposinf, lerp, nan_to_num, round, trunc)
from .scans import cumprod, cumsum, prod  # noqa: F401
from .linalg import addbmm, addmm, addmv, baddbmm  # noqa: F401
from .einsum import einsum  # noqa: F401
from .sorting import (argsort, argwhere, count_nonzero, masked_select, msort, nonzero, sort, topk,  # noqa: F401
                      unique, unique_consecutive)
from .scattering import index_add, index_copy, index_fill, scatter, scatter_reduce  # noqa: F401
from .methods import (_bitwise, _bitwise_not, _install_methods, _rev)  # noqa: F401
