"""addmm / baddbmm / addbmm / addmv (beta * input + alpha * product; beta=0 ignores input, so
its nan/inf do not propagate, as torch's) and torch.linalg's vector_norm / matrix_norm / norm
over the existing reductions."""
from __future__ import annotations

from ... import dtypes as _dt
from ...tensor import _dim
from .matmul import bmm, mm
from .pointwise import abs, ne, pow
from .promotion import broadcast_shapes, broadcast_to, cast
from .reductions import _root0, amax, amin, sum
from .shapes import squeeze, unsqueeze

_INF = float("inf")


def _scaled(input, prod, beta, alpha):
    if alpha != 1:
        prod = prod * alpha
    if beta == 0:
        return broadcast_to(prod, broadcast_shapes(tuple(input.shape), tuple(prod.shape)))
    return (input if beta == 1 else input * beta) + prod


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    return _scaled(input, mm(mat1, mat2), beta, alpha)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    return _scaled(input, bmm(batch1, batch2), beta, alpha)


def addbmm(input, batch1, batch2, *, beta=1, alpha=1):
    return _scaled(input, sum(bmm(batch1, batch2), 0), beta, alpha)


def addmv(input, mat, vec, *, beta=1, alpha=1):
    return _scaled(input, squeeze(mm(mat, unsqueeze(vec, 1)), 1), beta, alpha)


def _floating(x, dtype, name):
    if dtype is not None:
        x = cast(x, dtype)
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"linalg.{name}: Expected a floating point or complex tensor as input. "
                           f"Got {_dt.scalar_type_name(x.dtype)}")
    return x


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """sum(|x|^ord)^(1/ord) over dim (all dims when None); ord inf/-inf are max/min |x|, ord 0
    counts the non-zeros."""
    x = _floating(x, dtype, "vector_norm")
    if isinstance(dim, int):
        dim = (dim,)
    if ord == _INF:
        return amax(abs(x), dim, keepdim)
    if ord == -_INF:
        return amin(abs(x), dim, keepdim)
    if ord == 0:
        return sum(cast(ne(x, 0), x.dtype), dim, keepdim)
    if ord == 1:
        return sum(abs(x), dim, keepdim)
    if ord == 2:
        return _root0(sum(x * x, dim, keepdim), 2)
    return pow(sum(pow(abs(x), ord), dim, keepdim), 1.0 / ord) if ord < 0 else \
        _root0(sum(pow(abs(x), ord), dim, keepdim), ord)


def matrix_norm(x, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    """'fro', 1/-1 (max/min column sum of |x|), inf/-inf (max/min row sum); ord 2, -2 and 'nuc'
    need singular values, which graphc does not compute."""
    x = _floating(x, dtype, "matrix_norm")
    if x.ndim < 2:
        raise RuntimeError(f"linalg.matrix_norm: The input tensor A must have at least 2 dimensions.")
    d0, d1 = _dim(dim[0], x.ndim), _dim(dim[1], x.ndim)
    if ord == "fro":
        return vector_norm(x, 2, (d0, d1), keepdim)
    if ord in (1, -1, _INF, -_INF):
        over, then = (d0, d1) if ord in (1, -1) else (d1, d0)
        s = sum(abs(x), over, keepdim=True)
        r = (amax if ord > 0 else amin)(s, then, keepdim=True)
        return r if keepdim else squeeze(squeeze(r, max(d0, d1)), min(d0, d1))
    raise NotImplementedError(f"linalg.matrix_norm(ord={ord!r}) is not supported by graphc (it needs "
                              "singular values); supported: 'fro', 1, -1, inf, -inf")


def norm(x, ord=None, dim=None, keepdim=False, *, dtype=None):
    """torch.linalg.norm: a vector norm for 1 dim (or all of them flattened, ord None), a matrix
    norm for 2 dims or a 2-D input with ord given."""
    if isinstance(dim, int):
        dim = (dim,)
    if ord is None:
        return vector_norm(x, 2, dim, keepdim, dtype=dtype)
    if dim is None:
        if x.ndim == 2:
            return matrix_norm(x, ord, (-2, -1), keepdim, dtype=dtype)
        if x.ndim != 1:
            raise RuntimeError("linalg.norm: If dim is not specified but ord is, the input must be 1D or 2D. "
                               f"Got {x.ndim}D.")
        dim = (0,)
    if len(dim) == 2:
        return matrix_norm(x, ord, dim, keepdim, dtype=dtype)
    if isinstance(ord, str):
        raise RuntimeError(f"linalg.vector_norm: ord {ord!r} is a matrix norm; it needs 2 dims")
    return vector_norm(x, ord, dim, keepdim, dtype=dtype)
