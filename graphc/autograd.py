"""The eager autograd tape: backward nodes, the engine that walks them, and grad mode.

Each primitive applied to a tensor that requires grad records a BackwardNode holding the
primitive, its attributes and the tensors its VJP rule reads. backward() walks the nodes in
reverse topological order and calls each primitive's VJP rule -- the same rule the tracer
uses to emit backward nodes into the IR.

This module sits below graphc.tensor (which imports it for grad mode and BackwardNode): it
works on tensors through their attributes and methods, and knows the Tensor class only as
TensorLike, which tensor.py registers it with.
"""
from __future__ import annotations

import abc
import functools
import threading
import weakref

from . import mode
from .ops.registry import VJPContext

_state = threading.local()


class TensorLike(abc.ABC):
    """isinstance(x, TensorLike): is x a graphc Tensor (graphc.tensor registers the class)."""


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


def set_grad_enabled(mode: bool):
    return _GradMode(bool(mode))


class _GradMode:
    """Context manager and decorator that sets grad mode, restoring the old one on exit."""

    def __init__(self, mode: bool):
        self.mode = mode
        self.prev = is_grad_enabled()
        _state.enabled = mode  # set_grad_enabled(False) works as a plain call too

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _state.enabled = self.prev
        return False

    def __call__(self, fn):
        """As a decorator (@set_grad_enabled(False)): undo the immediate switch made by the
        constructor and apply the mode only while fn runs, as torch does."""
        _state.enabled = self.prev
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*a, **k):
            with _GradMode(mode):
                return fn(*a, **k)
        return wrapper


class no_grad:
    """Disable gradient recording (context manager or decorator), as torch.no_grad."""
    _mode = False

    def __enter__(self):
        self.prev = is_grad_enabled()
        _state.enabled = self._mode

    def __exit__(self, *exc):
        _state.enabled = self.prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*a, **k):
            with type(self)():
                return fn(*a, **k)
        return wrapper


class enable_grad(no_grad):
    _mode = True


# ---- graph nodes ------------------------------------------------------------------------------
class AccumulateGrad:
    """The sink for a leaf tensor's gradient."""
    __slots__ = ("leaf", "__weakref__")

    def __init__(self, leaf):
        self.leaf = weakref.ref(leaf)

    name = "AccumulateGrad"
    next = ()


def edge_of(t):
    """Where the gradient of t goes: its grad_fn, its leaf accumulator, or nowhere."""
    if not t.requires_grad:
        return None
    if t.grad_fn is not None:
        return t.grad_fn
    acc = t._accum
    if acc is None:
        acc = t._accum = AccumulateGrad(t)
    return acc


class _Saved:
    """A tensor a VJP rule needs later, with the version it had when saved."""
    __slots__ = ("tensor", "version", "is_output")

    def __init__(self, t, is_output=False):
        self.version = t._version[0]
        self.is_output = is_output
        # An output is saved without its grad_fn (that would be a reference cycle) and
        # re-attached to this node when unpacked, as torch's SavedVariable does.
        self.tensor = t.detach() if is_output else t

    def unpack(self, node):
        t = self.tensor
        if t._version[0] != self.version:
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [{t.dtype!r} {list(t.shape)}], which is saved by {node.name}, "
                f"is at version {t._version[0]}; expected version {self.version} instead. Hint: "
                "replace the in-place operation (add_, mul_, +=, ...) by its out-of-place form.")
        if self.is_output:
            t = type(t)._alias(t, grad_fn=node)
        return t


class BackwardNode:
    __slots__ = ("prim", "attrs", "in_types", "next", "needs", "saved_in", "saved_out",
                 "freed", "retained")

    def __init__(self, prim, inputs, out, attrs, in_types):
        self.prim = prim
        self.attrs = attrs
        self.in_types = in_types
        self.next = tuple(edge_of(t) for t in inputs)
        self.needs = tuple(e is not None for e in self.next)
        self.saved_in = tuple(_Saved(t) for t in inputs) if "inputs" in prim.saves else None
        self.saved_out = _Saved(out, is_output=True) if "out" in prim.saves else None
        self.freed = False
        self.retained = None

    @property
    def name(self) -> str:
        return "".join(p.capitalize() for p in self.prim.name.split("_")) + "Backward"

    def __repr__(self) -> str:
        return f"<{self.name}>"

    def apply(self, g):
        if self.freed:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Saved intermediate values of the "
                "graph are freed when you call .backward() or autograd.grad(). Specify "
                "retain_graph=True if you need to backward through the graph a second time.")
        ins = (tuple(s.unpack(self) for s in self.saved_in) if self.saved_in is not None
               else (None,) * len(self.next))
        out = self.saved_out.unpack(self) if self.saved_out is not None else None
        ctx = VJPContext(ins, out, self.attrs, self.needs, self.in_types)
        grads = self.prim.vjp(ctx, g)
        if len(grads) != len(self.next):
            raise AssertionError(f"{self.name} returned {len(grads)} gradients for {len(self.next)} inputs")
        return grads

    def release(self):
        self.saved_in = self.saved_out = None
        self.freed = True


# ---- the engine -------------------------------------------------------------------------------
def _topo_order(roots):
    """Nodes reachable from roots, each before every node it sends gradients to."""
    seen, post = set(), []
    for r in roots:
        if r is None or id(r) in seen:
            continue
        seen.add(id(r))
        stack = [(r, iter(r.next))]
        while stack:
            node, it = stack[-1]
            for nxt in it:
                if nxt is not None and id(nxt) not in seen:
                    seen.add(id(nxt))
                    stack.append((nxt, iter(nxt.next)))
                    break
            else:
                stack.pop()
                post.append(node)
    post.reverse()
    return post


def _accumulate(grads, key, g):
    old = grads.get(key)
    grads[key] = g if old is None else old + g


def run_backward(outputs, grad_outputs, *, retain_graph, create_graph, inputs=None,
                 allow_unused=False):
    """The engine behind Tensor.backward and autograd.grad.

    With inputs=None, gradients accumulate into the .grad of every leaf reached; otherwise
    the gradients with respect to `inputs` are returned and no .grad is touched.
    """
    grads = {}
    roots = []
    for t, g in zip(outputs, grad_outputs):
        e = edge_of(t)
        if e is None:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        roots.append(e)
        _accumulate(grads, e, g)

    want = None
    if inputs is not None:
        want = {}
        for i, t in enumerate(inputs):
            if not isinstance(t, TensorLike) or not t.requires_grad:
                raise RuntimeError(f"autograd.grad: input {i} does not require grad")
            want.setdefault(edge_of(t), []).append(i)
        results = [None] * len(inputs)

    order = _topo_order(roots)
    with set_grad_enabled(create_graph):
        for node in order:
            g = grads.pop(node, None)
            if g is None:
                continue
            if want is not None and node in want:
                for i in want[node]:
                    results[i] = g
            if isinstance(node, AccumulateGrad):
                if want is None:
                    leaf = node.leaf()
                    if leaf is not None:
                        _accumulate_leaf(leaf, g, create_graph)
                continue
            if node.retained is not None:
                for ref in node.retained:
                    t = ref()
                    if t is not None:
                        t._grad = g if create_graph else g.detach()
            in_grads = node.apply(g)
            for e, gi in zip(node.next, in_grads):
                if e is not None and gi is not None:
                    _accumulate(grads, e, gi)
            if not retain_graph:
                node.release()

    if want is None:
        return None
    for i, r in enumerate(results):
        if r is None and not allow_unused:
            raise RuntimeError(f"One of the differentiated Tensors (input {i}) appears to not have "
                               "been used in the graph. Set allow_unused=True if this is the desired behavior.")
    return tuple(r if (r is None or create_graph) else r.detach() for r in results)


def _accumulate_leaf(leaf, g, create_graph):
    if leaf._grad is None:
        leaf._grad = g if create_graph else g.detach().clone()
    elif create_graph or leaf._grad.requires_grad:
        leaf._grad = leaf._grad + g
    elif not (leaf._grad.is_cuda or g.is_cuda):
        leaf._grad._data += g._data
        leaf._grad._version[0] += 1
    else:                       # cuda (or mixed devices: the add raises torch's device error)
        leaf._grad._data[...] = (leaf._grad.detach() + g.detach())._data
        leaf._grad._version[0] += 1


def _as_tuple(x):
    if x is None:
        return None
    return (x,) if isinstance(x, TensorLike) else tuple(x)


def _default_grads(outputs, grad_outputs):
    grad_outputs = _as_tuple(grad_outputs) or (None,) * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"grad_outputs has {len(grad_outputs)} entries for {len(outputs)} outputs")
    res = []
    for t, g in zip(outputs, grad_outputs):
        if g is None:
            if t.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g = t.new_ones(t.shape)
        elif tuple(g.shape) != tuple(t.shape):
            raise RuntimeError(f"Mismatch in shape: grad_output has a shape of {list(g.shape)} "
                               f"and output has a shape of {list(t.shape)}")
        elif g.dtype is not t.dtype:    # torch casts the seed to the output's dtype
            g = g.to(t.dtype)
        res.append(g)
    return res


def _no_escaped_tracers(tensors, what):
    for t in tensors:
        if getattr(t, "_value", None) is not None:
            mode.escaped(t, what)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False):
    """Accumulate d(tensors)/d(leaf) into each leaf's .grad (torch.autograd.backward)."""
    tensors = _as_tuple(tensors)
    trace = mode.active()
    if trace is not None:
        return trace.backward(tensors, _as_tuple(grad_tensors), create_graph)
    _no_escaped_tracers(tensors, "backward()")
    grads = _default_grads(tensors, grad_tensors)
    retain = create_graph if retain_graph is None else retain_graph
    run_backward(tensors, grads, retain_graph=retain, create_graph=create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Return d(outputs)/d(inputs) without touching .grad (torch.autograd.grad)."""
    outputs, inputs = _as_tuple(outputs), _as_tuple(inputs)
    trace = mode.active()
    if trace is not None:
        return trace.grad(outputs, inputs, _as_tuple(grad_outputs), allow_unused,
                          create_graph=create_graph)
    _no_escaped_tracers(tuple(outputs) + tuple(inputs), "autograd.grad()")
    grads = _default_grads(outputs, grad_outputs)
    retain = create_graph if retain_graph is None else retain_graph
    return run_backward(outputs, grads, retain_graph=retain, create_graph=create_graph,
                        inputs=inputs, allow_unused=allow_unused)
