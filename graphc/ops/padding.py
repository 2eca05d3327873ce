"""torch.nn.functional.pad with every mode: 'constant' (the pad primitive), and 'reflect',
'replicate', 'circular' as one gather per padded dim: output position j of a dim of size n
padded by (left, right) reads input position i = j - left, mapped into [0, n) by the mode.
Negative padding crops, as in torch (for 'circular', before wrapping)."""
from __future__ import annotations

import numpy as np

from . import functional as F
from .creation import tensor

_MAP = {
    "reflect": lambda i, n: np.abs((i + (n - 1)) % (2 * (n - 1)) - (n - 1)) if n > 1 else np.zeros_like(i),
    "replicate": lambda i, n: np.clip(i, 0, n - 1),
    "circular": lambda i, n: i % n,
}

_SUPPORTED = ("Supported combinations for non-constant padding:\n"
              "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
              "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
              "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)")


def pad(input, pad, mode="constant", value=None):
    """Pad the last len(pad) // 2 dims, the last dim first: (left, right, top, bottom, ...)."""
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if mode == "constant":
        return F.pad(input, pad, "constant", 0.0 if value is None else value)
    if mode not in _MAP:
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if value is not None and value != 0:
        raise RuntimeError(f'Padding mode "{mode}" doesn\'t take in value argument')
    k = len(pad) // 2
    if k not in (1, 2, 3) or input.ndim not in (k + 1, k + 2):
        raise NotImplementedError(f"Padding size {len(pad)} is not supported for {input.ndim}D input tensor.\n"
                                  + _SUPPORTED)
    x = input
    for i in range(k):
        left, right = pad[2 * i], pad[2 * i + 1]
        if left == 0 and right == 0:
            continue
        dim = x.ndim - 1 - i
        _check(mode, left, right, x.shape[dim], dim, input.shape)
        if mode == "circular" and (left < 0 or right < 0):     # torch crops first, then wraps the rest
            lo, hi = max(-left, 0), max(-right, 0)
            x = F.narrow(x, dim, lo, x.shape[dim] - lo - hi)
            left, right = max(left, 0), max(right, 0)
        n = x.shape[dim]
        idx = _MAP[mode](np.arange(-left, n + right, dtype=np.int64), n)
        x = F.index_select(x, dim, tensor(idx, device=F._device_of(x, None)))
    return x


def _check(mode, left, right, n, dim, shape):
    if mode == "reflect" and (left >= n or right >= n):
        raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding input dimension, "
                           f"but got: padding ({left}, {right}) at dimension {dim} of input {list(shape)}")
    if mode == "circular" and (left > n or right > n):
        raise RuntimeError("Padding value causes wrapping around more than once.")
    if n == 0 and (left > 0 or right > 0):
        raise RuntimeError(f"{mode} padding of an empty dimension (dim {dim} of input {list(shape)})")
