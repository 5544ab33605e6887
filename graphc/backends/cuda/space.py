"""The iteration space of a fused group, as the CUDA kernels see it, and helpers for writing
kernel source.

A :class:`~graphc.ops.fused.Fused` node's instructions all have one static shape, its iteration
space (the fusion pass guarantees it). Inputs read it in full or broadcast some of its axes; which
ones is static (an axis of unknown length never broadcasts at run time). As on the CPU backend
(``backends/numba/loops.py``), adjacent axes on which every input, and every reduction, behave
alike collapse into one: a kernel over same-shaped inputs indexes one flat axis. The collapsed
lengths are computed on the host at each call, where the inputs' shapes are also checked; every
device array is then passed as a view at the collapsed rank (``reshape`` of a C-contiguous array),
with length 1 on the axes it broadcasts, which the kernel reads at index 0: a broadcast input is
read in place, never materialized.
"""

from __future__ import annotations

import math

from ...ops.fused import Fused

NB = {"float64": "nb.float64", "float32": "nb.float32", "int64": "nb.int64", "bool": "nb.boolean"}


def array_type(dtype: str, ndim: int) -> str:
    """The numba type (text) of a C-contiguous device array argument."""
    return f"{NB[dtype]}[{', '.join([':'] * (ndim - 1) + ['::1'])}]"


def signature(args: list[str]) -> str:
    return "(" + ", ".join(args) + ("," if len(args) == 1 else "") + ")"


class Writer:
    """Kernel source lines at an indentation depth."""

    def __init__(self, head: str):
        self.lines = [head]
        self.depth = 1

    def __call__(self, *lines: str) -> None:
        self.lines.extend("    " * self.depth + line for line in lines)

    def block(self, head: str) -> Writer:
        self(head)
        self.depth += 1
        return self

    def end(self, levels: int = 1) -> None:
        self.depth -= levels

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def decompose(w: Writer, flat: str, groups: list[int], lengths: str = "n") -> None:
    """Index variables ``i<j>`` of ``groups`` (C order: the last varies fastest) from ``flat``;
    group j has length ``<lengths><j>``."""
    if not groups:
        return
    if len(groups) == 1:
        w(f"i{groups[0]} = {flat}")
        return
    w(f"q = {flat}")
    for j in reversed(groups[1:]):
        w(f"i{j} = q % {lengths}{j}", f"q = q // {lengths}{j}")
    w(f"i{groups[0]} = q")


def product(names: list[str]) -> str:
    return " * ".join(names) or "1"


class Space:
    """A fused op's iteration space: static axis grouping, run-time lengths and input views.

    ``arrays`` are the input positions passed as device arrays; ``read_shapes`` the shapes of
    those passed in place of a broadcast of them (``unbroadcast``); ``expect`` maps the int64
    inputs giving the length of an iteration axis (broadcast targets) to that axis; ``reduced``
    the axes a reduction kernel reduces (they never collapse with kept ones).
    """

    def __init__(self, op: Fused, arrays: list[int], read_shapes: dict, expect: dict, reduced: tuple = ()):
        types = op._types
        self.shape = types[op.nin].shape if op.program else types[op.results[0][0]].shape
        self.rank = len(self.shape)
        self.arrays, self.expect = arrays, expect
        self.in_shapes = {p: read_shapes.get(p, op.in_types[p].shape) for p in arrays}

        def pattern(a: int) -> tuple:
            return tuple(self.reads(p, a)[0] for p in arrays) + (a in reduced,)

        groups: list[list[int]] = []
        for a in range(self.rank):
            if self.shape[a] == 1:
                continue  # every input has length 1 here, or broadcasts it
            if groups and pattern(groups[-1][-1]) == pattern(a):
                groups[-1].append(a)
            else:
                groups.append([a])
        self.groups = groups or [[]]  # a single element: one group of length 1
        self.read = {p: [bool(g) and self.reads(p, g[0])[0] for g in self.groups] for p in arrays}
        self.reduced = [bool(g) and g[0] in reduced for g in self.groups]

    def reads(self, p: int, axis: int) -> tuple[bool, int | None]:
        """Whether input ``p`` reads iteration axis ``axis`` (False: broadcasts it), and which of
        its own axes that is."""
        shape = self.in_shapes[p]
        k = axis - (self.rank - len(shape))
        return (shape[k] != 1, k) if k >= 0 else (False, None)

    # ----- at run time ---------------------------------------------------------------------------
    def lengths(self, arrays: dict, dims: dict) -> list[int]:
        """The iteration space's lengths from the inputs' shapes and the broadcast targets in
        ``dims``; a ValueError where two of them disagree (the program then re-runs the call on
        the numpy backend, whose error names the op)."""
        d: list[int | None] = [None] * self.rank
        for p in self.arrays:
            shape = arrays[p].shape
            if len(shape) != len(self.in_shapes[p]):
                raise ValueError(f"input {p} has rank {len(shape)}, expected {len(self.in_shapes[p])}")
            for a in range(self.rank):
                reads, k = self.reads(p, a)
                if reads:
                    if d[a] is None:
                        d[a] = shape[k]
                    elif d[a] != shape[k]:
                        raise ValueError(f"operand lengths differ on axis {a}: {d[a]} and {shape[k]}")
        for q, a in self.expect.items():
            if d[a] is None:
                d[a] = dims[q]
            elif d[a] != dims[q]:
                raise ValueError(f"broadcast length differs on axis {a}: {d[a]} and {dims[q]}")
        return [self.shape[a] if d[a] is None else d[a] for a in range(self.rank)]

    def collapsed(self, d: list[int]) -> list[int]:
        return [math.prod(d[a] for a in g) for g in self.groups]

    def view(self, p: int, array, n: list[int]):
        """Input ``p``'s device array at the collapsed rank (a view)."""
        return array.reshape(tuple(m if r else 1 for m, r in zip(n, self.read[p])))

    def index(self, p: int) -> str:
        return ", ".join(f"i{j}" if r else "0" for j, r in enumerate(self.read[p]))
