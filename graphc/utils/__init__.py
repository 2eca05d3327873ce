"""graphc.utils: the PyTorch-shaped helpers around the core (graphc.utils.data)."""
from . import data  # noqa: F401
