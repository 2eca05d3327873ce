"""The op registry (primitives, defined once each) and the operations built on it.

`import graphc` registers every primitive (see load_all); this package's __init__ stays
light so that the registry can be imported on its own.
"""


def load_all():
    from . import functional  # noqa: F401
    from . import elementwise, reduction, movement, contraction, index, constant, random, conv  # noqa: F401
    from . import creation, composites, layer_composites  # noqa: F401
