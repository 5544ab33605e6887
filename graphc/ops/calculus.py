"""Helpers the derivative rules of several ops share: summing a gradient back to an operand's
shape, fitting a tangent to an output, and scaling by a local partial derivative.

Rules build graphs (derivatives are graphs, as in Theano), so everything here composes ops.
"""

from __future__ import annotations

from ..graph import Variable, apply1
from .elementwise import cast, neg
from .reduction import sum
from .shape import DimShuffle, broadcast_to


def times(g: Variable | None, partial) -> Variable | None:
    """``g * partial``, where a partial of None is zero and of +-1 needs no multiplication."""
    if g is None or partial is None:
        return None
    if isinstance(partial, int):
        return g if partial == 1 else neg(g)
    return g * partial


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
