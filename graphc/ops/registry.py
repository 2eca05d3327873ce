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
  differentiable                             the VJP decision: True with a vjp rule, False where
                                             the primitive is explicitly not differentiable (bool /
                                             int outputs, stop_gradient); constant and random
                                             primitives have no differentiable operand (False)
  fusion                                     the kind of kernel it roots (passes/fusion.py):
                                             pointwise | reduction | matmul | opaque; derived
                                             from the category, None for index primitives
                                             (fusion.OPAQUE names the opaque ones)
  light                                      one instruction: every user kernel recomputes it
                                             instead of reading it from memory (fusion.split_cheap)
  decomposition(*tensors, **attrs) -> Tensor the op written with other primitives (graphc tensor
                                             ops); a backend with no rule for the primitive
                                             expands it inside the kernel (backends/kernels.py)

Backends keep their lowering rules keyed by name (llvm/scalar.py, cuda/scalar.py: RULES);
docs/extending.md has the recipe for a new primitive; tests/ops/test_op_coverage.py checks that
every primitive has a VJP decision, a lowering on every backend and a conformance test.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

CATEGORIES = ("elementwise", "reduction", "movement", "contraction", "index", "constant", "random")
FUSION_CLASSES = ("pointwise", "reduction", "matmul", "opaque")
_FUSION_OF_CATEGORY = {"elementwise": "pointwise", "movement": "pointwise", "constant": "pointwise",
                       "random": "pointwise", "reduction": "reduction", "contraction": "matmul"}


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
    differentiable: bool | None = None  # None with no vjp: undecided (a coverage gap)
    fusion: str | None = None         # None: from the category
    light: bool = False
    decomposition: Callable | None = None

    def __post_init__(self):
        if self.category not in CATEGORIES:
            raise ValueError(f"{self.name}: unknown category {self.category!r}")
        if self.vjp is not None:
            if self.differentiable is False:
                raise ValueError(f"{self.name}: a vjp rule, but differentiable=False")
            self.differentiable = True
        elif self.differentiable is None and self.category in ("constant", "random"):
            self.differentiable = False
        elif self.differentiable:
            raise ValueError(f"{self.name}: differentiable=True needs a vjp rule")
        if self.fusion is None:
            self.fusion = _FUSION_OF_CATEGORY.get(self.category)
        if self.fusion is not None and self.fusion not in FUSION_CLASSES:
            raise ValueError(f"{self.name}: unknown fusion class {self.fusion!r}")

    def __repr__(self) -> str:
        return f"<primitive {self.name} ({self.category})>"


PRIMITIVES: dict[str, Primitive] = {}


def register(p: Primitive) -> Primitive:
    if p.name in PRIMITIVES:
        raise ValueError(f"primitive {p.name!r} is defined twice")
    PRIMITIVES[p.name] = p
    return p


def unregister(name: str) -> Primitive:
    """Remove a primitive (tests registering a temporary one)."""
    return PRIMITIVES.pop(name)


def get(name: str) -> Primitive:
    try:
        return PRIMITIVES[name]
    except KeyError:
        raise KeyError(f"unknown primitive {name!r}") from None


# ---- graph-level ops ------------------------------------------------------------------------
@dataclass
class GraphOp:
    """An op that stands in the traced graph for work a pass does later (`expanded_by`), not a
    primitive: no numpy impl, no VJP, no backend lowering. The verifier checks it like a
    primitive (arity, attrs, infer); a backend that meets one has been handed an unexpanded
    graph, which is a bug the compiler refuses loudly (compiler/function.py)."""
    name: str
    infer: Callable
    attrs: tuple
    expanded_by: str                  # the pass in DEFAULT_PASSES that removes every such node
    doc: str = ""
    arity = None                      # variadic: infer checks the count

    def __repr__(self) -> str:
        return f"<graph op {self.name} (expanded by {self.expanded_by})>"


GRAPH_OPS: dict[str, GraphOp] = {}


def register_graph_op(op: GraphOp) -> GraphOp:
    if op.name in GRAPH_OPS or op.name in PRIMITIVES:
        raise ValueError(f"op {op.name!r} is defined twice")
    GRAPH_OPS[op.name] = op
    return op


def _grad_infer(*types, group, outputs, cut, create_graph):
    """grad(out_1..out_m, seed_1..seed_m, wrt) -> the type of wrt."""
    if not isinstance(outputs, int) or outputs < 1 or len(types) != 2 * outputs + 1:
        raise TypeError(f"grad takes {outputs} output(s), as many seeds and one wrt value; "
                        f"got {len(types)} inputs")
    for k, (o, s) in enumerate(zip(types[:outputs], types[outputs:2 * outputs])):
        if tuple(o.shape) != tuple(s.shape):
            raise TypeError(f"grad: seed {k} has shape {list(s.shape)}, its output {list(o.shape)}")
    return types[-1]


GRAD = register_graph_op(GraphOp(
    "grad", _grad_infer, ("group", "outputs", "cut", "create_graph"), expanded_by="autodiff",
    doc="d(sum of seed_k . out_k)/d(wrt), recorded by loss.backward() / autograd.grad while "
        "tracing; the nodes of one backward call share `group`; `cut`: the values recorded "
        "with grad mode off that the gradient does not flow through; expanded into backward "
        "nodes by the autodiff pass (passes/autodiff.py)"))
