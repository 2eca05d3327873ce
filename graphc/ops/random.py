"""Counter-based random numbers: one primitive, reproducible by every backend.

`uniform(state)` hashes (seed, offset + i) for element i with splitmix64, so the numbers
depend only on the generator state, never on the order of evaluation: eager and compiled
runs of the same program draw identical values, and a backend needs only integer ops.
The state is an int64 tensor [word, offset]; drawing n numbers advances offset by n, in place
(a write-back while tracing). manual_seed(s) sets word = s + golden gamma (mod 2**64), so the key
mix64(word) is splitmix64's first output for s (graphc.ops.creation._state_word): the seed
itself as the word made manual_seed(0) degenerate, mix64(0) = 0 hashing counter 0 to exactly 0.0.
"""
from __future__ import annotations

import numpy as np

from . import _infer as I
from .registry import Primitive, register

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer (uint64 in, uint64 out, wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * MIX1
    x = x ^ (x >> np.uint64(27))
    x = x * MIX2
    return x ^ (x >> np.uint64(31))


def random_bits(seed: int, offset: int, n: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        key = mix64(np.array([seed], dtype=np.int64).view(np.uint64))
        ctr = np.arange(n, dtype=np.uint64) + np.array([offset], dtype=np.int64).view(np.uint64)
        return mix64(key + ctr * GOLDEN)


def _uniform_infer(state, *, shape, dtype):
    I.need_dtype("uniform", state, I.INT)
    if state.shape != (2,):
        raise TypeError(f"uniform: the generator state must be i64[2] (seed, offset), got {state}")
    if not dtype.is_floating_point:
        raise TypeError(f"uniform: dtype must be floating point, got {dtype.name}")
    return I.tt(I.check_shape("uniform", shape), dtype)


def _uniform_impl(state, *, shape, dtype):
    n = int(np.prod(shape, dtype=np.int64))
    bits = random_bits(int(state[0]), int(state[1]), n)
    if dtype.np == np.float32:
        u = (bits >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)
    else:
        u = (bits >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)
    return u.reshape(shape)


register(Primitive("uniform", "random", _uniform_infer, _uniform_impl, None,
                   arity=1, attrs=("shape", "dtype"), saves=(),
                   doc="uniform [0, 1) numbers from generator state (seed, offset): element i "
                       "is splitmix64(seed, offset + i)"))
