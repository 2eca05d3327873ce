"""Random numbers: `Generator` (state: an i64[2] tensor `[seed, offset]` read by the
`uniform` primitive) and the random creation functions (rand, randn, randint, randperm, ...).

The tensors-from-data functions (graphc.tensor, as_tensor, ...) live in from_data.py and are
re-exported here, where they were first defined.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from .. import mode as _tracing
from ..autograd import no_grad
from ..device import move
from ..tensor import Tensor, apply
from .from_data import (_check_device, _flat, _nested_tensors_to_lists, _np_from_data,  # noqa: F401
                        as_tensor, from_numpy, is_number, scalar_tensor, tensor)
from .functional import _requires, _shape_arg, add, cast, cos, log, narrow, reshape, sqrt
from .random import GOLDEN


# ---- random numbers -------------------------------------------------------------------------------
class Generator:
    """A seeded source of random numbers (torch.Generator).

    Its state is an int64 tensor [seed, offset] read by the `uniform` primitive and advanced in
    place, so random draws trace: inside a compiled function the state is captured and updated
    by a write-back, and eager and compiled runs draw the same numbers. Draws that only exist
    eagerly (randperm, nn.init) use a numpy generator seeded from the same state."""

    def __init__(self, device="cpu"):
        self._seed = int(np.random.SeedSequence().entropy % (2 ** 62))
        self.state = Tensor._wrap(np.array([_state_word(self._seed), 0], dtype=np.int64))
        _tracing.KNOWN_NAMES[id(self.state)] = "rng"

    def manual_seed(self, seed: int):
        self._seed = int(seed)
        with no_grad():
            self.state._data[...] = (_state_word(self._seed), 0)
        self.state._version[0] += 1
        return self

    def initial_seed(self):
        return self._seed

    def get_state(self):
        return Tensor._wrap(self.state._data.copy())

    def set_state(self, state):
        self.state._data[...] = state._data if isinstance(state, Tensor) else state
        self.state._version[0] += 1

    def uniform(self, shape, dtype, draws=1, device=None):
        """`draws` tensors of uniform [0, 1) numbers of `shape`, advancing the state. On a cuda
        `device` the kernel reads the state from a device copy (16 bytes, as torch passes its
        generator's seed and offset to the kernel); the numbers are the same as on the CPU."""
        n = 1
        for s in shape:
            n *= s
        state = self.state
        dev = _check_device(device)
        if dev is not None and dev.type == "cuda" and _tracing.active() is None:
            state = Tensor._wrap(move(self.state._data, dev), dtype=self.state.dtype)
        u = apply("uniform", state, shape=(draws,) + tuple(shape), dtype=dtype)
        if _tracing.active() is None:
            self.state._data[1] += n * draws
            self.state._version[0] += 1
        else:
            self.state._inplace(lambda s: add(s, tensor([0, n * draws])))
        return u

    @property
    def _rng(self):
        """A numpy generator for eager-only draws, seeded from (and advancing) the state."""
        seed, offset = (int(v) for v in self.state._data)
        self.state._data[1] += 1
        return np.random.default_rng([seed & (2 ** 63 - 1), offset & (2 ** 63 - 1)])


def _state_word(seed: int) -> int:
    """The state's first word for a seed: splitmix64's state one step on (seed + golden gamma,
    as an int64), so `uniform`'s key mix64(word) is splitmix64's first output for the seed.
    The seed itself would make seed 0 degenerate: mix64(0) = 0, so the key was 0 and the first
    draw after manual_seed(0) hashed 0 to exactly 0.0. A bijection, so distinct seeds (mod 2**64)
    keep distinct streams; the backends need no change (they read the state as before)."""
    w = (int(seed) + int(GOLDEN)) & (2 ** 64 - 1)
    return w - 2 ** 64 if w >= 2 ** 63 else w


default_generator = Generator()


def manual_seed(seed: int):
    """Seed graphc's global random number generator."""
    return default_generator.manual_seed(seed)


def seed():
    return default_generator.manual_seed(int(np.random.SeedSequence().entropy % (2 ** 62)))


def initial_seed():
    return default_generator.initial_seed()


def _shape_dtype(shape, dtype):
    shape = _shape_arg(shape)
    return shape, (_dt.as_dtype(dtype) if dtype is not None else _dt.get_default_dtype())


def _finish(t, requires_grad):
    return _requires(t, requires_grad)


def rand(*shape, dtype=None, requires_grad=False, generator=None, device=None):
    """Uniform numbers in [0, 1)."""
    shape, dtype = _shape_dtype(shape, dtype)
    with no_grad():
        u = reshape((generator or default_generator).uniform(shape, dtype, device=device), shape)
    return _finish(u, requires_grad)


def randn(*shape, dtype=None, requires_grad=False, generator=None, device=None):
    """Standard normal numbers (Box-Muller over two uniform draws)."""
    shape, dtype = _shape_dtype(shape, dtype)
    with no_grad():
        u = (generator or default_generator).uniform(shape, dtype, draws=2, device=device)
        u1, u2 = (reshape(narrow(u, 0, i, 1), shape) for i in (0, 1))
        z = sqrt(log(1 - u1) * -2.0) * cos(u2 * (2 * np.pi))
    return _finish(z, requires_grad)


def randint(low, high=None, size=None, dtype=None, generator=None, device=None):
    """Integers uniform in [low, high)."""
    if size is None and isinstance(high, (tuple, list)):   # randint(high, size)
        high, size = None, high
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint() missing required argument 'size'")
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    shape, dtype = _shape_dtype((tuple(size),), dtype or _dt.int64)
    with no_grad():
        u = reshape((generator or default_generator).uniform(shape, _dt.float64, device=device), shape)
        r = cast(cast(u * float(high - low), _dt.int64) + low, dtype)
    return r


def _like_device(x, device):
    return device if device is not None or x._value is not None else x.device


def rand_like(x, dtype=None, requires_grad=False, device=None):
    return rand(tuple(x.shape), dtype=dtype or x.dtype, requires_grad=requires_grad,
                device=_like_device(x, device))


def randn_like(x, dtype=None, requires_grad=False, device=None):
    return randn(tuple(x.shape), dtype=dtype or x.dtype, requires_grad=requires_grad,
                 device=_like_device(x, device))


def randint_like(x, low, high=None, dtype=None, device=None):
    return randint(low, high, tuple(x.shape), dtype=dtype or x.dtype, device=_like_device(x, device))


def randperm(n, dtype=None, generator=None, device=None):
    """A random permutation of 0..n-1 (eager only: it sorts)."""
    if _tracing.active() is not None:
        raise _tracing.TraceError(f"graphc.randperm inside a compiled function is not supported "
                                  f"({_tracing.user_location()}); create it outside and pass it in")
    p = (generator or default_generator)._rng.permutation(n)
    t = Tensor._wrap(p.astype((_dt.as_dtype(dtype) if dtype else _dt.int64).np))
    return t if device is None else t.to(device)


def normal(mean, std, size, generator=None, device=None):
    return randn(size, generator=generator, device=device) * std + mean
