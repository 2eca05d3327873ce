"""graphc.nn.utils (torch.nn.utils): gradient clipping, and `rnn`, the padded and packed
sequences the recurrent layers take."""
from .clip_grad import clip_grad_norm_, clip_grad_value_  # noqa: F401
from . import clip_grad, rnn  # noqa: F401
