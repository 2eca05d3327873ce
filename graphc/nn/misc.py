"""Small layers: Flatten, Unflatten, Dropout, Embedding, EmbeddingBag."""
from __future__ import annotations

from ..ops.functional import empty
from . import functional as F
from . import init
from .dropout import _DropoutNd
from .module import Module, _check_device, _place
from .parameter import Parameter


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x):
        d = self.dim % x.ndim
        return x.reshape(tuple(x.shape[:d]) + self.unflattened_size + tuple(x.shape[d + 1:]))

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Dropout(_DropoutNd):
    """Zeroes elements with probability p in training mode; the identity in eval mode."""

    def forward(self, x):
        return F.dropout(x, self.p, self.training, self.inplace)


def _table(module, num_embeddings, embedding_dim, padding_idx, _weight, dtype, requires_grad=True):
    """An embedding table: sizes, padding_idx (normalised, checked), and the weight (given, or
    N(0, 1) with the padding row zeroed)."""
    module.num_embeddings, module.embedding_dim = num_embeddings, embedding_dim
    if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
        raise AssertionError("Padding_idx must be within num_embeddings")
    module.padding_idx = padding_idx % num_embeddings if padding_idx is not None else None
    if _weight is not None and tuple(_weight.shape) != (num_embeddings, embedding_dim):
        raise AssertionError("Shape of weight does not match num_embeddings and embedding_dim")
    module.weight = Parameter(_weight if _weight is not None else empty(num_embeddings, embedding_dim, dtype=dtype),
                              requires_grad=requires_grad)
    if _weight is None:
        module.reset_parameters()


class Embedding(Module):
    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None,
                 dtype=None):
        super().__init__()
        _check_device(device)
        if scale_grad_by_freq or sparse:
            raise NotImplementedError("Embedding(scale_grad_by_freq=True / sparse=True) is not supported by graphc")
        self.max_norm = max_norm
        _table(self, num_embeddings, embedding_dim, padding_idx, _weight, dtype, not _freeze)
        _place(self, device)

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight._data[self.padding_idx] = 0

    def forward(self, idx):
        return F.embedding(idx, self.weight, self.padding_idx, self.max_norm)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


class EmbeddingBag(Module):
    """Sums, means or maxes of bags of embeddings without materialising the per-index rows'
    bags: a 2D input is one bag a row; a 1D input with offsets marks where each bag starts."""

    def __init__(self, num_embeddings, embedding_dim, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
                 mode="mean", sparse=False, _weight=None, include_last_offset=False, padding_idx=None, device=None,
                 dtype=None):
        super().__init__()
        _check_device(device)
        if max_norm is not None or scale_grad_by_freq or sparse:
            raise NotImplementedError("EmbeddingBag(max_norm= / scale_grad_by_freq=True / sparse=True) is not "
                                      "supported by graphc")
        if mode not in ("sum", "mean", "max"):
            raise ValueError(f"mode has to be one of sum, mean or max, got {mode!r}")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.max_norm, self.norm_type, self.scale_grad_by_freq = max_norm, norm_type, scale_grad_by_freq
        self.mode, self.sparse, self.include_last_offset = mode, sparse, include_last_offset
        _table(self, num_embeddings, embedding_dim, padding_idx, _weight, dtype)
        _place(self, device)

    reset_parameters = Embedding.reset_parameters

    def forward(self, input, offsets=None, per_sample_weights=None):
        return F.embedding_bag(input, self.weight, offsets, mode=self.mode, per_sample_weights=per_sample_weights,
                               include_last_offset=self.include_last_offset, padding_idx=self.padding_idx)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        s += f", mode='{self.mode}'"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        return s
