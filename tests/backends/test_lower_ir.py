"""The kernel lowering IR (graphc/backends/lower): folding, hash-consing, the delinearize
recovery, every movement op's index map against numpy, the random hash against
graphc/ops/random.py, and the printer."""
import itertools

import numpy as np
import pytest

from graphc import dtypes
from graphc.backends.lower import expr as X
from graphc.backends.lower import maps as M
from graphc.backends.lower.walk import uniform
from graphc.ops.random import random_bits

MASK = (1 << 64) - 1


def run(e, env, arrays=None):
    """A reference evaluation of an expression at concrete counters (Python ints)."""
    val = {}
    for n in X.postorder([e]):
        a = [val[x] for x in n.args]
        op = n.op
        if op == "var":
            r = env[n.attr]
        elif op == "const":
            r = n.attr
        elif op in ("add", "uadd"):
            r = a[0] + a[1]
        elif op == "sub":
            r = a[0] - a[1]
        elif op in ("mul", "umul"):
            r = a[0] * a[1]
        elif op == "div":
            r = a[0] // a[1]
        elif op == "mod":
            r = a[0] % a[1]
        elif op in ("lt", "ge", "eq", "ne"):
            r = {"lt": a[0] < a[1], "ge": a[0] >= a[1], "eq": a[0] == a[1], "ne": a[0] != a[1]}[op]
        elif op == "and":
            r = a[0] and a[1]
        elif op == "select":
            r = a[1] if a[0] else a[2]
        elif op == "load":
            r = arrays[n.attr[0]].reshape(-1)[a[0]]
        elif op == "u64":
            r = a[0] & MASK
        elif op == "xor":
            r = a[0] ^ a[1]
        elif op == "shr":
            r = a[0] >> a[1]
        elif op == "unit":
            r = (np.float32(a[0] >> 40) * np.float32(2.0 ** -24) if n.dtype is dtypes.float32
                 else np.float64(a[0] >> 11) * 2.0 ** -53)
        else:
            raise AssertionError(op)
        val[n] = r & MASK if n.dtype == X.U64 else r
    return val[e]


def gather(out_shape, index_map, src, fill=None):
    """Evaluate index_map(idx) -> (input index, ok or None) at every output point, read src."""
    names = [f"i{d}" for d in range(len(out_shape))]
    j, ok = index_map(tuple(X.var(n) for n in names))
    res = np.empty(out_shape, src.dtype)
    for p in itertools.product(*map(range, out_shape)):
        env = dict(zip(names, p))
        if ok is not None and not run(ok, env):
            res[p] = fill
            continue
        q = tuple(run(e, env) for e in j)
        assert all(0 <= k < n for k, n in zip(q, src.shape)), (p, q)
        res[p] = src[q]
    return res


# ---- folding and hash-consing --------------------------------------------------------------------
def test_identities_fold():
    x = X.var("x")
    assert X.add(x, X.ZERO) is x and X.add(X.ZERO, x) is x
    assert X.mul(x, 1) is x and X.mul(x, 0) is X.ZERO and X.mul(X.ZERO, x) is X.ZERO
    assert X.div(x, 1) is x and X.mod(x, 1) is X.ZERO
    assert X.add(X.const(2), X.const(3)) is X.const(5)
    assert X.mul(X.mul(x, 3), 4) is X.mul(x, 12)
    assert X.add(X.add(x, X.const(1)), X.const(2)) is X.add(x, X.const(3))
    assert X.sub(X.add(x, X.const(2)), X.const(2)) is x
    assert X.div(X.div(x, 3), 4) is X.div(x, 12)
    assert X.cmp("lt", X.const(1), 2) is X.TRUE and X.and_(X.TRUE, X.cmp("lt", x, 3)) is X.cmp("lt", x, 3)
    assert X.select(X.FALSE, x, X.ZERO) is X.ZERO and X.select(X.cmp("ge", x, 0), x, x) is x


def test_hash_consing_shares_equal_subexpressions():
    a = X.add(X.mul(X.var("i"), 12), X.var("j"))
    b = X.add(X.mul(X.var("i"), 12), X.var("j"))
    assert a is b
    assert X.const(1.0, dtypes.float32) is not X.const(1, dtypes.int64)
    assert X.const(0.0, dtypes.float32) is not X.const(-0.0, dtypes.float32)
    assert X.const(float("nan"), dtypes.float64) is X.const(float("nan"), dtypes.float64)
    s1 = X.scalar("add", dtypes.float32, dtypes.float32, [a, a], {})
    assert X.scalar("add", dtypes.float32, dtypes.float32, [b, b], {}) is s1
    assert X.scalar("pow", dtypes.float32, dtypes.float32, [a], {"k": 2}) is not \
        X.scalar("pow", dtypes.float32, dtypes.float32, [a], {"k": 3})
    assert len(X.postorder([X.add(s1, s1)])) == len(X.postorder([s1])) + 1


# ---- the delinearize recovery ------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(7,), (2, 3, 4), (1, 5, 1, 3), (4, 1)])
def test_linear_of_delinearize_is_the_linear_index(shape):
    lin = X.var("l")
    idx = X.delinearize(lin, shape)
    assert X.linear(idx, shape) is lin
    for n in range(int(np.prod(shape))):
        assert [run(e, {"l": n}) for e in idx] == list(np.unravel_index(n, shape))


@pytest.mark.parametrize("lin", [X.var("l"), X.const(0)])
def test_delinearize_of_an_empty_shape_divides_by_no_zero_stride(lin):
    """An empty buffer has no element: its index is all zeros (the strides before the empty dim
    are 0, and folding a constant offset through them divided by zero, found by the fuzzer)."""
    assert X.delinearize(lin, (3, 0, 2)) == (X.ZERO,) * 3
    assert X.delinearize(lin, (2, 3, 0)) == (X.ZERO,) * 3


def test_linear_recovers_a_run_inside_a_larger_index():
    i, j = X.var("i"), X.var("j")        # [32, 144] read as [32, 16, 3, 3]
    off = X.linear((i,) + X.delinearize(j, (16, 3, 3)), (32, 16, 3, 3))
    assert off is X.add(X.mul(i, 144), j)
    assert not any(n.op in ("div", "mod") for n in X.postorder([off]))


def test_reshape_map_keeps_no_division_when_read_back_linearly():
    i, j = X.var("i"), X.var("j")
    k = M.reshape((i, j), (32, 16, 3, 3), (32, 144))
    assert X.linear(k, (32, 16, 3, 3)) is X.add(X.mul(i, 144), j)


# ---- movement ops' index maps against numpy ---------------------------------------------------------
A = np.arange(2 * 3 * 4).reshape(2, 3, 4)


def test_broadcast_map():
    src = np.arange(3).reshape(3, 1)
    got = gather((2, 3, 4), lambda idx: (M.broadcast(idx, (3, 1), (2, 3, 4)), None), src)
    np.testing.assert_array_equal(got, np.broadcast_to(src, (2, 3, 4)))


@pytest.mark.parametrize("out", [(6, 4), (4, 6), (24,), (2, 1, 12), (3, 8), (1, 2, 3, 4, 1)])
def test_reshape_map(out):
    got = gather(out, lambda idx: (M.reshape(idx, A.shape, out), None), A)
    np.testing.assert_array_equal(got, A.reshape(out))


def test_permute_map():
    perm = (2, 0, 1)
    out = tuple(A.shape[p] for p in perm)
    got = gather(out, lambda idx: (M.permute(idx, perm), None), A)
    np.testing.assert_array_equal(got, A.transpose(perm))


def test_slice_map():
    want = A[1:2, ::2, 1::2]
    got = gather(want.shape, lambda idx: (M.slice_(idx, (1, 0, 1), (1, 2, 2)), None), A)
    np.testing.assert_array_equal(got, want)


def test_pad_map_with_interior():
    from graphc.ops.registry import PRIMITIVES
    src = np.arange(1, 7).reshape(2, 3)
    lo, hi, interior = (1, 2), (2, 1), (1, 0)
    want = PRIMITIVES["pad"].impl(src, lo=lo, hi=hi, interior=interior, value=-5)
    got = gather(want.shape, lambda idx: M.pad(idx, src.shape, lo, interior), src, fill=-5)
    np.testing.assert_array_equal(got, want)


def test_concat_map():
    a, b = np.arange(6).reshape(2, 3), 10 + np.arange(4).reshape(2, 2)
    want = np.concatenate([a, b], 1)
    names = ("i0", "i1")
    idx = tuple(map(X.var, names))
    ja, oka = M.concat_piece(idx, 1, 0, 3)
    jb, okb = M.concat_piece(idx, 1, 3, 2)
    for p in itertools.product(*map(range, want.shape)):
        env = dict(zip(names, p))
        src, j = (a, ja) if run(oka, env) else (b, jb)
        assert run(okb, env) != run(oka, env)
        assert src[tuple(run(e, env) for e in j)] == want[p]


@pytest.mark.parametrize("geo", [((2, 2), (1, 1), (0, 0), (1, 1)), ((3, 2), (2, 1), (1, 1), (1, 2))])
def test_unfold_map_matches_im2col(geo):
    kernel, stride, padding, dilation = geo
    src = np.arange(1, 1 + 1 * 2 * 5 * 4).reshape(1, 2, 5, 4)
    oh = M.out_size(5, kernel[0], stride[0], padding[0], dilation[0])
    ow = M.out_size(4, kernel[1], stride[1], padding[1], dilation[1])
    padded = np.pad(src, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    want = np.empty((1, 2 * kernel[0] * kernel[1], oh * ow), src.dtype)
    for c, ki, kj, oy, ox in itertools.product(range(2), range(kernel[0]), range(kernel[1]), range(oh), range(ow)):
        want[0, (c * kernel[0] + ki) * kernel[1] + kj, oy * ow + ox] = \
            padded[0, c, oy * stride[0] + ki * dilation[0], ox * stride[1] + kj * dilation[1]]
    got = gather(want.shape, lambda idx: M.unfold(idx, src.shape, *geo), src, fill=0)
    np.testing.assert_array_equal(got, want)


# ---- the random hash ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dt", [dtypes.float32, dtypes.float64])
def test_uniform_is_bit_for_bit_graphc_random(dt):
    seed, offset = 1234567, 99
    e = uniform(X.var("i"), X.var("seed"), X.var("offset"), dt)
    bits = random_bits(seed, offset, 8)
    want = ((bits >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24) if dt is dtypes.float32
            else (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53)
    got = [run(e, {"i": i, "seed": seed, "offset": offset}) for i in range(8)]
    assert np.array_equal(np.array(got, dtype=want.dtype), want)


# ---- the printer --------------------------------------------------------------------------------------------
def test_printer_text():
    i, j = X.var("i"), X.var("j")
    off = X.linear((i, j), (3, 4))
    v = X.load("%x", off, dtypes.float32, 12, "read")
    s = X.scalar("mul", dtypes.float32, dtypes.float32, [v, v], {})
    assert X.to_text([s, off]) == "\n".join([
        "%0 = mul(i, 4) : index",
        "%1 = add(%0, j) : index",
        "%2 = load %x(%1) : f32",
        "%3 = op mul(f32)(%2, %2) : f32",
        "-> %3, %1",
    ])


def test_printer_and_postorder_are_iterative_on_deep_chains():
    e = X.var("x")
    for k in range(20000):
        e = X.scalar("neg", dtypes.float32, dtypes.float32, [e], {})
    assert X.to_text([e]).count("\n") == 20000


def test_unfold_column_and_the_factored_map_agree_with_unfold():
    """The factored nest (llvm's unfold loop, fold in both backends) indexes the same elements
    as unfold's own map of the column index."""
    geo = ((3, 2), (2, 1), (1, 1), (1, 2))
    in_shape = (1, 2, 5, 4)
    oh, ow = (M.out_size(n, k, s, p, d) for n, k, s, p, d in zip(in_shape[2:], *geo))
    names = ("n", "c", "ki", "kj", "oy", "ox")
    parts = tuple(map(X.var, names))
    col = M.unfold_column(*parts, geo[0], ow)
    j1, ok1 = M.unfold(col, in_shape, *geo)
    j2, ok2 = M.unfold_parts(parts[0], parts[1:], in_shape, *geo)
    for p in itertools.product(range(1), range(2), range(3), range(2), range(oh), range(ow)):
        env = dict(zip(names, p))
        assert run(ok1, env) == run(ok2, env)
        assert [run(e, env) for e in j1] == [run(e, env) for e in j2]
