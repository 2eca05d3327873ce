"""The kernel contract every native backend implements, checked in one place.

A backend runs fused, memory-planned graphs: every node a `kernel` with `buffers`; a view is
one reshape; an opaque kernel one fold or scatter_add; a matmul kernel one matmul of kernel
inputs plus an elementwise epilogue over its output shape; a reduction kernel's reductions
share one (shape, axes) space (the fusion pass guarantees the rest: see fusion._row_aligned).

Elementwise primitives are lowered by each code generator's rule table (rule_table); one with
no rule on a backend but a decomposition (ops/registry.py) is expanded inside the kernel body
before codegen (check_kernel), and one with neither fails compiling, naming the op, the
backend and the user's source line.
"""
from __future__ import annotations

from ..ops.registry import PRIMITIVES

# The primitives both code generators lower structurally -- by kernel templates and index maps
# rather than per-op scalar rules: what they implement, so named here (a new movement or
# reduction primitive is not lowered until a generator handles it and it is added).
REDUCTIONS = ("sum", "max", "argmax")
MOVEMENT = ("broadcast_to", "reshape", "permute", "slice", "pad", "concat", "unfold")
SOURCES = ("iota", "full", "constant", "uniform", "take_along_axis")
OPAQUE_OPS = ("scatter_add", "fold")
STRUCTURAL = REDUCTIONS + MOVEMENT + SOURCES + OPAQUE_OPS + ("matmul",)


def strides(shape):
    """Row-major strides, in elements, of a buffer of `shape` (both code generators index so)."""
    s, acc = [], 1
    for n in reversed(shape):
        s.append(acc)
        acc *= n
    return s[::-1]


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def lowered(elementwise):
    """The primitives a native backend lowers: its elementwise rule table's and STRUCTURAL."""
    return set(elementwise) | set(STRUCTURAL)


def rule_table(backend):
    """A code generator's table of elementwise rules, primitive name -> rule, and the decorator
    that fills it: `@rule("exp", "log")` above a function registers it for both primitives
    (llvm/scalar.py, cuda/scalar.py). A primitive has one rule per backend."""
    rules = {}

    def rule(*names):
        def register(fn):
            for name in names:
                if name in rules:
                    raise ValueError(f"{backend}: a second scalar rule for {name!r}")
                rules[name] = fn
            return fn
        return register
    return rules, rule


def reduction_space(n):
    """(input shape, sorted reduced axes) of a reduction node."""
    axes = (n.attrs["axis"],) if n.op == "argmax" else tuple(n.attrs["axes"])
    return tuple(n.inputs[0].type.shape), tuple(sorted(axes))


def concat_pieces(node):
    """A concat's non-empty operands along its axis: [(operand, offset, size)]; an output index
    i along the axis reads operand x at i - offset when offset <= i < offset + size."""
    axis, off, pieces = node.attrs["axis"], 0, []
    for x in node.inputs:
        n = x.type.shape[axis]
        if n:
            pieces.append((x, off, n))
        off += n
    return pieces


def evaluate(expand, key, cache, v, idx):
    """The value of body value `v` at index `idx`, computed with an explicit stack.

    Both code generators compute a kernel body's value at an index by walking the body graph
    from an output back to its inputs. Done by recursion, that walk is as deep as the longest
    chain of fused ops (a few hundred ops exhaust Python's stack: `x = x * 1.0001 + 0.001`
    3000 times), so it runs here as a loop over suspended generators instead:

      expand(v, idx)  a generator that yields (operand value, index) for each operand it needs,
                      is sent that operand's value, and returns v's value at idx; it emits the
                      same code, in the same order, as the recursive version would
      key(v, idx)     the memo key of a (value, index) pair
      cache           key -> (value's result, idx): a point's values are computed once; idx is
                      kept so that keys built from ids stay unique while the cache lives

    Every result is cached, leaves too, as the recursive memoised walk did."""
    k = key(v, idx)
    hit = cache.get(k)
    if hit is not None:
        return hit[0]
    stack = [(k, idx, expand(v, idx))]
    sent = None
    while True:
        k, i, gen = stack[-1]
        try:
            x, j = gen.send(sent)
        except StopIteration as done:
            stack.pop()
            cache[k] = (done.value, i)
            if not stack:
                return done.value
            sent = done.value
            continue
        kj = key(x, j)
        hit = cache.get(kj)
        if hit is not None:
            sent = hit[0]
        else:
            stack.append((kj, j, expand(x, j)))
            sent = None


def matmul_node(k):
    """The one matmul node of a matmul kernel."""
    return next(n for n in k.body.nodes if n.op == "matmul")


def epilogue_reads_product_pointwise(k, elementwise):
    """Does matmul kernel k's epilogue read the product only at the index it writes?

    True when every body value computed from the product reaches the outputs through
    elementwise ops alone (`elementwise`: the backend's elementwise ops) and every output has
    the product's shape: the epilogue's value at output index p then needs the product at p
    and nowhere else, so it can run where the product element is computed (cuda: in the GEMM's
    store, from the accumulator register; llvm: block by block after each thread's GEMM rows).
    A movement op anywhere downstream of the product (permute / transpose, broadcast, reshape,
    slice, pad, ...) maps the output index to another index of the product -- for
    (x - x @ y).t() the output at [i, j] needs the product at [j, i] -- and then the product has
    to be materialised first and read through the index maps (cuda: scratch and a second,
    pointwise launch; llvm: its epilogue loop always reads the product from memory)."""
    mm = matmul_node(k)
    downstream = {mm.out.name}
    for n in k.body.nodes:              # topological order
        if n is not mm and any(x.name in downstream for x in n.inputs):
            if n.op not in elementwise:
                return False
            downstream.add(n.out.name)
    shape = tuple(mm.out.type.shape)
    return all(tuple(o.type.shape) == shape for o in k.body.outputs)


def unsupported(backend, kernel, op, why="", loc=None):
    return NotImplementedError(f"{backend} backend: kernel %{kernel.out.name} ({kernel.attrs.get('kind')}): "
                               f"op {op!r} is not supported" + (f": {why}" if why else "")
                               + (f" (at {loc})" if loc else ""))


MAX_EXPANSIONS = 8      # rounds of decomposition inside one kernel body (a decomposition may use
                        # another primitive the backend lacks, which has its own)


def expand_decompositions(body, lowered):
    """A copy of kernel body `body` in which every node whose primitive is not in `lowered`
    (the ops the backend generates) and has a decomposition is replaced by the decomposition's
    primitives, traced on the node's inputs; None when there is nothing to expand. The new
    nodes keep the node's source location (the user's line)."""
    from ..ir.graph import Graph
    from ..tracing import Trace, tracing
    from .. import autograd as ag

    def expandable(n):
        p = PRIMITIVES.get(n.op)
        return n.op not in lowered and p is not None and p.decomposition is not None

    if not any(expandable(n) for n in body.nodes):
        return None
    for _ in range(MAX_EXPANSIONS):
        g = Graph(body.name)
        env = {v.name: g.add_input(v.type, v.kind, v.label, name=v.name) for v in body.inputs}
        tr = Trace(g)
        for n in body.nodes:
            ins = [env[i.name] for i in n.inputs]
            if not expandable(n):
                env[n.out.name] = g.add_node(n.op, ins, n.attrs, n.out.type, name=n.out.name, loc=n.loc)
                continue
            first = len(g.nodes)
            with tracing(tr), ag.no_grad():
                res = PRIMITIVES[n.op].decomposition(*[tr.tracer(v) for v in ins], **n.attrs)
            res = tr.value_of(res)
            if len(g.inputs) != len(body.inputs) or res.type != n.out.type:
                raise NotImplementedError(f"{n.op}'s decomposition reads a tensor from outside its "
                                          f"operands or returns {res.type}, not {n.out.type}")
            for m in g.nodes[first:]:
                m.loc = n.loc
            env[n.out.name] = res
        g.outputs = [env[v.name] for v in body.outputs]
        body = g
        if not any(expandable(n) for n in body.nodes):
            return body
    raise NotImplementedError(f"decompositions still expanding after {MAX_EXPANSIONS} rounds")


def check_kernel(k, backend, elementwise, check_reduction=None):
    """Raise NotImplementedError naming the kernel and op for anything outside the contract.

    elementwise: the elementwise ops the backend generates; check_reduction(node) may return a
    reason to refuse one reduction node (e.g. max of bool)."""
    kind = k.attrs.get("kind")
    if k.op != "kernel" or k.body is None:
        raise NotImplementedError(f"{backend} backend: node %{k.out.name} = {k.op}(...) is not a kernel; "
                                  f"the {backend} backend runs fused, memory-planned graphs")
    if "buffers" not in k.attrs:
        raise NotImplementedError(f"{backend} backend: kernel %{k.out.name} has no `buffers`: "
                                  "the graph is not memory-planned")
    nodes = k.body.nodes
    if kind == "view":
        if [n.op for n in nodes] != ["reshape"]:
            raise unsupported(backend, k, nodes[0].op if nodes else "?", "a view kernel must be one reshape")
        return
    if kind == "opaque":
        if len(nodes) != 1 or nodes[0].op not in OPAQUE_OPS:
            raise unsupported(backend, k, ",".join(n.op for n in nodes), "opaque kernels run fold or scatter_add")
        return
    allowed = set(elementwise) | set(MOVEMENT) | set(SOURCES)
    if kind == "reduction":
        allowed |= set(REDUCTIONS)
    elif kind == "matmul":
        allowed.add("matmul")
    expanded = expand_decompositions(k.body, allowed)
    if expanded is not None:        # the kernel node's body, in place: it computes the same values
        k.body = expanded
        nodes = expanded.nodes
    if kind == "reduction":
        reds = [n for n in nodes if n.op in REDUCTIONS]
        spaces = {reduction_space(n) for n in reds}
        if len(spaces) != 1:
            raise unsupported(backend, k, "sum/max", f"reductions over different spaces {sorted(spaces)}")
        for r in reds:
            why = check_reduction(r) if check_reduction else None
            if why:
                raise unsupported(backend, k, r.op, why)
    elif kind == "matmul":
        mms = [n for n in nodes if n.op == "matmul"]
        if len(mms) != 1:
            raise unsupported(backend, k, "matmul", "a matmul kernel holds exactly one matmul")
        if any(v.producer is not None for v in mms[0].inputs):
            raise unsupported(backend, k, "matmul", "operands must be kernel inputs (materialised buffers)")
    elif kind != "pointwise":
        raise unsupported(backend, k, "kernel", f"unknown kernel kind {kind!r}")
    for n in nodes:
        if n.op not in allowed:
            raise unsupported(backend, k, n.op, f"the {backend} backend has no rule for it and it has no "
                              "decomposition", loc=n.loc)
    shapes = {tuple(o.type.shape) for o in k.body.outputs}
    if kind in ("pointwise", "matmul") and len(shapes) > 1:
        raise unsupported(backend, k, "multi-output", f"outputs of different shapes {sorted(shapes)}")
