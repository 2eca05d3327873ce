"""Python source as the kernels are written: `Block` (lines at one indentation, with fresh
temporaries) and index arithmetic on row-major linear offsets, as expression strings."""
from __future__ import annotations


from ..kernels import numel, strides  # noqa: F401  (re-exported: the cuda modules import them here)


class Block:
    """Lines of source at one indentation, with fresh temporaries."""

    def __init__(self, lines, indent, counter):
        self.lines, self.indent, self.counter = lines, indent, counter

    def emit(self, line):
        self.lines.append("    " * self.indent + line)

    def tmp(self, expr, hint="t"):
        self.counter[0] += 1
        name = f"{hint}{self.counter[0]}"
        self.emit(f"{name} = {expr}")
        return name

    def child(self):
        return Block(self.lines, self.indent + 1, self.counter)


# ---- index arithmetic (expressions as strings) -------------------------------------------------------
def _mul(a, k):
    if k == 1:
        return a
    return "0" if a == "0" else f"{a} * {k}"


# An index expression nests one more pair of parentheses per slice it goes through, and Python's
# parser refuses more than 200 (a fused chain of 300 `x = x[1:] * c` was a SyntaxError): deeper
# than this, a slice's index is bound to a temporary first.
MAX_NESTING = 16


def _nesting(expr):
    """How deep parentheses nest in a source expression."""
    depth = most = 0
    for ch in expr:
        if ch == "(":
            depth += 1
            most = max(most, depth)
        elif ch == ")":
            depth -= 1
    return most


def linear(idx, shape):
    terms = [_mul(i, st) for i, n, st in zip(idx, shape, strides(shape)) if n != 1 and i != "0"]
    return " + ".join(terms) if terms else "0"


def delinearize(blk, lin, shape):
    out = []
    total = numel(shape)
    for n, st in zip(shape, strides(shape)):
        if n == 1:
            out.append("0")
            continue
        q = lin if st == 1 else f"({lin}) // {st}"
        out.append(blk.tmp(q if st * n >= total else f"{q} % {n}", "i"))
    return out


def _nb(dt):
    return {"float32": "float32", "float64": "float64", "int64": "int64", "bool": "boolean"}[dt.np.name]
