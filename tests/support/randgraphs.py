"""A hypothesis strategy for small random IR graphs, shared by the pass tests.

The graphs mix elementwise, broadcast, reshape, permute, slice, pad, concat, gather, matmul
and reduction nodes, biased towards the patterns the simplifier and the fuser look for."""
import numpy as np
from hypothesis import strategies as st

from graphc import dtypes as _dt
from graphc.ir import Graph, TensorType, verify
from graphc.ops.registry import PRIMITIVES


def _add(g, op, inputs, **attrs):
    return g.add_node(op, inputs, attrs, PRIMITIVES[op].infer(*[v.type for v in inputs], **attrs))


def _const(g, value, t):
    c = _add(g, "full", [], shape=(), value=_dt_value(value, t.dtype), dtype=t.dtype)
    return _add(g, "broadcast_to", [c], shape=t.shape) if t.shape else c


def _dt_value(v, dtype):
    return float(v) if dtype.is_floating_point else int(v)


@st.composite
def random_graphs(draw):
    """A small random graph of elementwise / broadcast / reshape / permute / matmul / sum nodes,
    biased towards the patterns the rules look for (x*1, x-x, double permutes, transposes)."""
    dtype = draw(st.sampled_from([_dt.float64, _dt.int64]))
    g = Graph("rand")
    dims = st.integers(1, 3)
    pool = [g.add_input(TensorType(tuple(draw(st.lists(dims, min_size=0, max_size=3))), dtype),
                        label=f"x{i}") for i in range(draw(st.integers(1, 3)))]
    pool.append(g.add_input(TensorType((2, 3), dtype), label="m"))
    n_ops = draw(st.integers(1, 12))
    for _ in range(n_ops):
        x = draw(st.sampled_from(pool))
        same = [v for v in pool if v.type == x.type]
        kind = draw(st.sampled_from(["const", "binary", "unary", "reshape", "permute",
                                     "broadcast", "matmul", "sum", "where", "max", "slice", "pad",
                                     "concat", "gather", "exp"]))
        if kind == "const":
            c = _const(g, draw(st.sampled_from([0, 1, 2, -1])), x.type)
            op = draw(st.sampled_from(["add", "sub", "mul"] + (["div"] if dtype.is_floating_point else [])))
            a, b = draw(st.permutations([x, c]))
            v = _add(g, op, [a, b])
        elif kind == "binary":
            y = draw(st.sampled_from(same))
            v = _add(g, draw(st.sampled_from(["add", "sub", "mul", "maximum"])), [x, y])
        elif kind == "unary":
            op = draw(st.sampled_from(["neg", "stop_gradient", "cast", "abs"]))
            v = _add(g, op, [x], dtype=dtype) if op == "cast" else _add(g, op, [x])
        elif kind == "reshape":
            shapes = [x.shape, (x.type.numel,), (1,) + tuple(x.shape), tuple(x.shape) + (1,)]
            v = _add(g, "reshape", [x], shape=tuple(draw(st.sampled_from(shapes))))
        elif kind == "permute":
            v = _add(g, "permute", [x], perm=tuple(draw(st.permutations(range(x.type.ndim)))))
        elif kind == "broadcast":
            shape = tuple(draw(st.sampled_from([s, 2])) if s == 1 else s for s in x.shape)
            if draw(st.booleans()):
                shape = (draw(st.integers(1, 2)),) + shape
            v = _add(g, "broadcast_to", [x], shape=shape)
        elif kind == "matmul":
            if x.type.ndim < 2:
                continue
            ta, tb = draw(st.booleans()), draw(st.booleans())
            k = x.shape[-2] if ta else x.shape[-1]
            cands = [y for y in pool if y.type.ndim == x.type.ndim and y.shape[:-2] == x.shape[:-2]
                     and (y.shape[-1] if tb else y.shape[-2]) == k]
            if cands and draw(st.booleans()):
                y = draw(st.sampled_from(cands))
            elif ta != tb:
                y = x
            else:   # x^T as a permute, for the folding rule to find
                nd = x.type.ndim
                y = _add(g, "permute", [x], perm=tuple(range(nd - 2)) + (nd - 1, nd - 2))
            v = _add(g, "matmul", [x, y], transpose_a=ta, transpose_b=tb)
        elif kind == "sum":
            nd = x.type.ndim
            axes = tuple(sorted(draw(st.sets(st.integers(0, nd - 1), max_size=nd)))) if nd else ()
            v = _add(g, "sum", [x], axes=axes, keepdim=draw(st.booleans()))
        elif kind == "max":
            nd = x.type.ndim
            if not nd or 0 in x.shape:
                continue
            axes = tuple(sorted(draw(st.sets(st.integers(0, nd - 1), min_size=1, max_size=nd))))
            v = _add(g, "max", [x], axes=axes, keepdim=draw(st.booleans()))
        elif kind == "slice":
            nd = x.type.ndim
            starts = tuple(draw(st.integers(0, s)) for s in x.shape)
            stops = tuple(draw(st.integers(a, s)) for a, s in zip(starts, x.shape))
            steps = tuple(draw(st.integers(1, 2)) for _ in range(nd))
            v = _add(g, "slice", [x], starts=starts, stops=stops, steps=steps)
        elif kind == "pad":
            nd = x.type.ndim
            lo = tuple(draw(st.integers(0, 1)) for _ in range(nd))
            hi = tuple(draw(st.integers(0, 1)) for _ in range(nd))
            interior = tuple(draw(st.integers(0, 1)) for _ in range(nd))
            v = _add(g, "pad", [x], lo=lo, hi=hi, interior=interior, value=_dt_value(1, dtype))
        elif kind == "concat":
            if not x.type.ndim:
                continue
            y = draw(st.sampled_from(same))
            v = _add(g, "concat", [x, y], axis=draw(st.integers(0, x.type.ndim - 1)))
        elif kind == "gather":
            nd = x.type.ndim
            if not nd or 0 in x.shape:
                continue
            axis = draw(st.integers(0, nd - 1))
            idx_shape = tuple(draw(st.integers(1, 3)) if d == axis else s for d, s in enumerate(x.shape))
            it = _add(g, "iota", [], shape=idx_shape, axis=axis, dtype=_dt.int64)
            top = _add(g, "full", [], shape=idx_shape, value=x.shape[axis] - 1, dtype=_dt.int64)
            idx = _add(g, "sub", [top, _add(g, "minimum", [it, top])])   # reversed, in range
            v = _add(g, "take_along_axis", [x, idx], axis=axis)
        elif kind == "exp":
            if not dtype.is_floating_point:
                continue
            v = _add(g, "exp", [_add(g, "tanh", [x])])
        else:   # where
            y = draw(st.sampled_from(same))
            c = _add(g, draw(st.sampled_from(["gt", "eq"])), [x, y])
            if draw(st.booleans()):
                c = _add(g, "logical_not", [_add(g, "logical_not", [c])])
            v = _add(g, "where", [c, x, draw(st.sampled_from([x, y]))])
        pool.append(v)
    made = [n.out for n in g.nodes] or pool
    g.outputs = draw(st.lists(st.sampled_from(made), min_size=1, max_size=3))
    if draw(st.booleans()):
        s = g.add_input(g.outputs[0].type, kind="state", label="s")
        g.updates = [("s", draw(st.sampled_from([v for v in made + [s] if v.type == s.type])))]
    verify(g)
    return g
