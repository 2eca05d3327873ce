"""Padded and packed sequences (torch.nn.utils.rnn) for the recurrent layers.

A PackedSequence holds the steps of a batch of sequences of unequal lengths, time-major:
step t's rows are the sequences still running at t (sorted longest first), so an RNN computes
no padding and takes each sequence's last state at its true last step. Its batch sizes are
Python-known (a CPU int64 tensor), so a packed sequence traces: only the data is a tensor the
graph reads. Every function here is written with graphc tensor ops (slices, pads, cat,
index_select), so gradients flow through packing and padding as in torch.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ... import dtypes as _dt
from ...ops import functional as F
from ...ops.from_data import tensor
from ...tensor import Tensor

__all__ = ["PackedSequence", "invert_permutation", "pad_sequence", "unpad_sequence",
           "pack_padded_sequence", "pad_packed_sequence", "pack_sequence", "unpack_sequence"]


def _ints(t, what):
    """A lengths / batch sizes / index argument as Python ints (they fix the shapes). While
    tracing, a tensor made from Python values in the traced function (a `constant` node, as the
    batch sizes and indices pack_padded_sequence makes) is known too."""
    if isinstance(t, Tensor):
        if t._value is not None:
            node = t._value.producer
            if node is not None and node.op == "constant":
                return [int(v) for v in node.attrs["data"]]
            raise RuntimeError(f"{what} must be known when the graph is traced: pass a list or a tensor "
                               "made outside the compiled function, not a traced tensor")
        return [int(v) for v in np.asarray(t.detach().cpu().numpy()).reshape(-1)]
    return [int(v) for v in t]


def _index(values, device=None):
    return tensor(np.asarray(values, dtype=np.int64), dtype=_dt.int64, device=device)


def invert_permutation(permutation):
    """The inverse permutation (torch.nn.utils.rnn.invert_permutation); None stays None."""
    if permutation is None:
        return None
    return _index(np.argsort(np.asarray(_ints(permutation, "permutation"), dtype=np.int64), kind="stable"))


class PackedSequence(namedtuple("PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """torch's PackedSequence: data [sum(lengths), *], batch_sizes [T] (int64, on the CPU), and
    the permutation that sorted the batch by length (None when it came sorted)."""
    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:          # PackedSequence((data, batch_sizes)), as torch accepts
            data, batch_sizes = data
        if isinstance(batch_sizes, Tensor) and batch_sizes.device.type != "cpu":
            raise ValueError("batch_sizes should always be on CPU. Instances of PackedSequence should never "
                             "be created manually. They should be instantiated by functions like "
                             "pack_sequence and pack_padded_sequences in nn.utils.rnn.")
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        """data moved / cast as Tensor.to; the indices follow data's device (batch_sizes stays)."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        move = (lambda t: None if t is None else t.to(data.device))
        return type(self)(data, self.batch_sizes, move(self.sorted_indices), move(self.unsorted_indices))

    def cuda(self, *args, **kwargs):
        return self.to(*(args or ("cuda",)), **kwargs)

    def cpu(self):
        return self.to("cpu")

    def double(self):
        return self.to(_dt.float64)

    def float(self):
        return self.to(_dt.float32)

    @property
    def is_cuda(self):
        return self.data.device.type == "cuda"

    def is_pinned(self):
        return False


def _lengths_of(batch_sizes):
    """Each (sorted) sequence's length, from the batch sizes."""
    bs = np.asarray(batch_sizes, dtype=np.int64)
    return [int((bs > b).sum()) for b in range(int(bs[0]) if bs.size else 0)]


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """[L_i, *] tensors -> one [T, B, *] tensor (or [B, T, *]), padded with padding_value at the
    end of each sequence (padding_side='right') or before it ('left')."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    if isinstance(sequences, Tensor):
        sequences = F.unbind(sequences, 0)
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    trailing = tuple(sequences[0].shape[1:])
    for s in sequences:
        if s.ndim == 0 or tuple(s.shape[1:]) != trailing:
            raise RuntimeError("The size of tensor a must match the size of tensor b at non-singleton dimension: "
                               f"pad_sequence got sequences of shapes {[list(x.shape) for x in sequences]}; "
                               "all must agree after their first (time) dimension")
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        gap = longest - s.shape[0]
        where = (gap, 0) if padding_side == "left" else (0, gap)
        padded.append(F.pad(s, (0, 0) * len(trailing) + where, value=padding_value) if gap else s)
    return F.stack(padded, 0 if batch_first else 1)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """pad_sequence undone: the list of [L_i, *] sequences."""
    x = padded_sequences if batch_first else F.transpose(padded_sequences, 0, 1)
    return [x[i, :n] for i, n in enumerate(_ints(lengths, "lengths"))]


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """A padded batch [T, B, *] (or [B, T, *]) and each sequence's length -> PackedSequence.
    enforce_sorted=False sorts the batch longest first and records the permutation."""
    lengths = _ints(lengths, "lengths")
    batch_dim = 0 if batch_first else 1
    if input.ndim < 2:
        raise RuntimeError(f"pack_padded_sequence: expected an input of at least 2 dims [T, B, *], got "
                           f"{list(input.shape)}")
    if len(lengths) != input.shape[batch_dim]:
        raise RuntimeError(f"Expected `len(lengths)` to be equal to batch_size, but got {len(lengths)} "
                           f"(batch_size={input.shape[batch_dim]})")
    if enforce_sorted:
        if any(a < b for a, b in zip(lengths, lengths[1:])):
            raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is "
                               "True. You can pass `enforce_sorted=False` to pack_padded_sequence and/or "
                               "pack_sequence to sidestep this requirement if you do not need ONNX exportability.")
        sorted_indices = None
    else:
        order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
        sorted_indices = _index(order, F._device_of(input, None))      # on input's device, as torch's
        lengths = [lengths[i] for i in order]
        input = F.index_select(input, batch_dim, sorted_indices)
    if lengths and min(lengths) <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' "
                           "that is <= 0")
    if batch_first:
        input = F.transpose(input, 0, 1)
    if lengths[0] > input.shape[0]:
        raise RuntimeError(f"pack_padded_sequence: a sequence of length {lengths[0]} in an input of only "
                           f"{input.shape[0]} steps")
    batch_sizes = [sum(1 for n in lengths if n > t) for t in range(lengths[0])]
    data = F.cat([input[t, :b] for t, b in enumerate(batch_sizes)], 0)
    unsorted_indices = None if sorted_indices is None else _index(np.argsort(order), F._device_of(input, None))
    return PackedSequence(data, _index(batch_sizes), sorted_indices, unsorted_indices)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """PackedSequence -> (padded [T, B, *] or [B, T, *], lengths), in the batch's original order;
    total_length pads the time dimension to that many steps."""
    data, batch_sizes = sequence.data, _ints(sequence.batch_sizes, "batch_sizes")
    steps = len(batch_sizes)
    if total_length is not None:
        if total_length < steps:
            raise ValueError("Expected total_length to be at least the length of the longest sequence in input, "
                             f"but got total_length={total_length} and max sequence length being {steps}")
        steps = total_length
    width, trailing = batch_sizes[0], data.ndim - 1
    rows, offset = [], 0
    for b in batch_sizes:
        piece = data[offset:offset + b]
        offset += b
        rows.append(F.pad(piece, (0, 0) * trailing + (0, width - b), value=padding_value) if b < width else piece)
    padded = F.stack(rows, 0)
    if steps > len(batch_sizes):
        padded = F.pad(padded, (0, 0) * (trailing + 1) + (0, steps - len(batch_sizes)), value=padding_value)
    lengths = _lengths_of(batch_sizes)
    if sequence.unsorted_indices is not None:
        padded = F.index_select(padded, 1, sequence.unsorted_indices)
        lengths = [lengths[i] for i in _ints(sequence.unsorted_indices, "unsorted_indices")]
    if batch_first:
        padded = F.transpose(padded, 0, 1)
    return padded, _index(lengths)


def pack_sequence(sequences, enforce_sorted=True):
    """A list of [L_i, *] sequences -> PackedSequence (pad_sequence, then pack_padded_sequence)."""
    sequences = list(sequences)
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences):
    """pack_sequence undone: the list of [L_i, *] sequences, in the original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
