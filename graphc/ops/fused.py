"""Fused kernels: a group of elementwise ops, and the reductions of their results, as one node.

The fusion pass (``graphc/optimize/fusion.py``) builds them; backends compile each into one
loop. A fused node holds its scalar sub-graph as a small program over elementwise rows:
instruction k computes ``row(*refs)`` where refs 0..n-1 are the node's inputs and n+j the
result of instruction j. Its results are instruction refs, each optionally reduced.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import EvaluationError, SourceLocation
from ..types import TensorType, format_shape, is_float, unknown_broadcast_checks, unknown_broadcast_message
from .base import Op
from .elementwise import Elementwise
from .reduction import Reduce


@dataclass(frozen=True)
class Fused(Op):
    """One kernel: ``program`` over the inputs, returning ``results`` (ref, reduction or None)."""

    in_types: tuple[TensorType, ...]
    program: tuple[tuple[Elementwise, tuple[int, ...]], ...]
    results: tuple[tuple[int, Reduce | None], ...]
    sources: tuple[SourceLocation | None, ...] = field(default=(), compare=False, repr=False)
    name = "fused"

    def __post_init__(self):
        types = list(self.in_types)
        checks = []
        for row, refs in self.program:
            ins = [types[r] for r in refs]
            (out,) = row.infer(*ins)
            checks.append(unknown_broadcast_checks([t.shape for t in ins], out.shape))
            types.append(out)
        object.__setattr__(self, "_types", types)
        object.__setattr__(self, "_checks", checks)

    @property
    def nin(self) -> int:
        return len(self.in_types)

    def infer(self, *types: TensorType) -> list[TensorType]:
        out = []
        for ref, reduce in self.results:
            t = self._types[ref]
            out.append(reduce.infer(t)[0] if reduce is not None else t)
        return out

    def perform(self, *arrays):
        values = list(arrays)
        for k, (row, refs) in enumerate(self.program):
            args = [values[r] for r in refs]
            try:
                (result,) = row.perform(*args)
            except Exception as err:
                raise self._error(k, f"failed on inputs {_shapes(args)}: {err}") from err
            for position, axis, out_axis in self._checks[k]:
                if args[position].shape[axis] != result.shape[out_axis]:
                    static = self._types[refs[position]]
                    length, target = args[position].shape[axis], result.shape[out_axis]
                    raise self._error(k, unknown_broadcast_message(position, axis, length, target, static))
            values.append(result)
        out = []
        for ref, reduce in self.results:
            out.append(values[ref] if reduce is None else reduce.perform(values[ref])[0])
        return tuple(out)

    def _error(self, k: int, message: str) -> EvaluationError:
        location = self.sources[k] if k < len(self.sources) else None
        return EvaluationError(f"{message} (inside a fused kernel)", op=self.program[k][0].name, location=location)

    # ----- reading it -------------------------------------------------------------------------
    def expressions(self, names: list[str]) -> list[str]:
        """Each result as a scalar expression over the inputs' names."""
        from ..printing import format_node

        text: list[tuple[str, int]] = [(name, 11) for name in names]
        for row, refs in self.program:
            text.append(format_node(row, [text[r] for r in refs]))
        return [text[ref][0] if reduce is None else reduce.format_call([text[ref][0]]) for ref, reduce in self.results]

    def format_call(self, args: list[str]) -> str:
        return f"fused[{len(self.program)} ops]({', '.join(args)})"

    def body_lines(self, args: list[str], outs: list[str]) -> list[str]:
        """The kernel's scalar program as SSA lines t1, t2, ... over its inputs, then its results."""
        from ..printing import format_node

        names = list(args) + [f"t{k + 1}" for k in range(len(self.program))]
        lines = [
            f"t{k + 1} = {format_node(row, [(names[r], 11) for r in refs])[0]}"
            for k, (row, refs) in enumerate(self.program)
        ]
        for out, (ref, reduce) in zip(outs, self.results):
            lines.append(f"{out} <- {names[ref] if reduce is None else reduce.format_call([names[ref]])}")
        return lines

    def __len__(self) -> int:
        return len(self.program)

    def keeping(self, keep: list[int]) -> Fused:
        """The kernel computing only the results at positions ``keep``, without the instructions
        nothing left reads."""
        n = len(self.in_types)
        results = [self.results[k] for k in keep]
        needed = {ref for ref, _ in results}
        for k in range(len(self.program) - 1, -1, -1):
            if n + k in needed:
                needed.update(self.program[k][1])
        kept = [k for k in range(len(self.program)) if n + k in needed]
        new_ref = {r: r for r in range(n)} | {n + k: n + j for j, k in enumerate(kept)}
        program = tuple((self.program[k][0], tuple(new_ref[r] for r in self.program[k][1])) for k in kept)
        sources = tuple(self.sources[k] for k in kept if k < len(self.sources))
        return Fused(self.in_types, program, tuple((new_ref[r], red) for r, red in results), sources)

    # ----- derivatives: through the unfused ops ---------------------------------------------------
    def composite(self, inputs) -> list:
        values = list(inputs)
        for row, refs in self.program:
            values.append(row(*[values[r] for r in refs]))
        from ..graph import apply1

        return [values[ref] if reduce is None else apply1(reduce, values[ref]) for ref, reduce in self.results]

    def vjp(self, inputs, outputs, cotangents):
        from ..autodiff import vjp

        pairs = [(o, c) for o, c in zip(self.composite(inputs), cotangents) if c is not None]
        floats = [x for x in inputs if is_float(x.dtype)]
        grads = dict(zip(map(id, floats), vjp([o for o, _ in pairs], floats, [c for _, c in pairs])))
        return [grads.get(id(x)) for x in inputs]

    def jvp(self, inputs, outputs, tangents):
        from ..autodiff import jvp

        pairs = [(x, t) for x, t in zip(inputs, tangents) if t is not None]
        return jvp(self.composite(inputs), [x for x, _ in pairs], [t for _, t in pairs])


def _shapes(arrays) -> str:
    return ", ".join(f"{np.asarray(a).dtype}{format_shape(np.shape(a))}" for a in arrays)
