"""Memory planning: every intermediate buffer gets an offset in one arena.

Each kernel node gets `buffers`, one `Buffer` record (ir/buffer.py) per output value, saying
where it lives (the IR text prints each as the string on the left):
  "arena+N"   Buffer("arena", offset=N): an intermediate, at byte N of the graph's one arena
  "out"       Buffer("out"): a fresh buffer per call (returned to the caller, or copied into
              state after)
  "state:S"   Buffer("state", state=S): the new value of state input %S, written into S's own
              buffer in place (every reader of the old value has run, and the kernel reads S
              element for element)
  "view"      Buffer("view"): a reshape: aliases its input's buffer, no memory of its own

Offsets are chosen greedy-by-size with best fit among buffers whose lifetimes overlap, aligned
to 64 bytes; a kernel output whose input buffer dies at that kernel, read element for element,
is written over that input (in-place reuse). Graph inputs are never written, except state that
the graph updates. `memory_report` gives naive bytes (every intermediate its own buffer), the
planned arena bytes and the lower bound (the largest sum of live intermediate bytes at any
step of the schedule); `validate_plan` proves that no two buffers live at once overlap.
"""
from __future__ import annotations

from ..ir.buffer import Buffer
from ..ir.graph import Graph

ALIGN = 64


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def elementwise_reader(kernel, input_index: int, out) -> bool:
    """Does the kernel read this input only element for element at the index where it writes
    `out` (so `out` may overwrite the input)? True for pointwise kernels, and matmul epilogues,
    in which every value computed from the input -- not only its direct users: another output
    may read a permutation of a value derived from it -- comes from elementwise ops of out's
    shape. Then iteration i reads the input at i alone, before it stores anything at i."""
    from ..ops.registry import PRIMITIVES
    if kernel.attrs.get("kind") not in ("pointwise", "matmul"):
        return False
    if kernel.attrs.get("kind") == "matmul":
        # the GEMM result is written before the epilogue reads its inputs: it may not overwrite one
        written = kernel.body.outputs[kernel.outs.index(out)] if out in kernel.outs else None
        if written is not None and written.producer is not None and written.producer.op == "matmul":
            return False
    v = kernel.body.inputs[input_index]
    if v.type.shape != out.type.shape or v.type.dtype.itemsize != out.type.dtype.itemsize:
        return False
    derived = {v.name}
    for n in kernel.body.nodes:                 # body nodes are in order: one forward sweep
        if any(i.name in derived for i in n.inputs):
            if PRIMITIVES[n.op].category != "elementwise" or n.out.type.shape != v.type.shape:
                return False
            derived.add(n.out.name)
    return True


def _lifetimes(g: Graph):
    """(step of each value's definition, last step each buffer is read, view -> aliased value)."""
    step = {}
    last, root = {}, {}
    for t, n in enumerate(g.nodes):
        for v in n.outs:
            step[v.name] = t
        if n.attrs.get("kind") == "view":
            src = n.inputs[0].name
            root[n.out.name] = root.get(src, src)
        for v in n.inputs:
            r = root.get(v.name, v.name)
            last[r] = max(last.get(r, -1), t)
    end = len(g.nodes)
    for v in list(g.outputs) + [v for _, v in g.updates]:
        r = root.get(v.name, v.name)
        last[r] = end
    return step, last, root


def plan_memory(graph: Graph) -> Graph:
    g = graph.copy()
    step, last, root = _lifetimes(g)
    returned = {v.name for v in g.outputs}
    updated = {v.name for _, v in g.updates}
    state_by_label = {v.label: v for v in g.inputs if v.kind == "state"}
    target_of = {}
    for lbl, v in g.updates:
        s = state_by_label.get(lbl)
        if s is not None and v.producer is not None and v.name not in target_of:
            target_of[v.name] = s
    taken = set()
    where = {}                                  # value name -> Buffer (arena filled below)
    allocs, alloc_of = [], {}                   # [size, start, end]; value name -> alloc index
    for t, n in enumerate(g.nodes):
        if n.attrs.get("kind") == "view":
            where[n.out.name] = Buffer("view")
            continue
        claimed = set()                         # input allocations an output of n overwrites
        for v in n.outs:
            s = target_of.get(v.name)
            if (s is not None and v.name not in returned and s.name not in taken
                    and _can_write_state(g, t, n, v, s, last)):
                where[v.name] = Buffer("state", state=s.name)
                taken.add(s.name)
            elif v.name in returned or v.name in updated:
                where[v.name] = Buffer("out")
            else:
                where[v.name] = None            # arena: offset decided below
                end = last.get(v.name, t)
                reuse = _reusable_input(g, n, v, t, last, root, alloc_of, allocs, claimed)
                if reuse is not None:
                    claimed.add(reuse)
                    allocs[reuse][2] = max(allocs[reuse][2], end)
                    alloc_of[v.name] = reuse
                else:
                    alloc_of[v.name] = len(allocs)
                    allocs.append([v.type.nbytes, t, end])
    offsets = _place(allocs)
    for name, a in alloc_of.items():
        where[name] = Buffer("arena", offset=offsets[a])
    for n in g.nodes:
        n.attrs["buffers"] = tuple(where[v.name] for v in n.outs)
    g.level = "planned"
    return g


def _reusable_input(g, n, v, t, last, root, alloc_of, allocs, claimed):
    """An arena allocation of an input of n that dies at n and that v may overwrite -- one
    that no other output of n has claimed already (two outputs in one buffer would overlap)."""
    for k, x in enumerate(n.inputs):
        if x.name not in alloc_of or root.get(x.name, x.name) != x.name:
            continue
        a = alloc_of[x.name]
        if (a not in claimed and last.get(x.name) == t and allocs[a][2] == t
                and allocs[a][0] == v.type.nbytes and elementwise_reader(n, k, v)):
            return a
    return None


def _place(allocs):
    """Offsets for the allocations [size, start, end]: the tightest of a few greedy orders
    (largest first, longest-lived first, earliest first, largest area first), each placing
    an allocation in the best-fitting gap among those alive at the same time."""
    orders = [
        lambda i: (-allocs[i][0], allocs[i][1]),
        lambda i: (-(allocs[i][2] - allocs[i][1]), -allocs[i][0], allocs[i][1]),
        lambda i: (allocs[i][1], -allocs[i][0]),
        lambda i: (-allocs[i][0] * (allocs[i][2] - allocs[i][1] + 1), allocs[i][1]),
    ]
    best = None
    for key in orders:
        offsets = _place_in_order(allocs, sorted(range(len(allocs)), key=key))
        top = max((offsets[a] + _align(allocs[a][0]) for a in offsets), default=0)
        if best is None or top < best[0]:
            best = (top, offsets)
    return best[1]


def _place_in_order(allocs, order):
    placed, offsets = [], {}
    for a in order:
        size, start, end = allocs[a]
        busy = sorted((o, o + _align(sz)) for o, sz, s, e in placed if not (e < start or end < s))
        best, best_gap, at = None, None, 0
        for lo, hi in busy:
            gap = lo - at
            if gap >= _align(size) and (best_gap is None or gap < best_gap):
                best, best_gap = at, gap
            at = max(at, hi)
        offsets[a] = at if best is None else best
        placed.append((offsets[a], size, start, end))
    return offsets


def _can_write_state(g, t, n, v, s, last):
    """May kernel n (at step t) write value v over state input s?"""
    if v.type != s.type or last.get(s.name, -1) > t:
        return False
    return all(elementwise_reader(n, k, v) for k, x in enumerate(n.inputs) if x is s)


def _buffers(g):
    for t, n in enumerate(g.nodes):
        bufs = n.attrs.get("buffers")
        for k, v in enumerate(n.outs):
            b = bufs[k] if bufs is not None and k < len(bufs) else None
            try:
                b = None if b is None else Buffer.of(b)
            except ValueError as e:
                raise PlanError(f"%{v.name}: {e}") from None
            yield t, n, v, b


def arena_bytes(g: Graph) -> int:
    return max([b.offset + _align(v.type.nbytes) for _, _, v, b in _buffers(g)
                if b is not None and b.kind == "arena"], default=0)


def memory_report(g: Graph) -> dict:
    """The planned graph's memory, measured from its annotations:

    naive_bytes        what running it without a planner takes: every value a kernel writes,
                       except those returned to the caller, in a buffer of its own (new state
                       values included: without the planner they are computed aside, then copied)
    arena_bytes        the one arena holding every intermediate
    lower_bound_bytes  the largest sum of arena buffers alive at any one step: no packing of
                       this schedule's intermediates can use less
    fresh_bytes        buffers allocated per call besides the arena: returned values, and new
                       state values that could not be written in place
    """
    step, last, root = _lifetimes(g)
    returned = {v.name for v in g.outputs}
    bufs, naive, fresh = [], 0, 0
    for t, _, v, b in _buffers(g):
        if b is not None and b.kind == "view":
            continue
        if v.name not in returned:
            naive += v.type.nbytes
        if b is not None and b.kind == "arena":
            bufs.append((t, last.get(v.name, t), v.type.nbytes))
        elif b is not None and b.kind == "out":
            fresh += v.type.nbytes
    lower = max([sum(sz for s, e, sz in bufs if s <= t <= e) for t in range(len(g.nodes))], default=0)
    return {"naive_bytes": naive, "arena_bytes": arena_bytes(g), "lower_bound_bytes": lower,
            "fresh_bytes": fresh}


class PlanError(AssertionError):
    """A memory plan that would let two live buffers overlap, or write state too early."""


def validate_plan(g: Graph) -> Graph:
    """Prove the plan safe: every output has a buffer, arena offsets are aligned, no two arena
    buffers alive at the same step share a byte -- except an output written over an input
    that dies at that kernel, read element for element -- and state written in place has no
    reader after its writer."""
    step, last, root = _lifetimes(g)
    arena = []
    for t, n, v, b in _buffers(g):
        if b is None:
            raise PlanError(f"%{v.name} has no buffer assigned")
        if b.kind == "arena":
            off = b.offset
            if off % ALIGN:
                raise PlanError(f"%{v.name}: offset {off} is not {ALIGN}-byte aligned")
            if v.type.nbytes:
                arena.append((t, last.get(v.name, t), off, off + v.type.nbytes, n, v))
        elif b.kind == "state":
            s = next((x for x in g.inputs if x.name == b.state and x.kind == "state"), None)
            if s is None:
                raise PlanError(f"%{v.name} is written into %{b.state}, which is not a state input")
            if last.get(s.name, -1) > t:
                raise PlanError(f"%{v.name} overwrites state %{s.name}, which is read later")
    for i, (s1, e1, a1, b1, n1, v1) in enumerate(arena):
        for s2, e2, a2, b2, n2, v2 in arena[i + 1:]:
            if e1 < s2 or e2 < s1 or b1 <= a2 or b2 <= a1:
                continue
            (fs, fe, fn, fv), (ss, sn, sv) = ((s1, e1, n1, v1), (s2, n2, v2)) if s1 <= s2 else \
                ((s2, e2, n2, v2), (s1, n1, v1))
            k = next((k for k, x in enumerate(sn.inputs) if x is fv), None)
            if fe == ss and k is not None and (a1, b1) == (a2, b2) and elementwise_reader(sn, k, sv):
                continue
            raise PlanError(f"buffers %{v1.name} [{a1}, {b1}) live at steps {s1}..{e1} and "
                            f"%{v2.name} [{a2}, {b2}) live at steps {s2}..{e2} overlap")
    return g
