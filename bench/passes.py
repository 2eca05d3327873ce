"""What the compiler passes buy, on the issue's two target workloads.

    python bench/passes.py

For each workload: primitive nodes traced and after simplification, kernels after fusion,
estimated bytes moved before and after fusion, and the memory plan (naive, arena, lower
bound), measured from the planned graph itself."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from graphc.bench import WORKLOADS, pass_stats  # noqa: E402


def report(label, name, calls):
    """pass_stats of workload `name`'s compiled step after `calls` calls (a training step's
    steady-state trace is its second: .grad then exists)."""
    fn, args = WORKLOADS[name]()
    for _ in range(calls):
        fn(*args)
    return {"workload": label, **pass_stats(fn, args)}


def main():
    rows = [report("mlp_train b128 (784-512-256-10, SGD momentum)", "mlp_train_b128", 2),
            report("ln_gelu [4096, 1024]", "ln_gelu", 1)]
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
