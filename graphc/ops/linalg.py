"""Matrix products with NumPy's ``matmul`` semantics (batched, with 1-D operands promoted)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DTypeError, ShapeError
from ..graph import Variable, apply1
from ..types import TensorType, broadcast_shapes, promote
from .base import Op, operands


@dataclass(frozen=True)
class MatMul(Op):
    """``a @ b``: 1-D operands act as a row (left) or column (right) vector and lose that axis."""

    name = "matmul"
    nin = 2
    symbol = "@"
    precedence = 8

    def infer(self, a: TensorType, b: TensorType) -> list[TensorType]:
        if a.ndim == 0 or b.ndim == 0:
            raise ShapeError("needs operands of at least 1 dimension; use * for scalars")
        if "bool" in (a.dtype, b.dtype):
            raise DTypeError("does not take bool operands; cast them first")
        a_shape = (1,) + a.shape if a.ndim == 1 else a.shape
        b_shape = b.shape + (1,) if b.ndim == 1 else b.shape
        k_a, k_b = a_shape[-1], b_shape[-2]
        if k_a is not None and k_b is not None and k_a != k_b:
            raise ShapeError(f"inner dimensions differ: {a.shape} @ {b.shape} ({k_a} != {k_b})")
        try:
            batch = broadcast_shapes(a_shape[:-2], b_shape[:-2])
        except ValueError:
            raise ShapeError(f"batch dimensions of {a.shape} and {b.shape} do not broadcast") from None
        shape = batch + ((a_shape[-2],) if a.ndim > 1 else ()) + ((b_shape[-1],) if b.ndim > 1 else ())
        return [TensorType(promote(a.dtype, b.dtype), shape)]

    def perform(self, a, b):
        return (np.asarray(np.matmul(a, b)),)

    def vjp(self, inputs, outputs, cotangents):
        """ga = g @ b^T and gb = a^T @ g on the operands seen as (batched) matrices, each summed
        back over broadcast batch axes and returned to its operand's rank."""
        from .calculus import sum_to
        from .shape import expand_dims, reshape

        (a, b), (g,) = inputs, cotangents
        a2 = a if a.ndim > 1 else expand_dims(a, 0)
        b2 = b if b.ndim > 1 else expand_dims(b, -1)
        g2 = g if a.ndim > 1 else expand_dims(g, -2 if g.ndim else 0)
        g2 = g2 if b.ndim > 1 else expand_dims(g2, -1)
        ga = sum_to(matmul(g2, _swap_last(b2)), a2)
        gb = sum_to(matmul(_swap_last(a2), g2), b2)
        return [ga if a.ndim > 1 else reshape(ga, a.shape), gb if b.ndim > 1 else reshape(gb, b.shape)]

    def jvp(self, inputs, outputs, tangents):
        (a, b), (ta, tb) = inputs, tangents
        terms = [matmul(ta, b) if ta is not None else None, matmul(a, tb) if tb is not None else None]
        terms = [t for t in terms if t is not None]
        return [terms[0] if len(terms) == 1 else terms[0] + terms[1]]


def _swap_last(x: Variable) -> Variable:
    from .shape import transpose

    order = list(range(x.ndim))
    order[-2:] = order[-1], order[-2]
    return transpose(x, order)


_MATMUL = MatMul()


def matmul(a, b) -> Variable:
    """Matrix product ``a @ b`` (batched over leading axes, NumPy semantics)."""
    return apply1(_MATMUL, *operands(a, b))


def dot(a, b) -> Variable:
    """Same as :func:`matmul` (for 1-D and 2-D operands this is also ``np.dot``)."""
    return matmul(a, b)
