"""The Op interface: everything graphc knows about an operation lives on its Op class.

An op is an immutable value (a frozen dataclass), so two ops with the same parameters are equal
and hash alike; that is what lets nodes be hash-consed. Each op gives:

- ``infer(*input_types)``: its shape and dtype rule, raising ShapeError/DTypeError;
- ``perform(*arrays)``: its numpy reference evaluation, the oracle for every other backend;
- ``format_params()``: the parameters shown when a node is printed.

Later layers fill further slots in the same class: forward (JVP) and reverse (VJP) derivative
rules, the SymPy translation and scalar kernel code.
"""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError
from ..graph import Variable, apply, constant
from ..types import DTYPES, TensorType, dtype_of_array, normalize_shape


class Op:
    """Base class of all ops; subclasses are frozen dataclasses holding the op's parameters."""

    name: str = "op"
    nin: int | None = 1  # number of inputs; None for variadic ops
    symbol: str | None = None  # infix/prefix symbol for printing, if any
    precedence: int = 11  # Python's binding strength of ``symbol`` (11: an atom or a call)

    def infer(self, *types: TensorType) -> list[TensorType]:
        raise NotImplementedError

    def perform(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def format_params(self) -> list[str]:
        return []

    # ----- derivative rules (graphc.autodiff calls these) ------------------------------------
    def vjp(self, inputs, outputs, cotangents) -> list:
        """Reverse mode: the cotangent of each input (None for zero), given the outputs' cotangents
        (None where an output has none). Built as a graph, so it can be differentiated again."""
        raise NotImplementedError(f"{self.name} has no VJP rule")

    def jvp(self, inputs, outputs, tangents) -> list:
        """Forward mode: the tangent of each output (None for zero), given the inputs' tangents
        (None where an input has none)."""
        raise NotImplementedError(f"{self.name} has no JVP rule")

    def format_call(self, args: list[str]) -> str:
        """How a node of this op prints, given its inputs' names: ``name(inputs, params)``."""
        return f"{self.name}({', '.join(args + self.format_params())})"

    def __call__(self, *inputs: Variable):
        outs = apply(self, [as_variable(i) for i in inputs])
        return outs[0] if len(outs) == 1 else outs


def no_vjp(self, inputs, outputs, cotangents) -> list:
    """The VJP of ops whose outputs are piecewise constant or integer: no cotangent flows back."""
    return [None] * len(inputs)


def no_jvp(self, inputs, outputs, tangents) -> list:
    """The JVP of ops whose outputs are piecewise constant or integer: no tangent flows on."""
    return [None] * len(outputs)


def as_variable(value, dtype=None) -> Variable:
    """A variable for ``value``: variables pass through, anything else becomes a constant."""
    return value if isinstance(value, Variable) else constant(value, dtype)


def _is_python_scalar(value) -> bool:
    return isinstance(value, (bool, int, float)) and not isinstance(value, np.generic)


def operands(*args) -> list[Variable]:
    """Turn mixed operands into variables with NumPy 2 promotion: Python scalars are weak.

    ``x32 * 2.0`` stays float32 and ``int_x + 1.5`` becomes float64, exactly as NumPy does it for
    arrays, because the Python scalar takes the dtype ``np.result_type`` gives it.
    """
    if all(isinstance(a, Variable) for a in args):
        return list(args)
    strong = [a.dtype if isinstance(a, Variable) else np.asarray(a).dtype for a in args if not _is_python_scalar(a)]
    out = []
    for a in args:
        if isinstance(a, Variable):
            out.append(a)
        elif _is_python_scalar(a):
            dtype = dtype_of_array(np.empty(0, np.result_type(*strong, a)))
            out.append(constant(a, dtype))
        else:
            out.append(constant(a))
    return out


def normalize_axis(axis: int, x: Variable, op: str, new: int = 0) -> int:
    """Check ``axis`` against ``x`` (or against ``x`` with ``new`` more axes, for ops that add
    axes) and make it non-negative; errors name ``x``'s type."""
    ndim = x.ndim + new
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise ShapeError(f"axis must be an int, got {axis!r} (input: {x.type})", op=op)
    if not -ndim <= axis < ndim:
        raise ShapeError(f"axis {axis} is out of range for {_dims(ndim)} (input: {x.type})", op=op)
    return int(axis) % ndim


def _dims(ndim: int) -> str:
    return f"{ndim} dimension" + ("" if ndim == 1 else "s")


def normalize_axes(axis, x: Variable, op: str) -> tuple[int, ...]:
    """``None`` means every axis; an int or a tuple of ints is checked and made non-negative."""
    if axis is None:
        return tuple(range(x.ndim))
    try:
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    except TypeError:
        raise ShapeError(
            f"axis must be an int, a tuple of ints or None, got {axis!r} (input: {x.type})", op=op
        ) from None
    norm = tuple(sorted(normalize_axis(a, x, op) for a in axes))
    if len(set(norm)) != len(norm):
        raise ShapeError(f"repeated axis in {axis!r} (input: {x.type})", op=op)
    return norm


def shape_argument(shape, op: str) -> tuple[tuple[int | None, ...], list[Variable]]:
    """Split a user shape into static entries and symbolic ones.

    Each entry is an int (``-1`` allowed where the op accepts it) or a symbolic int64 scalar such
    as ``x.shape[0]``; a symbolic entry becomes ``None`` in the static part and an extra input of
    the node, so shapes known only at run time still flow through the graph.
    """
    if isinstance(shape, (int, np.integer, Variable)):
        shape = (shape,)
    static: list[int | None] = []
    dynamic: list[Variable] = []
    for entry in tuple(shape):
        if isinstance(entry, Variable):
            if entry.ndim != 0 or entry.dtype != "int64":
                raise DTypeError(f"a symbolic shape entry must be an int64 scalar, got {entry.type}", op=op)
            static.append(None)
            dynamic.append(entry)
        elif isinstance(entry, (int, np.integer)) and not isinstance(entry, bool) and entry >= -1:
            static.append(int(entry))
        else:
            raise ShapeError(f"shape entries must be ints or int64 scalars, got {entry!r} in {shape!r}", op=op)
    return tuple(static), dynamic


def check_shape_inputs(types: tuple[TensorType, ...], op: str) -> None:
    for t in types:
        if t.ndim != 0 or t.dtype != "int64":
            raise DTypeError(f"symbolic shape entries must be int64 scalars, got {t}", op=op)


def format_shape_argument(static: tuple[int | None, ...], dynamic: list[str]) -> str:
    """A shape argument as the user wrote it: symbolic entries shown by name in their place."""
    names = iter(dynamic)
    entries = [next(names) if d is None else str(d) for d in static]
    return "(" + ", ".join(entries) + ("," if len(entries) == 1 else "") + ")"


def fill_shape(static: tuple[int | None, ...], dynamic) -> tuple[int, ...]:
    """The concrete shape at run time: static entries, with the ``None`` ones taken from ``dynamic``."""
    values = iter(dynamic)
    return tuple(int(next(values)) if d is None else d for d in static)


__all__ = [
    "DTYPES",
    "Op",
    "as_variable",
    "operands",
    "normalize_axis",
    "normalize_axes",
    "shape_argument",
    "check_shape_inputs",
    "fill_shape",
    "normalize_shape",
]
