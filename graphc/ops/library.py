"""The whole op library: importing this module registers every primitive and defines every
user-level op (graphc/__init__ imports it once)."""
from . import functional  # noqa: F401
from . import elementwise, reduction, movement, contraction, index, constant, random, conv  # noqa: F401
from . import from_data, creation, composites, layer_composites, sampling  # noqa: F401
