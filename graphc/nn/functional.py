"""graphc.nn.functional: the functional forms of the layers and losses (torch.nn.functional)."""
from __future__ import annotations

from ..ops.composites import (  # noqa: F401
    relu, leaky_relu, gelu, silu, softplus, softmax, log_softmax, linear, layer_norm, mse_loss,
    l1_loss, nll_loss, cross_entropy, binary_cross_entropy, binary_cross_entropy_with_logits, one_hot,
)
from ..ops.layer_composites import (  # noqa: F401
    conv2d, max_pool2d, avg_pool2d, adaptive_avg_pool2d, batch_norm, dropout, embedding,
)
from ..ops.activations import (  # noqa: F401
    elu, selu, celu, hardtanh, relu6, prelu, mish, softsign, hardswish, hardsigmoid, logsigmoid, glu,
    threshold, tanhshrink, softshrink, hardshrink, softmin, elu_, selu_, celu_, hardtanh_, threshold_, relu_,
    leaky_relu_, rrelu, rrelu_,
)
from ..ops.distances import cosine_similarity, pairwise_distance, normalize  # noqa: F401
from ..ops.losses import (  # noqa: F401
    legacy_reduction, smooth_l1_loss, huber_loss, kl_div, cosine_embedding_loss, margin_ranking_loss,
    triplet_margin_loss, poisson_nll_loss, multilabel_soft_margin_loss, soft_margin_loss, hinge_embedding_loss,
    gaussian_nll_loss,
)
from ..ops.norms import (  # noqa: F401
    group_norm, instance_norm, rms_norm, dropout1d, dropout2d, dropout3d, alpha_dropout, feature_alpha_dropout,
)
from ..ops.padding import pad  # noqa: F401
from ..ops.embedding_bag import embedding_bag  # noqa: F401
from ..ops.functional import sigmoid, tanh, unfold, fold, flatten  # noqa: F401
from ..ops.attention import scaled_dot_product_attention  # noqa: F401
