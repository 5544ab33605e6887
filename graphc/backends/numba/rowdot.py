"""``row_dot(m, i, v)``: row ``i`` of a matrix dotted with a vector, in 8 explicit vector lanes.

The row-streaming kernel (``streaming.py``) computes one dot product per row of X. Written as
Python over an 8-element lanes array (lane ``k`` sums the products at ``j % 8 == k``), LLVM
compiled it to scalar code, one ``vmulsd`` and ``vaddsd`` per element, and stored every lane
back to the array each iteration (as far as it knew, such a store could change the row: numba's
arrays carry no aliasing facts). Eight local scalars instead of the array were scalar too. That
loop took 0.31-0.49 ns an element in cache, slower than two threads stream X from memory
(docs/performance.md, session 10).

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
        and {m.dtype, v.dtype} <= {types.float32, types.float64}
        and isinstance(i, types.Integer)
    )


@intrinsic
def row_dot(typingctx, m, i, v):
    """float64 ``m[i, :] @ v`` for C-contiguous float ``m`` (n, d) and ``v`` (d,): products in
    the arrays' dtype (float64 when they differ, as numba's scalar code promotes), sums in
    float64. The caller checks that ``v`` has ``d`` elements."""
    if not _fits(m, i, v):
        return None

    def codegen(context, builder, sig, args):
        mt, it, vt = sig.args
        matrix = context.make_array(mt)(context, builder, args[0])
        vector = context.make_array(vt)(context, builder, args[2])
        intp = context.get_value_type(types.intp)
        double = ir.DoubleType()
        kinds = [(context.get_value_type(t.dtype), t.dtype.bitwidth // 8) for t in (mt, vt)]
        d = cgutils.unpack_tuple(builder, matrix.shape, 2)[1]
        row = builder.gep(matrix.data, [builder.mul(context.cast(builder, args[1], it, types.intp), d)])
        width = ir.Constant(intp, WIDTH)
        whole = builder.sub(d, builder.srem(d, width))

        def product(j, lanes: int | None):
            """row[j:j+lanes] * v[j:j+lanes] in float64 (``lanes`` None: the one element j)."""

            def typed(t):
                return ir.VectorType(t, lanes) if lanes else t

            x, y = (
                builder.load(builder.bitcast(builder.gep(p, [j]), typed(elem).as_pointer()), align=align)
                for p, (elem, align) in zip((row, vector.data), kinds)
            )
            if kinds[0][0] != kinds[1][0]:  # float32 with float64: widen first
                x, y = (a if elem == double else builder.fpext(a, typed(double)) for a, (elem, _) in zip((x, y), kinds))
            p = builder.fmul(x, y)
            return p if p.type == typed(double) else builder.fpext(p, typed(double))

        lanes = cgutils.alloca_once_value(builder, ir.Constant(ir.VectorType(double, WIDTH), [0.0] * WIDTH))
        with cgutils.for_range_slice(builder, ir.Constant(intp, 0), whole, width, intp) as (j, _):
            builder.store(builder.fadd(builder.load(lanes), product(j, WIDTH)), lanes)
        acc = builder.load(lanes)
        lane = [builder.extract_element(acc, ir.Constant(ir.IntType(32), k)) for k in range(WIDTH)]
        while len(lane) > 1:  # ((0+1)+(2+3))+((4+5)+(6+7))
            lane = [builder.fadd(lane[k], lane[k + 1]) for k in range(0, len(lane), 2)]
        tail = cgutils.alloca_once_value(builder, ir.Constant(double, 0.0))
        with cgutils.for_range_slice(builder, whole, d, ir.Constant(intp, 1), intp) as (j, _):
            builder.store(builder.fadd(builder.load(tail), product(j, None)), tail)
        return builder.fadd(lane[0], builder.load(tail))

    return types.float64(m, i, v), codegen
