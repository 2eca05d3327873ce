"""graphc.nn.functional: the functional forms of the layers and losses (torch.nn.functional)."""
from __future__ import annotations

from ..ops.composites import (  # noqa: F401
    relu, leaky_relu, gelu, silu, softplus, softmax, log_softmax, linear, layer_norm, mse_loss,
    l1_loss, nll_loss, cross_entropy, binary_cross_entropy, binary_cross_entropy_with_logits, one_hot,
)
from ..ops.layer_composites import (  # noqa: F401
    conv2d, max_pool2d, avg_pool2d, adaptive_avg_pool2d, batch_norm, dropout, embedding,
)
from ..ops.functional import pad, sigmoid, tanh, unfold, fold, flatten  # noqa: F401
