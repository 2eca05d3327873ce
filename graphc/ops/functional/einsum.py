"""torch.einsum over permute, diagonal, sum and batched matmul: each operand's repeated labels
become a diagonal, labels no one else needs are summed out, and operands are contracted left
to right as [batch, rows, k] @ [batch, k, cols] matmuls."""
from __future__ import annotations

from ...tensor import Tensor
from .arrange import diagonal, movedim
from .matmul import matmul
from .promotion import broadcast_shapes, broadcast_to
from .reductions import sum
from .shapes import permute, reshape

_ELL = "."       # one label standing for the ellipsis dims (expanded per operand)


def _parse(equation, operands):
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise RuntimeError(f"einsum(): {len(terms)} operands in the equation but {len(operands)} given")
    n_ell = 0
    labels = []
    for term, op in zip(terms, operands):
        body = term.replace("...", "")
        if not all(c.isalpha() for c in body) or term.count("...") > 1:
            raise RuntimeError(f"einsum(): invalid subscript {term!r} in equation {equation!r}")
        if "..." in term:
            k = op.ndim - len(body)
            if k < 0:
                raise RuntimeError(f"einsum(): the subscript {term!r} has more labels than operand dims {op.ndim}")
            n_ell = max(n_ell, k)
        elif len(body) != op.ndim:
            raise RuntimeError(f"einsum(): the subscript {term!r} has {len(body)} labels for an operand "
                               f"of {op.ndim} dims")
    ell = [f"{_ELL}{i}" for i in range(n_ell)]
    for term, op in zip(terms, operands):
        pre, _, post = term.partition("...")
        if "..." in term:
            k = op.ndim - len(pre) - len(post)
            labels.append(list(pre) + ell[n_ell - k:] + list(post))
        else:
            labels.append(list(term))
    if arrow:
        if not all(c.isalpha() for c in rhs.replace("...", "")):
            raise RuntimeError(f"einsum(): invalid output subscript {rhs!r}")
        pre, has, post = rhs.partition("...")
        out = list(pre) + (ell if has else []) + list(post)
        if len(set(out)) != len(out):
            raise RuntimeError(f"einsum(): output subscript {rhs!r} repeats a label")
        seen = {c for ls in labels for c in ls}
        for c in out:
            if c not in seen:
                raise RuntimeError(f"einsum(): output label {c!r} does not appear in the inputs")
    else:               # implicit: the ellipsis dims, then the labels seen once, alphabetically
        counts = {}
        for ls in labels:
            for c in ls:
                counts[c] = counts.get(c, 0) + 1
        out = ell + sorted(c for c, n in counts.items() if n == 1 and not c.startswith(_ELL))
    return labels, out


def _diagonals(x, ls):
    """Repeated labels in one operand: take their diagonal (it moves to the last dim)."""
    ls = list(ls)
    while True:
        dup = next((c for c in ls if ls.count(c) > 1), None)
        if dup is None:
            return x, ls
        i = ls.index(dup)
        j = ls.index(dup, i + 1)
        x = diagonal(x, 0, i, j)
        ls = [c for k, c in enumerate(ls) if k not in (i, j)] + [dup]


def _sum_out(x, ls, keep):
    axes = [i for i, c in enumerate(ls) if c not in keep]
    if axes:
        x = sum(x, tuple(axes))
        ls = [c for c in ls if c in keep]
    return x, ls


def _size_of(x, ls, c):
    return x.shape[ls.index(c)] if c in ls else 1


def _contract(a, la, b, lb, keep):
    """a, b with distinct labels each: one batched matmul over the shared labels not kept."""
    batch = [c for c in la if c in lb and c in keep]
    k = [c for c in la if c in lb and c not in keep]
    rows = [c for c in la if c not in lb]
    cols = [c for c in lb if c not in la]

    def arrange(x, ls, first, second):
        order = [ls.index(c) for c in batch + first + second]
        x = permute(x, tuple(order)) if order != list(range(len(ls))) else x
        bs = tuple(x.shape[:len(batch)])
        n1 = 1
        for c in first:
            n1 *= _size_of(x, batch + first + second, c)
        n2 = 1
        for c in second:
            n2 *= _size_of(x, batch + first + second, c)
        return reshape(x, bs + (n1, n2)), bs

    a3, ba = arrange(a, la, rows, k)
    b3, bb = arrange(b, lb, k, cols)
    bs = broadcast_shapes(ba, bb)
    if a3.shape[-1] != b3.shape[-2]:      # a size-1 (broadcast) contracted label on one side
        if a3.shape[-1] == 1:
            b3 = sum(b3, -2, keepdim=True)
        elif b3.shape[-2] == 1:
            a3 = sum(a3, -1, keepdim=True)
        else:
            raise RuntimeError(f"einsum(): contracted dims of sizes {a3.shape[-1]} and {b3.shape[-2]} "
                               "do not match")
    y = matmul(broadcast_to(a3, bs + tuple(a3.shape[-2:])), broadcast_to(b3, bs + tuple(b3.shape[-2:])))
    shape = bs + tuple(_size_of(a, la, c) for c in rows) + tuple(_size_of(b, lb, c) for c in cols)
    return reshape(y, shape), batch + rows + cols


def einsum(equation, *operands):
    """torch.einsum: explicit ('ij,jk->ik') and implicit ('ij,jk') outputs, '...' broadcasting."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands or not all(isinstance(o, Tensor) for o in operands):
        raise RuntimeError("einsum(): expected tensor operands")
    labels, out = _parse(equation, operands)
    items = []
    for x, ls in zip(operands, labels):
        x, ls = _diagonals(x, ls)
        items.append((x, ls))
    x, ls = items[0]
    for i in range(1, len(items) + 1):
        later = {c for _, l2 in items[i:] for c in l2}
        x, ls = _sum_out(x, ls, set(out) | later)
        if i == len(items):
            break
        y, ly = items[i]
        later_y = {c for _, l2 in items[i + 1:] for c in l2}
        y, ly = _sum_out(y, ly, set(out) | later_y | set(ls))
        x, ls = _contract(x, ls, y, ly, set(out) | later_y)
    # broadcast size-1 labels to the output's sizes, then order as the output
    sizes = {}
    for op, lo in zip(operands, labels):
        for c, n in zip(lo, op.shape):
            if n != 1:
                sizes[c] = n
    x = movedim(x, tuple(range(len(ls))), tuple(out.index(c) for c in ls)) if ls else x
    target = tuple(sizes.get(c, 1) for c in out)
    return broadcast_to(x, target) if tuple(x.shape) != target else x
