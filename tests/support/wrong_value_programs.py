"""The programs that differential fuzzing against PyTorch found giving wrong values or refusing to
compile (issue 13), written once over a module `T` that is graphc or torch, so each runs as it
is on both. Each returns (scalar loss, a tensor output)."""


def logsoftmax_transposed(T, x):
    """A: a kernel wrote log_softmax's result over its input while another output of the same
    kernel read a transpose of a value derived from it (llvm, cuda: 528 of 1089 elements wrong)."""
    t = T.nn.functional.log_softmax(x, dim=0).transpose(0, -1)
    return t.mean(), t


def matmul_residual_transposed(T, x):
    """A: the same blind spot through a matmul epilogue."""
    t0 = x * x
    t3 = t0 - (t0 @ t0.transpose(-2, -1)) @ x
    return t3.t().sum(), t3.t()


def amax_after_layer_norm(T, x):
    """B: the kernel recomputes t for amax(t) and again for eq(t, amax(t)); with FMA contraction
    the two differed in the last bit and rows lost their gradient (llvm)."""
    t = T.cat([x, x], dim=-2)
    t = T.cat([t, t], dim=-2)
    t = T.nn.functional.layer_norm(t, t.shape[-2:]).log_softmax(2)
    m = T.amax(t, dim=2, keepdim=True)
    return m.sum(), m


def strided_slice_dead_output(T, x):
    """C: two outputs of one kernel were planned into the same dying input's buffer
    (PlanError at compile time), one of them a dead value fusion had kept as an output."""
    t = (T.nn.functional.log_softmax(x, dim=1)[:, ::2] - (-2.5)).transpose(0, 1)
    t = T.log(t * t + 0.1)
    return t.mean(), t


def relu_amax_permuted(T, x):
    """C: the same, after a reduction and a repeated permute."""
    t = T.nn.functional.relu(x.amax(dim=(-2,)))
    t = T.div(t, t.permute(1, 0) * t.permute(1, 0) + 1.0)
    return t.mean(), t


PROGRAMS = [  # (program, input shape)
    (logsoftmax_transposed, (33, 33)),
    (matmul_residual_transposed, (4, 4)),
    (amax_after_layer_norm, (3, 17, 2)),
    (strided_slice_dead_output, (1, 2)),
    (relu_amax_permuted, (3, 2, 3)),
]
