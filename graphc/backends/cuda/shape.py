"""Shape ops on the device: views where the data need not move, one strided-copy kernel where it
must.

Every device array inside a program is C-contiguous, so a reshape, a squeeze or an expand_dims is
a view (``reshape`` of the device array). Everything else that moves data (a transpose, basic
indexing, a materialized broadcast, concatenate, stack, split, and the scatter of indexing's
adjoint) is one kernel: it walks an index space and copies ``src[sbase + sum(i_k * ss_k)]`` to
``dst[dbase + sum(i_k * ds_k)]`` on flat views of both arrays, with the offsets and element
strides worked out on the host (a stride of 0 broadcasts). One kernel per dtype pair and rank
serves every such op. Elementwise kernels never need a broadcast materialized, and matrix
products read transposed operands in place (``linalg.py``).
"""

from __future__ import annotations

import math

import numpy as np

from ...graph import Node
from ...ops.base import fill_shape
from ...ops.indexing import GetItem, GetItemAdjoint
from ...ops.shape import BroadcastTo, Concatenate, DimShuffle, Reshape, ShapeDim, Split, Stack
from ..numba.loops import CTOR
from .lowering import Context, Kernel, Step, launch, lower, make_kernel
from .space import NB, Writer, array_type, decompose, signature


def c_strides(shape) -> list[int]:
    """Element strides of a C-contiguous array of ``shape``."""
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return strides[::-1]


def copy_kernel(src: str, dst: str, rank: int, nodes: list[Node]) -> Kernel:
    """The strided copy of a ``rank``-dimensional index space from ``src`` to ``dst`` dtype."""
    r = range(rank)
    params = ["dst", "src", "total", "dbase", "sbase"] + [f"d{j}" for j in r] + [f"ds{j}" for j in r]
    params += [f"ss{j}" for j in r]
    w = Writer(f"def kernel({', '.join(params)}):")
    w("i = cuda.grid(1)", "step = cuda.gridsize(1)")
    w.block("while i < total:")
    decompose(w, "i", list(r), lengths="d")
    to = "dbase" + "".join(f" + i{j} * ds{j}" for j in r)
    frm = "sbase" + "".join(f" + i{j} * ss{j}" for j in r)
    w(f"dst[{to}] = {CTOR[dst]}(src[{frm}])", "i += step")
    types = [array_type(dst, 1), array_type(src, 1)] + ["nb.int64"] * (3 + 3 * rank)
    return make_kernel("copy", w.text(), signature(types), nodes)


def fill_kernel(dtype: str, nodes: list[Node]) -> Kernel:
    w = Writer("def kernel(dst, total, value):")
    w("i = cuda.grid(1)", "step = cuda.gridsize(1)")
    w.block("while i < total:")
    w("dst[i] = value", "i += step")
    return make_kernel("fill", w.text(), signature([array_type(dtype, 1), "nb.int64", NB[dtype]]), nodes)


def flat(x):
    """A 1-D view of a C-contiguous device array."""
    return x.reshape(math.prod(x.shape))


def strided_copy(rt, kernel: Kernel, dst, src, shape, dbase: int, dstrides, sbase: int, sstrides) -> None:
    total = math.prod(shape)
    if total:
        threads = min(rt.config.threads, total)
        args = [int(v) for v in (total, dbase, sbase, *shape, *dstrides, *sstrides)]
        launch(kernel, rt, rt.blocks(total, threads), threads, flat(dst), flat(src), *args)


def fill(rt, kernel: Kernel, dst, value) -> None:
    total = math.prod(dst.shape)
    if total:
        threads = min(rt.config.threads, total)
        launch(kernel, rt, rt.blocks(total, threads), threads, flat(dst), total, value)


_COPIES: dict[tuple, Kernel] = {}


def device_copy(rt, x):
    """A new device array with ``x``'s contents (results must not alias the program's arrays)."""
    dtype = str(x.dtype)
    kernel = _COPIES.get(dtype)
    if kernel is None:
        kernel = _COPIES[dtype] = copy_kernel(dtype, dtype, 1, [])
    out = rt.empty(x.shape, dtype)
    size = math.prod(x.shape)
    strided_copy(rt, kernel, out, x, (size,), 0, (1,), 0, (1,))
    return out


# ----- views ---------------------------------------------------------------------------------------
@lower.register
def _(op: ShapeDim, node: Node, ctx: Context) -> Step:
    """The length of an axis, read from the device array's shape: a host scalar, no copy."""
    axis = op.axis

    def shape(x):
        return (np.asarray(x.shape[axis], dtype=np.int64),)

    return Step(shape, list(node.inputs), [], host=True, host_args=True)


def _sizes(rt, static, dims) -> list[int]:
    return list(fill_shape(static, [rt.to_host(d) for d in dims]))


@lower.register
def _(op: Reshape, node: Node, ctx: Context) -> Step:
    rt = ctx.rt

    def reshape(x, *dims):
        shape = _sizes(rt, op.shape, dims)
        size = math.prod(x.shape)
        if -1 in shape:
            rest = math.prod(d for d in shape if d != -1)
            if rest == 0 or size % rest:
                raise ValueError(f"cannot reshape {x.shape} into {tuple(shape)}")
            shape[shape.index(-1)] = size // rest
        if math.prod(shape) != size:
            raise ValueError(f"cannot reshape {x.shape} into {tuple(shape)}")
        return (x.reshape(tuple(shape)),)

    return Step(reshape, list(node.inputs), [], fresh=False)


@lower.register
def _(op: DimShuffle, node: Node, ctx: Context) -> Step:
    """A view when it only drops or adds axes of length 1; a strided copy when it permutes."""
    x = node.inputs[0]
    kept = [o for o in op.order if o != "x"]
    dropped = [a for a in range(x.ndim) if a not in kept]
    rt = ctx.rt

    def geometry(a):
        if any(a.shape[i] != 1 for i in dropped):
            raise ValueError(f"cannot drop axes {dropped} of an array of shape {a.shape}")
        strides = c_strides(a.shape)
        shape = [1 if o == "x" else a.shape[o] for o in op.order]
        return shape, [0 if o == "x" else strides[o] for o in op.order]

    if kept == sorted(kept):

        def view(a):
            return (a.reshape(tuple(geometry(a)[0])),)

        return Step(view, [x], [], fresh=False)
    kernel = copy_kernel(x.dtype, x.dtype, len(op.order), [node])

    def transpose(a):
        shape, strides = geometry(a)
        out = rt.empty(shape, x.dtype)
        strided_copy(rt, kernel, out, a, shape, 0, c_strides(shape), 0, strides)
        return (out,)

    return Step(transpose, [x], [kernel])


@lower.register
def _(op: BroadcastTo, node: Node, ctx: Context) -> Step:
    """Materialized only where a kernel cannot read through it (elementwise kernels do)."""
    x = node.inputs[0]
    static = x.type.shape
    rank = len(op.shape)
    kernel = copy_kernel(x.dtype, x.dtype, rank, [node])
    rt = ctx.rt

    def broadcast_to(a, *dims):
        shape = _sizes(rt, op.shape, dims)
        lead = rank - len(a.shape)
        strides = [0] * lead
        for i, (d, s) in enumerate(zip(a.shape, c_strides(a.shape))):
            target = shape[lead + i]
            if d == target:
                strides.append(s if d != 1 else 0)
            elif d == 1 and static[i] == 1:
                strides.append(0)
            else:
                raise ValueError(f"cannot broadcast {a.shape} to {tuple(shape)}")
        out = rt.empty(shape, x.dtype)
        strided_copy(rt, kernel, out, a, shape, 0, c_strides(shape), 0, strides)
        return (out,)

    return Step(broadcast_to, list(node.inputs), [kernel])


# ----- indexing --------------------------------------------------------------------------------------
def basic_index(shape, index) -> tuple[int, list[int], list[int]]:
    """Offset, shape and element strides of ``x[index]`` for a C-contiguous ``x`` of ``shape``
    (``index`` in GetItem's form); an IndexError for an int out of bounds."""
    strides = c_strides(shape)
    offset, out_shape, out_strides, axis = 0, [], [], 0
    for entry in index:
        if entry[0] == "new":
            out_shape.append(1)
            out_strides.append(0)
            continue
        if entry[0] == "int":
            i = entry[1] + shape[axis] if entry[1] < 0 else entry[1]
            if not 0 <= i < shape[axis]:
                raise IndexError(f"index {entry[1]} is out of bounds for axis {axis} of length {shape[axis]}")
            offset += i * strides[axis]
        else:
            start, stop, step = slice(*entry[1:]).indices(shape[axis])
            length = len(range(start, stop, step))
            out_shape.append(length)
            out_strides.append(step * strides[axis])
            offset += start * strides[axis] if length else 0
        axis += 1
    return offset, out_shape + list(shape[axis:]), out_strides + strides[axis:]


@lower.register
def _(op: GetItem, node: Node, ctx: Context) -> Step:
    x = node.inputs[0]
    out_type = node.outputs[0]
    kernel = copy_kernel(x.dtype, x.dtype, out_type.ndim, [node])
    rt = ctx.rt

    def getitem(a):
        offset, shape, strides = basic_index(a.shape, op.index)
        out = rt.empty(shape, x.dtype)
        strided_copy(rt, kernel, out, a, shape, 0, c_strides(shape), offset, strides)
        return (out,)

    return Step(getitem, [x], [kernel])


@lower.register
def _(op: GetItemAdjoint, node: Node, ctx: Context) -> Step:
    g = node.inputs[0]
    kernels = [fill_kernel(g.dtype, [node]), copy_kernel(g.dtype, g.dtype, g.ndim, [node])]
    rt = ctx.rt
    zero = False if g.dtype == "bool" else 0

    def getitem_adjoint(a, *dims):
        shape = _sizes(rt, op.shape, dims)
        out = rt.empty(shape, g.dtype)
        fill(rt, kernels[0], out, zero)
        offset, view_shape, strides = basic_index(shape, op.index)
        if tuple(view_shape) != tuple(a.shape):
            raise ValueError(f"cannot write {a.shape} into a view of shape {tuple(view_shape)}")
        strided_copy(rt, kernels[1], out, a, view_shape, offset, strides, 0, c_strides(a.shape))
        return (out,)

    return Step(getitem_adjoint, list(node.inputs), kernels)


# ----- joining and splitting --------------------------------------------------------------------------
def _joined(op, node: Node, ctx: Context, new_axis: bool) -> Step:
    out_type = node.outputs[0]
    rank = out_type.ndim - (1 if new_axis else 0)
    kernels = [copy_kernel(v.dtype, out_type.dtype, rank, [node]) for v in node.inputs]
    rt, axis = ctx.rt, op.axis

    def join(*arrays):
        first = list(arrays[0].shape)
        for a in arrays:
            if any(d != e for i, (d, e) in enumerate(zip(a.shape, first)) if new_axis or i != axis):
                raise ValueError(f"shapes {[tuple(x.shape) for x in arrays]} do not join along axis {axis}")
        if new_axis:
            shape = first[:axis] + [len(arrays)] + first[axis:]
        else:
            shape = first[:axis] + [sum(a.shape[axis] for a in arrays)] + first[axis + 1 :]
        out = rt.empty(shape, out_type.dtype)
        strides = c_strides(shape)
        at = 0
        for kernel, a in zip(kernels, arrays):
            if new_axis:
                dst = strides[:axis] + strides[axis + 1 :]
                strided_copy(rt, kernel, out, a, a.shape, at * strides[axis], dst, 0, c_strides(a.shape))
                at += 1
            else:
                strided_copy(rt, kernel, out, a, a.shape, at * strides[axis], strides, 0, c_strides(a.shape))
                at += a.shape[axis]
        return (out,)

    return Step(join, list(node.inputs), kernels)


@lower.register
def _(op: Concatenate, node: Node, ctx: Context) -> Step:
    return _joined(op, node, ctx, new_axis=False)


@lower.register
def _(op: Stack, node: Node, ctx: Context) -> Step:
    return _joined(op, node, ctx, new_axis=True)


@lower.register
def _(op: Split, node: Node, ctx: Context) -> Step:
    x = node.inputs[0]
    kernel = copy_kernel(x.dtype, x.dtype, x.ndim, [node])
    rt, axis = ctx.rt, op.axis

    def split(a, *dims):
        sizes = _sizes(rt, op.sizes, dims)
        if sum(sizes) != a.shape[axis]:
            raise ValueError(f"pieces of {sizes} do not add up to the length {a.shape[axis]}")
        strides = c_strides(a.shape)
        outs, at = [], 0
        for size in sizes:
            shape = list(a.shape)
            shape[axis] = size
            out = rt.empty(shape, x.dtype)
            strided_copy(rt, kernel, out, a, shape, 0, c_strides(shape), at * strides[axis], strides)
            outs.append(out)
            at += size
        return tuple(outs)

    return Step(split, list(node.inputs), [kernel])
