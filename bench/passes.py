"""What the compiler passes buy, on the issue's two target workloads.

    python bench/passes.py

For each workload: primitive nodes traced and after simplification, kernels after fusion,
estimated bytes moved before and after fusion, and the memory plan (naive, arena, lower
bound), measured from the planned graph itself."""
from __future__ import annotations

import math

import graphc as gc
import graphc.nn as nn
import graphc.nn.functional as F
from graphc.passes.memory import memory_report
from graphc.passes.stats import bytes_moved, kernel_count


def mlp_train_step(batch=128):
    gc.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = gc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    x, y = gc.randn(batch, 784), gc.randint(0, 10, (batch,))
    f = gc.compile(step)
    f(x, y)                 # the steady-state trace is the second (.grad then exists)
    f(x, y)
    return f, (x, y)


def ln_gelu():
    gc.manual_seed(0)
    x, g, b = gc.randn(4096, 1024), gc.randn(1024), gc.randn(1024)
    f = gc.compile(lambda x: F.gelu(F.layer_norm(x, (1024,)) * g + b, approximate="tanh"))
    return f, (x,)


def report(name, f, args):
    e = f.entry(*args)
    before = e.passes.stage("dce")
    final = e.passes.final
    mem = memory_report(final)
    row = {
        "workload": name,
        "traced_nodes": e.passes.stage("traced").primitive_count(),
        "primitive_nodes": before.primitive_count(),
        "kernels": kernel_count(final),
        "bytes_moved_unfused": bytes_moved(before),
        "bytes_moved": bytes_moved(final),
        **mem,
    }
    return row


def main():
    rows = [report("mlp_train b128 (784-512-256-10, SGD momentum)", *mlp_train_step()),
            report("ln_gelu [4096, 1024]", *ln_gelu())]
    for r in rows:
        print(f"\n{r['workload']}")
        print(f"  primitive nodes: traced {r['traced_nodes']}, after simplification {r['primitive_nodes']}")
        print(f"  kernels after fusion: {r['kernels']}  "
              f"({r['kernels'] / r['primitive_nodes']:.3f} of the simplified primitives, "
              f"{r['kernels'] / r['traced_nodes']:.3f} of the traced ones)")
        print(f"  bytes moved: {r['bytes_moved_unfused'] / 1e6:.2f} MB unfused -> {r['bytes_moved'] / 1e6:.2f} MB fused")
        if r["naive_bytes"]:
            print(f"  memory: naive {r['naive_bytes'] / 1e6:.3f} MB, arena {r['arena_bytes'] / 1e6:.3f} MB, "
                  f"lower bound {r['lower_bound_bytes'] / 1e6:.3f} MB -> arena = "
                  f"{r['arena_bytes'] / max(r['lower_bound_bytes'], 1):.3f} x lower bound, "
                  f"{r['arena_bytes'] / r['naive_bytes']:.3f} x naive")
    x_bytes = 4096 * 1024 * 4
    ln = rows[1]
    print(f"\nln_gelu: {ln['kernels']} kernel(s); bytes moved {ln['bytes_moved'] / 1e6:.2f} MB = "
          f"{ln['bytes_moved'] / (2 * x_bytes):.3f} x (read x once + write y once = {2 * x_bytes / 1e6:.2f} MB)")
    return rows


if __name__ == "__main__":
    main()
