"""The Numba CUDA backend: generated CUDA kernels, one generated driver per function.

``compile(leaves, outputs)`` lowers each node (``lowering.py``: fused groups and reductions to
generated elementwise and reduction kernels, matrix products to a tiled kernel, softmax to row
kernels, convolution to im2col and the product, shape ops to views or a strided copy, the rarer
ops to their NumPy reference on the host), then writes one straight-line Python driver that
calls each step with device arrays, as the CPU backend does. Intermediate results stay on the
device; only what a host fallback needs crosses to the host.

A call (:meth:`Program.call`, which ``gc.function`` hands calls to) uploads host arguments, takes
device arguments as they are, reads each shared variable's device copy (uploading it once, the
first time), runs the driver, stores the updates' new device arrays in their shared variables
and copies the outputs to the host, unless ``device_outputs`` asks for device arrays. A training
step therefore copies only its inputs and its loss.

numba.cuda is imported when the first CUDA function is compiled (``runtime.py``): importing
graphc, or this package, does not need numba-cuda.

Errors: steps check the shapes they rely on before launching anything and raise a bare
``ValueError``; on any failure the program re-runs the call on the NumPy reference backend (with
host copies of the arguments), which raises the numpy backend's error, naming the op and the
user's line.
"""

from __future__ import annotations

import builtins
from collections import Counter

import numpy as np

from ...graph import Constant, Variable, toposort
from ...profiling import Clocks, StepInfo, swapped_driver
from .. import reference
from . import runtime
from .lowering import Context, Kernel, Step, host_step, lower

__all__ = ["compile", "Program", "Kernel"]


class Program:
    """What the backend built for one function: the driver, its steps' kernels and their source."""

    def __init__(self, leaves: list[Variable], outputs: list[Variable]):
        self.rt = rt = runtime.load()
        from . import elementwise, linalg, nn, reductions, shape  # noqa: F401  (register their lowerings)

        self.leaves, self.outputs = list(leaves), list(outputs)
        self.device_outputs = False
        ctx = Context(rt)
        units: list[tuple[list[Variable], Step]] = []
        for node in toposort(outputs):
            if all(isinstance(v, Constant) or ctx.is_host_scalar(v) for v in node.inputs):
                step = host_step(node, ctx, "computed from host values only (shape arithmetic)")
            else:
                step = lower(node.op, node, ctx)
            made = step.outputs or list(node.outputs)
            if step.host:
                ctx.host.update(made)
            units.append((made, step))
        # Drop steps nothing reads any more (a broadcast or a transpose a kernel reads through).
        live = set(outputs)
        for made, step in reversed(units):
            if any(v in live for v in made):
                live.update(step.args)
        steps = [(made, step) for made, step in units if any(v in live for v in made)]
        # Host results that a device step reads are copied to the device once, where made.
        upload = {v for _, step in steps if not step.host_args for v in step.args if v in ctx.host and v.ndim}
        self.fresh = {v for made, step in steps if step.fresh for v in made}

        names: dict[Variable, str] = {v: f"v{i}" for i, v in enumerate(leaves)}
        env: dict[str, object] = {"_dev": rt.to_device}
        constants: dict[tuple, str] = {}

        def ref(v: Variable, device: bool) -> str:
            if isinstance(v, Constant):
                key = (id(v), device and v.ndim > 0)
                if key not in constants:  # uploaded once, here
                    constants[key] = f"c{len(constants)}"
                    env[constants[key]] = rt.to_device(v.value) if key[1] else np.array(v.value)
                return constants[key]
            return names[v]

        lines: list[str] = []
        self.kernels: list[Kernel] = []
        self.profile_steps: list[StepInfo] = []  # the driver's steps, in call order (graphc.profiling)
        for k, (made, step) in enumerate(steps):
            env[f"op{k}"] = step.call
            args = [ref(v, not step.host_args) for v in step.args]
            for v in made:
                names[v] = f"v{len(names)}"
            what = sorted({v.owner.op.name for v in made if v.owner is not None})
            numbers = [str(len(self.kernels) + j) for j in range(len(step.kernels))]
            note = f" [kernel {', '.join(numbers)}]" if numbers else (" [view]" if not step.fresh else "")
            outs = ", ".join(names[v] for v in made) + ","
            lines.append(f"    {outs} = op{k}({', '.join(args)})  # {', '.join(what)}{note}")
            nodes = [n for kernel in step.kernels for n in kernel.nodes] or [v.owner for v in made if v.owner]
            label = ", ".join(kernel.name for kernel in step.kernels) + note if step.kernels else ", ".join(what)
            self.profile_steps.append(StepInfo((f"op{k}",), label, tuple(dict.fromkeys(nodes))))
            lines.extend(f"    {names[v]} = _dev({names[v]})  # to the device" for v in made if v in upload)
            self.kernels.extend(step.kernels)
        results = [ref(v, False) for v in outputs]
        unpack = ", ".join(names[v] for v in leaves) + ("," if len(leaves) == 1 else "")
        head = "def driver(values):\n" + (f"    {unpack} = values\n" if leaves else "")
        self.driver_source = head + "".join(line + "\n" for line in lines) + f"    return [{', '.join(results)}]\n"
        exec(builtins.compile(self.driver_source, "<graphc cuda driver>", "exec"), env)
        self.driver, self.driver_env = env["driver"], env
        self._reference = None

    def timed(self, clocks: Clocks):
        """While active, calls run a twin of the driver with each step timed into ``clocks``."""
        return swapped_driver(self, clocks)

    @property
    def profile_sync(self):
        """What a timed step waits on: the device, so a step's time is its own, not its launch's."""
        return self.rt.cuda.synchronize

    def source(self) -> str:
        """The driver and every kernel's source, as generated."""
        parts = ["# driver\n" + self.driver_source]
        for k, kernel in enumerate(self.kernels):
            sig = f"  signature {kernel.signature}" if kernel.signature else ""
            parts.append(f"# kernel {k}: {kernel.name}{sig}\n{kernel.source}")
        return "\n".join(parts)

    def accepts(self, value) -> bool:
        """Whether ``value`` is a device array (``gc.function`` then checks it and passes it on)."""
        return self.rt.is_device(value)

    # ----- calls -----------------------------------------------------------------------------------
    def run(self, leaves: list) -> list:
        """The driver on device leaves; on failure, the numpy backend's error for the same call."""
        try:
            return self.driver(leaves)
        except Exception as err:
            if self._reference is None:
                self._reference = reference.compile(self.leaves, self.outputs)
            self._reference([self.rt.to_host(v) for v in leaves])  # raises the numpy backend's error
            err.add_note("graphc: the numpy backend computed this call; the CUDA kernels failed (a graphc bug)")
            raise

    def call(self, values: list, shared: list, updates: list, single_output: bool):
        """One call of the function: see the module docstring."""
        rt = self.rt
        leaves = [rt.contiguous(v) for v in values]
        for var in shared:
            if var.device is None:  # the first call (or after set_value): upload once
                var.device = rt.to_device(var.host_value())
            leaves.append(var.device)
        results = self.run(leaves)
        n = len(results) - len(updates)
        on_device = self.outputs[n:] + (self.outputs[:n] if self.device_outputs else [])
        uses = Counter(on_device)
        for (target, _), var, value in zip(updates, self.outputs[n:], results[n:]):
            target.assign_device(self._owned(value, var, uses))
        if self.device_outputs:
            outs = [self._owned(value, var, uses) for var, value in zip(self.outputs[:n], results[:n])]
        else:
            outs = [rt.to_host(value) if rt.is_device(value) else np.array(value) for value in results[:n]]
        return outs[0] if single_output else outs

    def _owned(self, value, var: Variable, uses: Counter):
        """A device array the caller may keep: never a view of an argument, a shared value, a
        constant or another result."""
        if not self.rt.is_device(value):
            return self.rt.to_device(value)
        if var in self.fresh and uses[var] == 1:
            return value
        from .shape import device_copy

        return device_copy(self.rt, value)

    def __call__(self, values: list) -> list:
        """The outputs as host arrays (the interface of the other backends' ``run``)."""
        return [self.rt.to_host(r) for r in self.run([self.rt.contiguous(v) for v in values])]


def compile(leaves: list[Variable], outputs: list[Variable], inplace: dict[int, int] | None = None) -> Program:
    """The program computing ``outputs`` from one value per leaf (inputs, then shared variables).
    ``inplace`` is ignored: updated values stay on the device, in new buffers."""
    return Program(leaves, outputs)
