"""Python source as the kernels are written: `Block` (lines at one indentation, with fresh
temporaries) and how deep an expression may nest. The index arithmetic itself is lowering IR
(backends/lower), rendered by render.py."""
from __future__ import annotations


from ..kernels import numel  # noqa: F401  (re-exported: the cuda modules import it here)


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


# An inline index expression nests one more pair of parentheses per op, and Python's parser
# refuses more than 200 (a fused chain of 300 `x = x[1:] * c` was a SyntaxError): deeper than
# this, render.py binds it to a temporary first.
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


def _nb(dt):
    return {"float32": "float32", "float64": "float64", "int64": "int64", "bool": "boolean"}[dt.np.name]
