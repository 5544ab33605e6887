"""Softmax, log-softmax and softmax cross-entropy as row kernels; convolution, pooling and the
im2col/col2im pair (``Patches``, ``PatchesAdjoint``) that their gradients are made of.

**Rows.** The softmax axis may be anywhere: the input is viewed as (outer, n, inner) (a view of
the C-contiguous array), and row (o, i) is ``x[o, :, i]``. One block takes one row at a time (a
grid-stride loop over rows): its threads find the row's maximum (NaN-propagating) and then its
sum of exponentials, each halved to one value in shared memory, and then write the row. Sums
accumulate in float64; values are computed in the output dtype, as on the CPU backend.

**Images** (NCHW). Convolution is im2col and one matrix product, as on the CPU backend: a kernel
copies each window into a row of (N, Ho*Wo, C*kh*kw), and the tiled product kernel of
``linalg.py`` multiplies the filters (O, C*kh*kw) by each image's windows read transposed, which
gives (N, O, Ho*Wo): the NCHW result, with no transpose. Pooling is one thread per output
element. ``PatchesAdjoint`` (col2im) gathers, for each pixel, the window entries that cover it,
so no two threads write one element and no atomics are needed. Window sizes, strides and
padding are kernel arguments: one kernel per dtype serves every layer.
"""

from __future__ import annotations

import numpy as np

from ...graph import Node
from ...ops.base import fill_shape
from ...ops.nn import Conv2d, Patches, PatchesAdjoint, Pool2d, Softmax, SoftmaxCrossEntropy
from ...ops.reduction import MAX
from ...types import float_result
from ..numba.loops import CTOR
from .linalg import matmul_source
from .lowering import Context, Step, launch, lower, make_kernel
from .reductions import tree
from .space import NB, Writer, array_type, signature


# ----- rows ----------------------------------------------------------------------------------------
def _row_head(w: Writer, dtype: str, threads: int, source: str) -> None:
    """The row loop, the row's maximum ``m`` and sum of exponentials ``s`` of ``source``."""
    T = CTOR[dtype]
    w(f"top = cuda.shared.array({threads}, {NB[dtype]})", f"acc = cuda.shared.array({threads}, nb.float64)")
    w("t = cuda.threadIdx.x")
    w.block("for r in range(cuda.blockIdx.x, outer * inner, cuda.gridsize(1) // cuda.blockDim.x):")
    w("o = r // inner", "i = r - o * inner", f"m = {T}(-math.inf)")
    w.block(f"for j in range(t, n, {threads}):")
    w(f"v = {T}({source}[o, j, i])")
    w.block("if v > m or v != v:")
    w("m = v")
    w.end(2)
    w("top[t] = m")
    tree(w, [("top", MAX)], threads)
    w("m = top[0]", "s = np.float64(0)")
    w.block(f"for j in range(t, n, {threads}):")
    w(f"s = s + {T}(math.exp({T}({source}[o, j, i]) - m))")
    w.end()
    w("acc[t] = s")
    tree(w, [("acc", None)], threads)
    w("s = acc[0]")


def _softmax_source(dtype: str, threads: int, log: bool) -> str:
    T = CTOR[dtype]
    w = Writer("def kernel(out, a, outer, n, inner):")
    _row_head(w, dtype, threads, "a")
    w.block(f"for j in range(t, n, {threads}):")
    if log:
        w(f"out[o, j, i] = {T}(({T}(a[o, j, i]) - m) - math.log(s))")
    else:
        w(f"out[o, j, i] = {T}({T}(math.exp({T}(a[o, j, i]) - m)) / s)")
    w.end()
    w("cuda.syncthreads()")
    return w.text()


def _cross_entropy_source(dtype: str, threads: int) -> str:
    T = CTOR[dtype]
    w = Writer("def kernel(out, z, y, outer, n, inner):")
    _row_head(w, dtype, threads, "z")
    w(f"ls = {T}(math.log(s))", "total = np.float64(0)", "cuda.syncthreads()")
    w.block(f"for j in range(t, n, {threads}):")
    w(f"total = total + {T}(y[o, j, i]) * (({T}(z[o, j, i]) - m) - ls)")
    w.end()
    w("acc[t] = total")
    tree(w, [("acc", None)], threads)
    w.block("if t == 0:")
    w(f"out[o, i] = {T}(-acc[0])")
    w.end()
    w("cuda.syncthreads()")
    return w.text()


def _rows(shape, axis: int) -> tuple[int, int, int]:
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1 :], dtype=np.int64))
    return outer, shape[axis], inner


@lower.register
def _(op: Softmax, node: Node, ctx: Context) -> Step:
    x, dtype, rt = node.inputs[0], node.outputs[0].dtype, ctx.rt
    threads = rt.config.threads
    types = [array_type(dtype, 3), array_type(x.dtype, 3)] + ["nb.int64"] * 3
    kernel = make_kernel(op.name, _softmax_source(dtype, threads, op.log), signature(types), [node])

    def softmax(a):
        outer, n, inner = _rows(a.shape, op.axis)
        out = rt.empty(a.shape, dtype)
        if outer * n * inner:
            view = (outer, n, inner)
            launch(kernel, rt, min(outer * inner, rt.config.max_blocks), threads, out.reshape(view), a.reshape(view),
                   outer, n, inner)  # fmt: skip
        return (out,)

    return Step(softmax, [x], [kernel])


@lower.register
def _(op: SoftmaxCrossEntropy, node: Node, ctx: Context) -> Step:
    z, y = node.inputs
    dtype, rt = float_result(z.dtype, y.dtype), ctx.rt
    threads = rt.config.threads
    types = [array_type(dtype, 2), array_type(z.dtype, 3), array_type(y.dtype, 3)] + ["nb.int64"] * 3
    kernel = make_kernel(op.name, _cross_entropy_source(dtype, threads), signature(types), [node])

    def cross_entropy(a, b):
        if tuple(a.shape) != tuple(b.shape):
            raise ValueError(f"logits {tuple(a.shape)} and targets {tuple(b.shape)} differ")
        outer, n, inner = _rows(a.shape, op.axis)
        out = rt.empty(a.shape[: op.axis] + a.shape[op.axis + 1 :], dtype)
        if outer * inner:
            view = (outer, n, inner)
            launch(kernel, rt, min(outer * inner, rt.config.max_blocks), threads, out.reshape((outer, inner)),
                   a.reshape(view), b.reshape(view), outer, n, inner)  # fmt: skip
        return (out,)

    return Step(cross_entropy, [z, y], [kernel])


# ----- images --------------------------------------------------------------------------------------
_WINDOW_ARGS = "kh, kw, sh, sw, ph, pw"


def _grid_loop(w: Writer, names: list[str], lengths: list[str]) -> None:
    """A grid-stride loop over ``total`` elements, with ``names`` the C-order index of each."""
    w("i = cuda.grid(1)", "step = cuda.gridsize(1)")
    w.block("while i < total:")
    w("q = i")
    for name, length in zip(reversed(names[1:]), reversed(lengths[1:])):
        w(f"{name} = q % {length}", f"q = q // {length}")
    w(f"{names[0]} = q")


def _patches_source(dtype: str, rows: bool) -> str:
    """im2col of NCHW ``a`` into flat ``out``: (N, Ho, Wo, C, kh, kw) when ``rows`` (matrix rows
    for a product), else Patches' (N, C, Ho, Wo, kh, kw)."""
    w = Writer(f"def kernel(out, a, total, c_, h_, w_, ho, wo, {_WINDOW_ARGS}):")
    if rows:
        _grid_loop(w, ["b", "y0", "x0", "c", "p", "r"], ["", "ho", "wo", "c_", "kh", "kw"])
    else:
        _grid_loop(w, ["b", "c", "y0", "x0", "p", "r"], ["", "c_", "ho", "wo", "kh", "kw"])
    w("y = y0 * sh + p - ph", "x = x0 * sw + r - pw")
    w.block("if y >= 0 and y < h_ and x >= 0 and x < w_:")
    w(f"out[i] = {CTOR[dtype]}(a[b, c, y, x])")
    w.end()
    w.block("else:")
    w(f"out[i] = {CTOR[dtype]}(0)")
    w.end()
    w("i += step")
    return w.text()


def _patches_kernel(node: Node, dtype: str, rows: bool):
    types = [array_type(dtype, 1), array_type(dtype, 4)] + ["nb.int64"] * 12
    return make_kernel("im2col" if rows else "patches", _patches_source(dtype, rows), signature(types), [node])


def _out_size(size: int, k: int, s: int, p: int) -> int:
    out = (size + 2 * p - k) // s + 1
    if out <= 0 or size + 2 * p < k:
        raise ValueError(f"window {k} is larger than the padded input {size} + 2 * {p}")
    return out


def _launch_patches(rt, kernel, a, out, ho, wo, window) -> None:
    total = int(np.prod(out.shape, dtype=np.int64))
    if total:
        threads = min(rt.config.threads, total)
        n, c, h, w = a.shape
        launch(kernel, rt, rt.blocks(total, threads), threads, out.reshape(total), a, total, c, h, w, ho, wo, *window)


@lower.register
def _(op: Conv2d, node: Node, ctx: Context) -> Step:
    x, w = node.inputs
    dtype, rt = node.outputs[0].dtype, ctx.rt
    im2col = _patches_kernel(node, x.dtype, rows=True)
    tile = rt.config.tile
    types = [array_type(dtype, 3), array_type(w.dtype, 3), array_type(x.dtype, 3)]
    types += [array_type("int64", 1)] * 2 + ["nb.int64"] * 3
    product = make_kernel("matmul", matmul_source(tile, dtype, False, True), signature(types), [node])
    indexes: dict[int, tuple] = {}
    (sh, sw), (ph, pw) = op.stride, op.padding

    def conv2d(a, f):
        n, c, h, wd = a.shape
        o, c2, kh, kw = f.shape
        if c != c2:
            raise ValueError(f"x has {c} channels but w expects {c2}")
        ho, wo = _out_size(h, kh, sh, ph), _out_size(wd, kw, sw, pw)
        cols = rt.empty((n, ho * wo, c * kh * kw), x.dtype)
        _launch_patches(rt, im2col, a, cols, ho, wo, (kh, kw, sh, sw, ph, pw))
        if n not in indexes:
            indexes[n] = rt.to_device(np.zeros(n, np.int64)), rt.to_device(np.arange(n, dtype=np.int64))
        out = rt.empty((n, o, ho * wo), dtype)
        tiles = n * -(-o // tile) * -(-(ho * wo) // tile)
        if tiles:
            filters = f.reshape((1, o, c * kh * kw))
            launch(product, rt, min(tiles, rt.config.max_blocks), tile * tile, out, filters, cols, *indexes[n],
                   o, ho * wo, c * kh * kw)  # fmt: skip
        return (out.reshape((n, o, ho, wo)),)

    return Step(conv2d, [x, w], [im2col, product])


@lower.register
def _(op: Patches, node: Node, ctx: Context) -> Step:
    x, rt = node.inputs[0], ctx.rt
    kernel = _patches_kernel(node, x.dtype, rows=False)
    (kh, kw), (sh, sw), (ph, pw) = op.kernel, op.stride, op.padding

    def patches(a):
        n, c, h, w = a.shape
        ho, wo = _out_size(h, kh, sh, ph), _out_size(w, kw, sw, pw)
        out = rt.empty((n, c, ho, wo, kh, kw), x.dtype)
        _launch_patches(rt, kernel, a, out, ho, wo, (kh, kw, sh, sw, ph, pw))
        return (out,)

    return Step(patches, [x], [kernel])


def _col2im_source(dtype: str, acc: str) -> str:
    w = Writer(f"def kernel(out, g, total, c_, h_, w_, ho, wo, {_WINDOW_ARGS}):")
    _grid_loop(w, ["b", "c", "y", "x"], ["", "c_", "h_", "w_"])
    w(f"acc = {CTOR[acc]}(0)")
    w.block("for p in range(kh):")
    w("yy = y + ph - p")
    w.block("if yy >= 0 and yy % sh == 0 and yy // sh < ho:")
    w.block("for r in range(kw):")
    w("xx = x + pw - r")
    w.block("if xx >= 0 and xx % sw == 0 and xx // sw < wo:")
    w("acc = acc + g[b, c, yy // sh, xx // sw, p, r]")
    w.end(4)
    w(f"out[i] = {CTOR[dtype]}(acc)", "i += step")
    return w.text()


@lower.register
def _(op: PatchesAdjoint, node: Node, ctx: Context) -> Step:
    g, rt = node.inputs[0], ctx.rt
    acc = "float64" if g.dtype in ("float32", "float64") else "int64"
    types = [array_type(g.dtype, 1), array_type(g.dtype, 6)] + ["nb.int64"] * 12
    kernel = make_kernel("col2im", _col2im_source(g.dtype, acc), signature(types), [node])
    (kh, kw), (sh, sw), (ph, pw) = op.kernel, op.stride, op.padding

    def col2im(a, *dims):
        h, w = fill_shape(op.size, [rt.to_host(d) for d in dims])
        n, c, ho, wo = a.shape[:4]
        if tuple(a.shape[4:]) != (kh, kw) or (ho, wo) != (_out_size(h, kh, sh, ph), _out_size(w, kw, sw, pw)):
            raise ValueError(f"windows of shape {tuple(a.shape)} do not tile an image of {h} x {w}")
        out = rt.empty((n, c, h, w), g.dtype)
        total = n * c * h * w
        if total:
            threads = min(rt.config.threads, total)
            launch(kernel, rt, rt.blocks(total, threads), threads, out.reshape(total), a, total, c, h, w, ho, wo,
                   kh, kw, sh, sw, ph, pw)  # fmt: skip
        return (out,)

    return Step(col2im, list(node.inputs), [kernel])


def _pool_source(dtype: str, kind: str) -> str:
    T = CTOR[dtype]
    w = Writer(f"def kernel(out, a, total, c_, ho, wo, {_WINDOW_ARGS}):")
    _grid_loop(w, ["b", "c", "y0", "x0"], ["", "c_", "ho", "wo"])
    w("y = y0 * sh", "x = x0 * sw")
    w("m = a[b, c, y, x]" if kind == "max" else "m = np.float64(0)")
    w.block("for p in range(kh):")
    w.block("for r in range(kw):")
    w("v = a[b, c, y + p, x + r]")
    if kind == "max":  # NaN propagates as in np.max: once m is NaN no comparison replaces it
        w.block("if v > m or v != v:")
        w("m = v")
        w.end()
    else:
        w("m = m + v")
    w.end(2)
    w(f"out[i] = {T}(m)" if kind == "max" else f"out[i] = {T}(m / (kh * kw))", "i += step")
    return w.text()


@lower.register
def _(op: Pool2d, node: Node, ctx: Context) -> Step:
    x, rt = node.inputs[0], ctx.rt
    types = [array_type(x.dtype, 1), array_type(x.dtype, 4)] + ["nb.int64"] * 10
    kernel = make_kernel(op.name, _pool_source(x.dtype, op.kind), signature(types), [node])
    (kh, kw), (sh, sw) = op.kernel, op.stride

    def pool(a):
        n, c, h, w = a.shape
        ho, wo = _out_size(h, kh, sh, 0), _out_size(w, kw, sw, 0)
        out = rt.empty((n, c, ho, wo), x.dtype)
        total = n * c * ho * wo
        if total:
            threads = min(rt.config.threads, total)
            launch(kernel, rt, rt.blocks(total, threads), threads, out.reshape(total), a, total, c, ho, wo,
                   kh, kw, sh, sw, 0, 0)  # fmt: skip
        return (out,)

    return Step(pool, [x], [kernel])
