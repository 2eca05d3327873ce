"""The table's columns, what an implementation of one workload in one column is (Impl), and the
hyperparameters every implementation of a training step shares.

graphc's own columns (eager, compiled) are built in graphc/bench/steps.py; the others, the
peers, come from outside the package (graphc/bench/peers.py finds them: the repository's
bench/peers/ by default)."""
from __future__ import annotations

import numpy as np

LR, MOMENTUM, EPS = 0.01, 0.9, 1e-5      # SGD momentum of the training steps; layer_norm's eps
COLUMNS = [("eager", "graphc eager"), ("compiled", "graphc compiled"), ("numpy", "numpy"),
           ("torch", "torch"), ("torch_compile", "torch.compile"), ("jax", "jax.jit")]
GRAPHC_COLUMNS = ("eager", "compiled")
PEER_COLUMNS = tuple(c for c, _ in COLUMNS if c not in GRAPHC_COLUMNS)
LABELS = dict(COLUMNS)


class Impl:
    """One implementation: call() runs one step and returns its output (framework-native);
    to_numpy(out) converts it; params() gives the current parameters as numpy arrays (training
    steps); fn/args: the graphc function and its arguments (graphc columns)."""

    def __init__(self, call, to_numpy=np.asarray, params=None, fn=None, args=None):
        self.call, self.to_numpy, self.params, self.fn, self.args = call, to_numpy, params, fn, args
