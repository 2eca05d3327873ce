"""Map-style datasets (torch.utils.data.Dataset and friends) and random_split.

A map-style dataset is anything with __getitem__(int) and __len__; the DataLoader asks it for
samples by index, which is what lets worker processes load batches independently and in order.
"""
from __future__ import annotations

import bisect
import math
import warnings

from ...ops import creation as _creation


class Dataset:
    """Base class for map-style datasets: subclass and define __getitem__ and __len__."""

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other):
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Samples are tuples (t0[i], t1[i], ...) of tensors that share their first dimension."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        n = tensors[0].shape[0] if tensors[0].ndim else None
        if n is None or any(t.ndim == 0 or t.shape[0] != n for t in tensors):
            raise ValueError("Size mismatch between tensors: all tensors must have the same first "
                             f"dimension, got shapes {[list(t.shape) for t in tensors]}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return [self.dataset[self.indices[i]] for i in idx]
        return self.dataset[self.indices[idx]]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """Several datasets one after another."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("datasets should not be an empty iterable")
        self.cumulative_sizes = []
        total = 0
        for d in self.datasets:
            total += len(d)
            self.cumulative_sizes.append(total)

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx += len(self)
        if idx >= len(self):
            raise IndexError(f"index {idx} is out of range for a ConcatDataset of length {len(self)}")
        d = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[d - 1] if d > 0 else 0
        return self.datasets[d][idx - start]


def _split_lengths(n: int, lengths) -> list[int]:
    """torch's rule: fractions summing to 1 become floor(n * f), the remainder handed out
    round-robin from the first split; otherwise the lengths are counts that must sum to n."""
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1 and all(0 <= f <= 1 for f in lengths) \
            and any(isinstance(f, float) for f in lengths):
        sizes = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        for i, s in enumerate(sizes):
            if s == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an empty dataset.")
        return sizes
    if any(not isinstance(x, int) or isinstance(x, bool) or x < 0 for x in lengths):
        raise ValueError(f"lengths must be non-negative ints or fractions summing to 1, got {lengths}")
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset! "
                         f"({sum(lengths)} != {n})")
    return lengths


def random_split(dataset, lengths, generator=None) -> list[Subset]:
    """Disjoint random Subsets of the given lengths (ints, or fractions that sum to 1).
    The permutation comes from `generator`, or graphc's global generator (gc.manual_seed)."""
    sizes = _split_lengths(len(dataset), lengths)
    gen = generator if generator is not None else _creation.default_generator
    perm = _creation.randperm(sum(sizes), generator=gen).tolist()
    out, offset = [], 0
    for s in sizes:
        out.append(Subset(dataset, perm[offset:offset + s]))
        offset += s
    return out
