"""The argument and input checks every layer shares, and how errors name layers and types.

A layer checks its constructor arguments when it is built and its inputs when it is called (when
the graph is built), and raises :class:`LayerError` naming the layer, so a mistake is reported
at the user's line and in the layer's terms before any op sees it.
"""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError
from ..graph import Variable
from ..ops.base import as_variable
from ..types import as_dtype, format_shape, is_float
from .module import LayerError, Module, label

__all__ = ["check_input", "describe_type", "float_dtype", "jsonable_pair", "label", "pair", "positive_int"]


def describe_type(x, dtype: bool = True) -> str:
    """A variable's static type as errors show it, ``float32 (?, 64)`` (``?``: unknown until the
    function runs); ``dtype=False`` gives the shape alone, ``(?, 64)``, as does a shape tuple."""
    if not isinstance(x, Variable):
        return format_shape(tuple(x))
    return f"{x.dtype} {format_shape(x.type.shape)}" if dtype else format_shape(x.type.shape)


def check_input(
    layer: Module, x, expected: str, ndim=None, min_ndim=None, sizes=None, dtype=None, what: str = "input"
) -> Variable:
    """``x`` as a variable, or a :class:`LayerError` that says what ``layer`` expected and got.

    ``expected`` describes the accepted shape in words, e.g. ``"(N, 64)"``; ``sizes`` maps axes to
    the static sizes they must have (an unknown size passes: it is checked when the function runs);
    ``dtype`` is the exact dtype required, or ``"float"`` for any float dtype; ``what`` names the
    argument (``"the initial state h0"``) for layers that take more than one.
    """
    x = as_variable(x)
    got = describe_type(x)

    def fail(why: str):
        raise LayerError(f"{label(layer)}: expects {what} {expected}, got {got}: {why}")

    if ndim is not None and x.ndim not in (ndim if isinstance(ndim, tuple) else (ndim,)):
        fail(f"rank {x.ndim}, not {' or '.join(map(str, ndim)) if isinstance(ndim, tuple) else ndim}")
    if min_ndim is not None and x.ndim < min_ndim:
        fail(f"rank {x.ndim}, needs at least {min_ndim}")
    for axis, size in (sizes or {}).items():
        actual = x.type.shape[axis]
        if actual is not None and actual != size:
            fail(f"axis {axis % x.ndim} has size {actual}, not {size}")
    if dtype == "float" and not is_float(x.dtype):
        fail(f"dtype {x.dtype} is not a float dtype")
    if dtype not in (None, "float") and x.dtype != dtype:
        hint = f"cast it with gc.cast(x, {dtype!r})" if is_float(x.dtype) else "it must be " + dtype
        if is_float(x.dtype) and is_float(dtype):
            hint += f" or build the layer with dtype={x.dtype!r}"
        fail(f"dtype {x.dtype}, the layer computes in {dtype}; {hint}")
    return x


def positive_int(layer: str, what: str, value) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise LayerError(f"{layer}: {what} must be a positive int, got {value!r}")
    return int(value)


def float_dtype(layer: str, dtype) -> str:
    try:
        dtype = as_dtype(dtype)
    except DTypeError:
        dtype = repr(dtype)
    if not is_float(dtype):
        raise LayerError(f"{layer}: dtype must be float32 or float64, got {dtype}")
    return dtype


def pair(layer: str, what: str, value, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints >= ``minimum`` as a pair (kernel sizes, strides, paddings)."""
    try:
        values = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    except TypeError:
        values = ()
    if len(values) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= minimum for v in values
    ):
        raise LayerError(f"{layer}: {what} must be an int >= {minimum} or a pair of them, got {value!r}")
    return int(values[0]), int(values[1])


def jsonable_pair(value: tuple[int, int]):
    """An int when both entries agree, else a list: how configs store sizes and strides."""
    return value[0] if value[0] == value[1] else list(value)
