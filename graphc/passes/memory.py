"""Memory planning: every intermediate buffer gets an offset in one arena.

Each kernel node is annotated with where its output lives:
  storage="arena", offset=N   an intermediate, at byte N of the graph's one arena
  storage="out"               a fresh buffer per call (returned to the user, or copied into
                              state afterwards)
  storage="state", target=S   the new value of state input %S, written into S's own buffer
                              in place (the state's old value has no reader left)
  storage="view"              a reshape: aliases its input's buffer, no memory of its own

Offsets are chosen greedy-by-size with best fit among buffers whose lifetimes overlap, aligned
to 64 bytes; a pointwise kernel whose input buffer dies at it, reading it element for element,
writes its output over that input (in-place reuse). Graph inputs are never written, except state
that the graph updates. `memory_report` gives naive bytes (every intermediate its own buffer),
the planned arena bytes and the lower bound (the largest sum of live bytes at any step);
`validate_plan` proves that no two buffers live at the same time overlap.
"""
from __future__ import annotations

from ..ir.graph import Graph

ALIGN = 64


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _elementwise_reader(kernel, input_index: int) -> bool:
    """Does the kernel read this input only element for element at its own output index (so
    writing the output over the input is safe)? Only pointwise kernels whose body uses the
    input in same-shaped elementwise ops qualify."""
    from ..ops.registry import PRIMITIVES
    if kernel.attrs.get("kind") != "pointwise":
        return False
    body = kernel.body
    v = body.inputs[input_index]
    if v.type.shape != kernel.out.type.shape or v.type.dtype.itemsize != kernel.out.type.dtype.itemsize:
        return False
    for n in body.nodes:
        if any(i is v for i in n.inputs):
            if PRIMITIVES[n.op].category != "elementwise" or n.out.type.shape != v.type.shape:
                return False
    return True


def _lifetimes(g: Graph):
    """value name -> (defining step, last step it is read), reads through views included."""
    step = {n.out.name: t for t, n in enumerate(g.nodes)}
    last = {}
    root = {}                                   # view -> the buffer it aliases
    for t, n in enumerate(g.nodes):
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
    outputs = {v.name for v in g.outputs}
    state_by_label = {v.label: v for v in g.inputs if v.kind == "state"}
    update_target = {}
    for lbl, v in g.updates:
        s = state_by_label.get(lbl)
        if s is not None and v.producer is not None and v.name not in update_target:
            update_target[v.name] = s
    taken_states = set()

    # 1. decide storage kinds
    arena = []                                  # kernels whose output lives in the arena
    for t, n in enumerate(g.nodes):
        if n.attrs.get("kind") == "view":
            n.attrs.update(storage="view")
            continue
        name = n.out.name
        s = update_target.get(name)
        if s is not None and name not in outputs and s.name not in taken_states and _can_write_state(g, t, n, s, last):
            n.attrs.update(storage="state", target=s.name)
            taken_states.add(s.name)
        elif name in outputs or name in update_target or name in _update_names(g):
            n.attrs.update(storage="out")
        else:
            arena.append(t)

    # 2. in-place reuse: an arena output takes over an arena input that dies at its kernel
    alloc_of = {}                               # kernel step -> allocation id
    allocs = []                                 # [size, start, end, members]
    for t in arena:
        n = g.nodes[t]
        size = n.out.type.nbytes
        reuse = None
        for k, v in enumerate(n.inputs):
            p = v.producer
            if p is None or root.get(v.name, v.name) != v.name:
                continue
            pt = step[v.name]
            if pt in alloc_of and last.get(v.name) == t and _elementwise_reader(n, k) \
                    and g.nodes[pt].out.type.nbytes == size and allocs[alloc_of[pt]][2] == t:
                reuse = alloc_of[pt]
                break
        end = last.get(n.out.name, t)
        if reuse is not None:
            allocs[reuse][2] = max(allocs[reuse][2], end)
            allocs[reuse][3].append(t)
            alloc_of[t] = reuse
        else:
            alloc_of[t] = len(allocs)
            allocs.append([size, t, end, [t]])

    # 3. offsets: largest first, best-fitting gap among time-overlapping allocations
    placed = []                                 # (offset, size, start, end)
    offset_of = {}
    for a in sorted(range(len(allocs)), key=lambda i: (-allocs[i][0], allocs[i][1])):
        size, start, end, _ = allocs[a]
        busy = sorted((o, o + _align(sz)) for o, sz, s, e in placed if not (e < start or end < s))
        best, best_gap, at = None, None, 0
        for lo, hi in busy:
            gap = lo - at
            if gap >= _align(size) and (best_gap is None or gap < best_gap):
                best, best_gap = at, gap
            at = max(at, hi)
        if best is None:
            best = at
        offset_of[a] = best
        placed.append((best, size, start, end))
    for t, a in alloc_of.items():
        g.nodes[t].attrs.update(storage="arena", offset=offset_of[a])
    return g


def _update_names(g):
    return {v.name for _, v in g.updates}


def _can_write_state(g, t, n, s, last):
    """May kernel n at step t write its output over state input s?"""
    if n.out.type != s.type:
        return False
    reads_after = last.get(s.name, -1) > t
    if reads_after:
        return False
    for k, v in enumerate(n.inputs):
        if v is s and not _elementwise_reader(n, k):
            return False
    # views of s read after t would see the new value
    for u in g.nodes[t + 1:]:
        if any(i is s for i in u.inputs):
            return False
    return True


def arena_bytes(g: Graph) -> int:
    return max([n.attrs["offset"] + _align(n.out.type.nbytes) for n in g.nodes
                if n.attrs.get("storage") == "arena"], default=0)


def memory_report(g: Graph) -> dict:
    """naive_bytes, arena_bytes and lower_bound_bytes of a planned graph."""
    step, last, root = _lifetimes(g)
    bufs = [(t, last.get(n.out.name, t), n.out.type.nbytes) for t, n in enumerate(g.nodes)
            if n.attrs.get("storage") == "arena"]
    naive = sum(b for _, _, b in bufs)
    lower = 0
    for t in range(len(g.nodes)):
        live = sum(b for s, e, b in bufs if s <= t <= e)
        lower = max(lower, live)
    return {"naive_bytes": naive, "arena_bytes": arena_bytes(g), "lower_bound_bytes": lower}


class PlanError(AssertionError):
    """A memory plan that would let two live buffers overlap."""


def validate_plan(g: Graph) -> Graph:
    """Check the plan: alignment, and no two arena buffers that are live at the same step
    share bytes, except an output written over an input that dies at that kernel and is read
    element for element; state written in place has no reader after its writer."""
    step, last, root = _lifetimes(g)
    bufs = []
    for t, n in enumerate(g.nodes):
        st = n.attrs.get("storage")
        if st is None:
            raise PlanError(f"kernel %{n.out.name} has no storage assigned")
        if st == "arena":
            off = n.attrs["offset"]
            if off % ALIGN:
                raise PlanError(f"%{n.out.name}: offset {off} is not {ALIGN}-byte aligned")
            bufs.append((t, last.get(n.out.name, t), off, off + n.out.type.nbytes, n))
        if st == "state":
            s = next(v for v in g.inputs if v.name == n.attrs["target"])
            if last.get(s.name, -1) > t:
                raise PlanError(f"%{n.out.name} overwrites state %{s.name}, which is read later")
    for i, (s1, e1, a1, b1, n1) in enumerate(bufs):
        for s2, e2, a2, b2, n2 in bufs[i + 1:]:
            if e1 < s2 or e2 < s1 or b1 <= a2 or b2 <= a1 or a1 == b1 or a2 == b2:
                continue
            # allowed: n2 starts exactly when n1 dies and overwrites it element for element
            first, second = (n1, n2) if s1 <= s2 else (n2, n1)
            fs, fe = (s1, e1) if first is n1 else (s2, e2)
            ss = s2 if second is n2 else s1
            k = next((k for k, v in enumerate(second.inputs) if v is first.out), None)
            if fe == ss and k is not None and (a1, b1) == (a2, b2) and _elementwise_reader(second, k):
                continue
            raise PlanError(f"buffers %{n1.out.name} [{a1}, {b1}) live steps {s1}..{e1} and "
                            f"%{n2.out.name} [{a2}, {b2}) live steps {s2}..{e2} overlap")
    return g
