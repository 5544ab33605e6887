"""Static types of graph variables: a dtype and a shape with ``None`` for unknown dimensions.

Types are checked when a node is built, so that shape and dtype mistakes surface at the line of
user code that made them rather than deep inside a backend.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .errors import DTypeError, ShapeError

#: The dtypes graphc supports, in promotion order within each kind.
DTYPES = ("bool", "int64", "float32", "float64")
FLOAT_DTYPES = ("float32", "float64")

Dim = int | None
Shape = tuple[Dim, ...]


def as_dtype(dtype) -> str:
    """Normalize a user dtype (string, numpy dtype or scalar type) to one of :data:`DTYPES`."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        raise DTypeError(f"unknown dtype {dtype!r}; graphc supports {', '.join(DTYPES)}") from None
    if name not in DTYPES:
        raise DTypeError(f"unsupported dtype {name!r}; graphc supports {', '.join(DTYPES)}")
    return name


def dtype_of_array(value: np.ndarray) -> str:
    """The graphc dtype a numpy array is stored as: narrower ints widen, half floats widen."""
    kind = value.dtype.kind
    if kind == "b":
        return "bool"
    if kind in "iu":
        return "int64"
    if kind == "f":
        return "float64" if value.dtype.itemsize > 4 else "float32"
    raise DTypeError(f"cannot use an array of dtype {value.dtype} in a graph; graphc supports {', '.join(DTYPES)}")


def is_float(dtype: str) -> bool:
    return dtype in FLOAT_DTYPES


@functools.cache
def promote(*dtypes: str) -> str:
    """NumPy's promotion of array dtypes (int64 with float32 gives float64, as in NumPy)."""
    return np.result_type(*dtypes).name


@functools.cache
def float_result(*dtypes: str) -> str:
    """The dtype of a floating-point function of these inputs: ints and bools compute in float64."""
    dtype = promote(*dtypes)
    return dtype if is_float(dtype) else "float64"


def normalize_shape(shape) -> Shape:
    """Check and normalize a user shape: a tuple of non-negative ints or ``None``."""
    if isinstance(shape, (int, np.integer)) or shape is None:
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ShapeError(f"a shape must be a tuple of ints or None, got {shape!r}") from None
    out = []
    for d in dims:
        if d is None:
            out.append(None)
        elif isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0:
            out.append(int(d))
        else:
            raise ShapeError(f"a shape must hold non-negative ints or None, got {shape!r}")
    return tuple(out)


def broadcast_shapes(*shapes: Shape) -> Shape:
    """NumPy broadcasting over static shapes; ``None`` broadcasts against anything but may stay unknown.

    Raises ValueError (turned into a ShapeError naming the op by the caller) when two known
    dimensions differ and neither is 1.
    """
    ndim = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for axis in range(ndim):
        dims = [s[axis - ndim + len(s)] for s in shapes if axis - ndim + len(s) >= 0]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ValueError(f"dimensions {sorted(known)} do not broadcast")
        if known:
            out.append(known.pop())
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def unknown_broadcast_checks(inputs: list[Shape], output: Shape) -> list[tuple[int, int, int]]:
    """The run-time checks that keep graphc's broadcasting rule: a dimension whose length is
    unknown (``None``) never broadcasts, so it must equal the output's length at run time.

    Returns (input position, input axis, output axis) triples. The rule is what lets gradients
    sum back to an input's shape from static types alone, as in PyTensor; a dimension meant to
    broadcast is declared with length 1.
    """
    checks = []
    for k, shape in enumerate(inputs):
        offset = len(output) - len(shape)
        for axis, dim in enumerate(shape):
            if dim is None:
                checks.append((k, axis, axis + offset))
    return checks


def shapes_compatible(a: Shape, b: Shape) -> bool:
    """Whether two static shapes can describe the same value (``None`` matches any length)."""
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def unknown_broadcast_message(position: int, axis: int, length: int, target: int, static: TensorType) -> str:
    """The error for a dimension of unknown length that met a broadcast at run time."""
    return (
        f"input {position + 1} has length {length} in axis {axis}, which broadcasts to {target}, but its type "
        f"{static} leaves that length unknown; only dimensions declared as 1 broadcast "
        "(e.g. gc.matrix(shape=(1, None)))"
    )


def format_shape(shape: Shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


@dataclass(frozen=True, slots=True)
class TensorType:
    """The static type of a variable. Two variables with equal types are interchangeable in a graph."""

    dtype: str
    shape: Shape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}{format_shape(self.shape)}"

    def accepts_shape(self, shape: tuple[int, ...]) -> bool:
        """Whether a concrete runtime shape fits this static shape."""
        return len(shape) == len(self.shape) and all(s is None or s == d for s, d in zip(self.shape, shape))

    def is_compatible(self, other: TensorType) -> bool:
        """Whether a value of type ``other`` can stand where this type is expected."""
        return self.dtype == other.dtype and shapes_compatible(self.shape, other.shape)
