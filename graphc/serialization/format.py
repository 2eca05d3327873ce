"""The checkpoint container's layout (see the package docstring): magic, version, the
preamble's struct, alignment, the digest's size, and numpy's limits that every shape must fit."""
from __future__ import annotations

import struct

import numpy as np

MAGIC = b"\x89GCKPT\r\n"
VERSION = 1
_PREAMBLE = struct.Struct("<8sIIQQ")
_ALIGN = 64
_DIGEST = 32
_FORMAT = "graphc.checkpoint"
_INTP_MAX = int(np.iinfo(np.intp).max)   # numpy's limit on a dim and on an array's byte size


def _numpy_max_ndim() -> int:
    for n in (64, 32):               # numpy >= 2 builds up to 64 dims, numpy 1.x up to 32
        try:
            np.empty((0,) * n)
            return n
        except ValueError:
            pass
    return 32


_MAX_NDIM = _numpy_max_ndim()


class CheckpointError(RuntimeError):
    """A file graphc.load can't accept: not a checkpoint, truncated, corrupt or malformed."""


def _align(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN
