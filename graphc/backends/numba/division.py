"""Division by a loop-invariant divisor without the divider, giving the division's bits.

A float division takes a pass through the vector divider, which is as slow as a square root:
Adam's update (two divisions and a square root per element) is bound by it. When the divisor
``d`` is the same for every element (a bias correction, a batch size), its reciprocal ``r`` can
be computed once, but ``a * r`` alone is off by one unit in the last place for about one
quotient in five, makes ``d / d`` differ from 1, and turns quotients within half an ulp of the
largest float into infinities.

:func:`quotient` adds one correction step (Markstein's): with ``q = a * r``, the residual
``e = a - q * d`` is exact in one fused multiply-add, and ``q + e * r`` rounds to the correctly
rounded quotient. Clamping ``q`` to the finite range first keeps the residual finite, so a
quotient that overflows still comes out infinite and one just below the limit does not; the
sign is taken from ``q``, which keeps signed zeros. The result equals IEEE division whenever
``1/d`` is a normal number (checked before the loop: ``loops.reciprocal_lines``), ``|a|`` is at
least ``2**(emin + p)`` (``2**-102`` in float32, ``2**-969`` in float64: the residual must not
underflow) and the quotient is not subnormal; infinities, NaNs and signed zeros always; and
otherwise it is within one unit in the last place of the result. tests/test_numba_backend.py
checks this against NumPy, and docs/numba.md gives the measurements.
"""

from __future__ import annotations

import math

import numba as nb
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` with one rounding (LLVM's ``llvm.fma``; one instruction where the CPU has FMA)."""
    if not (a == b == c and a in (types.float32, types.float64)):
        return None

    def codegen(context, builder, sig, args):
        single = sig.return_type == types.float32
        fty = ir.FloatType() if single else ir.DoubleType()
        name = "llvm.fma.f32" if single else "llvm.fma.f64"
        return builder.call(cgutils.get_or_insert_function(builder.module, ir.FunctionType(fty, [fty] * 3), name), args)

    return a(a, a, a), codegen


@nb.njit(inline="always")
def quotient(a, d, r, largest):
    """``a / d`` from ``r``, the reciprocal of ``d`` rounded to the same dtype, and ``largest``,
    the dtype's largest finite value (all four of one float dtype)."""
    q = a * r
    clamped = q if abs(q) <= largest else math.copysign(largest, q)  # NaN too: the residual stays NaN
    return math.copysign(fma(fma(-clamped, d, a), r, clamped), q)
