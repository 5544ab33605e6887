"""Reductions over axes: sum, mean, prod, max, min and logsumexp share one op class, one row each;
argmax, whose output is an index, has its own."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError
from ..graph import Variable, apply1
from ..types import TensorType, float_result, promote
from .base import Op, as_variable, no_jvp, no_vjp, normalize_axes


@dataclass(frozen=True, eq=False)
class ReduceKind:
    """One row of the reduction table: its numpy reference and its dtype rule."""

    name: str
    impl: Callable  # impl(array, axis=tuple, keepdims=bool)
    out: str  # "promote" | "float" | "sum" (bools count as int64, as in NumPy)
    needs_elements: bool = False  # max/min of nothing is undefined
    # vjp(op, x, out, g) -> cotangent of x; jvp(op, x, out, t) -> tangent of out. The local
    # weight of each element (1 for sum, the tie-split mask for max, ...) is ``weights``:
    # vjp = spread(g) * weights and jvp = sum(t * weights), the same numbers in both modes.
    weights: Callable | None = None  # weights(op, x, out) -> a graph broadcastable to x

    def out_dtype(self, dtype: str) -> str:
        if self.out == "float":
            return float_result(dtype)
        if self.out == "sum" and dtype == "bool":
            return "int64"
        return promote(dtype)


def _logsumexp(x, axis, keepdims):
    """log(sum(exp(x))) shifted by the max, so it neither overflows nor turns inf - inf into NaN."""
    shift = np.max(x, axis=axis, keepdims=True) if x.size else np.zeros((1,) * x.ndim, x.dtype)
    shift = np.where(np.isfinite(shift), shift, 0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - shift), axis=axis, keepdims=True)) + shift
    return out if keepdims else np.squeeze(out, axis=axis)


def _kept(op, v):
    """A reduction output with its reduced axes back as length-1 axes."""
    from .calculus import expand_reduced

    return expand_reduced(v, op.axes, op.keepdims, op.ndim_in)


def _count(op, x):
    """How many elements each output reduces over, in ``x``'s dtype (symbolic where unknown)."""
    from .elementwise import cast

    count = 1
    for a in op.axes:
        dim = x.shape[a]
        count = count * (dim if isinstance(dim, int) else cast(dim, x.dtype))
    return count


def _prod_weights(op, x, out):
    """d prod / d x_i = the product of the others, also where x has zeros (out / x would be NaN)."""
    from .elementwise import eq, where

    zero = eq(x, 0)
    safe = where(zero, 1, x)
    zeros = sum(zero, axis=op.axes, keepdims=True)
    others_nonzero = prod(safe, axis=op.axes, keepdims=True)
    return where(eq(zeros, 0), _kept(op, out) / safe, where(zero & eq(zeros, 1), others_nonzero, 0))


def _extreme_weights(op, x, out):
    """1 / (number of ties) at the maximum (minimum), 0 elsewhere: ties split evenly."""
    from .calculus import indicator
    from .elementwise import eq

    hit = indicator(eq(x, _kept(op, out)), x)
    return hit / sum(hit, axis=op.axes, keepdims=True)


def _logsumexp_weights(op, x, out):
    from .elementwise import exp

    return exp(x - _kept(op, out))


SUM = ReduceKind("sum", np.sum, "sum", weights=lambda op, x, out: 1)
PROD = ReduceKind("prod", np.prod, "sum", weights=_prod_weights)


def _mean_weights(op, x, out):
    count = _count(op, x)
    return math.inf if isinstance(count, int) and count == 0 else 1 / count  # an empty mean spreads nothing


MEAN = ReduceKind("mean", np.mean, "float", weights=_mean_weights)
MAX = ReduceKind("max", np.max, "promote", needs_elements=True, weights=_extreme_weights)
MIN = ReduceKind("min", np.min, "promote", needs_elements=True, weights=_extreme_weights)
LOGSUMEXP = ReduceKind("logsumexp", _logsumexp, "float", weights=_logsumexp_weights)
KINDS = (SUM, PROD, MEAN, MAX, MIN, LOGSUMEXP)


def _reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


@dataclass(frozen=True)
class Reduce(Op):
    """Reduce ``kind`` over ``axes`` (sorted, non-negative; all axes for ``axis=None``)."""

    kind: ReduceKind
    axes: tuple[int, ...]
    keepdims: bool = False
    ndim_in: int = 0  # the input's rank, so a cotangent can be expanded back without it

    @property
    def name(self) -> str:
        return self.kind.name

    def infer(self, x: TensorType) -> list[TensorType]:
        if self.kind.needs_elements and any(x.shape[a] == 0 for a in self.axes):
            raise ShapeError("cannot reduce over an axis of length 0: the result has no identity")
        return [TensorType(self.kind.out_dtype(x.dtype), _reduced_shape(x.shape, self.axes, self.keepdims))]

    def perform(self, x):
        dtype = self.kind.out_dtype(x.dtype.name)
        out = self.kind.impl(x, axis=self.axes, keepdims=self.keepdims)
        return (np.asarray(out, dtype=dtype),)

    def format_params(self) -> list[str]:
        return _axis_params(self.axes, self.keepdims)

    def vjp(self, inputs, outputs, cotangents):
        from .calculus import times
        from .shape import broadcast_to

        (x,), (out,), (g,) = inputs, outputs, cotangents
        spread = broadcast_to(_kept(self, g), x.shape)
        return [times(spread, self.kind.weights(self, x, out))]

    def jvp(self, inputs, outputs, tangents):
        from .calculus import times

        (x,), (out,), (t,) = inputs, outputs, tangents
        return [Reduce(SUM, self.axes, self.keepdims, self.ndim_in)(times(t, self.kind.weights(self, x, out)))]


def _axis_params(axes, keepdims):
    params = [f"axis={axes[0] if len(axes) == 1 else axes}"]
    return params + ["keepdims=True"] if keepdims else params


@dataclass(frozen=True)
class Argmax(Op):
    """Index of the largest entry over ``axes``; over several axes, the flat index within them."""

    axes: tuple[int, ...]
    keepdims: bool = False
    name = "argmax"
    vjp = no_vjp
    jvp = no_jvp

    def infer(self, x: TensorType) -> list[TensorType]:
        if any(x.shape[a] == 0 for a in self.axes):
            raise ShapeError("argmax over an axis of length 0")
        return [TensorType("int64", _reduced_shape(x.shape, self.axes, self.keepdims))]

    def perform(self, x):
        rest = [a for a in range(x.ndim) if a not in self.axes]
        moved = np.transpose(x, rest + list(self.axes))
        flat = moved.reshape(moved.shape[: len(rest)] + (-1,))
        out = np.argmax(flat, axis=-1)
        if self.keepdims:
            out = out.reshape(_reduced_shape(x.shape, self.axes, True))
        return (np.asarray(out, dtype=np.int64),)

    def format_params(self) -> list[str]:
        return _axis_params(self.axes, self.keepdims)


def _reduce(kind: ReduceKind, x, axis, keepdims) -> Variable:
    x = as_variable(x)
    return apply1(Reduce(kind, normalize_axes(axis, x, kind.name), bool(keepdims), x.ndim), x)


def sum(x, axis=None, keepdims=False) -> Variable:
    """Sum over ``axis`` (an int, a tuple, or None for all axes); bools count as int64."""
    return _reduce(SUM, x, axis, keepdims)


def prod(x, axis=None, keepdims=False) -> Variable:
    """Product over ``axis``."""
    return _reduce(PROD, x, axis, keepdims)


def mean(x, axis=None, keepdims=False) -> Variable:
    """Arithmetic mean over ``axis``; ints and bools average in float64."""
    return _reduce(MEAN, x, axis, keepdims)


def max(x, axis=None, keepdims=False) -> Variable:
    """Largest entry over ``axis``."""
    return _reduce(MAX, x, axis, keepdims)


def min(x, axis=None, keepdims=False) -> Variable:
    """Smallest entry over ``axis``."""
    return _reduce(MIN, x, axis, keepdims)


def logsumexp(x, axis=None, keepdims=False) -> Variable:
    """``log(sum(exp(x)))`` over ``axis``, computed without overflow."""
    return _reduce(LOGSUMEXP, x, axis, keepdims)


def argmax(x, axis=None, keepdims=False) -> Variable:
    """Index of the largest entry over ``axis`` (the first one on ties, as in NumPy)."""
    x = as_variable(x)
    return apply1(Argmax(normalize_axes(axis, x, "argmax"), bool(keepdims)), x)
