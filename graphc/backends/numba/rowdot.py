"""``row_dot(m, i, v)``: row ``i`` of a matrix dotted with a vector, in 8 explicit vector lanes.

The row-streaming kernel (``streaming.py``) computes one dot product per row of X. Written as
Python over an 8-element lanes array (lane ``k`` sums the products at ``j % 8 == k``), LLVM
left it scalar: the lanes stayed in memory, because numba's arrays carry no aliasing facts,
and each addition waited on the store before it. That loop ran at a third of a nanosecond per
element, in cache, slower than two threads can stream X from memory (docs/performance.md,
session 10).

This intrinsic emits the same arithmetic as LLVM vector operations: ``<8 x T>`` loads of the
row and the vector, one multiply, widening to double for float32, one add into an ``<8 x
double>`` accumulator, then the fixed pairing ``((0+1)+(2+3))+((4+5)+(6+7))`` and a scalar tail.
Multiplies and adds stay separate instructions (no fast-math, so no FMA contraction): the bits
are those of the scalar lanes code, identical in the serial and parallel kernels.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

WIDTH = 8


def _fits(m, i, v) -> bool:
    return (
        isinstance(m, types.Array)
        and isinstance(v, types.Array)
        and (m.ndim, v.ndim, m.layout, v.layout) == (2, 1, "C", "C")
        and m.dtype == v.dtype
        and m.dtype in (types.float32, types.float64)
        and isinstance(i, types.Integer)
    )


@intrinsic
def row_dot(typingctx, m, i, v):
    """float64 ``m[i, :] @ v`` for C-contiguous float ``m`` (n, d) and ``v`` (d,): products in
    the arrays' dtype, sums in float64. The caller checks that ``v`` has ``d`` elements."""
    if not _fits(m, i, v):
        return None

    def codegen(context, builder, sig, args):
        mt, it, vt = sig.args
        matrix = context.make_array(mt)(context, builder, args[0])
        vector = context.make_array(vt)(context, builder, args[2])
        intp = context.get_value_type(types.intp)
        elem, double = context.get_value_type(mt.dtype), ir.DoubleType()
        align = mt.dtype.bitwidth // 8
        d = cgutils.unpack_tuple(builder, matrix.shape, 2)[1]
        row = builder.gep(matrix.data, [builder.mul(context.cast(builder, args[1], it, types.intp), d)])
        width = ir.Constant(intp, WIDTH)
        whole = builder.sub(d, builder.srem(d, width))

        def product(j, ty):
            """row[j:j+w] * v[j:j+w] as ``ty`` (a vector type, or the element type), widened."""
            x, y = (
                builder.load(builder.bitcast(builder.gep(p, [j]), ty.as_pointer()), align=align)
                for p in (row, vector.data)
            )
            p = builder.fmul(x, y)
            if elem != double:
                p = builder.fpext(p, ir.VectorType(double, WIDTH) if isinstance(ty, ir.VectorType) else double)
            return p

        lanes = cgutils.alloca_once_value(builder, ir.Constant(ir.VectorType(double, WIDTH), [0.0] * WIDTH))
        with cgutils.for_range_slice(builder, ir.Constant(intp, 0), whole, width, intp) as (j, _):
            builder.store(builder.fadd(builder.load(lanes), product(j, ir.VectorType(elem, WIDTH))), lanes)
        acc = builder.load(lanes)
        lane = [builder.extract_element(acc, ir.Constant(ir.IntType(32), k)) for k in range(WIDTH)]
        while len(lane) > 1:  # ((0+1)+(2+3))+((4+5)+(6+7))
            lane = [builder.fadd(lane[k], lane[k + 1]) for k in range(0, len(lane), 2)]
        tail = cgutils.alloca_once_value(builder, ir.Constant(double, 0.0))
        with cgutils.for_range_slice(builder, whole, d, ir.Constant(intp, 1), intp) as (j, _):
            builder.store(builder.fadd(builder.load(tail), product(j, elem)), tail)
        return builder.fadd(lane[0], builder.load(tail))

    return types.float64(m, i, v), codegen
