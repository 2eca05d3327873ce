"""graphc.optim: optimizers (torch.optim's) whose step() runs eagerly or traces into write-backs,
and learning-rate schedulers."""
from .optimizer import Optimizer, ParamGroup  # noqa: F401
from .sgd import SGD  # noqa: F401
from .adam import Adam, AdamW  # noqa: F401
from .rmsprop import RMSprop  # noqa: F401
from .adagrad import Adagrad  # noqa: F401
from .adadelta import Adadelta  # noqa: F401
from . import lr_scheduler  # noqa: F401

__all__ = ["Optimizer", "ParamGroup", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
