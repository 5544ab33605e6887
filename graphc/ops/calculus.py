"""Helpers the derivative rules of several ops share: summing a gradient back to an operand's
shape, fitting a tangent to an output, and scaling by a local partial derivative.

Rules build graphs (derivatives are graphs, as in Theano), so everything here composes ops.
"""

from __future__ import annotations

from ..graph import Variable, apply1, constant
from .elementwise import CASTS, cast, neg, where
from .reduction import sum
from .shape import DimShuffle, broadcast_to


def times(g: Variable | None, partial) -> Variable | None:
    """``g * partial``, where a partial of None is zero and of +-1 needs no multiplication.

    A partial that is a condition cast to a number (relu, clip, where: 1 where the input passes,
    0 elsewhere) selects ``g`` instead of multiplying: an infinite or NaN ``g`` where nothing
    passes contributes 0, not NaN, as in JAX and PyTorch.
    """
    if g is None or partial is None:
        return None
    if isinstance(partial, int):
        return g if partial == 1 else neg(g)
    condition = _condition_of(partial)
    if condition is not None:
        return where(condition, g, constant(0, g.dtype))
    return g * partial


def _condition_of(partial: Variable):
    """The boolean ``c`` when ``partial`` is ``cast(c)`` to a number, else None."""
    node = partial.owner if isinstance(partial, Variable) else None
    if node is None or len(node.inputs) != 1 or node.inputs[0].dtype != "bool":
        return None
    return node.inputs[0] if any(node.op is c for c in CASTS.values()) else None


def sum_to(g: Variable, x: Variable) -> Variable:
    """``g`` (broadcast from ``x``'s shape) summed back to it, in ``x``'s dtype.

    Decided from static types: unknown dimensions never broadcast at run time, so an axis is
    summed exactly where ``x`` has no axis or a declared length of 1 against a longer one.
    """
    lead = g.ndim - x.ndim
    axes = list(range(lead)) + [lead + i for i, d in enumerate(x.type.shape) if d == 1 and g.type.shape[lead + i] != 1]
    if axes:
        g = sum(g, axis=tuple(axes), keepdims=True)
    if lead:
        g = apply1(DimShuffle(tuple(range(lead, g.ndim))), g)
    return cast(g, x.dtype)


def fit_tangent(t: Variable, out: Variable) -> Variable:
    """A tangent with ``out``'s dtype and shape (a tangent of one operand may be narrower)."""
    t = cast(t, out.dtype)
    if t.type.shape != out.type.shape:
        t = broadcast_to(t, out.shape)
    return t


def indicator(condition: Variable, like: Variable) -> Variable:
    """1 where ``condition`` holds, else 0, in ``like``'s dtype."""
    return cast(condition, like.dtype)


def expand_reduced(g: Variable, axes: tuple[int, ...], keepdims: bool, ndim: int) -> Variable:
    """A reduction's output (or cotangent) with the reduced axes back as length-1 axes."""
    if keepdims:
        return g
    order: list[int | str] = []
    k = 0
    for i in range(ndim):
        if i in axes:
            order.append("x")
        else:
            order.append(k)
            k += 1
    return apply1(DimShuffle(tuple(order)), g)
