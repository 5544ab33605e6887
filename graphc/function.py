"""``gc.function``: compile outputs (and shared-variable updates) of a graph into a callable.

Everything the user can get wrong about a function (an input the outputs need but that is not
listed, an update of the wrong type, a call with the wrong number, dtypes or shapes of
arguments) is checked here, before any computation, with a message that says what to change.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence

import numpy as np

from .errors import ArityError, DTypeError, GraphError, ShapeError
from .graph import Constant, Graph, Input, SharedVariable, Variable, coerce_value, graph_inputs
from .ops.base import as_variable
from .types import DTYPES, format_shape

#: Backend name -> module with a ``compile(leaves, outputs)`` function.
BACKENDS = {"numpy": "graphc.backends.reference", "numba": "graphc.backends.numba", "cuda": "graphc.backends.cuda"}
#: The backend of ``gc.function`` when none is named: compiled Numba kernels.
DEFAULT_BACKEND = "numba"


def _describe(v: Variable) -> str:
    where = f" (created at {v.location})" if isinstance(v, Input) and v.location else ""
    return f"{v.name or 'an unnamed input'}{where}"


def _check_updates(updates) -> list[tuple[SharedVariable, Variable]]:
    pairs = list(updates.items()) if isinstance(updates, Mapping) else list(updates or [])
    checked = []
    seen = set()
    for target, value in pairs:
        if not isinstance(target, SharedVariable):
            raise GraphError(f"updates must target shared variables (gc.shared), got {target!r}")
        if target in seen:
            raise GraphError(f"shared variable {target.name or '?'} is updated twice")
        seen.add(target)
        value = as_variable(value)
        if value.dtype != target.dtype:
            raise DTypeError(
                f"the update of {target.name or 'a shared variable'} has dtype {value.dtype} but the variable is "
                f"{target.dtype}; cast it with .astype('{target.dtype}')"
            )
        if not target.type.is_compatible(value.type):
            raise ShapeError(
                f"the update of {target.name or 'a shared variable'} has shape {format_shape(value.type.shape)} "
                f"but the variable has shape {format_shape(target.type.shape)}"
            )
        checked.append((target, value))
    return checked


class Function:
    """A compiled graph. Call it with one value per input (positionally or by input name)."""

    def __init__(
        self,
        inputs,
        outputs,
        updates=None,
        backend: str | None = None,
        optimize: str = "full",
        device_outputs: bool = False,
    ):
        self.single_output = isinstance(outputs, Variable)
        self.outputs = [outputs] if self.single_output else [as_variable(o) for o in (outputs or [])]
        self.inputs = self._check_inputs(inputs)
        self.updates = _check_updates(updates)
        update_values = [v for _, v in self.updates]
        every = self.outputs + update_values
        listed = set(self.inputs)
        missing = [v for v in graph_inputs(every) if isinstance(v, Input) and v not in listed]
        if missing:
            names = ", ".join(_describe(v) for v in missing)
            raise GraphError(f"the outputs depend on inputs missing from the inputs list: {names}")
        self.shared = [v for v in graph_inputs(every) if isinstance(v, SharedVariable)]
        self.shared += [t for t, _ in self.updates if t not in set(self.shared)]
        self.unoptimized_graph = Graph(every, inputs=self.inputs)
        from .optimize import PIPELINES
        from .optimize import optimize as run_passes

        if optimize not in PIPELINES:
            raise GraphError(f"optimize must be one of {', '.join(PIPELINES)}, got {optimize!r}")
        every, self._report = run_passes(every, optimize, report=True)
        self.graph = Graph(every, inputs=self.inputs)
        backend = backend or DEFAULT_BACKEND
        if backend not in BACKENDS:
            raise GraphError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.backend = backend
        # Each update may overwrite its shared variable's array (the backend decides where it
        # can): shared values are graphc's own, and get_value() hands out copies.
        n_in, n_out = len(self.inputs), len(self.outputs)
        inplace = {n_out + i: n_in + self.shared.index(t) for i, (t, _) in enumerate(self.updates)}
        self._run = importlib.import_module(BACKENDS[backend]).compile(self.inputs + self.shared, every, inplace)
        self._names = {v.name: i for i, v in enumerate(self.inputs) if v.name}
        self._accepts = [(np.dtype(v.dtype), v.type.shape, v.type.accepts_shape) for v in self.inputs]
        # Results the backend guarantees to be fresh, writable arrays of their own (kernel outputs).
        self._fresh = getattr(self._run, "fresh_outputs", [False] * len(every))
        # A device backend (CUDA) takes the call from here: arguments may be device arrays, and
        # shared values stay on the device (its program's ``call`` and ``accepts``).
        self._device = hasattr(self._run, "call")
        if device_outputs and not self._device:
            raise GraphError(f"device_outputs=True needs a device backend (backend='cuda'), not {backend!r}")
        if self._device:
            self._run.device_outputs = bool(device_outputs)

    @staticmethod
    def _check_inputs(inputs) -> list[Input]:
        inputs = [inputs] if isinstance(inputs, Variable) else list(inputs or [])
        for v in inputs:
            if isinstance(v, SharedVariable):
                raise GraphError(f"shared variable {v.name or '?'} cannot be an input: its value is read automatically")
            if isinstance(v, Constant) or not isinstance(v, Input):
                raise GraphError(
                    f"inputs must be symbolic inputs (gc.scalar, gc.vector, gc.matrix, gc.tensor), got {v!r}"
                )
        if len(set(inputs)) != len(inputs):
            raise GraphError("an input is listed twice")
        return inputs

    def _bind(self, args: Sequence, kwargs: Mapping) -> list[np.ndarray]:
        n = len(self.inputs)
        if len(args) > n:
            raise ArityError(f"the function takes {n} arguments ({self._signature()}), got {len(args) + len(kwargs)}")
        values = list(args) + [_MISSING] * (n - len(args))
        for name, value in kwargs.items():
            if name not in self._names:
                raise ArityError(f"the function has no input named {name!r} ({self._signature()})")
            if values[self._names[name]] is not _MISSING:
                raise ArityError(f"input {name!r} is given twice")
            values[self._names[name]] = value
        if any(v is _MISSING for v in values):
            missing = [self.inputs[i].name or f"#{i + 1}" for i, v in enumerate(values) if v is _MISSING]
            raise ArityError(f"missing argument(s) {', '.join(missing)} ({self._signature()})")
        return [self._coerce(var, value, i) for i, (var, value) in enumerate(zip(self.inputs, values))]

    def _coerce(self, var: Input, value, position: int) -> np.ndarray:
        # NumPy's native dtypes are singletons: a byte-swapped or unusual one takes the checked path
        if type(value) is np.ndarray and value.dtype is _NATIVE[var.dtype] and var.type.accepts_shape(value.shape):
            return value
        what = f"argument {position + 1} ({var.name or 'unnamed'}, {var.type})"
        accepts = getattr(self._run, "accepts", None)
        if accepts is not None and accepts(value):  # a device array: checked, never copied
            if str(value.dtype) != var.dtype:
                raise DTypeError(f"{what} expects {var.dtype}, got a device array of {value.dtype}")
            if not var.type.accepts_shape(tuple(value.shape)):
                raise ShapeError(f"{what} expects shape {format_shape(var.type.shape)}, got {tuple(value.shape)}")
            return value
        return coerce_value(value, var.type, what, copy=False)

    @property
    def kernels(self) -> list:
        """The compiled kernels, each with the graph nodes it computes (compiled backends only)."""
        return list(getattr(self._run, "kernels", []))

    def source(self) -> str:
        """The code the backend generated: the driver, then each kernel (compiled backends only)."""
        if not hasattr(self._run, "source"):
            raise GraphError(f"the {self.backend} backend generates no code; compile with backend='numba'")
        return self._run.source()

    def profile(self, *args, repeat: int = 20, warmup: int = 1):
        """Where the time of a call goes: each step of the program (a fused kernel, a matrix
        product, a view; a node on the numpy backend) timed over ``repeat`` calls with these
        arguments, with the ops it computes and the lines of your code that created them.

        The arguments are positional, so an input named ``repeat`` is never mistaken for the
        option. The calls are real: ``warmup`` calls, then ``repeat`` without clocks (the call's
        own time) and ``repeat`` with them, each applying the updates, as a training loop would.
        Returns a :class:`graphc.profiling.Profile` (printable; a table in notebooks), slowest
        step first.
        """
        from .profiling import profile

        return profile(self, args, repeat, warmup)

    def optimization_report(self):
        """What the optimizer did to this function: per pass, nodes before and after, rewrites, time."""
        return self._report

    def _signature(self) -> str:
        return ", ".join(f"{v.name or '?'}: {v.type}" for v in self.inputs)

    def __call__(self, *args, **kwargs):
        # The fast path (positional arrays of the right dtype and shape) costs a few attribute
        # reads per argument: a compiled function's call overhead is mostly this method.
        if kwargs or len(args) != len(self._accepts):
            values = self._bind(args, kwargs)
        else:
            values = [
                a
                if type(a) is np.ndarray and a.dtype is dtype and (a.shape == shape or fits(a.shape))
                else self._coerce(v, a, i)
                for i, (a, v, (dtype, shape, fits)) in enumerate(zip(args, self.inputs, self._accepts))
            ]
        if self._device:  # the backend reads and updates shared values where they live
            return self._run.call(values, self.shared, self.updates, self.single_output)
        leaves = values + [s._value if not s._host_stale else s.host_value() for s in self.shared]
        results = self._run(leaves)
        # Results never alias the caller's arguments, shared values, read-only views or each other.
        fresh: list[np.ndarray] = []
        for r, known in zip(results, self._fresh):
            if not known:
                aliased = any(r is v for v in leaves) or any(r is f for f in fresh)
                r = r if r.flags.owndata and r.flags.writeable and not aliased else np.array(r)
            fresh.append(r)
        for (target, _), new in zip(self.updates, fresh[len(self.outputs) :]):
            target.assign(new)
        outs = fresh[: len(self.outputs)]
        return outs[0] if self.single_output else outs

    def _repr_svg_(self):
        from .diagrams import svg

        return svg(self)

    def __repr__(self) -> str:
        return f"<graphc.Function({self._signature()}) backend={self.backend}, {len(self.graph)} nodes>"


_NATIVE = {name: np.dtype(name) for name in DTYPES}
_MISSING = object()


def function(
    inputs, outputs, updates=None, backend: str | None = None, optimize: str = "full", device_outputs: bool = False
) -> Function:
    """Compile ``outputs`` as a function of ``inputs``; ``updates`` maps shared variables to new values.

    ``outputs`` may be one variable (the call returns one array) or a list (the call returns a
    list). Updates are applied together after the outputs are computed. ``optimize`` is the
    optimizer level: "none", "fast" or "full" (see ``graphc.optimize``). ``backend`` is "numba"
    (compiled kernels, the default) or "numpy" (the reference interpreter, which compiles
    nothing and checks every node's result against its type), or "cuda" (Numba CUDA kernels; see
    docs/cuda.md), whose functions return host arrays unless ``device_outputs`` asks for device
    arrays.
    """
    return Function(inputs, outputs, updates=updates, backend=backend, optimize=optimize, device_outputs=device_outputs)
