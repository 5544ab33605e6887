"""The IR: variables, nodes, constants and shared variables, and utilities over the DAGs they form.

A graph is immutable: a node never changes after it is built, and rewriting a graph means
building new nodes. Nodes are hash-consed: building ``op(a, b)`` twice returns the same node, so
``x1*x2`` written twice is one node, and structural equality of two subgraphs is identity.
The registry holds nodes weakly, so graphs nobody refers to are freed.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import math
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .errors import (
    ArityError,
    DTypeError,
    GraphcError,
    GraphError,
    ShapeError,
    SourceLocation,
    UsageError,
    user_location,
)
from .types import TensorType, as_dtype, dtype_of_array, normalize_shape


@functools.cache
def _ops():
    """The op library, imported on first use: operators on Variable are thin calls into it."""
    from . import ops

    return ops


class Variable:
    """A symbolic tensor: the output of a node, an input, a constant or a shared variable.

    Variables hash and compare by identity (so they can key dicts such as ``updates``); use
    :func:`graphc.eq` for elementwise equality.
    """

    __slots__ = ("type", "owner", "index", "name", "__weakref__")
    __array_ufunc__ = None  # make numpy defer to our reflected operators: np.float64(2) * x is symbolic

    def __init__(self, type: TensorType, owner: Node | None = None, index: int = 0, name: str | None = None):
        self.type = type
        self.owner = owner
        self.index = index
        self.name = name

    # ----- type information -------------------------------------------------------------------
    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def ndim(self) -> int:
        return self.type.ndim

    @property
    def shape(self) -> tuple:
        """The shape: an int where it is known statically, a symbolic int64 scalar where it is not."""
        return tuple(d if d is not None else _ops().shape_dim(self, i) for i, d in enumerate(self.type.shape))

    @property
    def T(self) -> Variable:
        return _ops().transpose(self)

    # ----- operators --------------------------------------------------------------------------
    def __add__(self, other):
        return _ops().add(self, other)

    def __radd__(self, other):
        return _ops().add(other, self)

    def __sub__(self, other):
        return _ops().sub(self, other)

    def __rsub__(self, other):
        return _ops().sub(other, self)

    def __mul__(self, other):
        return _ops().mul(self, other)

    def __rmul__(self, other):
        return _ops().mul(other, self)

    def __truediv__(self, other):
        return _ops().div(self, other)

    def __rtruediv__(self, other):
        return _ops().div(other, self)

    def __pow__(self, other):
        return _ops().pow(self, other)

    def __rpow__(self, other):
        return _ops().pow(other, self)

    def __matmul__(self, other):
        return _ops().matmul(self, other)

    def __rmatmul__(self, other):
        return _ops().matmul(other, self)

    def __neg__(self):
        return _ops().neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops().abs(self)

    def __lt__(self, other):
        return _ops().lt(self, other)

    def __le__(self, other):
        return _ops().le(self, other)

    def __gt__(self, other):
        return _ops().gt(self, other)

    def __ge__(self, other):
        return _ops().ge(self, other)

    def __and__(self, other):
        return _ops().logical_and(self, other)

    def __rand__(self, other):
        return _ops().logical_and(other, self)

    def __or__(self, other):
        return _ops().logical_or(self, other)

    def __ror__(self, other):
        return _ops().logical_or(other, self)

    def __invert__(self):
        return _ops().logical_not(self)

    def __getitem__(self, index):
        return _ops().getitem(self, index)

    __hash__ = object.__hash__

    def __bool__(self):
        raise UsageError(
            "a symbolic variable has no truth value while the graph is built; "
            "use gc.where(cond, a, b) for a data-dependent choice"
        )

    def __iter__(self):
        raise UsageError("a symbolic variable cannot be iterated; index it (x[i]) or use gc.stack/concatenate")

    def __len__(self):
        if self.ndim == 0:
            raise UsageError("len() of a 0-d variable")
        if self.type.shape[0] is None:
            raise UsageError("len() of a variable whose first dimension is unknown; use x.shape[0]")
        return self.type.shape[0]

    # ----- methods ----------------------------------------------------------------------------
    def sum(self, axis=None, keepdims=False):
        return _ops().sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return _ops().mean(self, axis=axis, keepdims=keepdims)

    def prod(self, axis=None, keepdims=False):
        return _ops().prod(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return _ops().max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return _ops().min(self, axis=axis, keepdims=keepdims)

    def argmax(self, axis=None, keepdims=False):
        return _ops().argmax(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape):
        return _ops().reshape(self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)

    def transpose(self, *axes):
        return _ops().transpose(self, axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes or None)

    def astype(self, dtype):
        return _ops().cast(self, dtype)

    def flatten(self):
        return _ops().reshape(self, (-1,))

    def dot(self, other):
        return _ops().dot(self, other)

    # ----- printing ---------------------------------------------------------------------------
    def __str__(self) -> str:
        from .printing import expression

        return expression(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.type}: {self}>"


class Input(Variable):
    """A symbolic input: a value supplied when a compiled function is called."""

    __slots__ = ("location",)

    def __init__(self, type: TensorType, name: str | None):
        super().__init__(type, name=name)
        self.location = user_location()


class Constant(Variable):
    """A constant. Constants are hash-consed on their value, so equal constants are one variable."""

    __slots__ = ("value",)

    def __init__(self, value: np.ndarray):
        super().__init__(TensorType(value.dtype.name, value.shape))
        value.setflags(write=False)
        self.value = value


class SharedVariable(Variable):
    """A named value that persists across calls and that compiled functions may update.

    Its type is fixed at creation, so a compiled function can rely on it; ``set_value`` checks
    new values against it.

    A device backend (CUDA) keeps the value where its kernels run: ``device`` holds its copy,
    and after a device update the host array is refreshed only when someone reads it, so a
    training loop does not copy its parameters every step.

    The numba backend writes an update into the variable's own array where it can (as
    ``m *= beta1`` would), so the array ``get_value(borrow=True)`` returns, or the one given to
    ``set_value(..., borrow=True)``, may change when a function updates the variable, as in
    Theano, even within that call (lend it as an ordinary argument too, and later steps read the
    new value). ``get_value()`` returns a copy that never changes.
    """

    __slots__ = ("_value", "device", "_host_stale")

    def __init__(self, value: np.ndarray, type: TensorType, name: str | None):
        super().__init__(type, name=name)
        self._value = value
        self.device = None  # a device backend's copy of the value (None: only the host array)
        self._host_stale = False  # the device copy is newer than the host array

    def get_value(self, borrow: bool = False) -> np.ndarray:
        value = self.host_value()
        return value if borrow else value.copy()

    def set_value(self, value, borrow: bool = False) -> None:
        self._value = coerce_value(value, self.type, f"shared variable {self.name or '?'}", copy=not borrow)
        self.device, self._host_stale = None, False

    def host_value(self) -> np.ndarray:
        """The current value as a host array (copied back from the device if it is newer there)."""
        if self._host_stale:
            self._value = np.asarray(self.device.copy_to_host()).reshape(self._value.shape)
            self._host_stale = False
        return self._value

    def assign(self, value: np.ndarray) -> None:
        """A compiled function's update: a host array (the device copy, if any, is dropped)."""
        self._value, self.device, self._host_stale = value, None, False

    def assign_device(self, array) -> None:
        """A device backend's update: ``array`` (with ``copy_to_host``) is now the value."""
        self.device, self._host_stale = array, True


class Node:
    """An op applied to input variables; it owns its output variables. Never mutated."""

    __slots__ = ("op", "inputs", "outputs", "location", "__weakref__")

    def __init__(self, op, inputs: tuple[Variable, ...], types: Sequence[TensorType], location: SourceLocation | None):
        self.op = op
        self.inputs = inputs
        self.outputs = tuple(Variable(t, self, i) for i, t in enumerate(types))
        self.location = location

    @property
    def out(self) -> Variable:
        """The single output of a single-output node."""
        (out,) = self.outputs
        return out

    def __repr__(self) -> str:
        return f"<Node {self.op.name}({', '.join(str(i.type) for i in self.inputs)})>"


# ----- construction ---------------------------------------------------------------------------
_registry_lock = threading.Lock()
_rewriting_at: contextvars.ContextVar[SourceLocation | None] = contextvars.ContextVar("rewriting_at", default=None)


@contextlib.contextmanager
def created_at(location: SourceLocation | None):
    """Nodes built inside this block record ``location`` instead of the running line: the
    optimizer rebuilds a user's node through its own code, but errors should still point at the
    line that wrote it."""
    token = _rewriting_at.set(location)
    try:
        yield
    finally:
        _rewriting_at.reset(token)


_nodes: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_constants: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def apply(op, inputs: Sequence[Variable]) -> tuple[Variable, ...]:
    """Build (or find, if it already exists) the node ``op(*inputs)`` and return its outputs.

    The op's type rule runs here, so a shape or dtype mistake is reported at the user line that
    built the node, with the op and the input types named.
    """
    inputs = tuple(inputs)
    # Keyed on input ids, not the inputs themselves: a key holding its inputs would keep a dead
    # graph alive one level per garbage collection. A live node keeps its inputs (and so their
    # ids) alive, and the identity check below guards against a reused id.
    key = (op, tuple(map(id, inputs)))
    node = _nodes.get(key)
    if node is not None and all(a is b for a, b in zip(node.inputs, inputs)):
        return node.outputs
    location = _rewriting_at.get() or user_location()
    if op.nin is not None and len(inputs) != op.nin:
        raise ArityError(f"takes {op.nin} inputs, got {len(inputs)}", op=op.name, location=location)
    for i in inputs:
        if not isinstance(i, Variable):
            raise UsageError(f"input {i!r} is not a graphc variable", op=op.name, location=location)
    try:
        types = op.infer(*[i.type for i in inputs])
    except GraphcError as err:
        described = ", ".join(str(i.type) for i in inputs)
        raise type(err)(f"{err.detail} (inputs: {described})", op=op.name, location=location) from None
    node = Node(op, inputs, types, location)
    with _registry_lock:
        found = _nodes.get(key)
        if found is not None and all(a is b for a, b in zip(found.inputs, inputs)):
            return found.outputs
        _nodes[key] = node
    return node.outputs


def apply1(op, *inputs: Variable) -> Variable:
    """:func:`apply` for single-output ops."""
    (out,) = apply(op, inputs)
    return out


def constant(value, dtype=None) -> Constant:
    """A constant variable holding ``value`` (copied, and made read-only)."""
    if isinstance(value, Constant) and (dtype is None or as_dtype(dtype) == value.dtype):
        return value
    if isinstance(value, Variable):
        raise UsageError(f"gc.constant() needs a value, got the symbolic variable {value}")
    array = np.asarray(value)
    target = as_dtype(dtype) if dtype is not None else dtype_of_array(array)
    array = np.array(array, dtype=target, copy=True)
    data = array.tobytes()
    if len(data) > 256:
        data = hashlib.blake2b(data, digest_size=16).digest()
    key = (target, array.shape, data)
    with _registry_lock:
        found = _constants.get(key)
        if found is None:
            found = _constants[key] = Constant(array)
    return found


def input_variable(name: str | None, shape, dtype) -> Input:
    return Input(TensorType(as_dtype(dtype), normalize_shape(shape)), name)


def shared(value, name: str | None = None, dtype=None, shape=None) -> SharedVariable:
    """A shared variable initialised with ``value`` (copied). ``shape`` may relax dims to ``None``."""
    array = np.asarray(value)
    target = as_dtype(dtype) if dtype is not None else dtype_of_array(array)
    static = normalize_shape(shape) if shape is not None else array.shape
    ttype = TensorType(target, static)
    return SharedVariable(coerce_value(value, ttype, f"shared variable {name or '?'}"), ttype, name)


def coerce_value(value, ttype: TensorType, what: str, copy: bool = True) -> np.ndarray:
    """Turn a user value into an array of ``ttype``, refusing lossy casts and wrong shapes.

    Python scalars and lists are converted to the variable's dtype when that keeps their kind
    (a float into float32 is fine); numpy arrays must cast safely, so float64 data is never
    silently truncated into a float32 variable.
    """
    if isinstance(value, Variable):
        raise DTypeError(f"{what} needs a value, got the symbolic variable {value}")
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.kind not in "biuf" or not np.can_cast(array.dtype, ttype.dtype, "safe"):
            raise DTypeError(
                f"{what} expects {ttype.dtype}, got an array of {array.dtype}; "
                f"convert it first, e.g. value.astype(np.{ttype.dtype})"
            )
    else:
        try:
            array = np.asarray(value)
        except ValueError as err:
            raise ShapeError(
                f"{what} expects shape {_fmt(ttype.shape)}; numpy cannot make an array of it: {err}"
            ) from None
        if array.dtype.kind not in "biuf" or not np.can_cast(array.dtype, ttype.dtype, "same_kind"):
            raise DTypeError(f"{what} expects {ttype.dtype}, got {type(value).__name__} of dtype {array.dtype}")
    if not ttype.accepts_shape(array.shape):
        raise ShapeError(f"{what} expects shape {_fmt(ttype.shape)}, got a value of shape {array.shape}")
    if not copy and array.dtype == np.dtype(ttype.dtype):  # the dtype in native byte order
        return array
    out = aligned_empty(array.shape, ttype.dtype)
    out[...] = array
    return out


#: The boundary graphc's own arrays start at: a cache line, and the width of an AVX-512 register.
ALIGNMENT = 64


def aligned_empty(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """A new C-contiguous array starting at an :data:`ALIGNMENT`-byte boundary.

    NumPy's arrays start wherever ``malloc`` put them: at any multiple of 16 bytes. A vector loop
    over an array at an odd multiple of 16 loads half its vectors across two cache lines: W2's
    training step, whose 20 shared arrays the Adam updates rewrite every step, took 0-3% longer
    with them 16 bytes off a cache line, and 11% longer in a slow process (docs/numba.md)."""
    dtype, size = np.dtype(dtype), math.prod(shape)
    nbytes = max(size, 1) * dtype.itemsize  # an empty array still gets a byte to start at
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start : start + nbytes].view(dtype)[:size].reshape(shape)


def _fmt(shape) -> str:
    from .types import format_shape

    return format_shape(shape)


# ----- traversal ------------------------------------------------------------------------------
def _as_list(outputs) -> list[Variable]:
    return [outputs] if isinstance(outputs, Variable) else list(outputs)


def toposort(outputs) -> list[Node]:
    """The nodes that ``outputs`` depend on, each after all of its inputs' nodes.

    Iterative depth-first post-order, inputs left to right, so deep chains do not hit Python's
    recursion limit and the order is the one a person reading the expression expects.
    """
    order: list[Node] = []
    visited: set[int] = set()
    stack = [(v.owner, False) for v in reversed(_as_list(outputs)) if v.owner is not None]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for inp in reversed(node.inputs):
            if inp.owner is not None and id(inp.owner) not in visited:
                stack.append((inp.owner, False))
    return order


def ancestors(outputs) -> list[Variable]:
    """Every variable ``outputs`` depend on, themselves included, in evaluation order."""
    outputs = _as_list(outputs)
    seen: dict[int, Variable] = {}
    for node in toposort(outputs):
        for v in node.inputs:
            seen.setdefault(id(v), v)
        for v in node.outputs:
            seen.setdefault(id(v), v)
    for v in outputs:
        seen.setdefault(id(v), v)
    return list(seen.values())


def graph_inputs(outputs) -> list[Variable]:
    """The leaves ``outputs`` depend on (inputs, constants and shared variables), first use first."""
    return [v for v in ancestors(outputs) if v.owner is None]


def clone_replace(outputs, replace: Mapping[Variable, Variable]):
    """Rebuild ``outputs`` with some variables replaced; returns one variable or a list, like the input.

    Untouched subgraphs are shared, and rebuilt nodes go through the op's type rule again, so a
    replacement of an incompatible type is reported as an error.
    """
    single = isinstance(outputs, Variable)
    outs = _as_list(outputs)
    mapping: dict[Variable, Variable] = {}
    for old, new in replace.items():
        new = new if isinstance(new, Variable) else constant(new, old.dtype)
        if not old.type.is_compatible(new.type):
            raise GraphError(f"cannot replace {old} of type {old.type} by {new} of type {new.type}")
        mapping[old] = new
    for node in toposort(outs):
        new_inputs = [mapping.get(i, i) for i in node.inputs]
        if any(a is not b for a, b in zip(new_inputs, node.inputs)):
            try:
                with created_at(node.location):  # the same computation: it keeps the line that wrote it
                    rebuilt = apply(node.op, new_inputs)
            except GraphcError:  # but a replacement that breaks it is the caller's line's doing
                rebuilt = apply(node.op, new_inputs)
            for old, new in zip(node.outputs, rebuilt):
                mapping.setdefault(old, new)
    result = [mapping.get(v, v) for v in outs]
    return result[0] if single else result


class Graph:
    """A view of the DAG behind some outputs: its nodes in evaluation order and its leaves."""

    def __init__(self, outputs, inputs: Iterable[Variable] | None = None):
        self.outputs = _as_list(outputs)
        self.nodes = toposort(self.outputs)
        leaves = graph_inputs(self.outputs)
        self.inputs = list(inputs) if inputs is not None else [v for v in leaves if isinstance(v, Input)]
        self.constants = [v for v in leaves if isinstance(v, Constant)]
        self.shared = [v for v in leaves if isinstance(v, SharedVariable)]

    def __len__(self) -> int:
        return len(self.nodes)

    def variables(self) -> list[Variable]:
        return ancestors(self.outputs)

    def to_networkx(self):
        """A ``networkx.DiGraph`` with one node per variable and an edge from each input of an op
        to each of its outputs (attribute ``position``: which input it is)."""
        import networkx as nx

        from .printing import label_of

        g = nx.DiGraph()
        for v in self.variables():
            kind = "op" if v.owner is not None else type(v).__name__.lower()
            g.add_node(
                v,
                kind=kind,
                op=v.owner.op.name if v.owner is not None else None,
                label=label_of(v),
                dtype=v.dtype,
                shape=v.type.shape,
            )
        for node in self.nodes:
            for pos, inp in enumerate(node.inputs):
                for out in node.outputs:
                    g.add_edge(inp, out, position=pos)
        return g

    def __str__(self) -> str:
        from .printing import pformat

        return pformat(self.outputs, inputs=self.inputs)

    def __repr__(self) -> str:
        return f"<Graph: {len(self.inputs)} inputs, {len(self.nodes)} nodes, {len(self.outputs)} outputs>"

    def _repr_svg_(self):
        from .diagrams import svg

        return svg(self)
