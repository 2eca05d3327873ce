"""Planned kernel graph -> readable Python source of numba.cuda.jit kernels.

Every buffer a kernel touches is passed as a flat 1-D typed device array (a view into the one
device arena); all indexing is generated integer arithmetic on row-major linear offsets.

  pointwise  grid-stride loop over the output's linear index `lin`, delinearised once into
             `i0, i1, ...`; movement ops, gathers, constants and random numbers are index
             arithmetic (no copies); every load of a point before any store (in-place safe)
  reduction  one block per outer position (row): each thread reduces a strided slice of the
             row, a shared-memory tree combines the partials (sum / max / argmax, one tree per
             reduction, in order: layer_norm's variance reads its mean), then the threads run
             the epilogue over the row; thread 0 writes the reduced-shape outputs
  matmul     TILE x TILE shared-memory tiles (grid: N tiles, M tiles, batch), honouring
             transpose_a / transpose_b; the elementwise epilogue runs in the store. An
             epilogue that reads the product other than element for element gets it through
             scratch and a second (pointwise) launch
  opaque     scatter_add (copy, then cuda.atomic.add), fold (zero, then cuda.atomic.add)
  view       nothing runs

`Kernel` objects carry the source of one kernel (or two launches for a split matmul) and the
operands each launch takes; runtime.py compiles them and binds the device buffers.

This module is the codegen's front (`Config`, `generate`); the pieces, one idea a module --
  prelude.py    the text every generated module starts with
  common.py     the kernels codegen supports (check_kernel), Launch
  source.py     Block (lines of source)
  render.py     Renderer: the lowering IR (backends/lower: a body value at an index) as source
  kernel.py     KernelGen: one kernel node's source and launches
  pointwise.py, reduction.py, matmul.py, opaque.py: the kernels of each kind
"""
from __future__ import annotations

from ..kernels import MOVEMENT, OPAQUE_OPS, REDUCTIONS, SOURCES
from .common import Launch, check_kernel, unsupported
from .kernel import KernelGen
from .prelude import PRELUDE
from .scalar import ELEMENTWISE, NP, lit
from .render import Renderer
from .source import Block, numel

__all__ = ["Config", "generate", "check_kernel", "unsupported", "Launch", "KernelGen", "Renderer", "PRELUDE",
           "POINTWISE_OPS", "ELEMENTWISE", "NP", "lit", "Block", "numel",
           "MOVEMENT", "OPAQUE_OPS", "REDUCTIONS", "SOURCES"]

POINTWISE_OPS = set(ELEMENTWISE) | set(MOVEMENT) | set(SOURCES)


class Config:
    """Launch shapes. The simulator runs every thread as a Python thread (0.1-1 ms each), so
    it gets tiny blocks; a GPU gets the real ones."""

    def __init__(self, simulator=False, block=None, red_block=None, tile=None, max_blocks=None,
                 regs=None, tile_k=None):
        self.simulator = simulator
        # numba's simulator has no warp operations: there the shared-memory tree runs to the end
        self.warp_shuffle = not simulator
        self.block = block or (8 if simulator else 256)
        self.red_block = red_block or (4 if simulator else 256)
        self.tile = tile or (2 if simulator else 16)      # threads per block: tile x tile
        self.regs = regs or (2 if simulator else 4)        # outputs per thread: regs x regs
        self.tile_k = tile_k or (2 if simulator else 16)   # k-step of the shared-memory tiles
        self.max_blocks = max_blocks or (2 if simulator else 65535)
        if self.red_block & (self.red_block - 1):
            raise ValueError("red_block must be a power of two")

    def grid1d(self, n):
        blocks = max(1, min((n + self.block - 1) // self.block, self.max_blocks))
        return (blocks,), (self.block,)


def generate(graph, cfg):
    """[(kernel node, KernelGen)] for every non-view kernel, and the module's source."""
    gens, parts = [], [PRELUDE]
    for i, k in enumerate(graph.nodes):
        check_kernel(k)
        if k.op == "kernel" and k.attrs.get("kind") == "view":
            continue
        kg = KernelGen(k, i, cfg)
        parts.append(kg.build())
        gens.append((k, kg))
    return gens, "\n".join(parts)
