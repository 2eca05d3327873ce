"""`ModuleBuilder`: one LLVM module for one planned graph -- a function per kernel (kernel.py), and
the entry.

The entry function `graphc_main(ptr slots)` reads the pointer table slots = [arena, inputs...,
fresh outputs...], resolves every kernel operand from the memory plan (`buffers`: arena+N,
out, state:S, view) and calls the kernels in graph order: a small kernel with its whole range,
a large one through `kN_par(data)` run by graphc's thread pool (pool.py: graphc_pool_run),
whose threads take chunks of the range. In checks mode (GRAPHC_BOUNDS_CHECK) the entry returns
after a kernel whose check failed.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from ...ir.buffer import buffer_of, buffers_of
from . import scalar as S
from .common import (ENTRY, ERRORS, GEMM_SPLIT_WORK, POOL_RUN, PROFILE, RW_ANCHOR, check_kernel,
                     kernel_extent, kernel_work)
from .kernel import KernelGen
from .matmul import GemmBuilder
from .types import I8, I32, I64, PTR, VOID, i64, is_bool, is_float, mem

from .. import kernels as _K


class ModuleBuilder(GemmBuilder):
    """One LLVM module for one planned graph: a function per kernel, and the entry."""

    def __init__(self, graph, gemm_symbols, threads=1, checks=False, threshold=32768, epilogues=False,
                 blas_threads=None, profile=False, ldexp=False, fma=False):
        self.graph = graph
        self.gemm_symbols = gemm_symbols     # {"float32": name, "float64": name}
        self.ldexp = ldexp                   # the target scales by 2^n in one instruction (vecmath.py)
        self.fma = fma                       # the target has FMA: vecmath's llvm.fma is one instruction
        self.threads = threads               # > 1: large kernels run on the thread pool (pool.py)
        self.checks = checks                 # compile bounds / division checks (GRAPHC_BOUNDS_CHECK)
        self.threshold = threshold
        self.epilogues = epilogues           # also run large matmul epilogues in parallel (the GEMM stays serial)
        self.blas_threads = blas_threads     # (get, set) OpenBLAS thread-count symbols; None: never split a GEMM
        self.profile = profile               # count cycles per kernel into the global graphc_prof (GRAPHC_PROFILE)
        for k in graph.nodes:
            check_kernel(k)
        self.producer = {v.name: k for k in graph.nodes for v in k.outs}
        self.inputs = {v.name: i for i, v in enumerate(graph.inputs)}
        self.out_values = [v for k in graph.nodes for v, buf in zip(k.outs, buffers_of(k)) if buf.kind == "out"]
        self.scratch_bytes = 0
        self.direct = {}
        for k in graph.nodes:
            if k.attrs["kind"] == "matmul":
                self.direct[k.out.name] = d = self._direct_matmul(k)
                if not d:
                    mm = next(n for n in k.body.nodes if n.op == "matmul")
                    self.scratch_bytes = max(self.scratch_bytes, mm.out.type.nbytes)
        self.col_split = set()
        self.split = {k.out.name for k in graph.nodes if self._splittable(k)}
        self.col_split = {n for n in self.split if self._by_columns(self.producer[n])}
        self.parallel_names = [f"k{n}_{k.attrs['kind']}" + ("_epilogue" if k.attrs["kind"] == "matmul"
                                                            and k.out.name not in self.split else "")
                               for n, k in enumerate(graph.nodes) if self.parallel(k)]

    # -- parallel execution
    def parallel(self, k):
        """Run kernel k on the thread pool? Pointwise, reduction and matmul kernels whose outer
        range has at least 2 points and whose work (elements visited) reaches the threshold. Matmul kernels
        run their GEMM serially (OpenBLAS runs its own threads: no nesting) and only their
        elementwise epilogue in parallel; opaque kernels (fold, scatter_add) split over dim 0 where each
        index there only writes its own slice (fold: an image; scatter_add along another axis)."""
        kind = k.attrs["kind"]
        if self.threads <= 1 or kind not in ("pointwise", "reduction", "matmul", "opaque"):
            return False
        if kind == "matmul" and k.out.name in self.split:
            return True
        if kind == "matmul" and not (self.epilogues and self.epilogue_outputs(k)):
            return False
        if kernel_extent(k) < 2:
            return False
        return kernel_work(k) >= self.threshold

    def _splittable(self, k):
        """Run matmul kernel k as one parallel region where each thread computes the GEMM for its
        own rows (batches) of the output and then that block's epilogue, while it is still in
        cache? Only when it is big enough, the epilogue reads the GEMM result at the point it
        writes (elementwise only: no thread needs another's rows) and no output of the kernel
        overwrites a GEMM operand (a fast thread's epilogue would clobber what a slower
        thread's GEMM still reads)."""
        if self.threads <= 1 or self.blas_threads is None or k.attrs["kind"] != "matmul":
            return False
        mm = next(n for n in k.body.nodes if n.op == "matmul")
        a, c = mm.inputs
        if kernel_extent(k) < 2 or kernel_work(k) * self._gemm_depth(k) < GEMM_SPLIT_WORK:
            return False
        if not _K.epilogue_reads_product_pointwise(k, S.ELEMENTWISE):
            return False
        operands = [k.inputs[k.body.inputs.index(x)] for x in (a, c)]
        return not any(self._overlap(x, o) for x in operands for o in k.outs)

    def _by_columns(self, k):
        """Split a plain float GEMM by columns when op(B) is the wider operand (N > M): every
        ?gemm call packs the whole operand it is not split along, so the smaller one should be
        the one each thread packs again (the MLP's first layer: A 128x784, B 784x512)."""
        mm = next(n for n in k.body.nodes if n.op == "matmul")
        a, c = mm.inputs
        if len(a.type.shape) != 2 or not is_float(a.type.dtype):
            return False
        M, N = mm.out.type.shape
        return N > M and N >= 2 * self.threads

    @staticmethod
    def _gemm_depth(k):
        """K of a matmul kernel's GEMM (multiply-adds = output elements x K)."""
        mm = next(n for n in k.body.nodes if n.op == "matmul")
        a = mm.inputs[0].type.shape
        return a[-2] if mm.attrs.get("transpose_a", False) else a[-1]

    def _overlap(self, u, v):
        bu, bv = self.buffer(u), self.buffer(v)
        if bu[0] != "arena" or bv[0] != "arena":
            return bu == bv
        return bu[1] < bv[1] + v.type.nbytes and bv[1] < bu[1] + u.type.nbytes

    def epilogue_outputs(self, k):
        """The outputs a matmul kernel's elementwise epilogue stores (all but a direct GEMM result)."""
        mm = next(n for n in k.body.nodes if n.op == "matmul")
        direct = self.direct.get(k.out.name, False)
        return [o for o in k.body.outputs if not (o is mm.out and direct)]

    def _parallel_wrapper(self, fn, n_ptrs, extent, chunks=None):
        """void kN_par(ptr data): data = [ptr x n_ptrs, i64 counter]. The range [0, extent) is cut
        into chunks (about 4 per thread); each thread takes the next chunk with an atomic
        increment of the counter until none is left, so a thread the OS deschedules delays the
        region by one chunk at most. Which thread computes a row never changes its value."""
        w = ir.Function(self.module, ir.FunctionType(VOID, [PTR]), name=fn.name + "_par")
        w.linkage = "internal"
        b = ir.IRBuilder(w.append_basic_block("entry"))
        data = w.args[0]
        ptrs = [b.load(b.gep(data, [i64(i)], inbounds=True, source_etype=PTR), typ=PTR) for i in range(n_ptrs)]
        counter = b.gep(data, [i64(n_ptrs)], inbounds=True, source_etype=PTR)
        nchunks = min(extent, chunks or 4 * self.threads)
        chunk = -(-extent // nchunks)
        nchunks = -(-extent // chunk)
        head = w.append_basic_block("next")
        work = w.append_basic_block("work")
        done = w.append_basic_block("done")
        b.branch(head)
        b.position_at_end(head)
        c = b.atomic_rmw("add", counter, i64(1), "monotonic")
        b.cbranch(b.icmp_signed("<", c, i64(nchunks)), work, done)
        b.position_at_end(work)
        lo = b.mul(c, i64(chunk))
        hi = b.add(lo, i64(chunk))
        hi = b.select(b.icmp_signed("<", hi, i64(extent)), hi, i64(extent))
        b.call(fn, ptrs + [lo, hi])
        b.branch(head)
        b.position_at_end(done)
        b.ret_void()
        return w

    def profile_counter(self, n):
        """The global i64 graphc_prof_<n>: cycles spent in kernel n, summed over calls."""
        name = f"{PROFILE}_{n}"
        g = self.module.globals.get(name)
        if g is None:
            g = ir.GlobalVariable(self.module, I64, name=name)
            g.initializer = i64(0)
        return g

    # -- checks
    def add_check(self, kernel, what, limit, kind):
        self.check_table.append((kernel, what, limit, kind))
        return len(self.check_table)

    def errors(self, name=ERRORS):
        """The i64 globals graphc_err (check code, 0: none) and graphc_err_value (the offending value)."""
        g = self.module.globals.get(name)
        if g is None:
            g = ir.GlobalVariable(self.module, I64, name=name)
            g.initializer = i64(0)
        return g

    # -- buffers
    def buffer(self, v):
        """Where value v lives: ("in", index) | ("arena", offset) | ("out", index)."""
        while True:         # a view is its input's buffer (a loop: chains of views can be long)
            if v.name in self.inputs:
                return ("in", self.inputs[v.name])
            k = self.producer[v.name]
            buf = buffer_of(k, v)
            if buf.kind != "view":
                break
            v = k.inputs[0]
        if buf.kind == "arena":
            return ("arena", buf.offset)
        if buf.kind == "state":
            return ("in", self.inputs[buf.state])
        return ("out", self.out_values.index(v))

    def _direct_matmul(self, k):
        """May the GEMM write straight into the kernel's output? Not when that output overwrites
        one of the kernel's inputs (in-place), which the epilogue still has to read."""
        mm = next(n for n in k.body.nodes if n.op == "matmul")
        if mm.out not in k.body.outputs:
            return False
        v = k.outs[k.body.outputs.index(mm.out)]
        mine = self.buffer(v)
        return all(self.buffer(x) != mine for x in k.inputs)

    def constant_array(self, dtype, data):
        m = mem(dtype)
        if is_bool(dtype):
            vals = [ir.Constant(I8, int(bool(x))) for x in data]
        elif is_float(dtype):
            vals = [ir.Constant(m, float(np.asarray(x, dtype=dtype.np))) for x in data]
        else:
            vals = [i64(int(x)) for x in data]
        ty = ir.ArrayType(m, len(vals))
        g = ir.GlobalVariable(self.module, ty, name=f"const{self._consts}")
        self._consts += 1
        g.global_constant = True
        g.linkage = "internal"
        g.initializer = ir.Constant(ty, vals)
        return g

    # -- everything
    def build(self):
        """A fresh module (callable more than once: a disk-cache hit builds only on demand)."""
        g = self.graph
        self.module = ir.Module(name=g.name)
        self.module.graphc_ldexp = self.ldexp     # read by vecmath.py
        self.module.graphc_fma = self.fma
        anchor = ir.GlobalVariable(self.module, I64, name=RW_ANCHOR)
        anchor.initializer = i64(1)
        self._consts = 0
        self.check_table = []
        if self.checks:
            self.errors()
            self.errors(ERRORS + "_value")
        if self.profile:        # graphc_cycles(): the cycle counter, for calibrating it against a clock
            f = ir.Function(self.module, ir.FunctionType(I64, []), name=PROFILE + "_cycles")
            cb = ir.IRBuilder(f.append_basic_block("entry"))
            cb.ret(cb.call(S.function(self.module, "llvm.readcyclecounter", I64, []), []))
            for n, k in enumerate(g.nodes):
                if k.attrs["kind"] != "view":
                    self.profile_counter(n)
        fnty = ir.FunctionType(VOID, [PTR])
        main = ir.Function(self.module, fnty, name=ENTRY)
        self.hold_blas = self.blas_threads is not None and any(k.attrs["kind"] == "matmul" for k in g.nodes)
        if self.hold_blas:  # one thread pool: OpenBLAS at one thread, our threads split the big GEMMs
            run = ir.Function(self.module, fnty, name=ENTRY + "_run")
            run.linkage = "internal"
            b = ir.IRBuilder(main.append_basic_block("entry"))
            get = S.function(self.module, self.blas_threads[0], I32, [])
            put = S.function(self.module, self.blas_threads[1], VOID, [I32])
            prev = b.call(get, [])
            b.call(put, [ir.Constant(I32, 1)])
            b.call(run, [main.args[0]])
            b.call(put, [prev])
            b.ret_void()
            main = run
        b = ir.IRBuilder(main.append_basic_block("entry"))
        slots = main.args[0]

        def slot(i):
            return b.load(b.gep(slots, [i64(i)], inbounds=True, source_etype=PTR), typ=PTR)
        arena = slot(0)
        ins = [slot(1 + i) for i in range(len(g.inputs))]
        outs = [slot(1 + len(g.inputs) + j) for j in range(len(self.out_values))]
        scratch = b.gep(arena, [i64(self.scratch_offset())], inbounds=True, source_etype=I8)

        def ptr(v):
            where, i = self.buffer(v)
            if where == "in":
                return ins[i]
            if where == "out":
                return outs[i]
            return b.gep(arena, [i64(i)], inbounds=True, source_etype=I8)
        for n, k in enumerate(g.nodes):
            if k.attrs["kind"] == "view":
                continue
            name = f"k{n}_{k.attrs['kind']}"
            direct = self.direct.get(k.out.name, False)
            ptrs = [ptr(v) for v in k.inputs] + [ptr(v) for v in k.outs] + [scratch]
            extent = k.out.type.shape[-1] if k.out.name in self.col_split else kernel_extent(k)
            if self.profile:
                t0 = b.call(S.function(self.module, "llvm.readcyclecounter", I64, []), [])
            if not self.parallel(k):
                blas = self.hold_blas and self.threads > 1 and k.attrs["kind"] == "matmul" \
                    and kernel_work(k) * self._gemm_depth(k) >= GEMM_SPLIT_WORK
                if blas:     # a big GEMM we cannot split: OpenBLAS may use our threads for it
                    b.call(S.function(self.module, self.blas_threads[1], VOID, [I32]), [ir.Constant(I32, self.threads)])
                b.call(KernelGen(self, k, name, direct).build(), ptrs + [i64(0), i64(extent)])
                if blas:
                    b.call(S.function(self.module, self.blas_threads[1], VOID, [I32]), [ir.Constant(I32, 1)])
            else:
                chunks = None
                if k.out.name in self.split:        # GEMM + epilogue per block of rows, one block per thread
                    fn = KernelGen(self, k, name, direct).build()
                    # one block per thread: each ?gemm call packs its whole B operand, so more,
                    # smaller blocks cost more than they balance (measured: MLP step 1.83 vs 1.96 ms)
                    chunks = self.threads
                elif k.attrs["kind"] == "matmul":   # the GEMM on this thread (OpenBLAS threads it), then
                    b.call(KernelGen(self, k, name, direct, part="gemm").build(), ptrs + [i64(0), i64(extent)])
                    fn = KernelGen(self, k, name + "_epilogue", direct, part="epilogue").build()
                else:                               # the epilogue across the threads
                    fn = KernelGen(self, k, name, direct).build()
                wrapper = self._parallel_wrapper(fn, len(ptrs), extent, chunks)
                with b.goto_entry_block():
                    data = b.alloca(PTR, size=len(ptrs) + 1)
                for i, p in enumerate(ptrs):
                    b.store(p, b.gep(data, [i64(i)], inbounds=True, source_etype=PTR))
                b.store(i64(0), b.gep(data, [i64(len(ptrs))], inbounds=True, source_etype=PTR))   # chunk counter
                run = S.function(self.module, POOL_RUN, VOID, [PTR, PTR, I64])     # pool.py
                b.call(run, [wrapper, data, i64(self.threads - 1)])
            if self.profile:
                t1 = b.call(S.function(self.module, "llvm.readcyclecounter", I64, []), [])
                slot = self.profile_counter(n)
                b.store(b.add(b.load(slot, typ=I64), b.sub(t1, t0)), slot)
            if self.checks:
                code = b.load(self.errors(), typ=I64)
                with b.if_then(b.icmp_signed("!=", code, i64(0)), likely=False):
                    b.ret_void()
        b.ret_void()
        return self.module

    def scratch_offset(self):
        """Where the matmul scratch region starts: after the planned arena, aligned."""
        from ...passes.memory import ALIGN, arena_bytes
        return -(-arena_bytes(self.graph) // ALIGN) * ALIGN
