"""The numpy reference backend: runs each node's ``perform`` in topological order.

It is the oracle every other backend, rewrite and derivative is tested against, so it checks
every node's result against the node's static type: a wrong shape or dtype rule is caught at the
node that has it, not three ops later.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..errors import EvaluationError
from ..graph import Constant, Variable, toposort
from ..profiling import Clocks, StepInfo
from ..types import format_shape, unknown_broadcast_checks, unknown_broadcast_message


def compile(leaves: list[Variable], outputs: list[Variable], inplace: dict[int, int] | None = None):
    """A ``run(values)`` callable evaluating ``outputs`` from one value per leaf. ``inplace`` (the
    leaves outputs may overwrite) is ignored: the oracle computes every result afresh."""
    slot: dict[Variable, int] = {v: i for i, v in enumerate(leaves)}
    nodes = toposort(outputs)
    constants: list[tuple[int, np.ndarray]] = []

    def slot_of(v: Variable) -> int:
        if v not in slot:
            slot[v] = len(slot)
            if isinstance(v, Constant):
                constants.append((slot[v], v.value))
        return slot[v]

    steps = []
    for node in nodes:
        ins = [slot_of(v) for v in node.inputs]
        outs = [slot_of(v) for v in node.outputs]
        perform = node.op.perform
        if getattr(node.op, "needs_rng", False):
            rng = np.random.default_rng(node.op.seed)
            perform = (lambda p, g: lambda *a: p(*a, rng=g))(perform, rng)
        checks = []
        if getattr(node.op, "broadcasts", False):
            checks = unknown_broadcast_checks([v.type.shape for v in node.inputs], node.outputs[0].type.shape)
        steps.append((perform, ins, outs, node, checks))
    out_slots = [slot_of(v) for v in outputs]
    size = len(slot)

    # Free each intermediate after its last use, so peak memory follows the live set.
    last_use: dict[int, int] = {}
    for k, (_, ins, _, _, _) in enumerate(steps):
        for s in ins:
            last_use[s] = k
    keep = set(out_slots) | set(range(len(leaves))) | {s for s, _ in constants}
    release = [[] for _ in steps]
    for s, k in last_use.items():
        if s not in keep:
            release[k].append(s)

    performs = [[perform for perform, *_ in steps]]  # the one in use: timed while profiling

    def run(values):
        storage: list = [None] * size
        storage[: len(values)] = values
        for s, value in constants:
            storage[s] = value
        for k, ((_, ins, outs, node, checks), perform) in enumerate(zip(steps, performs[-1])):
            args = [storage[s] for s in ins]
            try:
                results = perform(*args)
            except EvaluationError:
                raise  # a fused kernel names the op inside it and its user line
            except Exception as err:
                shapes = ", ".join(f"{a.dtype}{format_shape(a.shape)}" for a in args)
                raise EvaluationError(
                    f"failed on inputs {shapes}: {err}", op=node.op.name, location=node.location
                ) from err
            for position, axis, out_axis in checks:
                if args[position].shape[axis] != results[0].shape[out_axis]:
                    raise EvaluationError(
                        unknown_broadcast_message(
                            position,
                            axis,
                            args[position].shape[axis],
                            results[0].shape[out_axis],
                            node.inputs[position].type,
                        ),
                        op=node.op.name,
                        location=node.location,
                    )
            for s, value, var in zip(outs, results, node.outputs):
                if value.dtype.name != var.dtype or not var.type.accepts_shape(value.shape):
                    raise EvaluationError(
                        f"produced {value.dtype}{format_shape(value.shape)} where its type says {var.type}",
                        op=node.op.name,
                        location=node.location,
                    )
                storage[s] = value
            for s in release[k]:
                storage[s] = None
        return [storage[s] for s in out_slots]

    @contextmanager
    def timed(clocks: Clocks):
        performs.append([clocks.wrap(k, perform) for k, perform in enumerate(performs[0])])
        try:
            yield
        finally:
            performs.pop()

    run.profile_steps = [StepInfo((), node.op.name, (node,)) for _, _, _, node, _ in steps]
    run.timed = timed
    return run
