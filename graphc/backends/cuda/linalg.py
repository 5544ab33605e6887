"""Matrix products: a shared-memory tiled kernel, batched with NumPy's ``matmul`` semantics.

Operands are seen as stacks of matrices: a (Ba, M, K) and b (Bb, K, N) (a 1-D operand is a row
or a column, and loses that axis in the result, as in NumPy). Batch axes broadcast: for each
output matrix the host gives the kernel the index of its a and b matrices (small int64 arrays,
uploaded once per batch shape). Each block computes one tile x tile piece of one output matrix,
loading tiles of a and b into shared memory in turn.

An operand that is a transpose of its last two axes (``x.T``, the ``g @ w.T`` of every backward
pass) is read through: the kernel takes the untransposed array and loads its tiles transposed
(each thread still reads consecutive addresses), so the transpose is never materialized.

Products accumulate in the result's dtype (float32 stays float32, as BLAS does; int64 in int64);
mixed dtypes are cast to it as tiles load.
"""

from __future__ import annotations

import math

import numpy as np

from ...graph import Node, Variable
from ...ops.linalg import MatMul
from ...ops.shape import DimShuffle
from ..numba.loops import CTOR
from .lowering import Context, Step, launch, lower, make_kernel
from .space import NB, Writer, array_type, signature


def transposed_source(v: Variable) -> Variable | None:
    """The array ``v`` transposes, when ``v`` swaps the last two axes of it and does nothing else."""
    if v.owner is None or not isinstance(v.owner.op, DimShuffle) or v.ndim < 2:
        return None
    n = v.ndim
    if v.owner.op.order == tuple(range(n - 2)) + (n - 1, n - 2) and v.owner.inputs[0].ndim == n:
        return v.owner.inputs[0]
    return None


def load_tile(w: Writer, inside: str, into: str, load: str, ctor: str) -> None:
    """One element of a shared tile: the operand's value, or 0 past its edge (partial tiles)."""
    w.block(f"if {inside}:")
    w(f"{into} = {ctor}({load})")
    w.end()
    w.block("else:")
    w(f"{into} = {ctor}(0)")
    w.end()


def matmul_source(tile: int, dtype: str, ta: bool, tb: bool) -> str:
    T, C = tile, CTOR[dtype]
    w = Writer("def kernel(out, a, b, ia, ib, M, N, K):")
    w(f"sa = cuda.shared.array(({T}, {T}), {NB[dtype]})", f"sb = cuda.shared.array(({T}, {T}), {NB[dtype]})")
    w("t = cuda.threadIdx.x", f"ty = t // {T}", f"tx = t - ty * {T}")
    w(f"tiles_n = (N + {T - 1}) // {T}", f"per = ((M + {T - 1}) // {T}) * tiles_n")
    w.block("for blk in range(cuda.blockIdx.x, out.shape[0] * per, cuda.gridsize(1) // cuda.blockDim.x):")
    w("bt = blk // per", "rest = blk - bt * per", f"r0 = (rest // tiles_n) * {T}", f"c0 = (rest % tiles_n) * {T}")
    w("pa = ia[bt]", "pb = ib[bt]", f"acc = {C}(0)")
    w.block(f"for k0 in range(0, K, {T}):")
    # thread (ty, tx) loads consecutive addresses along tx; sa[i, k] = A[r0 + i, k0 + k]
    if ta:  # a holds A transposed: (Ba, K, M)
        w("row = r0 + tx", "kk = k0 + ty")
        into_a, load_a = "sa[tx, ty]", "a[pa, kk, row]"
    else:
        w("row = r0 + ty", "kk = k0 + tx")
        into_a, load_a = "sa[ty, tx]", "a[pa, row, kk]"
    load_tile(w, "row < M and kk < K", into_a, load_a, C)
    # sb[k, j] = B[k0 + k, c0 + j]
    if tb:  # b holds B transposed: (Bb, N, K)
        w("col = c0 + ty", "kk = k0 + tx")
        into_b, load_b = "sb[tx, ty]", "b[pb, col, kk]"
    else:
        w("col = c0 + tx", "kk = k0 + ty")
        into_b, load_b = "sb[ty, tx]", "b[pb, kk, col]"
    load_tile(w, "col < N and kk < K", into_b, load_b, C)
    w("cuda.syncthreads()")
    w.block(f"for k in range({T}):")
    w("acc += sa[ty, k] * sb[k, tx]")
    w.end()
    w("cuda.syncthreads()")
    w.end()
    w("row = r0 + ty", "col = c0 + tx")
    w.block("if row < M and col < N:")
    w("out[bt, row, col] = acc")
    return w.text()


@lower.register
def _(op: MatMul, node: Node, ctx: Context) -> Step:
    a, b = node.inputs
    dtype = node.outputs[0].dtype
    sources = [transposed_source(a), transposed_source(b)]
    ta, tb = (s is not None for s in sources)
    args = [sources[0] if ta else a, sources[1] if tb else b]
    rt = ctx.rt
    types = [array_type(dtype, 3), array_type(args[0].dtype, 3), array_type(args[1].dtype, 3)]
    types += [array_type("int64", 1)] * 2 + ["nb.int64"] * 3
    tile = rt.config.tile
    kernel = make_kernel("matmul", matmul_source(tile, dtype, ta, tb), signature(types), [node])
    a_rank, b_rank = a.ndim, b.ndim
    batches: dict[tuple, tuple] = {}

    def batch_index(sa: tuple, sb: tuple):
        key = (sa, sb)
        if key not in batches:
            shape = np.broadcast_shapes(sa, sb)  # a ValueError where they do not broadcast
            ia = np.broadcast_to(np.arange(math.prod(sa)).reshape(sa), shape).ravel()
            ib = np.broadcast_to(np.arange(math.prod(sb)).reshape(sb), shape).ravel()
            batches[key] = shape, rt.to_device(ia.astype(np.int64)), rt.to_device(ib.astype(np.int64))
        return batches[key]

    def matmul(x, y):
        xs, ys = list(x.shape), list(y.shape)  # device shapes may refuse negative indexes
        if ta:
            xs[-2:] = xs[-1], xs[-2]
        if tb:
            ys[-2:] = ys[-1], ys[-2]
        xs = [1] + xs if a_rank == 1 else xs  # (..., M, K)
        ys = ys + [1] if b_rank == 1 else ys  # (..., K, N)
        (m, k), (k2, n) = xs[-2:], ys[-2:]
        if k != k2:
            raise ValueError(f"inner dimensions differ: {tuple(x.shape)} @ {tuple(y.shape)}")
        shape, ia, ib = batch_index(tuple(xs[:-2]), tuple(ys[:-2]))
        count = math.prod(shape)
        out = rt.empty((count, m, n), dtype)
        inner = (k, m) if ta else (m, k)
        xv = x.reshape((math.prod(xs[:-2]), *inner))
        inner = (n, k) if tb else (k, n)
        yv = y.reshape((math.prod(ys[:-2]), *inner))
        tiles = count * -(-m // tile) * -(-n // tile)
        if tiles:
            launch(kernel, rt, min(tiles, rt.config.max_blocks), tile * tile, out, xv, yv, ia, ib, m, n, k)
        final = list(shape) + ([m] if a_rank > 1 else []) + ([n] if b_rank > 1 else [])
        return (out.reshape(tuple(final)),)

    return Step(matmul, args, [kernel])
