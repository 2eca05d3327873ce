"""graphc.nn: modules, parameters, initialisation and the functional API, as in torch.nn."""
from .parameter import Parameter  # noqa: F401
from .module import Module  # noqa: F401
from .linear import Linear, Identity  # noqa: F401
from . import functional, init  # noqa: F401
