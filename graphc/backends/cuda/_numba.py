"""Import numba.cuda once, with a compatibility shim.

numba-cuda 0.30.x still calls `np.row_stack`, which numpy 2.5 removed (it was an alias of
`np.vstack`). We restore the alias before numba.cuda is first imported, so the backend works
with whatever numpy a user has. The shim only adds a missing name; it never replaces one.

The CUDA simulator is chosen by numba at import time: set NUMBA_ENABLE_CUDASIM=1 in the
environment *before* the first `import numba` of the process (tests run it in a subprocess).
"""
from __future__ import annotations

import numpy as np

if not hasattr(np, "row_stack"):          # numpy >= 2.5; numba-cuda 0.30 still uses it
    np.row_stack = np.vstack


def cuda():
    """The numba.cuda module (raises ImportError naming the package to install)."""
    try:
        from numba import cuda as _cuda
    except ImportError as e:   # pragma: no cover - depends on the environment
        raise ImportError("the cuda backend needs numba-cuda: pip install numba-cuda "
                          f"({e})") from e
    return _cuda


def simulator() -> bool:
    """Is numba running the CUDA simulator (NUMBA_ENABLE_CUDASIM=1)?"""
    from numba import config
    return bool(config.ENABLE_CUDASIM)
