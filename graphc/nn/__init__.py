"""graphc.nn: modules, parameters, initialisation and the functional API, as in torch.nn."""
from .parameter import Parameter  # noqa: F401
from .module import Module  # noqa: F401
from .linear import Linear, Identity  # noqa: F401
from .conv import Conv2d  # noqa: F401
from .pooling import MaxPool2d, AvgPool2d, AdaptiveAvgPool2d  # noqa: F401
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm  # noqa: F401
from .normalization import GroupNorm, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, RMSNorm  # noqa: F401
from .dropout import Dropout1d, Dropout2d, Dropout3d, AlphaDropout, FeatureAlphaDropout  # noqa: F401
from .activation import ReLU, LeakyReLU, GELU, SiLU, Sigmoid, Tanh, Softmax, LogSoftmax  # noqa: F401
from .activation import (ELU, SELU, CELU, Hardtanh, ReLU6, PReLU, Mish, Softplus, Softsign,  # noqa: F401
                         Hardswish, Hardsigmoid, LogSigmoid, GLU, Threshold, Tanhshrink, Softshrink,
                         Hardshrink, Softmin, RReLU)
from .misc import Flatten, Unflatten, Dropout, Embedding, EmbeddingBag  # noqa: F401
from .container import Sequential, ModuleList, ModuleDict  # noqa: F401
from .parameter_containers import ParameterList, ParameterDict  # noqa: F401
from .loss import MSELoss, L1Loss, CrossEntropyLoss, NLLLoss, BCELoss, BCEWithLogitsLoss  # noqa: F401
from .loss import (SmoothL1Loss, HuberLoss, KLDivLoss, CosineEmbeddingLoss, MarginRankingLoss,  # noqa: F401
                   TripletMarginLoss, PoissonNLLLoss, MultiLabelSoftMarginLoss, SoftMarginLoss,
                   HingeEmbeddingLoss, GaussianNLLLoss)
from .distance import CosineSimilarity, PairwiseDistance  # noqa: F401
from .padding import (ZeroPad1d, ZeroPad2d, ZeroPad3d, ConstantPad1d, ConstantPad2d, ConstantPad3d,  # noqa: F401
                      ReflectionPad1d, ReflectionPad2d, ReflectionPad3d, ReplicationPad1d, ReplicationPad2d,
                      ReplicationPad3d, CircularPad1d, CircularPad2d, CircularPad3d)
from .rnn import RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell  # noqa: F401
from . import functional, init, utils  # noqa: F401
from .attention import MultiheadAttention  # noqa: F401
from .transformer import (Transformer, TransformerEncoder, TransformerDecoder, TransformerEncoderLayer,  # noqa: F401
                          TransformerDecoderLayer)
