"""The IR's text form: a printer a person can read at a glance, and a parser that reads it back.

Every pass can dump its result and every dump parses back, so a bug can be reproduced from a
pasted graph. `structure` is the canonical form Graph.__eq__ compares (names, types, attrs; not locs).

    graph f(%x: f32[32,784], state %w: f32[784,10] "fc.weight") {
      %0: f32[32,10] = matmul(%x, %w)      # model.py:12
      %1: f32[] = sum(%0) {axes=(0, 1), keepdim=False}
      return %1
      update fc.weight <- %w
    }
"""
from __future__ import annotations

import ast
import json
import math
import re

import numpy as np

from .. import dtypes as _dt
from .buffer import Buffer
from .graph import Graph, TensorType
from .printer import (_BARE, _label, _norm, _ordered_attrs, _scalar, format_input,  # noqa: F401
                      format_node, format_value, print_graph, structure)


class IRParseError(ValueError):
    """Text that is not a valid graph; the message carries the line number and the line."""


# ---- parsing ------------------------------------------------------------------------------

_NAME = r"[A-Za-z0-9_.]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_LABEL = rf"(?:{_QUOTED}|{_NAME})"
_TYPE = r"[A-Za-z_][A-Za-z0-9_]*\s*\[[^\]]*\]"
_HEADER = re.compile(rf"graph\s+({_LABEL})\s*\((.*)\)\s*\{{\Z", re.S)
_INPUT = re.compile(rf"\s*(?:(state|arg)\s+)?%({_NAME})\s*:\s*({_TYPE})(?:\s*({_QUOTED}|{_NAME}))?\s*(,|\Z)")
_DEF = rf"%{_NAME}\s*:\s*{_TYPE}"
_NODE = re.compile(rf"({_DEF}(?:\s*,\s*{_DEF})*)\s*=\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\(([^)]*)\)\s*(?:\{{(.*)\}})?\Z", re.S)
_ONE_DEF = re.compile(rf"%({_NAME})\s*:\s*({_TYPE})")
_UPDATE = re.compile(rf"update\s+({_LABEL})\s*<-\s*%({_NAME})\Z")
_REF = re.compile(rf"\s*%({_NAME})\s*\Z")


def _split_comment(line: str):
    """(code, comment or None): the first # outside a quoted string starts the comment."""
    quote = None
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "#":
            return line[:i].rstrip(), line[i + 1:].strip()
        i += 1
    return line.rstrip(), None


def _unlabel(s: str) -> str:
    return json.loads(s) if s.startswith('"') else s


def parse_type(s: str) -> TensorType:
    """`f32[2,3]` -> TensorType((2, 3), float32); `f32[]` is a scalar."""
    m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*\[([^\]]*)\]\s*", s)
    if not m:
        raise ValueError(f"bad type {s.strip()!r} (expected e.g. f32[2,3])")
    try:
        dtype = _dt.from_name(m.group(1))
    except TypeError as e:
        raise ValueError(str(e)) from None
    dims = m.group(2).strip()
    parts = [p.strip() for p in dims.split(",")] if dims else []
    if not all(p.isdigit() for p in parts):
        raise ValueError(f"bad shape in type {s.strip()!r}")
    return TensorType(tuple(int(p) for p in parts), dtype)


_NAMED_CONSTANTS = {"inf": math.inf, "nan": math.nan, "True": True, "False": False, "None": None}


def _literal(node):
    """Build an attr value from a Python expression tree, allowing only literals (never eval)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bytes, bool, type(None))):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _literal(node.operand)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Name):
        if node.id in _NAMED_CONSTANTS:
            return _NAMED_CONSTANTS[node.id]
        try:
            return _dt.from_name(node.id)
        except TypeError:
            raise ValueError(f"unknown name {node.id!r} in attribute value") from None
    raise ValueError(f"attribute value {ast.unparse(node)!r} is not a literal")


def parse_attrs(text: str) -> dict:
    """`k=v, k2=v2` -> dict, read as the keywords of a call so commas inside tuples are fine."""
    try:
        call = ast.parse(f"_({text})", mode="eval").body
    except SyntaxError as e:
        raise ValueError(f"bad attributes {{{text}}}: {e.msg}") from None
    if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
        raise ValueError(f"bad attributes {{{text}}}: expected key=value pairs")
    attrs = {}
    for k in call.keywords:
        if k.arg in attrs:
            raise ValueError(f"attribute {k.arg!r} given twice")
        attrs[k.arg] = _literal(k.value)
    if "buffers" in attrs:      # the memory plan: its printed strings back to records
        bufs = attrs["buffers"]
        if not isinstance(bufs, (tuple, list)):
            raise ValueError(f"buffers={bufs!r}: expected a tuple of buffers like ('arena+0', 'out')")
        attrs["buffers"] = tuple(Buffer.parse(b) for b in bufs)
    return attrs


def _body_end(lines, i):
    """Index after the `}` that closes the graph whose `graph ... {` header starts at lines[i]."""
    depth = 0
    for j in range(i, len(lines)):
        code = _split_comment(lines[j])[0].strip()
        if code.endswith("{") and (code.startswith("graph") or depth == 0 or "graph " in code):
            depth += 1
        elif code == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(lines)


def parse_graph(text: str) -> Graph:
    """Read a graph printed by print_graph (or written by hand) back into a Graph."""
    return _parse_lines(text.splitlines(), 0)


def _parse_lines(lines, base: int) -> Graph:
    """Parse one graph from `lines`; line numbers in errors are offset by `base`."""
    i, g, env = 0, None, {}

    def fail(msg, lineno):
        line = lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""
        raise IRParseError(f"line {lineno + base}: {msg}\n    {line}")

    def ref(name, lineno):
        if name not in env:
            fail(f"use of undefined value %{name}", lineno)
        return env[name]

    def define(name, lineno, make):
        if name in env:
            fail(f"value %{name} is defined twice", lineno)
        v = make()
        assert v.name == name, (v.name, name)
        env[name] = v
        return v

    # header: from the `graph` line up to the one ending in `{` (hand-written ones may wrap)
    while i < len(lines) and not _split_comment(lines[i])[0].strip():
        i += 1
    if i == len(lines):
        raise IRParseError("line 1: empty text, expected `graph name(...) {`")
    start, header = i + 1, ""
    while i < len(lines):
        header += " " + _split_comment(lines[i])[0].strip()
        i += 1
        if header.endswith("{"):
            break
    m = _HEADER.match(header.strip())
    if not m:
        fail("expected `graph name(%x: f32[..], ...) {`", start)
    g = Graph(_unlabel(m.group(1)))
    params, pos = m.group(2), 0
    while params.strip() and pos < len(params):
        p = _INPUT.match(params, pos)
        if not p:
            fail(f"bad graph input near {params[pos:].strip()[:40]!r}", start)
        kind, name, ty, label = p.group(1) or "arg", p.group(2), p.group(3), p.group(4)
        try:
            t = parse_type(ty)
        except ValueError as e:
            fail(str(e), start)
        label = _unlabel(label) if label else name
        define(name, start, lambda: g.add_input(t, kind, label, name=name))
        pos = p.end()
        if not p.group(5):
            break

    closed = False
    skip_to = 0
    for lineno in range(i + 1, len(lines) + 1):
        if lineno <= skip_to:
            continue
        code, comment = _split_comment(lines[lineno - 1])
        code = code.strip()
        if not code:
            continue
        if closed:
            fail("text after the closing `}`", lineno)
        if code == "}":
            closed = True
        elif code.startswith("%"):
            m = _NODE.match(code)
            if not m:
                fail("bad node line (expected `%out: f32[..] = op(%a, ...) {k=v}`)", lineno)
            defs, op, args, attrs = m.groups()
            try:
                outs = [(nm, parse_type(ty)) for nm, ty in _ONE_DEF.findall(defs)]
                attrs = parse_attrs(attrs) if attrs and attrs.strip() else {}
            except ValueError as e:
                fail(str(e), lineno)
            if len(outs) > 1 and op != "kernel":
                fail(f"only a kernel defines several values; {op} defines one", lineno)
            ins = []
            for a in (args.split(",") if args.strip() else []):
                r = _REF.match(a)
                if not r:
                    fail(f"bad node input {a.strip()!r}", lineno)
                ins.append(ref(r.group(1), lineno))
            body = None
            if op == "kernel":
                j = lineno
                while j < len(lines) and not _split_comment(lines[j])[0].strip():
                    j += 1
                if j >= len(lines) or not _split_comment(lines[j])[0].strip().startswith("graph"):
                    fail("a kernel node must be followed by its body `graph ... { ... }`", lineno)
                end = _body_end(lines, j)
                body = _parse_lines(lines[j:end], base + j)
                skip_to = end
            for nm, _ in outs:
                if nm in env:
                    fail(f"value %{nm} is defined twice", lineno)
            if len(outs) > 1:
                vals = g.add_kernel(ins, attrs, [t for _, t in outs], [nm for nm, _ in outs], body,
                                    loc=comment or None)
            else:
                vals = [g.add_node(op, ins, attrs, outs[0][1], name=outs[0][0], loc=comment or None,
                                   body=body)]
            for v in vals:
                env[v.name] = v
        elif code == "return" or code.startswith(("return ", "return%")):
            rest = code[len("return"):]
            for a in (rest.split(",") if rest.strip() else []):
                r = _REF.match(a)
                if not r:
                    fail(f"bad return value {a.strip()!r}", lineno)
                g.outputs.append(ref(r.group(1), lineno))
        elif code.startswith("update"):
            m = _UPDATE.match(code)
            if not m:
                fail("bad update line (expected `update label <- %v`)", lineno)
            g.updates.append((_unlabel(m.group(1)), ref(m.group(2), lineno)))
        else:
            fail("expected a node, `return`, `update` or `}`", lineno)
    if not closed:
        fail("missing closing `}`", len(lines))
    return g
