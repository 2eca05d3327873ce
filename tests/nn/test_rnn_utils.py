"""graphc.nn.utils.rnn against torch.nn.utils.rnn: pad_sequence (batch_first, padding_value,
padding_side), pack_padded_sequence (sorted or not, batch_first), pad_packed_sequence
(total_length), pack_sequence, unpad/unpack, PackedSequence's fields and methods, gradients
through packing and padding, and torch's errors."""
import numpy as np
import pytest

import graphc as gc
from graphc.nn.utils import rnn

torch = pytest.importorskip("torch")
trnn = torch.nn.utils.rnn


def npy(t):
    return np.array(t.detach().numpy(), copy=True)


def seqs(lengths, trailing=(2,), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n,) + trailing).astype(np.float32) for n in lengths]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("trailing", [(), (2,), (2, 3)], ids=["1d", "2d", "3d"])
def test_pad_sequence_matches_torch(batch_first, side, trailing):
    arrays = seqs([3, 5, 1], trailing)
    got = rnn.pad_sequence([gc.tensor(a) for a in arrays], batch_first=batch_first, padding_value=-2.5,
                           padding_side=side)
    want = trnn.pad_sequence([torch.tensor(a) for a in arrays], batch_first=batch_first, padding_value=-2.5,
                             padding_side=side)
    np.testing.assert_array_equal(npy(got), want.numpy())


@pytest.mark.parametrize("enforce_sorted,lengths", [(True, [4, 4, 2, 1]), (False, [1, 4, 2, 3])])
@pytest.mark.parametrize("batch_first", [False, True])
def test_pack_and_pad_packed_match_torch(enforce_sorted, lengths, batch_first):
    x = np.random.default_rng(1).standard_normal((4, 4, 3)).astype(np.float32)
    g = rnn.pack_padded_sequence(gc.tensor(x), lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    t = trnn.pack_padded_sequence(torch.tensor(x), lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    np.testing.assert_array_equal(npy(g.data), t.data.numpy())
    assert g.batch_sizes.tolist() == t.batch_sizes.tolist() and g.batch_sizes.dtype is gc.int64
    for a, b in ((g.sorted_indices, t.sorted_indices), (g.unsorted_indices, t.unsorted_indices)):
        assert (a is None and b is None) or a.tolist() == b.tolist()
    for total in (None, 6):
        gp, gl = rnn.pad_packed_sequence(g, batch_first=batch_first, padding_value=9.0, total_length=total)
        tp, tl = trnn.pad_packed_sequence(t, batch_first=batch_first, padding_value=9.0, total_length=total)
        np.testing.assert_array_equal(npy(gp), tp.numpy())
        assert gl.tolist() == tl.tolist() == lengths


def test_gradients_flow_through_pack_and_pad():
    x = np.random.default_rng(2).standard_normal((5, 3, 2)).astype(np.float32)
    w = np.random.default_rng(3).standard_normal((5, 3, 2)).astype(np.float32)
    lengths = [3, 5, 2]
    results = []
    for lib, mod in ((gc, rnn), (torch, trnn)):
        xs = lib.tensor(x, requires_grad=True)
        packed = mod.pack_padded_sequence(xs, lengths, enforce_sorted=False)
        padded, _ = mod.pad_packed_sequence(packed)
        ((padded * lib.tensor(w)).sum() + (packed.data ** 2).sum()).backward()
        results.append(npy(xs.grad) if lib is gc else xs.grad.numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6)


@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_pack_sequence_and_unpack_match_torch(enforce_sorted):
    arrays = seqs([4, 2, 1] if enforce_sorted else [2, 4, 1], (3,))
    g = rnn.pack_sequence([gc.tensor(a) for a in arrays], enforce_sorted=enforce_sorted)
    t = trnn.pack_sequence([torch.tensor(a) for a in arrays], enforce_sorted=enforce_sorted)
    np.testing.assert_array_equal(npy(g.data), t.data.numpy())
    assert g.batch_sizes.tolist() == t.batch_sizes.tolist()
    for a, b in zip(rnn.unpack_sequence(g), arrays):
        np.testing.assert_array_equal(npy(a), b)
    padded = rnn.pad_sequence([gc.tensor(a) for a in arrays], batch_first=True)
    for a, b in zip(rnn.unpad_sequence(padded, gc.tensor([len(a) for a in arrays]), batch_first=True), arrays):
        np.testing.assert_array_equal(npy(a), b)


def test_packed_sequence_is_a_namedtuple_as_torch():
    p = rnn.pack_sequence([gc.ones(3, 2), gc.ones(1, 2)])
    assert p._fields == trnn.PackedSequence._fields
    data, batch_sizes, sorted_indices, unsorted_indices = p
    assert batch_sizes.tolist() == [2, 1, 1] and sorted_indices is None and unsorted_indices is None
    q = rnn.PackedSequence(data, batch_sizes, gc.tensor([1, 0]))
    assert q.unsorted_indices.tolist() == [1, 0]
    assert rnn.PackedSequence((data, batch_sizes)).batch_sizes is batch_sizes
    d = p.double()
    assert d.data.dtype is gc.float64 and d.batch_sizes is p.batch_sizes and not d.is_cuda
    assert p.to(gc.float32) is p and p.cpu() is p
    assert rnn.invert_permutation(gc.tensor([2, 0, 1])).tolist() == [1, 2, 0]
    assert rnn.invert_permutation(None) is None


@pytest.mark.parametrize("call,exc,match", [
    (lambda: rnn.pack_padded_sequence(gc.zeros(4, 3, 2), [2, 4, 1]), RuntimeError,
     "must be sorted in decreasing order when `enforce_sorted` is True"),
    (lambda: rnn.pack_padded_sequence(gc.zeros(4, 3, 2), [4, 2]), RuntimeError,
     "Expected `len\\(lengths\\)` to be equal to batch_size, but got 2 \\(batch_size=3\\)"),
    (lambda: rnn.pack_padded_sequence(gc.zeros(4, 2, 2), [4, 0]), RuntimeError,
     "Length of all samples has to be greater than 0"),
    (lambda: rnn.pack_padded_sequence(gc.zeros(4, 2, 2), [5, 1]), RuntimeError, "a sequence of length 5"),
    (lambda: rnn.pad_packed_sequence(rnn.pack_sequence([gc.ones(3, 1)]), total_length=2), ValueError,
     "Expected total_length to be at least the length of the longest sequence"),
    (lambda: rnn.pad_sequence([gc.ones(3)], padding_side="middle"), ValueError,
     "Expected padding_side to be one of left or right"),
    (lambda: rnn.pad_sequence([gc.ones(3, 2), gc.ones(2, 3)]), RuntimeError, "pad_sequence got sequences"),
])
def test_errors_as_torch(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
