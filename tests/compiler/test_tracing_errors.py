"""What cannot become a static graph says so: data-dependent Python control flow and value
reads raise graphc.TraceError naming the user's file and line (and suggesting gc.where);
other errors raised while tracing carry a note naming the user's line."""
from __future__ import annotations

import inspect
import os

import numpy as np
import pytest

import graphc as gc
from graphc import tracing

HERE = os.path.basename(__file__)


def _line_of(fn, needle):
    """The line number in this file of the line of fn's source containing needle."""
    lines, start = inspect.getsourcelines(fn)
    for k, ln in enumerate(lines):
        if needle in ln:
            return start + k
    raise AssertionError(f"{needle!r} not in {fn.__name__}")


# ---- data-dependent control flow and value reads -------------------------------------------------

def if_on_tensor(x):
    if x.sum() > 0:             # MARK
        return x
    return -x


def while_on_tensor(x):
    while x.max() > 1:          # MARK
        x = x / 2
    return x


def and_on_tensor(x):
    return (x.sum() > 0) and x  # MARK


def item(x):
    return x.sum().item() * x   # MARK


def float_of(x):
    return float(x.sum()) * x   # MARK


def int_of(x):
    return x * int(x.argmax())  # MARK


def numpy_of(x):
    return x.numpy()            # MARK


def tolist_of(x):
    return x.tolist()           # MARK


def asarray_of(x):
    return np.asarray(x)        # MARK


def mask_index(x):
    return x[x > 0]             # MARK


DATA_DEPENDENT = [if_on_tensor, while_on_tensor, and_on_tensor, item, float_of, int_of, numpy_of,
                  tolist_of, asarray_of, mask_index]


@pytest.mark.parametrize("fn", DATA_DEPENDENT, ids=lambda f: f.__name__)
def test_data_dependent_python_raises_trace_error_naming_the_line(fn):
    x = gc.tensor([1.0, -2.0, 3.0])
    fn(x)                                        # fine eagerly
    with pytest.raises(gc.TraceError) as e:
        gc.compile(fn)(x)
    msg = str(e.value)
    assert f"{HERE}:{_line_of(fn, '# MARK')}" in msg, msg
    assert "gc.where" in msg
    assert tracing.active() is None              # the failed trace left nothing behind
    assert isinstance(e.value, RuntimeError)


def test_trace_error_inside_a_helper_names_the_helper_line():
    def helper(t):
        return t if t.mean() > 0 else -t         # MARK

    def f(x):
        return helper(x * 2) + 1

    with pytest.raises(gc.TraceError, match=f"{HERE}:{_line_of(helper, '# MARK')}"):
        gc.compile(f)(gc.ones(3))


def test_the_gc_where_rewrite_compiles():
    def f(x):
        return gc.where(x.sum() > 0, x, -x)

    c = gc.compile(f)
    for x in (gc.tensor([1.0, -2.0, 3.0]), gc.tensor([-1.0, -2.0, 3.0])):
        np.testing.assert_allclose(c(x).numpy(), f(x).numpy())
    assert len(c.traces) == 1


# ---- other errors raised while tracing -----------------------------------------------------------

def test_shape_error_carries_a_note_naming_the_user_line():
    w = gc.ones(4, 5)

    def f(x):
        h = x * 2
        return h @ w                             # MARK

    with pytest.raises(RuntimeError, match="cannot be multiplied") as e:
        gc.compile(f)(gc.ones(2, 3))
    notes = "\n".join(getattr(e.value, "__notes__", []))
    assert f"{HERE}:{_line_of(f, '# MARK')}" in notes and "while tracing 'f'" in notes
    assert "h @ w" in notes
    assert tracing.active() is None


def test_broadcast_error_in_a_module_call_names_the_user_line():
    lin = gc.nn.Linear(3, 2)

    def f(x):
        return lin(x).sum()                      # MARK

    with pytest.raises(RuntimeError) as e:
        gc.compile(f)(gc.ones(2, 4))
    notes = "\n".join(getattr(e.value, "__notes__", []))
    assert f"{HERE}:{_line_of(f, '# MARK')}" in notes


def test_random_creation_inside_a_compiled_function():
    """Random creation is never silently frozen into a constant: it is traced (README: random
    numbers do trace) and draws exactly the numbers eager draws, new ones each call."""
    def f(x):
        return x + gc.randn(3)

    c = gc.compile(f)
    gc.manual_seed(7)
    a, b = c(gc.zeros(3)), c(gc.zeros(3))      # a TraceError here is a failure
    gc.manual_seed(7)
    ea, eb = f(gc.zeros(3)), f(gc.zeros(3))
    np.testing.assert_allclose(a.numpy(), ea.numpy(), rtol=1e-6)
    np.testing.assert_allclose(b.numpy(), eb.numpy(), rtol=1e-6)
    assert not np.allclose(a.numpy(), b.numpy())  # the generator state advances per call


def test_inplace_update_of_a_view_raises():
    def f(x):
        v = x.reshape(3, 1)
        v.add_(1)                                # MARK
        return v

    with pytest.raises(gc.TraceError, match=f"view.*{HERE}:{_line_of(f, '# MARK')}"):
        gc.compile(f)(gc.zeros(3))


def test_indexed_assignment_raises():
    def f(x):
        x[0] = 1.0                               # MARK
        return x

    with pytest.raises(gc.TraceError, match=f"{HERE}:{_line_of(f, '# MARK')}"):
        gc.compile(f)(gc.zeros(3))


def test_requires_grad_creation_inside_raises():
    with pytest.raises(gc.TraceError, match="requires_grad=True"):
        gc.compile(lambda x: x + gc.zeros(3, requires_grad=True))(gc.zeros(3))


def test_inplace_on_leaf_requiring_grad_raises_as_eagerly():
    w = gc.ones(3, requires_grad=True)

    def f(x):
        w.add_(x)
        return w

    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        f(gc.ones(3))
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        gc.compile(f)(gc.ones(3))

    def g(x):
        x.add_(1)
        return x
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        gc.compile(g)(gc.ones(3, requires_grad=True))


def test_escaped_tracer_is_reported():
    leak = []

    @gc.compile
    def f(x):
        y = x * 2
        leak.append(y)
        return y

    f(gc.ones(2))

    @gc.compile
    def g(x):
        return x + leak[0]

    with pytest.raises(gc.TraceError, match="escaped"):
        g(gc.ones(2))


def test_backward_into_eager_history_of_an_argument_raises():
    def f(x):
        loss = (x ** 2).sum()
        loss.backward()
        return loss

    a = gc.ones(2, requires_grad=True)
    with pytest.raises(gc.TraceError, match="non-leaf tensor that requires grad"):
        gc.compile(f)(a * 2)
    assert a.grad is None


def test_backward_of_a_non_scalar_or_non_differentiable_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        gc.compile(lambda x: x.sum().backward())(gc.ones(2))
    w = gc.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        gc.compile(lambda x: (x * w).backward())(gc.ones(2))


def test_errors_do_not_poison_the_cache():
    state = {"fail": True}

    def f(x):
        if state["fail"]:
            raise ValueError("boom")
        return x + 1

    c = gc.compile(f)
    with pytest.raises(ValueError, match="boom"):
        c(gc.ones(2))
    state["fail"] = False
    np.testing.assert_allclose(c(gc.ones(2)).numpy(), [2.0, 2.0])
    assert tracing.active() is None


def _leak_a_tracer():
    leak = []

    @gc.compile
    def f(x):
        y = x * 2
        leak.append(y)
        return y

    f(gc.ones(3))
    return leak[0]


@pytest.mark.parametrize("use", [
    lambda t: t + 1, lambda t: gc.exp(t), lambda t: t.sum(), lambda t: gc.ones(3) * t,
    lambda t: t.reshape(3, 1), lambda t: t[0], lambda t: t.numpy(), lambda t: t.item(),
    lambda t: t.add_(1), lambda t: gc.ones(3).copy_(t), lambda t: gc.compile(lambda a: a * 2)(t),
    lambda t: t.backward(gc.ones(3)), lambda t: gc.autograd.grad(t.sum(), t)],
    ids=["add", "exp", "sum", "rmul", "reshape", "index", "numpy", "item", "add_", "copy_into",
         "compiled-arg", "backward", "autograd-grad"])
def test_escaped_tracer_used_eagerly_raises_trace_error(use):
    t = _leak_a_tracer()
    with pytest.raises(gc.TraceError, match="tracer escaped the compiled function"):
        use(t)
