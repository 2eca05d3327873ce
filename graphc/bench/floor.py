"""ln_gelu's copy floor, as issue 5 defines it: the bytes of reading x once and writing y once
at the copy bandwidth measured in the same run (STREAM-style: np.copyto between two 128 MiB
arrays, four times this machine's L3, so the copy runs from DRAM); and beside it np.copyto of x
itself into a preallocated y (16 MiB each: partly in cache between calls, so below the floor)."""
from __future__ import annotations

import numpy as np

from .columns import Impl

STREAM_BYTES = 128 << 20         # each array of the bandwidth copy: 4x a 32 MiB L3


def copy_same(state):
    """np.copyto of ln_gelu's x into a preallocated y of the same shape."""
    x = state["x"].copy()
    y = np.empty_like(x)
    return Impl(lambda: np.copyto(y, x))


def copy_stream():
    """The copy-bandwidth probe: np.copyto between two STREAM_BYTES arrays (out of cache)."""
    src = np.ones(STREAM_BYTES // 4, dtype=np.float32)
    dst = np.empty_like(src)
    return Impl(lambda: np.copyto(dst, src)), 2 * src.nbytes


def floor_ms(state, bandwidth_gbs):
    """Reading x once and writing y once at `bandwidth_gbs` (GB/s), in ms."""
    return 2 * state["x"].nbytes / (bandwidth_gbs * 1e9) * 1e3
