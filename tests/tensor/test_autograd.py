"""The eager autograd tape: backward, .grad accumulation, retain_graph, grad mode, in-place
ops and version counters, autograd.grad options, retain_grad, and graphc.grad/value_and_grad."""
import numpy as np
import pytest

import graphc as gc


def arr(x):
    return np.asarray(x.detach().numpy() if isinstance(x, gc.Tensor) else x)


def close(a, b, **kw):
    np.testing.assert_allclose(arr(a), arr(b), **kw)


# ---- backward ------------------------------------------------------------------------------------------
def test_backward_scalar_and_leaf_grads():
    x = gc.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = gc.tensor(2.0, requires_grad=True)
    y = (w * x * x).sum()
    assert y.requires_grad and y.grad_fn is not None and not y.is_leaf
    assert x.is_leaf and w.is_leaf
    y.backward()
    close(x.grad, [4.0, 8.0, 12.0])
    close(w.grad, 14.0)
    assert x.grad.grad_fn is None and not x.grad.requires_grad
    assert x.grad.dtype is gc.float32


def test_backward_with_gradient_argument():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    y.backward(gc.tensor([1.0, 10.0]))
    close(x.grad, [3.0, 30.0])
    z = x.exp()
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        z.backward()
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        (x * 2).backward(gc.ones(3))


def test_backward_on_non_requiring_tensor_raises():
    x = gc.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="does not require grad and does not have a grad_fn"):
        x.sum().backward()


def test_grad_accumulates_over_two_backwards():
    x = gc.tensor([1.0, -1.0], requires_grad=True)
    (x * x).sum().backward()
    g1 = x.grad
    (x * 3).sum().backward()
    close(x.grad, [2.0 + 3.0, -2.0 + 3.0])
    # accumulation is in place into the same .grad tensor (as torch)
    assert x.grad is g1
    x.grad = None
    (x * 5).sum().backward()
    close(x.grad, [5.0, 5.0])


def test_grad_setter_checks():
    x = gc.zeros(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="different size"):
        x.grad = gc.zeros(3)
    with pytest.raises(TypeError):
        x.grad = [1.0, 2.0]
    x.grad = gc.ones(2)
    (x * 2).sum().backward()
    close(x.grad, [3.0, 3.0])


def test_shared_subexpression_and_diamond():
    x = gc.tensor(1.5, requires_grad=True)
    a = x * 2
    b = a.exp() + a.sin() + a * a
    b.backward()
    v = 3.0
    close(x.grad, 2 * (np.exp(v) + np.cos(v) + 2 * v))


def test_multiple_outputs_backward():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    y1, y2 = (x * 2).sum(), (x * x).sum()
    gc.autograd.backward([y1, y2])
    close(x.grad, [2 + 2.0, 2 + 4.0])


def test_retain_graph():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    g = arr(x.grad).copy()
    y.backward()
    close(x.grad, 2 * g)
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        y.backward()


def test_second_backward_without_retain_raises():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        y.backward()
    # a new graph over the same leaf is fine
    (x * x).sum().backward()
    close(x.grad, [4.0, 8.0])


def test_grad_of_non_float_output_is_none():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    assert not (x > 1).requires_grad
    assert not x.argmax().requires_grad
    assert not x.long().requires_grad
    # a float result of an int path does not depend on x
    assert not x.long().float().requires_grad


# ---- detach and grad mode ------------------------------------------------------------------------------
def test_detach():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    assert np.shares_memory(arr(d), arr(x))
    y = (x * d).sum()   # d is a constant
    y.backward()
    close(x.grad, [1.0, 2.0])
    z = (x * 2).detach()
    assert not z.requires_grad
    # detach shares the version counter: an in-place change on the detached tensor is seen
    x2 = gc.tensor([1.0, 2.0], requires_grad=True)
    y2 = x2 * x2
    with gc.no_grad():
        x2.detach().mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y2.sum().backward()


def test_detach_inplace():
    x = gc.tensor([1.0], requires_grad=True)
    y = x * 2
    y.detach_()
    assert not y.requires_grad and y.grad_fn is None


def test_no_grad_context():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    with gc.no_grad():
        y = x * 2
        assert not gc.is_grad_enabled()
    assert gc.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None


def test_no_grad_and_enable_grad_decorators():
    x = gc.tensor([1.0], requires_grad=True)

    @gc.no_grad()
    def f(t):
        return t * 2

    @gc.enable_grad()
    def g(t):
        return t * 2

    assert not f(x).requires_grad
    with gc.no_grad():
        assert g(x).requires_grad
        assert not gc.is_grad_enabled()
    assert f.__name__ == "f"


def test_nested_grad_modes_restore():
    with gc.no_grad():
        with gc.enable_grad():
            assert gc.is_grad_enabled()
            with gc.set_grad_enabled(False):
                assert not gc.is_grad_enabled()
            assert gc.is_grad_enabled()
        assert not gc.is_grad_enabled()
    assert gc.is_grad_enabled()


def test_grad_mode_restored_after_exception():
    with pytest.raises(ValueError):
        with gc.no_grad():
            raise ValueError("boom")
    assert gc.is_grad_enabled()


def test_set_grad_enabled_as_function_context_and_decorator():
    x = gc.tensor([1.0], requires_grad=True)
    with gc.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert gc.is_grad_enabled()
    with gc.set_grad_enabled(True):
        assert (x * 2).requires_grad
    gc.set_grad_enabled(False)
    try:
        assert not gc.is_grad_enabled()
        assert not (x * 2).requires_grad
    finally:
        gc.set_grad_enabled(True)
    assert gc.is_grad_enabled()

    @gc.set_grad_enabled(False)
    def f(t):
        return t * 2

    assert gc.is_grad_enabled()
    assert not f(x).requires_grad
    assert gc.is_grad_enabled()


# ---- requires_grad ------------------------------------------------------------------------------------
def test_requires_grad_only_for_floats():
    for t in (gc.tensor([1, 2]), gc.tensor([True])):
        with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can require gradients"):
            t.requires_grad_()
    with pytest.raises(RuntimeError, match="floating point"):
        gc.tensor([1, 2], requires_grad=True)
    gc.tensor([1, 2]).requires_grad_(False)   # turning it off is fine
    assert gc.zeros(2, requires_grad=True).requires_grad
    assert gc.ones(2, dtype=gc.float64).requires_grad_().requires_grad


def test_requires_grad_on_non_leaf_raises():
    x = gc.tensor([1.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="leaf variables"):
        y.requires_grad_(False)
    assert y.requires_grad_() is y and y.grad_fn is not None     # already requires grad: no-op


def test_creation_requires_grad():
    for t in (gc.zeros(2, requires_grad=True), gc.ones(2, requires_grad=True), gc.rand(2, requires_grad=True),
              gc.randn(2, requires_grad=True), gc.full((2,), 1.0, requires_grad=True),
              gc.arange(0.0, 2.0, requires_grad=True), gc.linspace(0, 1, 3, requires_grad=True),
              gc.eye(2, requires_grad=True), gc.zeros_like(gc.ones(2), requires_grad=True)):
        assert t.requires_grad and t.is_leaf
        (t * 2).sum().backward()
        close(t.grad, np.full(t.shape, 2.0))


# ---- in-place ------------------------------------------------------------------------------------------
def test_inplace_ops_values():
    x = gc.tensor([1.0, 2.0, 3.0])
    x.add_(1)
    close(x, [2.0, 3.0, 4.0])
    x.sub_(gc.tensor([1.0, 1.0, 1.0]), alpha=2)
    close(x, [0.0, 1.0, 2.0])
    x.mul_(3)
    close(x, [0.0, 3.0, 6.0])
    x.div_(2)
    close(x, [0.0, 1.5, 3.0])
    x += 1
    close(x, [1.0, 2.5, 4.0])
    x -= gc.tensor([1.0, 0.5, 0.0])
    close(x, [0.0, 2.0, 4.0])
    x *= 2
    x /= 4
    close(x, [0.0, 1.0, 2.0])
    x.pow_(2)
    close(x, [0.0, 1.0, 4.0])
    x.clamp_(0.5, 2.0)
    close(x, [0.5, 1.0, 2.0])
    x.copy_(gc.tensor([7.0, 8.0, 9.0]))
    close(x, [7.0, 8.0, 9.0])
    x.copy_(gc.tensor(1.0))          # broadcasts
    close(x, [1.0, 1.0, 1.0])
    x.fill_(2.5)
    close(x, [2.5, 2.5, 2.5])
    x.zero_()
    close(x, [0.0, 0.0, 0.0])
    x.addcmul_(gc.tensor([1.0, 2.0, 3.0]), gc.tensor([2.0, 2.0, 2.0]), value=0.5)
    close(x, [1.0, 2.0, 3.0])
    x.addcdiv_(gc.tensor([1.0, 2.0, 3.0]), gc.tensor([2.0, 2.0, 2.0]), value=2)
    close(x, [2.0, 4.0, 6.0])
    x.lerp_(gc.tensor([0.0, 0.0, 0.0]), 0.5)
    close(x, [1.0, 2.0, 3.0])


def test_inplace_returns_self_and_bumps_version():
    x = gc.zeros(3)
    v = x._version[0]
    assert x.add_(1) is x
    assert x._version[0] == v + 1
    x += 1
    assert x._version[0] == v + 2
    d = x.numpy()
    x.mul_(2)
    assert np.shares_memory(d, x.numpy())      # the storage is updated, not replaced


def test_inplace_dtype_rules():
    i = gc.tensor([1, 2])
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output type Long"):
        i.add_(0.5)
    with pytest.raises(RuntimeError, match="can't be cast"):
        i += gc.tensor([0.5, 1.0])
    i += 2
    close(i, [3, 4])
    assert i.dtype is gc.int64
    # a lower-or-equal category result is cast back, as torch: f32 += f64 stays f32
    f = gc.tensor([1.0, 2.0])
    f += gc.tensor([0.5, 0.5], dtype=gc.float64)
    assert f.dtype is gc.float32
    close(f, [1.5, 2.5])
    f.mul_(gc.tensor([2, 3]))
    assert f.dtype is gc.float32
    close(f, [3.0, 7.5])
    b = gc.tensor([True, False])
    b.copy_(gc.tensor([False, True]))
    close(b, [False, True])
    assert b.dtype is gc.bool
    b2 = gc.tensor([1.0, 0.0])
    b2.copy_(gc.tensor([3, 4]))            # copy_ converts any dtype
    close(b2, [3.0, 4.0])


def test_inplace_shape_rules():
    x = gc.zeros(3)
    with pytest.raises(RuntimeError, match=r"output with shape \[3\] doesn't match the broadcast shape \[2, 3\]"):
        x += gc.ones(2, 3)
    y = gc.zeros(2, 3)
    y += gc.ones(3)
    close(y, np.ones((2, 3)))
    e = gc.zeros(3).expand(2, 3)
    with pytest.raises(RuntimeError, match="expanded"):
        e.add_(1)


def test_inplace_on_leaf_requiring_grad_raises():
    w = gc.tensor([1.0, 2.0], requires_grad=True)
    for op in (lambda: w.add_(1), lambda: w.mul_(2), lambda: w.zero_(), lambda: w.copy_(gc.ones(2))):
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
            op()
    with pytest.raises(RuntimeError, match="leaf Variable"):
        w -= 1
    # allowed under no_grad (the optimizer step), and it bumps the version
    v = w._version[0]
    with gc.no_grad():
        w -= gc.tensor([0.5, 0.5])
        w.mul_(2)
    close(w, [1.0, 3.0])
    assert w._version[0] == v + 2 and w.requires_grad and w.is_leaf


def test_inplace_modifying_saved_tensor_raises():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    y = x * 1          # non-leaf
    z = y * y          # saves y
    y.add_(1)
    with pytest.raises(RuntimeError, match="one of the variables needed for gradient computation has been "
                                           "modified by an inplace operation"):
        z.sum().backward()


def test_inplace_modifying_saved_output_raises():
    x = gc.tensor([0.5, 1.0], requires_grad=True)
    y = x.exp()            # exp saves its output
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_inplace_modifying_saved_input_through_a_view_raises():
    x = gc.tensor([[1.0, 2.0], [3.0, 4.0]])
    w = gc.tensor([1.0, 1.0], requires_grad=True)
    y = (x * w).sum()      # saves x
    x[0].add_(1)           # the view shares x's version counter
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_inplace_not_saved_is_fine():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    y = x + 1          # add saves nothing
    z = (y + 2) * 2    # nor does this (mul saves y + 2, not y)
    y.add_(5)
    z.sum().backward()
    close(x.grad, [2.0, 2.0])


def test_inplace_on_non_leaf_gradients():
    x = gc.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    y.mul_(x)              # y = 2x^2
    y += 1
    y.sub_(x, alpha=3)     # y = 2x^2 + 1 - 3x
    assert y.grad_fn is not None and not y.is_leaf
    y.sum().backward()
    close(x.grad, 4 * arr(x) - 3)
    close(y, 2 * arr(x) ** 2 + 1 - 3 * arr(x))


def test_inplace_tracked_through_non_requiring_tensor():
    w = gc.tensor([2.0, 3.0], requires_grad=True)
    acc = gc.zeros(2)
    acc.add_(w * w)        # acc now has history
    acc.mul_(w)
    assert acc.requires_grad and not acc.is_leaf
    acc.sum().backward()
    close(w.grad, 3 * arr(w) ** 2)


def test_inplace_copy_and_zero_on_non_leaf():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    s = gc.tensor([5.0, 7.0], requires_grad=True)
    y = x * 3
    y.copy_(s * 2)
    y.sum().backward()
    assert x.grad is None or np.all(arr(x.grad) == 0)
    close(s.grad, [2.0, 2.0])
    z = x * 3
    z.zero_()
    close(z, [0.0, 0.0])


def test_inplace_on_view_of_grad_requiring_tensor_is_refused():
    x = gc.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = x * 1
    with pytest.raises(RuntimeError, match="view"):
        y[0].add_(1)


def test_setitem_rules():
    x = gc.zeros(2, 3)
    x[0] = 1.0
    x[1, 1:] = gc.tensor([2.0, 3.0])
    close(x, [[1, 1, 1], [0, 2, 3]])
    v = x._version[0]
    x[:, 0] = 5
    assert x._version[0] == v + 1
    w = gc.zeros(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="requires grad"):
        w[0] = 1.0
    with gc.no_grad():
        w[0] = 1.0
    close(w, [1.0, 0.0])
    with pytest.raises(RuntimeError, match="requires grad"):
        x[0, 0] = w[1]
    with pytest.raises(IndexError, match="out of bounds"):
        x[2] = 0.0


# ---- autograd.grad ------------------------------------------------------------------------------------
def test_autograd_grad_basic_and_does_not_touch_grad():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    y = (x ** 3).sum()
    (g,) = gc.autograd.grad(y, x)
    close(g, 3 * arr(x) ** 2)
    assert x.grad is None
    assert not g.requires_grad


def test_autograd_grad_with_grad_outputs():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    y = x * x
    (g,) = gc.autograd.grad(y, [x], grad_outputs=gc.tensor([1.0, -1.0]))
    close(g, [2.0, -4.0])
    (a,) = gc.autograd.grad([x * 2, x * 3], [x], grad_outputs=[gc.ones(2), gc.ones(2) * 2])
    close(a, [8.0, 8.0])


def test_autograd_grad_multiple_inputs_and_allow_unused():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    u = gc.tensor([3.0], requires_grad=True)
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="appears to not have been used in the graph"):
        gc.autograd.grad(y, [x, u], retain_graph=True)
    gx, gu = gc.autograd.grad(y, [x, u], allow_unused=True)
    close(gx, [2.0, 2.0])
    assert gu is None


def test_autograd_grad_with_respect_to_intermediate():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    y = (h * h).sum()
    gh, gx = gc.autograd.grad(y, [h, x])
    close(gh, 2 * arr(h))
    close(gx, 18 * arr(x))


def test_autograd_grad_input_must_require_grad():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    c = gc.tensor([1.0, 1.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        gc.autograd.grad((x * c).sum(), [c])


def test_autograd_grad_create_graph():
    x = gc.tensor([0.5, 1.5], requires_grad=True)
    y = (x ** 3).sum()
    (g,) = gc.autograd.grad(y, [x], create_graph=True)
    assert g.requires_grad and g.grad_fn is not None
    (h,) = gc.autograd.grad(g.sum(), [x])
    close(h, 6 * arr(x))
    # create_graph retains the graph by default
    (g2,) = gc.autograd.grad(y, [x])
    close(g2, 3 * arr(x) ** 2)


def test_backward_create_graph_then_grad_of_grad():
    x = gc.tensor([2.0], requires_grad=True)
    y = x ** 3
    y.backward(create_graph=True)
    assert x.grad.requires_grad
    gg = x.grad
    x.grad = None
    gg.backward()
    close(x.grad, [12.0])


# ---- retain_grad --------------------------------------------------------------------------------------
def test_retain_grad():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    assert h.retain_grad() is h
    y = (h * h).sum()
    y.backward()
    close(h.grad, 2 * arr(h))
    close(x.grad, 18 * arr(x))
    k = x * 2
    (k * 1).sum().backward()
    assert k.grad is None          # not retained: non-leaf .grad stays None


def test_retain_grad_on_leaf_is_noop():
    x = gc.tensor([1.0], requires_grad=True)
    x.retain_grad()
    (x * 2).sum().backward()
    close(x.grad, [2.0])


# ---- graphc.grad / value_and_grad ---------------------------------------------------------------------------
def test_gc_grad_eager():
    f = lambda x: (x * x * x).sum()   # noqa: E731
    x = gc.tensor([1.0, 2.0])
    close(gc.grad(f)(x), 3 * arr(x) ** 2)
    assert x.grad is None and not x.requires_grad
    v, g = gc.value_and_grad(f)(x)
    close(v, 9.0)
    close(g, [3.0, 12.0])
    assert not v.requires_grad and not g.requires_grad


def test_gc_grad_argnums_and_aux():
    def f(a, b):
        return (a * b).sum(), a + b

    a, b = gc.tensor([1.0, 2.0]), gc.tensor([3.0, 4.0])
    ga, gb = gc.grad(lambda a, b: f(a, b)[0], argnums=(0, 1))(a, b)
    close(ga, arr(b))
    close(gb, arr(a))
    (g, aux) = gc.grad(f, argnums=1, has_aux=True)(a, b)
    close(g, arr(a))
    close(aux, [4.0, 6.0])
    (v, aux2), g2 = gc.value_and_grad(f, has_aux=True)(a, b)
    close(v, 11.0)
    close(g2, arr(b))


def test_gc_grad_unused_argument_is_zero():
    g = gc.grad(lambda a, b: (a * 2).sum(), argnums=1)(gc.ones(2), gc.ones(3))
    close(g, np.zeros(3))


def test_gc_grad_nested_second_derivative():
    f = lambda x: (x.sin() * x).sum()   # noqa: E731
    x = gc.tensor([0.3, 1.1, -0.7], dtype=gc.float64)
    d2 = gc.grad(lambda t: gc.grad(f)(t).sum())(x)
    xv = arr(x)
    close(d2, 2 * np.cos(xv) - xv * np.sin(xv), rtol=1e-12)
    d3 = gc.grad(lambda t: gc.grad(lambda s: gc.grad(f)(s).sum())(t).sum())(x)
    close(d3, -3 * np.sin(xv) - xv * np.cos(xv), rtol=1e-12)


def test_gc_grad_of_tensor_requiring_grad_keeps_outer_graph():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    g = gc.grad(lambda t: (t ** 3).sum())(x)     # 3x^2, differentiable w.r.t. x
    assert g.requires_grad
    g.sum().backward()
    close(x.grad, 6 * arr(x))


def test_gc_grad_errors():
    with pytest.raises(RuntimeError, match="scalar"):
        gc.grad(lambda x: x * 2)(gc.ones(3))
    with pytest.raises(TypeError, match="floating-point"):
        gc.grad(lambda x: x.sum())(gc.tensor([1, 2]))


def test_gc_grad_under_no_grad():
    with gc.no_grad():
        g = gc.grad(lambda x: (x * x).sum())(gc.tensor([1.0, 2.0]))
    close(g, [2.0, 4.0])
    assert gc.is_grad_enabled() is True


# ---- graph structure --------------------------------------------------------------------------------------
def test_grad_fn_names_and_repr():
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).exp()
    assert y.grad_fn.name == "ExpBackward"
    assert "grad_fn=<ExpBackward>" in repr(y)
    assert "requires_grad=True" in repr(x)
    assert x.grad_fn is None


def test_long_chain_does_not_recurse():
    x = gc.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    y.sum().backward()
    close(x.grad, [1.0])


def test_graph_is_freed_after_backward():
    import gc as pygc
    import weakref
    x = gc.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    y = (h * h).sum()
    ref = weakref.ref(h)
    del h
    y.backward()
    pygc.collect()
    assert ref() is None     # the saved intermediate was released


def test_inplace_with_history_on_view_of_plain_tensor_is_refused():
    """a[0].add_(w) would have to give `a` the new history as well; graphc refuses instead of
    silently dropping it."""
    w = gc.tensor([1.0, 2.0, 3.0], requires_grad=True)
    a = gc.zeros(2, 3)
    with pytest.raises(RuntimeError, match="view"):
        a[0].add_(w)
    with gc.no_grad():
        a[0].add_(w)            # no history: fine
    close(a, [[1, 2, 3], [0, 0, 0]])


def test_seed_gradient_is_cast_to_the_output_dtype():
    x = gc.ones(2, requires_grad=True)
    (x * 2).backward(gc.ones(2, dtype=gc.float64))
    assert x.grad.dtype is gc.float32
    (g,) = gc.autograd.grad(x * 3, [x], grad_outputs=gc.tensor([1, 2]))
    assert g.dtype is gc.float32
    close(g, [3.0, 6.0])
