"""The one op registry: every primitive is defined here once, for every mode.

A Primitive carries
  infer(*in_types, **attrs) -> TensorType   shape and dtype rule (raises on bad input)
  impl(*arrays, **attrs) -> np.ndarray       the numpy reference semantics
  vjp(ctx, g) -> tuple of Tensor|None        the vector-Jacobian product, written with graphc
                                             tensor ops, so the same rule runs eagerly (tape),
                                             while tracing (emits backward nodes) and under
                                             create_graph=True (higher-order gradients)
  category                                   elementwise | reduction | movement | contraction
                                             | index | constant | random
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

CATEGORIES = ("elementwise", "reduction", "movement", "contraction", "index", "constant", "random")


@dataclass
class VJPContext:
    """What a VJP rule sees: the primal inputs and output as Tensors, the static attributes,
    and which inputs need a gradient (so a rule can skip work nobody asked for)."""
    inputs: tuple      # primal inputs (None where the primitive does not save them)
    out: object        # primal output (None unless saved)
    attrs: dict
    needs: tuple       # needs[i]: does input i want a gradient
    in_types: tuple    # TensorType of every input, always available


@dataclass
class Primitive:
    name: str
    category: str
    infer: Callable
    impl: Callable
    vjp: Callable | None = None       # None: not differentiable (outputs are int/bool)
    arity: int | None = None          # None: variadic (concat)
    attrs: tuple = ()                 # names of the static attributes, in print order
    saves: tuple = ("inputs",)        # which primal tensors the VJP reads: "inputs", "out"
    doc: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.category not in CATEGORIES:
            raise ValueError(f"{self.name}: unknown category {self.category!r}")

    def __repr__(self) -> str:
        return f"<primitive {self.name} ({self.category})>"


PRIMITIVES: dict[str, Primitive] = {}


def register(p: Primitive) -> Primitive:
    if p.name in PRIMITIVES:
        raise ValueError(f"primitive {p.name!r} is defined twice")
    PRIMITIVES[p.name] = p
    return p


def get(name: str) -> Primitive:
    try:
        return PRIMITIVES[name]
    except KeyError:
        raise KeyError(f"unknown primitive {name!r}") from None
