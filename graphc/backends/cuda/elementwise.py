"""Fused elementwise groups (and lone elementwise ops and reductions) as generated CUDA kernels.

A fused node becomes one elementwise kernel for its unreduced results and one reduction kernel
per set of reduced axes (``reductions.py``); each computes the group's scalar program inline, so
no intermediate is stored. The scalar program is the CPU backend's
(:func:`graphc.backends.numba.loops.scalar_program`): each instruction is the op row's ``kernel``
template, cast to its static dtype, so float32 stays float32 and the GPU computes what the
numba kernels compute.

The elementwise kernel is a grid-stride loop over the collapsed iteration space (``space.py``):

.. code-block:: python

    def kernel(o0, a0, a1, n0, n1):
        total = n0 * n1
        i = cuda.grid(1)
        step = cuda.gridsize(1)
        while i < total:
            i1 = i % n1 ...
            x0 = a0[i0, i1]
            x1 = a1[0, i1]          # a broadcast input, read in place
            t0 = np.float32(x0 * x1)
            o0[i0, i1] = t0
            i += step
"""

from __future__ import annotations

import math

from ...graph import Constant, Node
from ...ops.elementwise import Elementwise
from ...ops.fused import Fused
from ...ops.reduction import Reduce
from ..numba.loops import literal, scalar_program
from ..numba.lowering import unbroadcast
from .lowering import Context, Step, launch, lower, make_kernel, scalar_value
from .reductions import ReductionPlan
from .space import NB, Space, Writer, array_type, decompose, product, signature


class ElementwisePlan:
    """The kernel computing a fused op's unreduced results at ``positions``."""

    def __init__(self, op: Fused, node: Node, inputs: dict, names: list[str], positions: list[int], name: str):
        arrays, scalars, read_shapes, expect = inputs["arrays"], inputs["scalars"], inputs["read"], inputs["expect"]
        self.space = space = Space(op, arrays, read_shapes, expect)
        self.positions, self.scalars = positions, scalars
        outs = op.infer()
        self.dtypes = [outs[k].dtype for k in positions]
        c = len(space.groups)
        lengths = [f"n{j}" for j in range(c)]
        params = [f"o{k}" for k in positions] + [f"a{p}" for p in arrays] + [f"s{p}" for p in scalars] + lengths
        w = Writer(f"def kernel({', '.join(params)}):")
        w(f"total = {product(lengths)}", "i = cuda.grid(1)", "step = cuda.gridsize(1)")
        w.block("while i < total:")
        decompose(w, "i", list(range(c)))
        for p in arrays:
            w(f"x{p} = a{p}[{space.index(p)}]")
        values = list(names)
        w(*scalar_program(op, values))
        every = ", ".join(f"i{j}" for j in range(c))
        for k in positions:
            w(f"o{k}[{every}] = {values[op.results[k][0]]}")
        w("i += step")
        types = [array_type(d, c) for d in self.dtypes]
        types += [array_type(op.in_types[p].dtype, c) for p in arrays]
        types += [NB[op.in_types[p].dtype] for p in scalars] + ["nb.int64"] * c
        self.kernel = make_kernel(name, w.text(), signature(types), [node])
        self.kernels = [self.kernel]

    def run(self, rt, d: list[int], arrays: dict, scalars: dict):
        n = self.space.collapsed(d)
        total = math.prod(n)
        outs = [rt.empty(d, dtype) for dtype in self.dtypes]
        if total:
            args = [o.reshape(tuple(n)) for o in outs]
            args += [self.space.view(p, arrays[p], n) for p in self.space.arrays]
            args += [scalars[p] for p in self.scalars] + n
            threads = min(rt.config.threads, total)
            launch(self.kernel, rt, rt.blocks(total, threads), threads, *args)
        return zip(self.positions, outs)


def fused_step(op: Fused, node: Node, ctx: Context, name: str = "fused") -> Step:
    """The kernels of a fused node: broadcast inputs read in place, scalar constants and host
    scalars (shape arithmetic) passed as scalar arguments."""
    op, inputs, expect, read_shapes = unbroadcast(op, list(node.inputs))
    n = op.nin
    # Scalar constants are kernel arguments (of their own dtype, so float32 stays float32): one
    # compiled kernel serves graphs that differ only in constants (a learning rate, a decay).
    # Constants of one element but more axes are written into the code.
    inline = {p: literal(v.value) for p, v in enumerate(inputs) if p not in expect and ctx.inline(v) and v.ndim}
    fixed_dims = {q: int(inputs[q].value) for q in expect if isinstance(inputs[q], Constant)}
    rest = [p for p in range(n) if p not in inline and p not in expect]
    scalars = [
        p for p in rest if ctx.is_host_scalar(inputs[p]) or (isinstance(inputs[p], Constant) and not inputs[p].ndim)
    ]
    arrays = [p for p in rest if p not in scalars]
    dims = [q for q in expect if q not in fixed_dims]
    names = [inline.get(p, f"s{p}" if p in scalars else f"x{p}") for p in range(n)]
    parts = {"arrays": arrays, "scalars": scalars, "read": read_shapes, "expect": expect}
    plans = []
    unreduced = [k for k, (_, red) in enumerate(op.results) if red is None]
    if unreduced:
        plans.append(ElementwisePlan(op, node, parts, names, unreduced, name))
    by_axes: dict[tuple, list[int]] = {}
    for k, (_, red) in enumerate(op.results):
        if red is not None:
            by_axes.setdefault(red.axes, []).append(k)
    for axes, positions in by_axes.items():  # each result takes a shared array of threads values:
        for start in range(0, len(positions), 16):  # 16 of them fit the 48 KB a block may use
            chunk = positions[start : start + 16]
            plans.append(ReductionPlan(op, node, parts, names, chunk, axes, name, ctx.rt.config.threads))
    rt, space = ctx.rt, plans[0].space
    positions = arrays + scalars + dims
    dtypes = {p: inputs[p].dtype for p in scalars}

    def fused(*args):
        values = dict(zip(positions, args))
        found = {p: values[p] for p in arrays}
        given = {p: scalar_value(values[p], dtypes[p]) for p in scalars}
        lengths = {q: int(rt.to_host(values[q])) for q in dims} | fixed_dims
        d = space.lengths(found, lengths)
        out: list = [None] * len(op.results)
        for plan in plans:
            for k, value in plan.run(rt, d, found, given):
                out[k] = value
        return tuple(out)

    kernels = [k for plan in plans for k in plan.kernels]
    return Step(fused, [inputs[p] for p in positions], kernels)


@lower.register
def _(op: Fused, node: Node, ctx: Context) -> Step:
    return fused_step(op, node, ctx)


@lower.register
def _(op: Elementwise, node: Node, ctx: Context) -> Step:
    fused = Fused(tuple(v.type for v in node.inputs), ((op, tuple(range(op.nin))),), ((op.nin, None),))
    return fused_step(fused, node, ctx, op.name)


@lower.register
def _(op: Reduce, node: Node, ctx: Context) -> Step:
    return fused_step(Fused((node.inputs[0].type,), (), ((0, op),)), node, ctx, op.name)
