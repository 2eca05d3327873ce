"""The peer implementations of graphc bench's workloads: the same steps in numpy by hand, torch
eager, torch.compile and jax.jit, kept outside the graphc package (which imports neither torch
nor jax). `graphc bench` loads this folder by default when it runs from the repository (or
with --peers PATH), and bench/llvm.py always; see graphc/bench/peers.py for the interface:

    IMPLS[column](family, state) -> graphc.bench.Impl, or None when that framework is missing

Every implementation starts from the shared float32 state (graphc.bench.Workload.init) and is
checked against graphc eager before it is timed."""
from __future__ import annotations

from . import jax_steps, numpy_by_hand, torch_steps

IMPLS = {
    "numpy": lambda family, state: numpy_by_hand.IMPLS[family](state),
    "torch": lambda family, state: torch_steps.impl(family, state, compiled=False),
    "torch_compile": lambda family, state: torch_steps.impl(family, state, compiled=True),
    "jax": jax_steps.impl,
}
