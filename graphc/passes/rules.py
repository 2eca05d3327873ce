"""The rule table of simplify (graphc/passes/simplify.py): one small function per algebraic
identity, `rule(node, m) -> Value | None` (m is simplify's RuleContext), registered for the ops
it applies to with @rule_for; RuleIndex gives, per op, the rules a node of that op tries."""
from __future__ import annotations

from .. import dtypes as _dt


class RuleIndex:
    """A rule table indexed by op: rules(op) is, in table order, the rules registered for op
    (@rule_for) and those registered for no op in particular (a plain function: every op)."""

    def __init__(self, rules):
        self.table = list(rules)
        self._for = {}

    def rules(self, op: str) -> list:
        got = self._for.get(op)
        if got is None:
            got = self._for[op] = [r for r in self.table
                                   if getattr(r, "ops", None) is None or op in r.ops]
        return got


def index_rules(rules) -> RuleIndex:
    return RuleIndex(rules)


def _swaps_last_two(perm) -> bool:
    n = len(perm)
    return n >= 2 and tuple(perm) == tuple(range(n - 2)) + (n - 1, n - 2)


# Each rule: its docstring is the pattern -> replacement line docs/passes.md shows. A rule is
# registered for the ops it can fire on (@rule_for("mul")); the driver indexes the table by op,
# so a node tries only its own op's rules. An identity of a commutative op is written once, as a
# pattern over (x, c) -- "x op c" with c the operand tested -- and @commutative makes it the
# two rules that match it in each operand order (the right-hand one tried first).

COMMUTATIVE = frozenset(("add", "mul", "maximum", "minimum", "logical_and", "logical_or", "eq", "ne"))


def rule_for(*ops):
    """Register a rule for the ops it applies to (the driver tries it only on those)."""
    def mark(fn):
        fn.ops = frozenset(ops)
        return fn
    return mark


def _named(fn, op, name, doc):
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return rule_for(op)(fn)


def commutative(op, right: str, left: str, right_doc: str, left_doc: str):
    """From one pattern `pattern(n, x, c, m)` ("x op c"), the rules `right` (x op c: c is
    operand 1) and `left` (c op x: c is operand 0)."""
    assert op in COMMUTATIVE, op

    def make(pattern):
        def r(n, m):
            return pattern(n, n.inputs[0], n.inputs[1], m)

        def l(n, m):
            return pattern(n, n.inputs[1], n.inputs[0], m)

        return _named(r, op, right, right_doc), _named(l, op, left, left_doc)
    return make


def _one(n, x, c, m):
    return x if m.is_const(c, 1) else None


def _zero(n, x, c, m):
    return x if m.is_const(c, 0) else None


mul_one_right, mul_one_left = commutative("mul", "mul_one_right", "mul_one_left",
                                          "x * 1 -> x", "1 * x -> x")(_one)
add_zero_right, add_zero_left = commutative("add", "add_zero_right", "add_zero_left",
                                            "x + 0 -> x", "0 + x -> x")(_zero)


def _right_identity(op, value, name, doc):
    """x op c -> x, c every element `value` (op not commutative: only this order)"""
    def r(n, m):
        if m.is_const(n.inputs[1], value):
            return n.inputs[0]
    return _named(r, op, name, doc)


sub_zero = _right_identity("sub", 0, "sub_zero", "x - 0 -> x")
div_one = _right_identity("div", 1, "div_one", "x / 1 -> x")
pow_one = _right_identity("pow", 1, "pow_one", "x ** 1 -> x")


@rule_for("sub")
def sub_self_int(n, m):
    """x - x -> full(0), integer x only (for floats inf - inf and nan - nan are nan)"""
    if n.inputs[0] is n.inputs[1] and n.out.type.dtype is _dt.int64:
        return m.full(n.out.type, 0, loc=n.loc)


@rule_for("neg")
def neg_neg(n, m):
    """neg(neg(x)) -> x"""
    p = m.producer(n.inputs[0], "neg")
    if p is not None:
        return p.inputs[0]


@rule_for("logical_not")
def not_not(n, m):
    """logical_not(logical_not(x)) -> x"""
    p = m.producer(n.inputs[0], "logical_not")
    if p is not None:
        return p.inputs[0]


def _shape_noop(op, name, doc):
    """op(x, shape=x's own shape) -> x"""
    def r(n, m):
        if tuple(n.inputs[0].shape) == tuple(n.attrs["shape"]):
            return n.inputs[0]
    return _named(r, op, name, doc)


def _shape_twice(op, name, doc):
    """op(op(x, s1), s2) -> op(x, s2)"""
    def r(n, m):
        p = m.producer(n.inputs[0], op)
        if p is not None:
            return m.emit(op, p.inputs[0], shape=n.attrs["shape"], loc=n.loc)
    return _named(r, op, name, doc)


reshape_noop = _shape_noop("reshape", "reshape_noop", "reshape(x) to x's own shape -> x")
reshape_reshape = _shape_twice("reshape", "reshape_reshape", "reshape(reshape(x, s1), s2) -> reshape(x, s2)")


@rule_for("permute")
def permute_identity(n, m):
    """permute(x, (0, 1, ..., n-1)) -> x"""
    if tuple(n.attrs["perm"]) == tuple(range(len(n.attrs["perm"]))):
        return n.inputs[0]


@rule_for("permute")
def permute_permute(n, m):
    """permute(permute(x, p), q) -> permute(x, p[q[i]] for each i)"""
    p = m.producer(n.inputs[0], "permute")
    if p is not None:
        inner, outer = p.attrs["perm"], n.attrs["perm"]
        return m.emit("permute", p.inputs[0], perm=tuple(int(inner[i]) for i in outer), loc=n.loc)


broadcast_noop = _shape_noop("broadcast_to", "broadcast_noop", "broadcast_to(x) to x's own shape -> x")


@rule_for("broadcast_to")
def broadcast_full(n, m):
    """broadcast_to(full(v)) -> full(v) of the new shape (also through reshape/permute/broadcast_to)"""
    ok, value = m.const(n.inputs[0])
    if ok:
        return m.full(n.out.type, value, loc=n.loc)


broadcast_broadcast = _shape_twice("broadcast_to", "broadcast_broadcast",
                                   "broadcast_to(broadcast_to(x, s1), s2) -> broadcast_to(x, s2)")


@rule_for("cast")
def cast_noop(n, m):
    """cast(x) to x's own dtype -> x"""
    if n.attrs["dtype"] is n.inputs[0].dtype:
        return n.inputs[0]


@rule_for("stop_gradient")
def stop_gradient(n, m):
    """stop_gradient(x) -> x (autodiff has run by the time passes do)"""
    return n.inputs[0]


@rule_for("where")
def where_same(n, m):
    """where(c, x, x) -> x"""
    if n.inputs[1] is n.inputs[2]:
        return n.inputs[1]


@rule_for("where")
def where_const_cond(n, m):
    """where(full(True), x, y) -> x;  where(full(False), x, y) -> y"""
    ok, value = m.const(n.inputs[0])
    if ok and isinstance(value, bool):
        return n.inputs[1] if value else n.inputs[2]


@rule_for("slice")
def slice_all(n, m):
    """slice that takes everything (starts 0, same shape) -> x"""
    if all(a == 0 for a in n.attrs["starts"]) and tuple(n.out.shape) == tuple(n.inputs[0].shape):
        return n.inputs[0]


@rule_for("pad")
def pad_nothing(n, m):
    """pad with no padding at all -> x"""
    if not any((*n.attrs["lo"], *n.attrs["hi"], *n.attrs["interior"])):
        return n.inputs[0]


@rule_for("concat")
def concat_single(n, m):
    """concat(x) of one operand -> x"""
    if len(n.inputs) == 1:
        return n.inputs[0]


@rule_for("sum", "max")
def reduce_no_axes(n, m):
    """sum(x, axes=()) -> x;  max(x, axes=()) -> x"""
    if len(n.attrs["axes"]) == 0:
        return n.inputs[0]


@rule_for("matmul")
def fold_transpose_into_matmul(n, m):
    """matmul(permute(x, last two dims swapped), y) -> matmul(x, y, transpose_a=not transpose_a);
    the same for the second operand (the permute stays while something else reads it)"""
    ops, flags, changed = list(n.inputs), [n.attrs["transpose_a"], n.attrs["transpose_b"]], False
    for k in (0, 1):
        p = m.producer(ops[k], "permute")
        if p is not None and _swaps_last_two(p.attrs["perm"]):
            ops[k], flags[k], changed = p.inputs[0], not flags[k], True
    if changed:
        return m.emit("matmul", ops[0], ops[1], transpose_a=flags[0], transpose_b=flags[1], loc=n.loc)


@rule_for("permute")
def transpose_matmul_output(n, m):
    """permute(matmul(a, b), last two dims swapped) -> matmul(b, a) with both flags flipped
    ((op(a) op(b))^T = op(b)^T op(a)^T), when nothing else reads the matmul"""
    p = m.producer(n.inputs[0], "matmul") if _swaps_last_two(n.attrs["perm"]) else None
    if p is not None and m.uses(p.out) == 1:
        a, b = p.inputs
        return m.emit("matmul", b, a, transpose_a=not p.attrs["transpose_b"],
                      transpose_b=not p.attrs["transpose_a"], loc=n.loc)


RULES = [
    mul_one_right, mul_one_left, add_zero_right, add_zero_left, sub_zero, div_one, pow_one,
    sub_self_int, neg_neg, not_not,
    reshape_noop, reshape_reshape, permute_identity, permute_permute,
    broadcast_noop, broadcast_full, broadcast_broadcast,
    cast_noop, stop_gradient, where_same, where_const_cond,
    slice_all, pad_nothing, concat_single, reduce_no_axes,
    fold_transpose_into_matmul, transpose_matmul_output,
]


def rule_table(rules=None) -> list:
    """[(name, pattern -> replacement)] for each rule, for docs and listings."""
    return [(r.__name__, " ".join((r.__doc__ or "").split())) for r in (RULES if rules is None else rules)]
