"""How each autodiff mode's cost grows with the number of inputs and outputs, and how the error
of finite differences depends on the step.

- ``scaling("inputs", sizes)``: f: R^n -> R, f(x) = sum(sin(x) * x * x). Forward mode needs n
  sweeps, reverse mode one.
- ``scaling("outputs", sizes)``: g: R -> R^m, g(t)_k = sin(k t) t. Forward mode needs one sweep,
  reverse mode m.
- ``fd_error_curve(y, x, at)``: central and forward differences against the exact derivative,
  over steps 1e-1 .. 1e-15: truncation error falls with the step, round-off error grows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .autodiff import jacobian, relative_error
from .errors import GraphcError
from .graph import Graph, constant
from .inputs import scalar, vector
from .ops import sin, sum


@dataclass
class ScalingRow:
    family: str
    size: int
    mode: str
    sweeps: int
    nodes: int
    compile_seconds: float
    run_seconds: float


def family(kind: str, size: int):
    """(inputs, output) of the ``inputs`` or ``outputs`` family at ``size``."""
    if kind == "inputs":
        x = vector("x", shape=(size,))
        return [x], sum(sin(x) * x * x)
    if kind == "outputs":
        t = scalar("t")
        k = constant(np.arange(1.0, size + 1.0))
        return [t], sin(k * t) * t
    raise GraphcError(f"family must be 'inputs' or 'outputs', got {kind!r}")


def scaling(kind: str = "inputs", sizes=(1, 10, 100, 1000), modes=("forward", "reverse"), repeat: int = 5):
    """Measure each mode on the family at each size; returns a :class:`Scaling`."""
    from .function import function

    rows = []
    for size in sizes:
        (x,), y = family(kind, size)
        value = np.linspace(-1.0, 1.0, size) if kind == "inputs" else np.asarray(0.3)
        out_size = int(np.prod(y.type.shape))
        for mode in modes:
            start = time.perf_counter()
            derivative = jacobian(y, x, mode=mode)
            f = function([x], derivative)
            compile_seconds = time.perf_counter() - start
            f(value)
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                f(value)
                times.append(time.perf_counter() - start)
            sweeps = int(np.prod(x.type.shape)) if mode == "forward" else out_size
            nodes = len(Graph(derivative).nodes)
            rows.append(ScalingRow(kind, size, mode, sweeps, nodes, compile_seconds, float(np.median(times))))
    return Scaling(rows)


class Scaling:
    def __init__(self, rows: list[ScalingRow]):
        self.rows = rows

    def ratio(self, size: int) -> float:
        """Run time of forward mode over reverse mode at ``size``."""
        by_mode = {r.mode: r.run_seconds for r in self.rows if r.size == size}
        return by_mode["forward"] / by_mode["reverse"]

    def __str__(self) -> str:
        from .tables import text_table

        header = ["family", "size", "mode", "sweeps", "nodes", "compile s", "run s"]
        cells = [
            [
                r.family,
                str(r.size),
                r.mode,
                str(r.sweeps),
                str(r.nodes),
                f"{r.compile_seconds:.3f}",
                f"{r.run_seconds:.2e}",
            ]
            for r in self.rows
        ]
        return text_table(header, cells)

    def plot(self, path=None):
        from .plots import scaling_figure

        return scaling_figure(self, path)


@dataclass
class FDCurve:
    steps: np.ndarray
    central: np.ndarray  # relative error of central differences per step
    forward: np.ndarray  # relative error of forward differences per step
    reference: str

    @property
    def best_central_step(self) -> float:
        return float(self.steps[int(np.argmin(self.central))])

    @property
    def best_forward_step(self) -> float:
        return float(self.steps[int(np.argmin(self.forward))])

    def __str__(self) -> str:
        from .tables import text_table

        cells = [[f"{h:.0e}", f"{c:.2e}", f"{f:.2e}"] for h, c, f in zip(self.steps, self.central, self.forward)]
        text = text_table(["step", "central error", "forward error"], cells)
        best = f"best step: central {self.best_central_step:.0e}, forward {self.best_forward_step:.0e}"
        return f"{text}\n{best} (exact derivative: {self.reference})"

    def plot(self, path=None):
        from .plots import fd_figure

        return fd_figure(self, path)


def fd_error_curve(output, wrt, at: dict, steps=None) -> FDCurve:
    """Errors of central and forward differences of ``output`` (a scalar) with respect to the
    scalar inputs ``wrt``, against the exact gradient, for each step."""
    from .compare import _reference
    from .function import function
    from .graph import Input, graph_inputs

    steps = np.array(steps if steps is not None else [10.0**-k for k in range(1, 16)])
    wrt = list(wrt) if isinstance(wrt, (list, tuple)) else [wrt]
    inputs = [v for v in graph_inputs(output) if isinstance(v, Input)]
    values = [float(at[v]) for v in inputs]
    exact, kind = _reference([output], wrt, inputs, at)
    if exact is None:
        from .autodiff import grad

        exact, kind = function(inputs, grad(output, wrt))(*values), "reverse mode"
    exact = np.array([float(np.asarray(e).reshape(-1)[0]) for e in exact])
    f = function(inputs, output)
    positions = [inputs.index(x) for x in wrt]
    f0 = float(f(*values))
    central, forward = [], []
    for h in steps:
        c, fw = [], []
        for p in positions:
            up, down = list(values), list(values)
            up[p] += h
            down[p] -= h
            fu, fd = float(f(*up)), float(f(*down))
            c.append((fu - fd) / (2 * h))
            fw.append((fu - f0) / h)
        central.append(relative_error(c, exact))
        forward.append(relative_error(fw, exact))
    return FDCurve(steps, np.array(central), np.array(forward), kind)
