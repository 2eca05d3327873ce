"""numpy by hand: each workload's step written in float32 numpy the way a numpy user would
(`x @ W.T`, np.maximum, a stable softmax; forward, backward and SGD momentum by hand for the
training steps; im2col through sliding_window_view for the CNN). IMPLS[family](state) -> Impl."""
from __future__ import annotations

import math

import numpy as np

from graphc.bench.columns import EPS, LR, MOMENTUM, Impl


def xent(logits, y):
    """Mean cross-entropy and its gradient wrt the logits (stable softmax)."""
    n = logits.shape[0]
    rows = np.arange(n)
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    loss = np.log(s[:, 0]).mean() - z[rows, y].mean()
    e /= s
    e[rows, y] -= 1.0
    e /= n
    return loss, e


def sgd(params, grads, bufs):
    for p, g, buf in zip(params, grads, bufs):
        buf *= MOMENTUM          # zero on the first step: buf = g, as torch.optim.SGD
        buf += g
        p -= LR * buf


def mlp_forward(P, x):
    """Linear-ReLU-...-Linear: (the logits, the input of every Linear)."""
    acts, h, n = [x], x, len(P) // 2
    for i in range(n):
        h = h @ P[2 * i].T
        h += P[2 * i + 1]
        if i < n - 1:
            np.maximum(h, 0, out=h)
            acts.append(h)
    return h, acts


def mlp_train(state):
    P = [a.copy() for a in state["params"]]
    bufs = [np.zeros_like(a) for a in P]
    x, y = state["x"].copy(), state["y"].copy()

    def step():
        logits, acts = mlp_forward(P, x)
        loss, d = xent(logits, y)
        grads = [None] * len(P)
        for i in reversed(range(len(acts))):
            grads[2 * i] = d.T @ acts[i]
            grads[2 * i + 1] = d.sum(axis=0)
            if i:
                d = d @ P[2 * i]
                d *= acts[i] > 0          # relu's mask, from its output
        sgd(P, grads, bufs)
        return loss
    return Impl(step, params=lambda: [a.copy() for a in P])


def mlp_infer(state):
    P = [a.copy() for a in state["params"]]
    x = state["x"].copy()
    return Impl(lambda: mlp_forward(P, x)[0])


def ln_gelu(state):
    g, b = (a.copy() for a in state["params"])
    x = state["x"].copy()
    c = np.float32(math.sqrt(2.0 / math.pi))

    def f():
        mu = x.mean(axis=-1, keepdims=True)
        h = x - mu
        var = np.mean(h * h, axis=-1, keepdims=True)
        h *= 1.0 / np.sqrt(var + np.float32(EPS))
        h *= g
        h += b
        t = h * h
        t *= np.float32(0.044715)
        t += 1.0
        t *= h
        t *= c
        np.tanh(t, out=t)
        t += 1.0
        t *= h
        t *= np.float32(0.5)
        return t
    return Impl(f)


def conv3x3(xp, w, b):
    """3x3 conv of a zero-padded NHWC input, im2col: returns (NHWC output, the columns)."""
    from numpy.lib.stride_tricks import sliding_window_view
    win = sliding_window_view(xp, (3, 3), axis=(1, 2))             # [N, H, W, C, 3, 3]
    n, h, wd = win.shape[:3]
    cols = win.reshape(n * h * wd, -1)                              # (c, kh, kw) order, as w
    out = cols @ w.reshape(w.shape[0], -1).T
    out += b
    return out.reshape(n, h, wd, -1), cols


def pool2(a):
    n, h, w, c = a.shape
    r = a.reshape(n, h // 2, 2, w // 2, 2, c)
    return r.max(axis=(2, 4)), r


def pool2_back(r, p, dp):
    """The gradient goes to the max of each window (ties only arise between zeros after relu,
    whose gradient relu's mask drops)."""
    mask = r == p[:, :, None, :, None, :]
    return (mask * dp[:, :, None, :, None, :]).reshape(r.shape[0], r.shape[1] * 2, r.shape[3] * 2, r.shape[5])


def cnn_train(state):
    P = [a.copy() for a in state["params"]]
    bufs = [np.zeros_like(a) for a in P]
    x = np.ascontiguousarray(state["x"].transpose(0, 2, 3, 1))      # NHWC
    y = state["y"].copy()
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))

    def step():
        w1, b1, w2, b2, w3, b3 = P
        n = x.shape[0]
        h1, cols1 = conv3x3(xp, w1, b1)
        np.maximum(h1, 0, out=h1)
        p1, r1 = pool2(h1)
        p1p = np.pad(p1, ((0, 0), (1, 1), (1, 1), (0, 0)))
        h2, cols2 = conv3x3(p1p, w2, b2)
        np.maximum(h2, 0, out=h2)
        p2, r2 = pool2(h2)
        flat = p2.transpose(0, 3, 1, 2).reshape(n, -1)               # torch's NCHW flatten
        logits = flat @ w3.T
        logits += b3
        loss, d = xent(logits, y)
        g3, gb3 = d.T @ flat, d.sum(axis=0)
        dp2 = (d @ w3).reshape(p2.shape[0], p2.shape[3], p2.shape[1], p2.shape[2]).transpose(0, 2, 3, 1)
        dh2 = pool2_back(r2, p2, dp2)
        dh2 *= h2 > 0
        dh2 = dh2.reshape(-1, dh2.shape[-1])
        g2, gb2 = (dh2.T @ cols2).reshape(w2.shape), dh2.sum(axis=0)
        dcols = (dh2 @ w2.reshape(w2.shape[0], -1)).reshape(*p1.shape[:3], *w2.shape[1:])
        dp1p = np.zeros_like(p1p)
        hh, ww = p1.shape[1:3]
        for i in range(3):
            for j in range(3):
                dp1p[:, i:i + hh, j:j + ww, :] += dcols[..., i, j]
        dh1 = pool2_back(r1, p1, dp1p[:, 1:-1, 1:-1, :])
        dh1 *= h1 > 0
        dh1 = dh1.reshape(-1, dh1.shape[-1])
        g1, gb1 = (dh1.T @ cols1).reshape(w1.shape), dh1.sum(axis=0)
        sgd(P, [g1, gb1, g2, gb2, g3, gb3], bufs)
        return loss
    return Impl(step, params=lambda: [a.copy() for a in P])


IMPLS = {"mlp_train": mlp_train, "mlp_infer": mlp_infer, "ln_gelu": ln_gelu, "cnn_train": cnn_train}
