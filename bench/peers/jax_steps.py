"""JAX: each workload's step under jax.jit (jax.value_and_grad and a functional momentum update
for the training steps). impl(family, state) -> Impl, or None when jax does not import."""
from __future__ import annotations

import numpy as np

from graphc.bench.columns import EPS, LR, MOMENTUM, Impl


def impl(family, state):
    """jax.jit of the step, from the shared state."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    P = [jnp.asarray(a) for a in state["params"]]
    x = jnp.asarray(state["x"])
    if family == "ln_gelu":
        g, b = P

        @jax.jit
        def f(x):
            mu = x.mean(-1, keepdims=True)
            var = ((x - mu) ** 2).mean(-1, keepdims=True)
            return jax.nn.gelu((x - mu) * jax.lax.rsqrt(var + EPS) * g + b, approximate=True)
        return Impl(lambda: f(x).block_until_ready())

    def mlp(P, x):
        n = len(P) // 2
        h = x
        for i in range(n):
            h = h @ P[2 * i].T + P[2 * i + 1]
            if i < n - 1:
                h = jax.nn.relu(h)
        return h

    def cnn(P, x):
        w1, b1, w2, b2, w3, b3 = P

        def conv(h, w, b):
            return jax.lax.conv_general_dilated(h, w, (1, 1), ((1, 1), (1, 1)),
                                                dimension_numbers=("NCHW", "OIHW", "NCHW")) + b[None, :, None, None]

        def pool(h):
            return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        h = pool(jax.nn.relu(conv(x, w1, b1)))
        h = pool(jax.nn.relu(conv(h, w2, b2)))
        return h.reshape(h.shape[0], -1) @ w3.T + b3
    if family == "mlp_infer":
        f = jax.jit(mlp)
        return Impl(lambda: f(P, x).block_until_ready())
    net = mlp if family == "mlp_train" else cnn
    y = jnp.asarray(state["y"].astype(np.int32))

    def loss_fn(P, x, y):
        logits = net(P, x)
        lse = jax.nn.logsumexp(logits, axis=-1)
        return jnp.mean(lse - jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0])

    @jax.jit
    def step(P, bufs, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(P, x, y)
        bufs = [MOMENTUM * m + g for m, g in zip(bufs, grads)]
        return [p - LR * m for p, m in zip(P, bufs)], bufs, loss
    cur = {"P": P, "bufs": [jnp.zeros_like(p) for p in P]}

    def call():
        cur["P"], cur["bufs"], loss = step(cur["P"], cur["bufs"], x, y)
        return loss.block_until_ready()
    return Impl(call, params=lambda: [np.asarray(p) for p in cur["P"]])

