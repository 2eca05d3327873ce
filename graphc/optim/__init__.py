"""graphc.optim: optimizers whose step() runs eagerly or traces into write-backs."""
from .optimizer import Optimizer  # noqa: F401
from .sgd import SGD  # noqa: F401
