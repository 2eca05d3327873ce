"""graphc.cuda: is CUDA usable, how many devices, wait for the device (torch.cuda's basics).

CUDA is available when numba-cuda is installed and `numba.cuda.is_available()` is true: a GPU
with a working driver, or numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1 set before numba is
first imported). Asking is lazy: numba is imported the first time one of these is called.
"""
from __future__ import annotations

from .device import device as _device, register as _register_device

_AVAILABLE = None


def is_available() -> bool:
    global _AVAILABLE
    if _AVAILABLE is None:
        try:
            from .backends.cuda import _numba
            _AVAILABLE = bool(_numba.cuda().is_available())
        except Exception:      # noqa: BLE001 - numba-cuda missing or broken: no CUDA
            _AVAILABLE = False
    return _AVAILABLE


def device_count() -> int:
    """1 when CUDA is available (graphc drives cuda:0 only), else 0."""
    return 1 if is_available() else 0


def synchronize(device=None) -> None:
    """Wait until every kernel launched so far has finished."""
    if is_available():
        from .backends.cuda import _numba
        _numba.cuda().synchronize()


def current_device() -> int:
    _device("cuda").check_available()
    return 0


def launch_overhead_us(n: int = 2000) -> dict:
    """Microseconds per kernel launch: numba's ordinary dispatch vs graphc's launch paths
    (see graphc.backends.cuda.launch.measure_launch_us)."""
    _device("cuda").check_available()
    from .backends.cuda.launch import measure_launch_us
    return measure_launch_us(n)


def _load_backend():
    """Load the cuda backend (numba): backends.cuda.eager registers cuda's device mode."""
    from .backends.cuda import eager  # noqa: F401  (lazy: numba loads only when cuda is used)


_register_device("cuda", is_available=is_available, load=_load_backend)
