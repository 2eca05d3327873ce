"""Guards: what must still hold for a trace to be reused. Captured tensors named by where the
function reaches them (closure, globals, modules' parameters and buffers, optimizers' state)
and guarded on that name still holding them; the Python values a trace read as constants;
the train/eval mode of modules; the shape, dtype and .grad of captured state. Each guard is a
(description, check) pair: the description is what explain() and the recompile log say."""
from __future__ import annotations

import inspect

from ..tensor import Tensor


def _scan_names(fn):
    """id(tensor) -> (label, guards) for tensors reachable by name from fn: its closure, its
    globals, modules' parameters and buffers, optimizers' state. `guards` are the
    (description, check) pairs that must hold for a trace capturing the tensor to stay valid:
    the global or closure variable still names the same object, the module attribute still
    holds the same tensor, the module is still in the same train/eval mode."""
    names = _Names()

    def add(t, label, guards):
        if isinstance(t, Tensor) and id(t) not in names:
            names[id(t)] = (label, guards)
            names.tensors.append(t)

    def walk(obj, label, guards):
        if isinstance(obj, type):      # a class (nn.Linear in a module's globals), not an instance
            return
        if isinstance(obj, Tensor):
            add(obj, label, guards)
        elif hasattr(obj, "named_parameters") and hasattr(obj, "named_buffers"):
            shown = label or type(obj).__name__
            modes = tuple(getattr(m, "training", None) for m in obj.modules())
            mode_guard = (f"module '{shown}' switched between train() and eval()",
                          lambda o=obj, m=modes: tuple(getattr(x, "training", None)
                                                       for x in o.modules()) == m)
            for kind, items in (("parameter", obj.named_parameters()), ("buffer", obj.named_buffers())):
                for n, p in items:
                    lbl = f"{label}.{n}" if label else n
                    attr_guard = (f"{kind} '{lbl}' was replaced by another tensor",
                                  lambda o=obj, n=n, p=p: _get_path(o, n) is p)
                    add(p, lbl, guards + [attr_guard, mode_guard])
            _module_slots(obj, label, guards, add, names)
        elif hasattr(obj, "param_groups") and hasattr(obj, "state"):
            if id(obj) not in names:            # the optimizer itself, for its guards' messages
                names[id(obj)] = (label or type(obj).__name__, guards)
            params = [p for g in obj.param_groups for p in g["params"]]
            names.tensors.extend(params)    # for their entry .grad, labelled elsewhere or not at all
            for i, p in enumerate(params):
                for k, v in obj.state.get(p, {}).items():
                    add(v, f"{label}.{_param_name(names, p, i)}.{k}", guards)

    target = fn
    if hasattr(fn, "named_parameters"):
        walk(fn, "", [])
        target = getattr(type(fn), "forward", fn)
    owner = getattr(fn, "__self__", None)
    if owner is not None:
        walk(owner, "self" if not hasattr(owner, "named_parameters") else "", [])
        if not hasattr(owner, "named_parameters"):
            for name, v in list(getattr(owner, "__dict__", {}).items()):
                if isinstance(v, Tensor) or hasattr(v, "named_parameters") or hasattr(v, "param_groups"):
                    walk(v, f"self.{name}", [(f"attribute 'self.{name}' now refers to a different object",
                                              lambda o=owner, n=name, v=v: getattr(o, n, None) is v)])
    code_fn = inspect.unwrap(getattr(target, "__func__", target))
    code = getattr(code_fn, "__code__", None)
    if code is not None and code_fn.__closure__:
        for name, cell in zip(code.co_freevars, code_fn.__closure__):
            try:
                v = cell.cell_contents
            except ValueError:
                continue
            if isinstance(v, Tensor) or hasattr(v, "named_parameters") or hasattr(v, "param_groups"):
                walk(v, name, [(f"closure variable '{name}' now refers to a different object",
                                lambda c=cell, v=v: _cell(c) is v)])
    g = getattr(code_fn, "__globals__", {})
    for name, v in list(g.items()):
        if isinstance(v, Tensor) or hasattr(v, "named_parameters") or hasattr(v, "param_groups"):
            walk(v, name, [(f"global '{name}' now refers to a different object",
                            lambda g=g, name=name, v=v: g.get(name) is v)])
    return names


def _module_slots(obj, label, guards, add, names):
    """What named_parameters/named_buffers do not show: a parameter or buffer slot holding None
    (Linear(bias=False), BatchNorm without running stats), which must still be None for the
    trace to hold, and a plain tensor attribute (self.mask = t), which must still be that
    tensor -- or a later `m.bias = Parameter(...)`, `self.mask = None` would reuse a stale trace."""
    for mname, m in obj.named_modules():
        prefix = f"{label}.{mname}" if label and mname else (label or mname)
        d = getattr(m, "__dict__", {})
        for kind in ("_parameters", "_buffers"):
            for n, v in list(d.get(kind, {}).items()):
                if v is None:
                    lbl = f"{prefix}.{n}" if prefix else n
                    names.none_guards.append((f"{kind[1:-1]} '{lbl}' was None when traced, now a tensor",
                                              lambda m=m, k=kind, n=n: m.__dict__[k].get(n) is None))
        for n, v in list(d.items()):
            if isinstance(v, Tensor):
                lbl = f"{prefix}.{n}" if prefix else n
                add(v, lbl, guards + [(f"attribute '{lbl}' now refers to a different object",
                                       lambda m=m, n=n, v=v: m.__dict__.get(n) is v)])


class _Names(dict):
    """id(tensor) -> (label, guards), and the tensors themselves (which keep the ids valid)."""

    def __init__(self):
        super().__init__()
        self.tensors = []
        self.none_guards = []   # slots that held None when traced (see _module_slots)


_STATIC_TYPES = (bool, int, float, complex, str, bytes, type(None))
_MISSING = object()


def _is_static(v, depth=0):
    if isinstance(v, _STATIC_TYPES):
        return True
    return isinstance(v, tuple) and depth < 2 and len(v) <= 16 and all(_is_static(x, depth + 1) for x in v)


def _same_value(a, b):
    return a is b or (type(a) is type(b) and a == b)


def _code_names(code):
    """The global names the code reads (not attribute names, which co_names also holds)."""
    import dis
    names = {ins.argval for ins in dis.get_instructions(code)
             if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(ins.argval, str)}
    for c in code.co_consts:
        if hasattr(c, "co_names"):          # nested functions, lambdas, comprehensions
            names |= _code_names(c)
    return names


class _PythonValues:
    """The guard on the Python values a trace read as constants: the scalar globals and closure
    variables the function (and the plain functions it calls, a few levels deep) refers to, and
    the scalar attributes of the object a bound method belongs to and of the modules it uses."""

    def __init__(self, fn):
        self.refs = []                      # (read() -> current value, what, value when traced)
        self.modules = []                   # (label, module, training flag of each submodule)
        self._seen = set()
        target = fn
        if hasattr(fn, "named_parameters"):
            self._object(fn, type(fn).__name__)
            target = getattr(type(fn), "forward", fn)
        owner = getattr(fn, "__self__", None)
        if owner is not None:
            self._object(owner, "self")
        self._function(inspect.unwrap(getattr(target, "__func__", target)), 0)

    def _function(self, f, depth):
        code = getattr(f, "__code__", None)
        if code is None or id(code) in self._seen:
            return
        self._seen.add(id(code))
        g = getattr(f, "__globals__", {})
        for name in sorted(_code_names(code)):
            if name in g:
                self._value(lambda g=g, n=name: g.get(n, _MISSING), f"global '{name}'", g[name], depth)
        for name, cell in zip(code.co_freevars, getattr(f, "__closure__", None) or ()):
            v = _cell(cell)
            self._value(lambda c=cell: _cell(c), f"closure variable '{name}'", v, depth)

    def _value(self, read, what, v, depth):
        if _is_static(v):
            self.refs.append((read, what, v))
        elif isinstance(v, type):
            return
        elif hasattr(v, "named_parameters") and hasattr(v, "modules"):
            self._object(v, what.split("'")[1])
        elif depth < 3 and inspect.isfunction(v) and not (v.__module__ or "").startswith("graphc"):
            self._function(v, depth + 1)

    def _object(self, obj, label):
        if id(obj) in self._seen:
            return
        self._seen.add(id(obj))
        objs = [(label, obj)]
        if hasattr(obj, "named_modules"):
            objs = [((f"{label}.{n}" if n else label), m) for n, m in obj.named_modules()]
            # every reachable module's train/eval mode, parameter-free ones (Dropout) included
            self.modules.append((label, obj, tuple(getattr(m, "training", None) for _, m in objs)))
        else:   # a plain object (the owner of a bound method): the modules it holds
            for name, v in list(getattr(obj, "__dict__", {}).items()):
                if hasattr(v, "named_modules") and not isinstance(v, type):
                    self._object(v, f"{label}.{name}")
        for lbl, o in objs:
            for name, v in list(getattr(o, "__dict__", {}).items()):
                if name != "training" and not name.startswith("__") and _is_static(v):
                    self.refs.append((lambda o=o, n=name: getattr(o, n, _MISSING),
                                      f"attribute '{lbl}.{name}'", v))

    def __call__(self):
        return all(_same_value(read(), v) for read, _, v in self.refs)

    def modes_unchanged(self):
        return all(tuple(getattr(m, "training", None) for m in obj.modules()) == modes
                   for _, obj, modes in self.modules)

    def describe_modes(self):
        for label, obj, modes in self.modules:
            for (n, m), was in zip(obj.named_modules(), modes):
                if getattr(m, "training", None) != was:
                    lbl = f"{label}.{n}" if n else label
                    now = "train()" if m.training else "eval()"
                    return (f"module '{lbl}' ({type(m).__name__}) switched between train() and eval() "
                            f"(now in {now} mode)")
            if tuple(getattr(m, "training", None) for m in obj.modules()) != modes:
                return f"module '{label}' changed its submodules or their train()/eval() mode"
        return "a module switched between train() and eval()"

    def describe(self):
        for read, what, v in self.refs:
            now = read()
            if not _same_value(now, v):
                now = "deleted" if now is _MISSING else repr(now)
                return f"{what} changed from {v!r} to {now} (python values are static in the graph)"
        return "a python value changed"


def _get_path(obj, path):
    for part in path.split("."):
        obj = getattr(obj, part, None)
    return obj


def _param_name(names, p, i):
    got = names.get(id(p))
    return got[0] if got else f"param{i}"


def _trace_guards(trace, names, arg_leaves):
    """The guards on the state a trace captured: each state input's shape, dtype and
    requires_grad, whether each .grad read was None, and the guards of the names found for
    captured tensors (`names`, from _scan_names)."""
    guards = []
    for t, v in trace.state:
        shape, dtype, req = tuple(t.shape), t.dtype, t.requires_grad
        lbl = v.label
        guards.append((lambda t=t, lbl=lbl, was=_describe_state(t): f"captured '{lbl}' changed from "
                       f"{was} to {_describe_state(t)}",
                       lambda t=t, s=shape, d=dtype, r=req: tuple(t.shape) == s and t.dtype is d
                       and t.requires_grad == r))
    arg_index = {id(trace.arg_of[k]): (i, trace.arg_values[k].label)
                 for i, k in zip(arg_leaves, trace.arg_of)}
    for tid, (owner, was_none) in trace.grad_reads.items():
        now = 'a tensor' if was_none else 'None'
        then = 'None' if was_none else 'a tensor'
        if tid in arg_index:
            k, lbl = arg_index[tid]
            guards.append((f"argument '{lbl}.grad' was {then} when traced, now {now}",
                           _wants_leaves(lambda leaves, k=k, w=was_none: (leaves[k]._grad is None) == w)))
        else:
            lbl = trace.label_for(owner)
            guards.append((f"'{lbl}.grad' was {then} when traced, now {now}",
                           lambda o=owner, w=was_none: (o._grad is None) == w))
    seen = set()
    for tid, (label, more) in names.items():
        for desc, check in more or ():
            if id(check) not in seen:
                seen.add(id(check))
                guards.append((desc, check))
    return guards


def _describe_state(t):
    return f"{t.dtype.name}{list(t.shape)}" + (" requiring grad" if t.requires_grad else "")


def _wants_leaves(check):
    check.wants_leaves = True      # called with the call's flattened arguments
    return check


def _cell(c):
    try:
        return c.cell_contents
    except ValueError:
        return None
