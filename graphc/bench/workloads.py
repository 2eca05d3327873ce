"""The workloads of `graphc bench`: each a family (mlp_train, mlp_infer, ln_gelu, cnn_train) at
given sizes, its shared float32 initial state, and its implementation in any column (graphc's
own from steps.py, the others from the peers)."""
from __future__ import annotations

import math

import numpy as np

from . import peers as _peers
from .columns import GRAPHC_COLUMNS, PEER_COLUMNS
from .steps import IMPLS as _GRAPHC

SEED = 0
WORKLOADS = {}


class Workload:
    """One benchmark: a family (mlp_train, mlp_infer, ln_gelu, cnn_train) at given sizes.

    w.init()                             -> the shared float32 state {"params": [...], "x": ..., "y": ...}
    w.impl(column, state, backend, peers) -> an Impl of that column (None where it is not available:
                                            its framework is missing, or no peers were found)
    w(backend=, compiled=)               -> (fn, args): the graphc step, as `graphc bench` always had"""

    def __init__(self, name, family, doc, **sizes):
        self.name, self.family, self.doc, self.sizes = name, family, doc, sizes

    @property
    def kind(self):
        return "train" if self.family.endswith("_train") else "forward"

    def init(self, seed=SEED):
        return _INIT[self.family](np.random.default_rng(seed), **self.sizes)

    def impl(self, column, state, backend=None, peers=None):
        """peers: a peers.Peers, a path, '' (none) or None (the default: peers.load())."""
        if column in GRAPHC_COLUMNS:
            return _GRAPHC[self.family](state, backend, column == "compiled")
        if column in PEER_COLUMNS:
            return _peers.load(peers).impl(column, self.family, state)
        raise ValueError(f"unknown column {column!r}")

    def __call__(self, backend=None, compiled=True):
        im = self.impl("compiled" if compiled else "eager", self.init(), backend)
        return im.fn, im.args


def _add(name, family, doc, **sizes):
    WORKLOADS[name] = Workload(name, family, doc, **sizes)


MLP_DIMS = (784, 512, 256, 10)
_add("mlp_train_b128", "mlp_train", "784-512-256-10 MLP training step (SGD momentum), batch 128",
     dims=MLP_DIMS, batch=128)
_add("mlp_train_b32", "mlp_train", "784-512-256-10 MLP training step (SGD momentum), batch 32",
     dims=MLP_DIMS, batch=32)
_add("mlp_infer_b1024", "mlp_infer", "784-512-256-10 MLP forward, batch 1024, no grad",
     dims=MLP_DIMS, batch=1024)
_add("ln_gelu", "ln_gelu", "tanh-GELU(layer_norm(x) * g + b), x [4096, 1024]", n=4096, d=1024)
_add("cnn_train_b64", "cnn_train", "conv(1->16,3,p1)-relu-pool2-conv(16->32,3,p1)-relu-pool2-"
     "linear(1568->10) training step (SGD momentum), batch 64", batch=64, hw=28, c1=16, c2=32)


# ---- shared initial state ---------------------------------------------------------------------
def _uniform(rng, shape, fan_in):
    """torch's default Linear/Conv2d init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, shape).astype(np.float32)


def _init_mlp(rng, dims, batch, train=True):
    params = []
    for i, o in zip(dims[:-1], dims[1:]):
        params += [_uniform(rng, (o, i), i), _uniform(rng, (o,), i)]
    x = rng.standard_normal((batch, dims[0]), dtype=np.float32)
    y = rng.integers(0, dims[-1], (batch,)).astype(np.int64) if train else None
    return {"params": params, "x": x, "y": y}


def _init_ln_gelu(rng, n, d):
    return {"params": [rng.standard_normal(d, dtype=np.float32), rng.standard_normal(d, dtype=np.float32)],
            "x": rng.standard_normal((n, d), dtype=np.float32), "y": None}


def _init_cnn(rng, batch, hw, c1, c2):
    flat = c2 * (hw // 4) ** 2
    params = [_uniform(rng, (c1, 1, 3, 3), 9), _uniform(rng, (c1,), 9),
              _uniform(rng, (c2, c1, 3, 3), c1 * 9), _uniform(rng, (c2,), c1 * 9),
              _uniform(rng, (10, flat), flat), _uniform(rng, (10,), flat)]
    return {"params": params, "x": rng.standard_normal((batch, 1, hw, hw), dtype=np.float32),
            "y": rng.integers(0, 10, (batch,)).astype(np.int64)}


_INIT = {"mlp_train": lambda rng, **s: _init_mlp(rng, **s),
         "mlp_infer": lambda rng, **s: _init_mlp(rng, train=False, **s),
         "ln_gelu": _init_ln_gelu, "cnn_train": _init_cnn}
