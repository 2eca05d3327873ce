"""Result arrays as the storage of fresh tensors: a result that shares memory with an input
(or an earlier result) is copied, so no returned tensor aliases what the caller passed in."""
from __future__ import annotations

import numpy as np


def _own(a, ins):
    """A result array as a fresh, writable array sharing memory with none of `ins`."""
    a = _fresh(a, ins)
    return a if a.flags.writeable else np.array(a, copy=True)


def _copy(a):
    """A copy of a result array (a numpy array, or a cuda tensor's DeviceArray)."""
    return np.array(a, copy=True) if type(a) is np.ndarray else a.copy()


def _fresh(a, others):
    """Copy a result that shares memory with an input (or an earlier result)."""
    if type(a) is not np.ndarray and hasattr(a, "shares_memory"):      # a cuda DeviceArray
        return a.copy() if any(a.shares_memory(o) for o in others) else a
    for o in others:
        if np.may_share_memory(a, o):
            return np.array(a, copy=True)
    return a
