"""Ops that move data without arithmetic: axis permutations, reshapes, broadcasts, joins,
indexing, one-hot encoding, and the symbolic size of a dimension."""

from __future__ import annotations

import builtins
import math
from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError, UsageError
from ..graph import Variable, apply, apply1
from ..types import TensorType, promote
from .base import (
    Op,
    as_variable,
    check_shape_inputs,
    fill_shape,
    format_shape_argument,
    no_jvp,
    no_vjp,
    normalize_axis,
    shape_argument,
)


# ----- dimension size --------------------------------------------------------------------------
@dataclass(frozen=True)
class ShapeDim(Op):
    """The size of one axis, as an int64 scalar: how shapes unknown until run time enter a graph."""

    axis: int
    name = "shape"
    vjp = no_vjp
    jvp = no_jvp

    def infer(self, x: TensorType) -> list[TensorType]:
        if not 0 <= self.axis < x.ndim:
            raise ShapeError(f"axis {self.axis} is out of range")
        return [TensorType("int64", ())]

    def perform(self, x):
        return (np.asarray(x.shape[self.axis], dtype=np.int64),)

    def format_params(self) -> list[str]:
        return [str(self.axis)]


def shape_dim(x, axis: int) -> Variable:
    """``x.shape[axis]`` as a symbolic int64 scalar."""
    x = as_variable(x)
    return apply1(ShapeDim(normalize_axis(axis, x, "shape")), x)


# ----- permutations and unit axes --------------------------------------------------------------
@dataclass(frozen=True)
class DimShuffle(Op):
    """Permute axes, drop axes of length 1 and insert new ones, in one op (as Theano's DimShuffle).

    ``order`` lists, for each output axis, the input axis it comes from or ``"x"`` for a new
    axis of length 1; input axes not listed are dropped and must have length 1.
    """

    order: tuple[int | str, ...]

    @property
    def name(self) -> str:
        kept = [o for o in self.order if o != "x"]
        if len(kept) == len(self.order) and kept != sorted(kept):
            return "transpose"
        return "dimshuffle"

    def infer(self, x: TensorType) -> list[TensorType]:
        kept = [o for o in self.order if o != "x"]
        if sorted(kept) != sorted(set(kept)) or any(not 0 <= o < x.ndim for o in kept):
            raise ShapeError(f"invalid axis order {self.order} for an input of {x.ndim} dimension(s)")
        for axis in set(range(x.ndim)) - set(kept):
            if x.shape[axis] not in (1, None):
                raise ShapeError(
                    f"cannot drop axis {axis} of length {x.shape[axis]}; only length-1 axes can be dropped"
                )
        return [TensorType(x.dtype, tuple(1 if o == "x" else x.shape[o] for o in self.order))]

    def perform(self, x):
        kept = [o for o in self.order if o != "x"]
        dropped = tuple(sorted(set(range(x.ndim)) - set(kept)))
        if any(x.shape[a] != 1 for a in dropped):
            raise ValueError(f"cannot drop axes {dropped} of an array of shape {x.shape}")
        y = x.reshape([d for i, d in enumerate(x.shape) if i not in dropped])
        remaining = [a for a in range(x.ndim) if a not in dropped]
        y = np.transpose(y, [remaining.index(o) for o in kept])
        return (y.reshape(tuple(1 if o == "x" else x.shape[o] for o in self.order)),)

    def vjp(self, inputs, outputs, cotangents):
        """The inverse shuffle: new axes dropped, kept axes put back, dropped axes restored."""
        (x,), (g,) = inputs, cotangents
        position = {axis: k for k, axis in enumerate(self.order) if axis != "x"}
        return [apply1(DimShuffle(tuple(position.get(i, "x") for i in range(x.ndim))), g)]

    def jvp(self, inputs, outputs, tangents):
        return [apply1(self, tangents[0])]

    def format_params(self) -> list[str]:
        if self.name == "transpose":
            return [f"axes={tuple(self.order)}"]
        return [f"order={tuple(self.order)}"]


def transpose(x, axes=None) -> Variable:
    """Permute axes; by default reverse them (``x.T``)."""
    x = as_variable(x)
    order = tuple(reversed(range(x.ndim))) if axes is None else tuple(normalize_axis(a, x, "transpose") for a in axes)
    if sorted(order) != list(range(x.ndim)):
        raise ShapeError(f"axes {axes} are not a permutation of the {x.ndim} axes", op="transpose")
    return x if order == tuple(range(x.ndim)) else apply1(DimShuffle(order), x)


def expand_dims(x, axis: int) -> Variable:
    """Insert a new axis of length 1 at ``axis``."""
    x = as_variable(x)
    axis = normalize_axis(axis, x, "expand_dims", new=1)
    order: list[int | str] = list(range(x.ndim))
    order.insert(axis, "x")
    return apply1(DimShuffle(tuple(order)), x)


def squeeze(x, axis=None) -> Variable:
    """Remove axes of length 1 (all statically known ones when ``axis`` is None)."""
    x = as_variable(x)
    if axis is None:
        drop = {i for i, d in enumerate(x.type.shape) if d == 1}
    else:
        drop = {normalize_axis(a, x, "squeeze") for a in ((axis,) if isinstance(axis, int) else axis)}
    return apply1(DimShuffle(tuple(i for i in range(x.ndim) if i not in drop)), x)


# ----- reshape and broadcast ------------------------------------------------------------------
@dataclass(frozen=True)
class Reshape(Op):
    """Reshape to ``shape`` (one entry may be -1); ``None`` entries come from int64 scalar inputs."""

    shape: tuple[int | None, ...]
    name = "reshape"

    @property
    def nin(self) -> int:
        return 1 + self.shape.count(None)

    def infer(self, x: TensorType, *dims: TensorType) -> list[TensorType]:
        check_shape_inputs(dims, self.name)
        if self.shape.count(-1) > 1:
            raise ShapeError(f"only one dimension can be -1, got {self.shape}")
        size = math.prod(x.shape) if None not in x.shape else None
        known = [d for d in self.shape if d is not None and d != -1]
        out = list(self.shape)
        if -1 in self.shape:
            rest = math.prod(known)
            if size is not None and None not in self.shape:
                if rest == 0 or size % rest:
                    raise ShapeError(f"cannot reshape {x.shape} (size {size}) into {self.shape}")
                out[self.shape.index(-1)] = size // rest
            else:
                out[self.shape.index(-1)] = None
        elif size is not None and None not in self.shape and math.prod(known) != size:
            raise ShapeError(f"cannot reshape {x.shape} (size {size}) into {self.shape}")
        return [TensorType(x.dtype, tuple(out))]

    def perform(self, x, *dims):
        return (x.reshape(fill_shape(self.shape, dims)),)

    def format_call(self, args: list[str]) -> str:
        return f"reshape({args[0]}, {format_shape_argument(self.shape, args[1:])})"

    def vjp(self, inputs, outputs, cotangents):
        return [reshape(cotangents[0], inputs[0].shape)] + [None] * (len(inputs) - 1)

    def jvp(self, inputs, outputs, tangents):
        return [apply1(self, tangents[0], *inputs[1:])]


def reshape(x, shape) -> Variable:
    """Reshape ``x``; entries of ``shape`` are ints (one may be -1) or symbolic sizes like ``y.shape[0]``."""
    x = as_variable(x)
    static, dynamic = shape_argument(shape, "reshape")
    if static == x.type.shape and not dynamic:
        return x
    return apply1(Reshape(static), x, *dynamic)


@dataclass(frozen=True)
class BroadcastTo(Op):
    """Broadcast to ``shape`` with NumPy's rules; ``None`` entries come from int64 scalar inputs."""

    shape: tuple[int | None, ...]
    name = "broadcast_to"
    broadcasts = True

    @property
    def nin(self) -> int:
        return 1 + self.shape.count(None)

    def infer(self, x: TensorType, *dims: TensorType) -> list[TensorType]:
        check_shape_inputs(dims, self.name)
        if -1 in self.shape:
            raise ShapeError(f"broadcast_to does not accept -1 in {self.shape}")
        if x.ndim > len(self.shape):
            raise ShapeError(f"cannot broadcast {x.shape} to fewer dimensions {self.shape}")
        out = list(self.shape)
        for i, d in enumerate(x.shape):
            j = len(self.shape) - x.ndim + i
            target = self.shape[j]
            if d is not None and d != 1 and target is not None and d != target:
                raise ShapeError(f"cannot broadcast {x.shape} to {self.shape}")
            if target is None and d not in (None, 1):
                out[j] = d
        return [TensorType(x.dtype, tuple(out))]

    def perform(self, x, *dims):
        return (np.broadcast_to(x, fill_shape(self.shape, dims)),)

    def format_call(self, args: list[str]) -> str:
        return f"broadcast_to({args[0]}, {format_shape_argument(self.shape, args[1:])})"

    def vjp(self, inputs, outputs, cotangents):
        from .calculus import sum_to

        return [sum_to(cotangents[0], inputs[0])] + [None] * (len(inputs) - 1)

    def jvp(self, inputs, outputs, tangents):
        return [apply1(self, tangents[0], *inputs[1:])]


def broadcast_to(x, shape) -> Variable:
    """``x`` broadcast to ``shape`` (ints or symbolic sizes such as ``y.shape[0]``)."""
    x = as_variable(x)
    static, dynamic = shape_argument(shape, "broadcast_to")
    if static == x.type.shape and not dynamic:
        return x
    return apply1(BroadcastTo(static), x, *dynamic)


def full(shape, value, dtype=None) -> Variable:
    """An array of ``shape`` filled with ``value`` (a broadcast constant: no memory until needed)."""
    from .base import operands

    fill = as_variable(value, dtype) if dtype is not None else operands(value)[0]
    return broadcast_to(fill, shape)


def zeros(shape, dtype="float64") -> Variable:
    return full(shape, 0, dtype)


def ones(shape, dtype="float64") -> Variable:
    return full(shape, 1, dtype)


def zeros_like(x, dtype=None) -> Variable:
    x = as_variable(x)
    return full(x.shape, 0, dtype or x.dtype)


def ones_like(x, dtype=None) -> Variable:
    x = as_variable(x)
    return full(x.shape, 1, dtype or x.dtype)


# ----- joining --------------------------------------------------------------------------------
def _join_types(types: tuple[TensorType, ...], axis: int, new_axis: bool) -> tuple[str, list]:
    if not types:
        raise ShapeError("needs at least one input")
    ndim = types[0].ndim
    if any(t.ndim != ndim for t in types):
        raise ShapeError(f"all inputs must have the same number of dimensions, got {[t.ndim for t in types]}")
    shape = []
    for i in range(ndim):
        if i == axis and not new_axis:
            dims = [t.shape[i] for t in types]
            shape.append(None if None in dims else sum(dims))
            continue
        known = {t.shape[i] for t in types} - {None}
        if len(known) > 1:
            raise ShapeError(f"inputs differ in axis {i}: {[t.shape for t in types]}")
        shape.append(known.pop() if known else None)
    return promote(*(t.dtype for t in types)), shape


@dataclass(frozen=True)
class Concatenate(Op):
    """Join inputs along an existing axis."""

    axis: int
    name = "concatenate"
    nin = None

    def infer(self, *types: TensorType) -> list[TensorType]:
        if types and not 0 <= self.axis < types[0].ndim:
            raise ShapeError(f"axis {self.axis} is out of range")
        dtype, shape = _join_types(types, self.axis, new_axis=False)
        return [TensorType(dtype, tuple(shape))]

    def perform(self, *xs):
        return (np.concatenate(xs, axis=self.axis, dtype=np.result_type(*xs)),)

    def format_params(self) -> list[str]:
        return [f"axis={self.axis}"]

    def vjp(self, inputs, outputs, cotangents):
        static, dynamic = shape_argument([x.shape[self.axis] for x in inputs], "split")
        pieces = apply(Split(self.axis, static), [cotangents[0], *dynamic])
        return [_cast_like(p, x) for p, x in zip(pieces, inputs)]

    def jvp(self, inputs, outputs, tangents):
        return [concatenate([t if t is not None else zeros_like(x) for t, x in zip(tangents, inputs)], self.axis)]


@dataclass(frozen=True)
class Stack(Op):
    """Join inputs along a new axis."""

    axis: int
    name = "stack"
    nin = None

    def infer(self, *types: TensorType) -> list[TensorType]:
        dtype, shape = _join_types(types, -1, new_axis=True)
        shape.insert(self.axis, len(types))
        return [TensorType(dtype, tuple(shape))]

    def perform(self, *xs):
        return (np.stack(xs, axis=self.axis, dtype=np.result_type(*xs)),)

    def format_params(self) -> list[str]:
        return [f"axis={self.axis}"]

    def vjp(self, inputs, outputs, cotangents):
        from .indexing import getitem

        prefix = (slice(None),) * self.axis
        return [_cast_like(getitem(cotangents[0], prefix + (i,)), x) for i, x in enumerate(inputs)]

    def jvp(self, inputs, outputs, tangents):
        return [stack([t if t is not None else zeros_like(x) for t, x in zip(tangents, inputs)], self.axis)]


def _cast_like(g: Variable, x: Variable) -> Variable:
    from .elementwise import cast

    return cast(g, x.dtype)


@dataclass(frozen=True)
class Split(Op):
    """Cut ``x`` along ``axis`` into pieces of ``sizes`` (``None`` entries come from int64 scalar
    inputs): the adjoint of concatenate, and a multi-output op."""

    axis: int
    sizes: tuple[int | None, ...]
    name = "split"

    @property
    def nin(self) -> int:
        return 1 + self.sizes.count(None)

    def infer(self, x: TensorType, *dims: TensorType) -> list[TensorType]:
        check_shape_inputs(dims, self.name)
        if not 0 <= self.axis < x.ndim:
            raise ShapeError(f"axis {self.axis} is out of range")
        total = x.shape[self.axis]
        if None not in self.sizes and total is not None and builtins.sum(self.sizes) != total:
            raise ShapeError(f"pieces of {self.sizes} do not add up to the length {total}")
        return [TensorType(x.dtype, x.shape[: self.axis] + (n,) + x.shape[self.axis + 1 :]) for n in self.sizes]

    def perform(self, x, *dims):
        sizes = fill_shape(self.sizes, dims)
        if builtins.sum(sizes) != x.shape[self.axis]:
            raise ValueError(f"pieces of {sizes} do not add up to the length {x.shape[self.axis]}")
        return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=self.axis))

    def format_call(self, args: list[str]) -> str:
        return f"split({args[0]}, {format_shape_argument(self.sizes, args[1:])}, axis={self.axis})"

    def vjp(self, inputs, outputs, cotangents):
        pieces = [g if g is not None else zeros_like(o) for g, o in zip(cotangents, outputs)]
        return [concatenate(pieces, self.axis)] + [None] * (len(inputs) - 1)

    def jvp(self, inputs, outputs, tangents):
        return list(apply(self, [tangents[0], *inputs[1:]]))


def _as_list_of_variables(xs, op: str) -> list[Variable]:
    if isinstance(xs, Variable):
        raise UsageError("takes a list of variables, got a single variable", op=op)
    from .base import operands

    return operands(*xs)


def concatenate(xs, axis: int = 0) -> Variable:
    """Join a list of variables along an existing ``axis``."""
    xs = _as_list_of_variables(xs, "concatenate")
    if not xs:
        raise ShapeError("needs at least one input", op="concatenate")
    return apply1(Concatenate(normalize_axis(axis, xs[0], "concatenate")), *xs)


def stack(xs, axis: int = 0) -> Variable:
    """Join a list of variables along a new ``axis``."""
    xs = _as_list_of_variables(xs, "stack")
    if not xs:
        raise ShapeError("needs at least one input", op="stack")
    return apply1(Stack(normalize_axis(axis, xs[0], "stack", new=1)), *xs)
