"""Lowering: what the generated driver calls for each node, chosen by the type of its op.

``lower(op, node, ctx)`` is a :func:`functools.singledispatch` function, as on the CPU backend.
Each registration returns a :class:`Step`: a host-side Python function that checks shapes,
allocates device outputs and launches generated kernels. The kernels themselves are in
``elementwise.py``, ``reductions.py``, ``linalg.py``, ``nn.py`` and ``shape.py``.

An op without a registration runs on the host (:func:`host_step`): its inputs are copied to the
host, its NumPy ``perform`` runs, and its results are copied back. ``f.kernels`` lists such steps
as host kernels, so the copies are visible.

Values in a program are device arrays, except the scalars of shape arithmetic (``x.shape[0]``,
and nodes computing only from such scalars and constants), which stay on the host: kernels take
them as scalar arguments and view ops read them without a copy (:attr:`Context.host`). Larger
host results (a host fallback's) are copied to the device once, where made, if a device step
reads them.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ...graph import Constant, Node, Variable
from .runtime import GENERATED, Runtime


@dataclass
class Kernel:
    """A generated kernel: its source and numba signature (text), the graph nodes it computes,
    and once compiled the ``cuda.jit`` dispatcher ``fn``. A host fallback is listed as a kernel
    with ``host=True`` and no source to compile."""

    name: str
    source: str
    signature: str
    nodes: list[Node]
    host: bool = False
    fn: Callable | None = field(default=None, repr=False)

    def load(self, rt: Runtime) -> Kernel:
        if self.fn is None and not self.host:
            self.fn = rt.compile(self.name, self.source, self.signature)
        return self

    def __repr__(self) -> str:
        ops = ", ".join(n.op.name for n in self.nodes)
        return f"<Kernel {self.name}: {ops}{' (host)' if self.host else ''}>"


@dataclass
class Step:
    """One driver line: ``outputs = call(*args)``, where ``call`` returns a tuple."""

    call: Callable
    args: list[Variable]
    kernels: list[Kernel]
    fresh: bool = True  # its results are new device allocations (not views of its arguments)
    host: bool = False  # it runs on the host: its results are host arrays
    host_args: bool = False  # it takes any argument as a host array (else host scalars only)
    outputs: list[Variable] | None = None  # the variables it returns, when not its node's outputs


@dataclass
class Context:
    """What lowering may know about the program: the runtime, and which variables are host
    scalars (shape arithmetic) rather than device arrays."""

    rt: Runtime
    host: set = field(default_factory=set)

    def is_host_scalar(self, v: Variable) -> bool:
        return v in self.host and v.ndim == 0

    def inline(self, v: Variable) -> bool:
        """A constant of one element, written into kernel code."""
        return isinstance(v, Constant) and v.value.size == 1


def make_kernel(name: str, source: str, signature: str, nodes: list[Node]) -> Kernel:
    """A generated kernel, recorded for the PTX check; it compiles at its first launch."""
    GENERATED.setdefault((source, signature), name)
    return Kernel(name, source, signature, nodes)


def launch(kernel: Kernel, rt: Runtime, blocks: int, threads: int, *args) -> None:
    """``kernel`` on ``blocks`` blocks of ``threads`` threads, compiled on its first launch."""
    fn = kernel.fn if kernel.fn is not None else kernel.load(rt).fn
    if rt.simulator:  # a GPU computes inf - inf silently; NumPy scalars in the simulator would warn
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fn[blocks, threads](*args)
    else:
        fn[blocks, threads](*args)


def scalar_value(x, dtype: str):
    """A host scalar (0-d array) as a kernel's scalar argument: a NumPy scalar of its dtype, so
    that on the simulator too ``1.0 / 0.0`` is inf, as on a GPU, rather than a Python error."""
    return np.asarray(x, dtype=dtype).reshape(())[()]


@functools.singledispatch
def lower(op, node: Node, ctx: Context) -> Step:
    """The host fallback, for ops without a kernel of their own."""
    return host_step(node, ctx)


def host_step(node: Node, ctx: Context, reason: str = "no device kernel") -> Step:
    """``node``'s NumPy ``perform`` on the host: device inputs are copied to the host first. The
    results stay on the host; the program copies them to the device where a kernel reads them."""
    op, rt = node.op, ctx.rt
    perform = op.perform
    if getattr(op, "needs_rng", False):  # the same generator sequence as the numpy backend
        perform = functools.partial(perform, rng=np.random.default_rng(op.seed))

    def on_host(*args):
        return tuple(perform(*[rt.to_host(a) for a in args]))

    text = f"# {op.name}: {reason}; runs {type(op).__name__}.perform on the host (inputs copied to the host)\n"
    kernel = Kernel(f"host:{op.name}", text, "", [node], host=True)
    return Step(on_host, list(node.inputs), [kernel], fresh=True, host=True, host_args=True)
