"""Indexing: basic indexing with static ints and slices, gathers with index arrays, and one-hot
encoding, with the scatter ops their derivatives need."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DTypeError, IndexingError, ShapeError
from ..graph import Variable, apply1
from ..types import TensorType, as_dtype
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


# ----- indexing -------------------------------------------------------------------------------
@dataclass(frozen=True)
class GetItem(Op):
    """Basic indexing with static ints, slices and new axes (``x[0, 1:3, None]``).

    ``index`` holds one entry per indexed position: ``("int", i)``, ``("slice", start, stop,
    step)`` or ``("new",)``; an Ellipsis has already been expanded into full slices.
    """

    index: tuple[tuple, ...]
    name = "getitem"

    def infer(self, x: TensorType) -> list[TensorType]:
        consumed = sum(1 for e in self.index if e[0] != "new")
        if consumed > x.ndim:
            raise ShapeError(f"too many indices ({consumed}) for an input of {x.ndim} dimension(s)")
        shape, axis = [], 0
        for entry in self.index:
            if entry[0] == "new":
                shape.append(1)
                continue
            dim = x.shape[axis]
            if entry[0] == "int":
                if dim is not None and not -dim <= entry[1] < dim:
                    raise ShapeError(f"index {entry[1]} is out of bounds for axis {axis} of length {dim}")
            else:
                shape.append(None if dim is None else len(range(*slice(*entry[1:]).indices(dim))))
            axis += 1
        return [TensorType(x.dtype, tuple(shape) + x.shape[axis:])]

    def perform(self, x):
        return (np.asarray(x[self.numpy_index()]),)

    def numpy_index(self) -> tuple:
        return tuple(e[1] if e[0] == "int" else slice(*e[1:]) if e[0] == "slice" else None for e in self.index)

    def vjp(self, inputs, outputs, cotangents):
        (x,), (g,) = inputs, cotangents
        static, dynamic = shape_argument(x.shape, "getitem")
        return [apply1(GetItemAdjoint(self.index, static), g, *dynamic)]

    def jvp(self, inputs, outputs, tangents):
        return [apply1(self, tangents[0])]

    def format_params(self) -> list[str]:
        def one(e):
            if e[0] == "int":
                return str(e[1])
            if e[0] == "new":
                return "None"
            start, stop, step = ("" if v is None else str(v) for v in e[1:])
            return f"{start}:{stop}" + (f":{step}" if step else "")

        return ["[" + ", ".join(one(e) for e in self.index) + "]"]


@dataclass(frozen=True)
class Take(Op):
    """Gather along ``axis`` with an int64 index array (``x[idx]``, embedding look-ups)."""

    axis: int
    name = "take"
    nin = 2

    def infer(self, x: TensorType, idx: TensorType) -> list[TensorType]:
        if idx.dtype != "int64":
            raise DTypeError(f"indices must be int64, got {idx.dtype}")
        if not 0 <= self.axis < x.ndim:
            raise ShapeError(f"axis {self.axis} is out of range")
        return [TensorType(x.dtype, x.shape[: self.axis] + idx.shape + x.shape[self.axis + 1 :])]

    def perform(self, x, idx):
        return (np.take(x, idx, axis=self.axis),)

    def format_params(self) -> list[str]:
        return [f"axis={self.axis}"]

    def vjp(self, inputs, outputs, cotangents):
        (x, idx), (g,) = inputs, cotangents
        static, dynamic = shape_argument(x.shape, "take")
        return [apply1(TakeAdjoint(self.axis, static), g, idx, *dynamic), None]

    def jvp(self, inputs, outputs, tangents):
        return [apply1(self, tangents[0], inputs[1])]


# ----- adjoints of the gathers: scatters into zeros -------------------------------------------
@dataclass(frozen=True)
class GetItemAdjoint(Op):
    """Zeros of ``shape`` with ``g`` written at ``index``: the VJP of basic indexing.

    ``None`` entries of ``shape`` come from int64 scalar inputs. It is linear in ``g``, so its own
    VJP is the indexing it undoes, and derivatives go to any order.
    """

    index: tuple[tuple, ...]
    shape: tuple[int | None, ...]
    name = "getitem_adjoint"

    @property
    def nin(self) -> int:
        return 1 + self.shape.count(None)

    def infer(self, g: TensorType, *dims: TensorType) -> list[TensorType]:
        check_shape_inputs(dims, self.name)
        return [TensorType(g.dtype, self.shape)]

    def perform(self, g, *dims):
        out = np.zeros(fill_shape(self.shape, dims), dtype=g.dtype)
        out[GetItem(self.index).numpy_index()] = g
        return (out,)

    def format_call(self, args: list[str]) -> str:
        index = GetItem(self.index).format_params()[0]
        return f"getitem_adjoint({args[0]}, {index}, shape={format_shape_argument(self.shape, args[1:])})"

    def vjp(self, inputs, outputs, cotangents):
        return [apply1(GetItem(self.index), cotangents[0])] + [None] * (len(inputs) - 1)

    def jvp(self, inputs, outputs, tangents):
        return [apply1(self, tangents[0], *inputs[1:])]


@dataclass(frozen=True)
class TakeAdjoint(Op):
    """Zeros of ``shape`` with ``g`` added at ``idx`` along ``axis`` (repeated indices add up):
    the VJP of take, e.g. of an embedding look-up."""

    axis: int
    shape: tuple[int | None, ...]
    name = "take_adjoint"

    @property
    def nin(self) -> int:
        return 2 + self.shape.count(None)

    def infer(self, g: TensorType, idx: TensorType, *dims: TensorType) -> list[TensorType]:
        check_shape_inputs(dims, self.name)
        if idx.dtype != "int64":
            raise DTypeError(f"indices must be int64, got {idx.dtype}")
        return [TensorType(g.dtype, self.shape)]

    def perform(self, g, idx, *dims):
        out = np.zeros(fill_shape(self.shape, dims), dtype=g.dtype)
        np.add.at(out, (slice(None),) * self.axis + (idx,), g)
        return (out,)

    def format_call(self, args: list[str]) -> str:
        shape = format_shape_argument(self.shape, args[2:])
        return f"take_adjoint({args[0]}, {args[1]}, axis={self.axis}, shape={shape})"

    def vjp(self, inputs, outputs, cotangents):
        return [take(cotangents[0], inputs[1], self.axis), None] + [None] * (len(inputs) - 2)

    def jvp(self, inputs, outputs, tangents):
        return [apply1(self, tangents[0], *inputs[1:])]


def take(x, indices, axis: int = 0) -> Variable:
    """Entries of ``x`` at ``indices`` (int64, any shape) along ``axis``; negative indices wrap."""
    x = as_variable(x)
    indices = as_variable(indices)
    return apply1(Take(normalize_axis(axis, x, "take")), x, indices)


def getitem(x: Variable, index) -> Variable:
    """``x[index]``: ints, slices, None and Ellipsis statically; one int64 array or scalar variable
    (or an int list/array) selects along its axis through :func:`take`."""
    entries = index if isinstance(index, tuple) else (index,)
    arrays = [i for i, e in enumerate(entries) if isinstance(e, (Variable, list, np.ndarray))]
    if arrays:
        if len(arrays) > 1 or any(
            not (isinstance(e, slice) and e == slice(None)) for i, e in enumerate(entries) if i != arrays[0]
        ):
            raise IndexingError(
                "indexing with an array is supported on one axis with full slices elsewhere (x[:, idx]); "
                "use gc.take or gc.one_hot for other gathers",
                op="getitem",
            )
        idx = as_variable(entries[arrays[0]])
        if idx.dtype == "bool":
            raise IndexingError(
                "boolean mask indexing gives a shape known only at run time; use gc.where(mask, x, 0)",
                op="getitem",
            )
        if idx.dtype != "int64":
            raise IndexingError(f"index arrays must be int64, got {idx.dtype}", op="getitem")
        return take(x, idx, axis=arrays[0])
    if Ellipsis in entries:
        if entries.count(Ellipsis) > 1:
            raise IndexingError("an index can only have a single ellipsis", op="getitem")
        at = entries.index(Ellipsis)
        consumed = sum(1 for e in entries if e is not None and e is not Ellipsis)
        entries = entries[:at] + (slice(None),) * max(x.ndim - consumed, 0) + entries[at + 1 :]
    norm = []
    for e in entries:
        if e is None:
            norm.append(("new",))
        elif isinstance(e, (int, np.integer)) and not isinstance(e, bool):
            norm.append(("int", int(e)))
        elif isinstance(e, slice):
            parts = (e.start, e.stop, e.step)
            if not all(p is None or isinstance(p, (int, np.integer)) for p in parts):
                raise IndexingError(f"slice bounds must be ints, got {e}", op="getitem")
            if e.step == 0:
                raise IndexingError("slice step cannot be zero", op="getitem")
            norm.append(("slice",) + tuple(None if p is None else int(p) for p in parts))
        else:
            raise IndexingError(f"unsupported index {e!r}", op="getitem")
    return apply1(GetItem(tuple(norm)), x)


# ----- one-hot --------------------------------------------------------------------------------
@dataclass(frozen=True)
class OneHot(Op):
    """Class indices (int64, any shape) to one-hot vectors along a new last axis."""

    num_classes: int
    dtype: str = "float64"
    name = "one_hot"
    vjp = no_vjp
    jvp = no_jvp

    def infer(self, idx: TensorType) -> list[TensorType]:
        if idx.dtype != "int64":
            raise DTypeError(f"class indices must be int64, got {idx.dtype}")
        return [TensorType(self.dtype, idx.shape + (self.num_classes,))]

    def perform(self, idx):
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_classes):
            bad = idx[(idx < 0) | (idx >= self.num_classes)].flat[0]
            raise ValueError(f"class index {bad} is out of range for {self.num_classes} classes")
        return ((idx[..., None] == np.arange(self.num_classes)).astype(self.dtype),)

    def format_params(self) -> list[str]:
        return [str(self.num_classes)]


def one_hot(indices, num_classes: int, dtype="float64") -> Variable:
    """One-hot encode int64 class ``indices`` into ``num_classes`` columns."""
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ShapeError(f"num_classes must be a positive int, got {num_classes!r}", op="one_hot")
    return apply1(OneHot(int(num_classes), as_dtype(dtype)), as_variable(indices))
