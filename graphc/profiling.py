"""Where a compiled function's time goes: each step of its program timed over real calls.

``f.profile(*args, repeat=20)`` calls the function as a training loop would (updates are
applied on every call) with a clock around each step of its program: a fused kernel, a matrix
product through BLAS, a view, or (numpy backend) one node. The rows name the graph ops each step
computes and the user lines that created them, so a slow kernel leads back to the model code.

Timing costs something itself (a clock read and a Python call per step, well under a
microsecond each), so the profile also reports the function's own time per call measured
without the clocks, and what the steps leave unaccounted (argument checks, the driver, Python).
A GPU runs kernels asynchronously: the CUDA backend waits for each step to finish while
profiling, so its steps' times are their own, not their launches'.
"""

from __future__ import annotations

import builtins
import html
import os
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import SourceLocation, UsageError
from .graph import Node
from .ops.fused import Fused


@dataclass(frozen=True)
class StepInfo:
    """One step of a program: the driver names that call it, what it is, the nodes it computes."""

    names: tuple[str, ...]  # the driver's names for its callable (a parallel version has its own)
    label: str  # "fused [kernel 3]", "matmul", ...
    nodes: tuple[Node, ...]

    @property
    def ops(self) -> str:
        """The graph ops the step computes, those inside a fused kernel included, each once."""
        seen = dict.fromkeys(name for node in self.nodes for name, _ in _members(node))
        names = list(seen)
        return ", ".join(names) if len(names) <= 6 else ", ".join(names[:6]) + f", ... ({len(names)} ops)"

    @property
    def created_at(self) -> str:
        """The user lines that created the step's ops (the first three, in graph order)."""
        lines = dict.fromkeys(
            f"{os.path.basename(where.filename)}:{where.lineno}"
            for node in self.nodes
            for _, where in _members(node)
            if where is not None
        )
        shown = list(lines)[:3]
        return ", ".join(shown) + (f", +{len(lines) - 3}" if len(lines) > 3 else "")


def _members(node: Node) -> list[tuple[str, SourceLocation | None]]:
    """(op name, user line) of what ``node`` computes: the ops a fused kernel was made of."""
    if isinstance(node.op, Fused):
        sources = list(node.op.sources) + [None] * len(node.op.program)
        inner = [(row.name, where) for (row, _), where in zip(node.op.program, sources)]
        return inner + [(reduce.name, node.location) for _, reduce in node.op.results if reduce is not None]
    return [(node.op.name, node.location)]


@dataclass(frozen=True)
class Row:
    """One step's time over the profiled calls."""

    step: StepInfo
    calls: int
    seconds: float

    @property
    def per_call(self) -> float:
        return self.seconds / self.calls if self.calls else 0.0


class Clocks:
    """Per-step totals that timed drivers add to: ``seconds[i]`` and ``calls[i]`` for step i."""

    def __init__(self, n: int, sync: Callable[[], None] | None = None):
        self.seconds = [0.0] * n
        self.calls = [0] * n
        self.sync = sync

    def wrap(self, i: int, fn: Callable) -> Callable:
        seconds, calls, sync, clock = self.seconds, self.calls, self.sync, time.perf_counter

        def timed(*args):
            start = clock()
            result = fn(*args)
            if sync is not None:
                sync()
            seconds[i] += clock() - start
            calls[i] += 1
            return result

        return timed


def timed_driver(source: str, env: dict, steps: Sequence[StepInfo], clocks: Clocks) -> Callable:
    """The driver compiled from ``source`` again, in a copy of ``env`` whose step callables are
    timed: the program's own driver, and so its calls, stay as they are."""
    namespace = dict(env)
    for i, step in enumerate(steps):
        for name in step.names:
            namespace[name] = clocks.wrap(i, env[name])
    exec(builtins.compile(source, "<graphc timed driver>", "exec"), namespace)
    return namespace["driver"]


@contextmanager
def swapped_driver(program, clocks: Clocks):
    """``program.driver`` replaced by its timed twin for the duration (restored on any exit)."""
    own = program.driver
    program.driver = timed_driver(program.driver_source, program.driver_env, program.profile_steps, clocks)
    try:
        yield
    finally:
        program.driver = own


class Profile:
    """Per-step times of a function over ``calls`` calls, slowest step first."""

    def __init__(self, backend: str, rows: list[Row], calls: int, call_seconds: float, timed_seconds: float):
        self.backend = backend
        self.rows = sorted(rows, key=lambda r: -r.seconds)
        self.calls = calls
        self.call_seconds = call_seconds  # mean time of one call without clocks
        self.timed_seconds = timed_seconds  # mean time of one call with clocks

    @property
    def steps_seconds(self) -> float:
        """The steps' time per call, summed."""
        return sum(r.seconds for r in self.rows) / self.calls if self.calls else 0.0

    def _table(self) -> tuple[list[str], list[list[str]]]:
        head = ["step", "ops", "created at", "calls", "per call", "share"]
        total = self.steps_seconds * self.calls or 1.0
        body = [
            [
                r.step.label,
                r.step.ops,
                r.step.created_at,
                str(r.calls),
                _us(r.per_call),
                f"{100 * r.seconds / total:.1f}%",
            ]
            for r in self.rows
        ]
        return head, body

    def _summary(self) -> list[str]:
        outside = self.timed_seconds - self.steps_seconds
        return [
            f"{self.calls} calls ({self.backend} backend): {_us(self.call_seconds)} per call without clocks, "
            f"{_us(self.timed_seconds)} with them",
            f"steps {_us(self.steps_seconds)} per call; outside the steps (argument checks, driver, "
            f"Python, clocks) {_us(outside)}",
        ]

    def text(self) -> str:
        head, body = self._table()
        widths = [max(len(x) for x in column) for column in zip(head, *body)]
        numeric = {3, 4, 5}

        def line(cells):
            return "  ".join(c.rjust(w) if k in numeric else c.ljust(w) for k, (c, w) in enumerate(zip(cells, widths)))

        rule = "  ".join("-" * w for w in widths)
        return "\n".join(self._summary() + ["", line(head), rule] + [line(b) for b in body])

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return f"<graphc.Profile: {len(self.rows)} steps, {_us(self.timed_seconds)} per call>"

    def _repr_html_(self) -> str:
        head, body = self._table()
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in b) + "</tr>" for b in body)
        summary = "<br>".join(html.escape(s) for s in self._summary())
        return f"<p>{summary}</p><table><thead><tr>{cells}</tr></thead><tbody>{rows}</tbody></table>"


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-2 else f"{seconds * 1e3:.2f} ms"


def profile(function, args: tuple, repeat: int, warmup: int) -> Profile:
    """See ``Function.profile``."""
    if repeat < 1 or warmup < 0:
        raise UsageError(f"profile needs repeat >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}")
    program = function._run
    steps = program.profile_steps
    for _ in range(warmup):
        function(*args)
    start = time.perf_counter()
    for _ in range(repeat):
        function(*args)
    call_seconds = (time.perf_counter() - start) / repeat
    clocks = Clocks(len(steps), getattr(program, "profile_sync", None))  # a device backend's wait
    with program.timed(clocks):
        start = time.perf_counter()
        for _ in range(repeat):
            function(*args)
        timed_seconds = (time.perf_counter() - start) / repeat
    rows = [Row(step, calls, seconds) for step, calls, seconds in zip(steps, clocks.calls, clocks.seconds)]
    return Profile(function.backend, rows, repeat, call_seconds, timed_seconds)
