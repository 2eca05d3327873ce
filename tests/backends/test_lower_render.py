"""The kernel lowering on real kernels, and what each backend renders of it: a lowered value
prints alone, shared subexpressions are emitted once, and the delinearize recovery reaches
the cuda source too (it used to be llvm's alone)."""
import re

import numpy as np

import graphc as gc
from graphc.backends.lower import Lowering
from graphc.backends.lower import expr as X


def planned(fn, *args):
    return gc.compile(fn, backend="interp").graph(*args, stage="final")


def kernels(g):
    return [n for n in g.nodes if n.op == "kernel" and n.attrs.get("kind") != "view"]


def test_a_lowered_kernel_prints_alone():
    x = gc.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    k = kernels(planned(lambda t: (t.t() * 2.0).exp(), x))[0]
    body = k.body
    low = Lowering(k, {v.name: v.type for v in body.inputs})
    idx = X.delinearize(X.var("lin"), body.outputs[0].type.shape)
    text = X.to_text([low.at(body.outputs[0], idx)])
    assert text == "\n".join([         # [3, 2] = t.t(): output (lin // 2, lin % 2) reads t[lin % 2, lin // 2]
        "%0 = mod(lin, 2) : index",
        "%1 = mul(%0, 3) : index",
        "%2 = div(lin, 2) : index",
        "%3 = add(%1, %2) : index",
        "%4 = load t(%3) : f32",
        "%5 = op mul(f32)(%4, 2.0:f32) : f32",
        "%6 = op exp(f32)(%5) : f32",
        "-> %6"])


def test_cuda_source_reads_a_merging_reshape_at_the_linear_index():
    from graphc.backends.cuda.codegen import Config, generate
    x = gc.tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    _, src = generate(planned(lambda t: t.reshape(6, 4) * 2.0 + 1.0, x), Config(simulator=True))
    body = src[src.index("@cuda.jit"):]
    assert "in0[lin]" in body and "out0[lin]" in body
    assert not re.search(r"//|%", body.split("for lin in range")[1])


def test_llvm_emits_a_shared_operand_once():
    from graphc.backends import llvm
    x = gc.tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))
    exe = llvm.compile(planned(lambda t: (t.exp(), t.exp() + 1.0), x), threads=1)
    fns = re.findall(r'define internal void @"k\d+_pointwise"\(.*?\n}', exe.llvm_ir_unoptimized, re.S)
    assert len(fns) == 1 and fns[0].count("store float") == 2, fns
    f = fns[0]
    # t read once, one offset for the load and both stores, exp(t) computed once
    assert f.count("load float") == 1 and f.count("mul i64") == 1, f
    got = exe([np.asarray(x.numpy())])
    np.testing.assert_allclose(got[1], np.exp(x.numpy()) + 1.0, rtol=1e-6)
