"""Loop kernels for fused elementwise groups and their reductions, generated as Python source.

A :class:`~graphc.ops.fused.Fused` node is a scalar program over broadcast inputs whose
instructions all have one static shape, the kernel's *iteration space*. Its source is written
in four steps:

1. **Lengths and checks.** Each axis of the iteration space gets its length from the type, or,
   where the type says ``None``, from the first input with an unknown length there; every other
   input with an unknown length on that axis is checked against it, so a mismatch raises before
   any element is read (numba does no bounds checks).
2. **Collapsing.** Adjacent axes on which every input and every reduction behave alike (all read
   the full axis or all broadcast it; all reduce it or all keep it) merge into one. A purely
   elementwise kernel over same-shaped inputs becomes one flat loop that LLVM vectorizes.
3. **The loop nest.** Every array is viewed (``reshape`` of a C-contiguous array is free) at the
   collapsed rank, broadcast axes having length 1 and index 0. The body loads the inputs, runs
   the program (each instruction cast to its static dtype, so float32 stays float32), stores the
   elementwise results and accumulates the reductions. Reductions whose axes are a suffix of the
   nest use scalar accumulators (floats in :data:`LANES` interleaved lanes); others accumulate
   into an array. float32 and integer reductions accumulate in float64 and int64. ``logsumexp``
   takes a second sweep, shifted by the maximum.
4. **Parallelism.** When the iteration space may exceed :func:`parallel_threshold` elements and
   the outermost loop is not reduced, a second version runs the outer loop with ``prange``. It
   is compiled the first time a call is that large (compiling a parallel loop takes seconds).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ...ops.fused import Fused
from ...ops.reduction import LOGSUMEXP, MAX, MEAN, MIN, PROD, SUM, Reduce
from ...types import TensorType
from . import vmath

#: Iteration spaces of at least this many elements run the ``prange`` version of a kernel: about
#: where 2 threads started beating 1 on this project's 2-core machines (docs/performance.md),
#: for cheap arithmetic and for kernels calling a transcendental function.
PARALLEL_THRESHOLD = 30_000
PARALLEL_THRESHOLD_TRANSCENDENTAL = 2_000
#: Interleaved partial results of a float reduction over the innermost axes: 8 float64 lanes
#: fill one AVX-512 register (two AVX2 ones).
LANES = 8


def _threads() -> int:
    import numba

    return numba.config.NUMBA_NUM_THREADS


def parallel_threshold(op: Fused) -> int:
    """How big an iteration space must be for the parallel version of ``op`` to pay off."""
    heavy = any("math." in row.kernel or "**" in row.kernel for row, _ in op.program)  # a libm call
    return PARALLEL_THRESHOLD_TRANSCENDENTAL if heavy else PARALLEL_THRESHOLD


CTOR = {"float64": "np.float64", "float32": "np.float32", "int64": "np.int64", "bool": "np.bool_"}
NUMBA_DTYPE = {"float64": "nb.float64", "float32": "nb.float32", "int64": "nb.int64", "bool": "nb.boolean"}

HEADER = """import math

import numba as nb
import numpy as np
from numba import prange
{vm}

def _A(dtype, ndim):
    return nb.types.Array(dtype, ndim, "C", readonly=True)


def _W(dtype, ndim):
    return nb.types.Array(dtype, ndim, "C")
"""
_VECTOR_CALL = re.compile(r"\bmath\.(" + "|".join(vmath.FUNCTIONS) + r")\(")


def module_text(body: str) -> str:
    """A kernel's module: imports, then ``body``, with libm calls vectorizable where libmvec is."""
    imports = "\nfrom graphc.backends.numba.division import quotient\n" if "quotient(" in body else ""
    imports += "\nfrom graphc.backends.numba.rowdot import row_dot\n" if "row_dot(" in body else ""
    if vmath.AVAILABLE:
        imports += "\nfrom graphc.backends.numba import vmath as vm\n"
        body = _VECTOR_CALL.sub(r"vm.\1(", body)
    return HEADER.format(vm=imports) + "\n" + body


def literal(value: np.ndarray) -> str:
    """A scalar constant as code of its own dtype (``np.float32(0.5)``, not ``0.5``)."""
    v = value.reshape(()).item()
    dtype = value.dtype.name
    if dtype == "bool":
        return repr(bool(v))
    if dtype == "int64":
        return f"np.int64({int(v)})"
    if math.isnan(v):
        text = "math.nan"
    elif math.isinf(v):
        text = "math.inf" if v > 0 else "-math.inf"
    else:
        text = repr(float(v))
    return f"{CTOR[dtype]}({text})"


def signature(types: list[TensorType], writable: frozenset[int] = frozenset()) -> str:
    """The explicit numba signature of a kernel taking C-contiguous arrays, read-only except
    the arguments at the positions in ``writable`` (results written in place)."""
    kinds = ["_W" if k in writable else "_A" for k in range(len(types))]
    return "(" + "".join(f"{kind}({NUMBA_DTYPE[t.dtype]}, {t.ndim}), " for kind, t in zip(kinds, types)) + ")"


@dataclass
class _Result:
    position: int  # which result of the kernel
    ref: int
    reduce: Reduce | None


def _accumulator_dtype(kind, dtype: str) -> str:
    if kind in (MEAN, LOGSUMEXP) or dtype in ("float32", "float64"):
        return "float64"
    return "int64"


def _init(kind, acc_dtype: str) -> str:
    if kind is MAX:
        return "-math.inf" if acc_dtype == "float64" else "np.int64(-9223372036854775808)"
    if kind is MIN:
        return "math.inf" if acc_dtype == "float64" else "np.int64(9223372036854775807)"
    if kind is PROD:
        return f"{CTOR[acc_dtype]}(1)"
    return f"{CTOR[acc_dtype]}(0)"


def _accumulate(kind, target: str, value: str) -> list[str]:
    if kind is MAX:
        return [f"if {value} > {target} or {value} != {value}:", f"    {target} = {value}"]
    if kind is MIN:
        return [f"if {value} < {target} or {value} != {value}:", f"    {target} = {value}"]
    if kind is PROD:
        return [f"{target} *= {value}"]
    return [f"{target} += {value}"]


@dataclass
class RowProducts:
    """A kernel over the rows of a matrix ``m0`` (n, d) that reads it once for two products.

    Input ``dot`` of the fused group is ``m0 @ m1`` (``m1`` a vector): each iteration computes
    its row's dot product. For each result position in ``scatter`` the kernel also returns
    ``m0.T @ result``, accumulated row by row while the row is in cache. A gradient step of
    linear or logistic regression (``X @ w``, elementwise, ``X.T @ residual``) then reads X once
    instead of twice. The dot product runs in 8 vector lanes with no reassociation and no
    fast-math (:func:`~graphc.backends.numba.rowdot.row_dot`).
    """

    dot: int
    scatter: list[int]
    dtype: str  # of the scatter results

    @staticmethod
    def dot_lines(target: str, ctor: str) -> list[str]:
        return [f"{target} = {ctor}(row_dot(m0, i0, m1))"]


def scalar_program(op: Fused, names: list[str], reciprocals: frozenset[int] = frozenset()) -> list[str]:
    """The lines computing ``op``'s instructions one element at a time: ``t<k> = <dtype>(<row's
    kernel code>)``, each cast to its static dtype so float32 stays float32. ``names`` holds the
    code of the inputs (variables or inlined constants) and gets each ``t<k>`` appended. Every
    loop kernel, on the CPU or the GPU, is this program inside some indexing.

    The divisions at the instruction indices in ``reciprocals`` go through
    :func:`~graphc.backends.numba.division.quotient` with ``rc<k>``, the divisor's reciprocal,
    where ``rok<k>`` holds (both computed before the loop by :func:`reciprocal_lines`)."""
    types, n, lines = op._types, op.nin, []
    for k, (row, in_refs) in enumerate(op.program):
        dtype = types[n + k].dtype
        ins = [names[r] for r in in_refs]
        if row.out in ("promote", "float", "where"):  # NumPy computes in the output dtype
            ins = [
                x if types[r].dtype == dtype or (row.out == "where" and i == 0) else f"{CTOR[dtype]}({x})"
                for i, (x, r) in enumerate(zip(ins, in_refs))
            ]
        code = row.kernel.format(*ins, T=CTOR[dtype])
        if k in reciprocals:
            largest = f"{CTOR[dtype]}({float(np.finfo(dtype).max)!r})"
            code = f"quotient({ins[0]}, dv{k}, rc{k}, {largest}) if rok{k} else ({code})"
        lines.append(f"t{k} = {CTOR[dtype]}({code})")
        names.append(f"t{k}")
    return lines


#: Divisors whose reciprocal is a normal number, by dtype: from the smallest normal number to
#: its reciprocal (2**-126 to 2**126 in float32).
_SAFE_DIVISOR = {
    dtype: (float(np.finfo(dtype).tiny), 1.0 / float(np.finfo(dtype).tiny)) for dtype in ("float32", "float64")
}


def invariant_divisions(op: Fused, invariant) -> list[int]:
    """The instructions of ``op`` dividing floats by one of the ``invariant`` input positions (a
    constant, or an input that broadcasts over the whole iteration space): Adam's bias
    corrections, a mean's count."""
    return [
        k
        for k, (row, in_refs) in enumerate(op.program)
        if row.name == "div" and in_refs[1] in invariant and op._types[op.nin + k].dtype in _SAFE_DIVISOR
    ]


def reciprocal_lines(op: Fused, k: int, divisor: str) -> list[str]:
    """Before the loop: the divisor of instruction ``k`` (the code ``divisor``), its reciprocal,
    and whether the loop may divide through it (:mod:`~graphc.backends.numba.division`: the
    division's bits, within one ulp for tiny operands, and no pass through the divider).

    Only a reciprocal that is a normal number will do: for ``d`` zero, infinite, NaN, subnormal
    or so large that ``1/d`` is subnormal, the loop divides as written. The test is
    loop-invariant, so LLVM splits the loop on it and the fast loop has no branch."""
    dtype = op._types[op.nin + k].dtype
    ctor, (low, high) = CTOR[dtype], _SAFE_DIVISOR[dtype]
    return [
        f"dv{k} = {ctor}({divisor})",
        f"rc{k} = {ctor}({ctor}(1.0) / dv{k})",
        f"rok{k} = abs(dv{k}) >= {ctor}({low!r}) and abs(dv{k}) <= {ctor}({high!r})",
    ]


class _Writer:
    def __init__(self):
        self.lines: list[str] = []
        self.depth = 1

    def __call__(self, *lines: str) -> None:
        self.lines.extend("    " * self.depth + line for line in lines)


def fused_source(
    op: Fused,
    inline: dict[int, str],
    expect: dict[int, int] | None = None,
    read_shapes: dict[int, tuple] | None = None,
    parallel: bool = False,
    rows: RowProducts | None = None,
    into: dict[int, int] | None = None,
    given: tuple[int, ...] = (),
) -> tuple[str, list[int], bool]:
    """The source of ``def kernel(...)`` computing ``op``'s results, the input positions it takes
    and whether a ``prange`` version (asked for with ``parallel``) could pay off.

    Inputs in ``inline`` are scalar constants written into the code. Inputs in ``expect`` are
    int64 scalars giving the run-time length of an iteration axis, which the kernel checks (or
    takes the length from, when no array has it). ``read_shapes`` gives the shape of the array
    actually passed for an input, where it is smaller than the input's type (it broadcasts).

    The kernel is shape-generic: only a length of 1 (a broadcast) is fixed in it, every other
    length is read at run time, so the same kernel serves every graph that differs only in
    sizes (all the Adam updates of a network, say) and is compiled once.

    ``rows`` (1-D iteration spaces only) streams a matrix through the loop: see
    :class:`RowProducts`; the kernel then takes the matrix and the vector as two more arguments.

    ``into`` maps result positions to input positions whose arrays the result overwrites (see
    :func:`writes_into`): the kernel stores each element where it read the input's element, so
    a shared variable's update needs no new array. The input is read and written through one
    view: through two, LLVM could not rule out a partial overlap and would not vectorize. Such
    results are not returned (the caller holds the arrays; returning them would box each one
    again, a Python call apiece), so the kernel returns the other results only, or None.

    ``given`` lists elementwise results the caller may hand an array for, one trailing argument
    ``b<k>`` each (after ``m0, m1``): the kernel writes the result there when the array is
    non-empty and has the result's shape, else into a new one, and returns it either way. The
    driver hands back the array of the previous call once nothing else holds it (see
    ``graphc.backends.numba.recycle``): a big result then reuses pages already faulted in.
    """
    expect, read_shapes, into = expect or {}, read_shapes or {}, into or {}
    n = op.nin
    args = [p for p in range(n) if p not in inline and (rows is None or p != rows.dot)]
    dims = {p: inline.get(p, f"a{p}.reshape(1)[0]") for p in expect}
    reading = [p for p in args if p not in expect]
    types = op._types
    refs = [ref for ref, _ in op.results]
    space = types[n].shape if op.program else types[refs[0]].shape
    rank = len(space)
    results = [_Result(k, ref, red) for k, (ref, red) in enumerate(op.results)]
    reductions = [r for r in results if r.reduce is not None]

    def aligned(p: int, axis: int):
        """Whether input p reads iteration axis ``axis`` (False: it broadcasts it), and which of
        its own axes that is."""
        shape = read_shapes.get(p, op.in_types[p].shape)
        k = axis - (rank - len(shape))
        return (shape[k] != 1, k) if k >= 0 else (False, None)

    w = _Writer()
    # 1. lengths and checks
    length: list[str] = []
    for a in range(rank):
        source = next((p for p in reading if aligned(p, a)[0]), None)
        if source is not None:
            length.append(f"a{source}.shape[{aligned(source, a)[1]}]")
        elif a in expect.values():
            length.append(next(dims[q] for q, axis in expect.items() if axis == a))
        elif rows is not None:
            length.append("m0.shape[0]")
        else:
            length.append(str(space[a]))  # only broadcast inputs: a fixed length (or 1)
    for a in range(rank):
        w(f"d{a} = {length[a]}")
        # A static length that no input's type fixes (``broadcast_to(x, (4, 3))`` of an x whose
        # first length is unknown): the run-time length must be that one, or x does not broadcast.
        static = [read_shapes.get(p, op.in_types[p].shape)[aligned(p, a)[1]] for p in reading if aligned(p, a)[0]]
        if space[a] not in (None, 1) and static and all(d is None for d in static):
            w(f"if d{a} != {space[a]}:", "    raise ValueError('operand lengths differ')")
    for q, a in expect.items():
        if length[a] != dims[q]:
            w(f"if {dims[q]} != d{a}:", "    raise ValueError('broadcast length differs')")
    if rows is not None:
        w("dd = m0.shape[1]", "if m1.shape[0] != dd:", "    raise ValueError('matrix product lengths differ')")
        if length[0] != "m0.shape[0]":
            w("if m0.shape[0] != d0:", "    raise ValueError('matrix product lengths differ')")
    for p in reading:
        for a in range(rank):
            reads, k = aligned(p, a)
            if reads and length[a] != f"a{p}.shape[{k}]":
                w(f"if a{p}.shape[{k}] != d{a}:", "    raise ValueError('operand lengths differ')")

    # 2. collapsing
    def pattern(a: int) -> tuple:
        reads = tuple(aligned(p, a)[0] for p in reading)
        reduced = tuple(a in r.reduce.axes for r in reductions)
        return reads + reduced

    groups: list[list[int]] = []
    for a in range(rank):
        if space[a] == 1:
            continue
        if groups and pattern(groups[-1][-1]) == pattern(a):
            groups[-1].append(a)
        else:
            groups.append([a])
    reads_axis = [[aligned(p, g[0])[0] for g in groups] for p in reading]
    reduced_axis = [[g[0] in r.reduce.axes for g in groups] for r in reductions]
    if not groups:  # a single element: one loop of length 1
        groups, reads_axis, reduced_axis = [[]], [[False] for _ in reading], [[True] for _ in reductions]
    for j, g in enumerate(groups):
        w(f"n{j} = " + (" * ".join(f"d{a}" for a in g) or "1"))
    cr = len(groups)

    def view(flags: list[bool]) -> str:
        return "(" + "".join(f"n{j}, " if f else "1, " for j, f in enumerate(flags)) + ")"

    def index(flags: list[bool]) -> str:
        return ", ".join(f"i{j}" if f else "0" for j, f in enumerate(flags))

    for i, p in enumerate(reading):
        w(f"v{p} = a{p}.reshape({view(reads_axis[i])})")
    full = "(" + "".join(f"d{a}, " for a in range(rank)) + ")"
    for r in results:
        dtype = op.infer()[r.position].dtype
        if r.position in into:
            w(f"out{r.position} = a{into[r.position]}", f"o{r.position} = v{into[r.position]}")
        elif r.position in given:
            w(
                f"if b{r.position}.size != 0 and b{r.position}.shape == {full}:",
                f"    out{r.position} = b{r.position}",
                "else:",
                f"    out{r.position} = np.empty({full}, {CTOR[dtype]})",
                f"o{r.position} = out{r.position}.reshape({view([True] * cr)})",
            )
        elif r.reduce is None:
            w(
                f"out{r.position} = np.empty({full}, {CTOR[dtype]})",
                f"o{r.position} = out{r.position}.reshape({view([True] * cr)})",
            )
    if any(r.reduce.kind.needs_elements for r in reductions):
        w(
            "if " + " * ".join(f"n{j}" for j in range(cr)) + " == 0:",
            "    raise ValueError('reduction of an empty array')",
        )
    red_index = {}
    acc_dtype = {}
    for i, r in enumerate(reductions):
        kept = [not f for f in reduced_axis[i]]
        red_index[r.position] = index(kept)
        acc_dtype[r.position] = _accumulator_dtype(r.reduce.kind, types[r.ref].dtype)
        init = _init(MAX if r.reduce.kind is LOGSUMEXP else r.reduce.kind, acc_dtype[r.position])
        w(f"acc{r.position} = np.full({view(kept)}, {init}, {CTOR[acc_dtype[r.position]]})")
    if rows is not None:
        w(*(f"gm{k} = np.zeros(dd, np.float64)" for k in rows.scatter))

    # Divisions by a value the loop does not change go through its reciprocal (reciprocal_lines).
    invariant = {p: inline[p] for p in inline}
    invariant.update({p: f"v{p}[{index(reads_axis[i])}]" for i, p in enumerate(reading) if not any(reads_axis[i])})
    reciprocals = frozenset(invariant_divisions(op, invariant))
    for k in sorted(reciprocals):
        w(*reciprocal_lines(op, k, invariant[op.program[k][1][1]]))

    # 3. the loop nest
    def body(sweep: int, lane: int | None = None) -> list[str]:
        lines = []
        for i, p in enumerate(reading):
            lines.append(f"x{p} = v{p}[{index(reads_axis[i])}]")
        names = [inline.get(p, f"x{p}") for p in range(n)]
        if rows is not None:
            lines.extend(rows.dot_lines(f"x{rows.dot}", CTOR[types[rows.dot].dtype]))
        lines += scalar_program(op, names, reciprocals)
        for r in results:
            value = names[r.ref]
            if r.reduce is None and sweep == 0:
                lines.append(f"o{r.position}[{index([True] * cr)}] = {value}")
            elif r.reduce is not None and r.reduce.kind is LOGSUMEXP:
                target = f"acc{r.position}[{red_index[r.position]}]"
                if sweep == 0:
                    lines += _accumulate(MAX, target, value)
                else:
                    lines += _accumulate(
                        None, f"sum{r.position}[{red_index[r.position]}]", f"math.exp({value} - {target})"
                    )
            elif r.reduce is not None and sweep == 0:
                target = scalar.get(r.position, f"acc{r.position}[{red_index[r.position]}]")
                if lane is not None and r.position in laned:
                    target = f"{target}_{lane}"
                lines += _accumulate(r.reduce.kind, target, value)
            if rows is not None and r.position in rows.scatter:
                lines += ["for j in range(dd):", f"    gm{r.position}[j] += m0[i0, j] * {value}"]
        return lines

    # Scalar accumulators where every reduction reduces exactly the innermost axes from ``split``.
    scalar: dict[int, str] = {}
    split = cr + 1  # the depth at which scalar accumulators start (none)
    has_lse = any(r.reduce.kind is LOGSUMEXP for r in reductions)
    if reductions and not has_lse and all(flags == reduced_axis[0] for flags in reduced_axis):
        flags = reduced_axis[0]
        first = next((j for j in range(cr) if flags[j]), cr)
        if first < cr and all(flags[first:]):
            split = first
            scalar = {r.position: f"s{r.position}" for r in reductions}

    # A reduction over the innermost axes into a float accumulator runs its innermost loop in
    # LANES interleaved partial results: the body is written once per lane, with its own names,
    # so the lanes' additions (or comparisons) are independent and LLVM vectorizes them without
    # reassociating anything: no fast-math flag, and every call gives the same bits, serial or
    # parallel (the lanes are locals of the loop body). One accumulator chains every addition to
    # the one before (about 1 ns per element, where numpy's pairwise sum takes a fifth of that).
    # Rows known to be shorter than two groups of lanes (softmax over 10 classes) gain nothing.
    inner = [space[a] for a in groups[-1]] if groups[-1] else [1]
    short = None not in inner and math.prod(inner) < 2 * LANES
    laned: set[int] = set()
    if scalar and rows is None and not short:
        laned = {r.position for r in reductions if acc_dtype[r.position] == "float64"}

    def lane_lines(k: int, j: int) -> list[str]:
        """The body for lane k of the innermost loop j: element ``i{j}l + k``, names suffixed."""
        lines = body(0, lane=k)
        lines = [re.sub(r"\b([xt]\d+)\b", rf"\1_{k}", line) for line in lines]
        return [re.sub(rf"\bi{j}\b", f"(i{j}l + {k})", line) for line in lines]

    def nest(sweep: int, parallel: bool) -> None:
        if rows is not None and parallel:
            return chunks()
        for j in range(cr):
            if j == split and sweep == 0:
                for r in reductions:
                    init = _init(r.reduce.kind, acc_dtype[r.position])
                    w(f"{scalar[r.position]} = {init}")
                    w(*(f"{scalar[r.position]}_{k} = {init}" for k in range(LANES) if r.position in laned))
            if laned and j == cr - 1 and sweep == 0:  # whole groups of lanes, then the rest
                w(f"for i{j}l in range(0, n{j} - n{j} % {LANES}, {LANES}):")
                w.depth += 1
                for k in range(LANES):
                    w(*lane_lines(k, j))
                w.depth -= 1
                w(f"for i{j} in range(n{j} - n{j} % {LANES}, n{j}):")
            else:
                loop = "prange" if parallel and j == 0 else "range"
                w(f"for i{j} in {loop}(n{j}):")
            w.depth += 1
        w(*body(sweep))
        for j in reversed(range(cr)):
            w.depth -= 1
            if j == split and sweep == 0:
                for r in reductions:
                    for k in range(LANES) if r.position in laned else ():
                        w(*_accumulate(r.reduce.kind, scalar[r.position], f"{scalar[r.position]}_{k}"))
                    w(f"acc{r.position}[{red_index[r.position]}] = {scalar[r.position]}")

    def chunks() -> None:
        """The row-streaming loop in parallel: rows split into one chunk per thread, each with
        its own ``X.T @ r`` accumulators, added up at the end. The scalar reductions (sums
        only) are numba ``prange`` reductions."""
        for r in reductions:
            w(f"{scalar[r.position]} = {_init(r.reduce.kind, acc_dtype[r.position])}")
        # numba's thread count as a literal: nb.get_num_threads() would make the kernel uncacheable
        w(f"nch = max(1, min({_threads()}, n0 // 1024))")
        # Rows padded by 64 values (512 bytes): two threads never write one cache line.
        w(*(f"gm{k}_of = np.zeros((nch, dd + 64), np.float64)" for k in rows.scatter))
        w("for c in prange(nch):")
        w.depth += 1
        w(*(f"gm{k}_c = gm{k}_of[c, :dd]" for k in rows.scatter))
        w("for i0 in range(c * n0 // nch, (c + 1) * n0 // nch):")
        w.depth += 1
        lines = body(0)
        for k in rows.scatter:
            lines = [line.replace(f"gm{k}[j]", f"gm{k}_c[j]") for line in lines]
        w(*lines)
        w.depth -= 2
        for r in reductions:
            w(f"acc{r.position}[{red_index[r.position]}] = {scalar[r.position]}")
        for k in rows.scatter:
            w("for c in range(nch):", "    for j in range(dd):", f"        gm{k}[j] += gm{k}_of[c, j]")

    outer_reduced = any(flags[0] for flags in reduced_axis)
    size = math.prod(d for d in space if d is not None) if None not in space else None
    if rows is not None:  # chunks of rows: reductions must be prange reductions (+= and *=)
        outer_reduced = not all(r.reduce.kind in (SUM, MEAN, PROD) for r in reductions) or (reductions and not scalar)
    can_parallel = not outer_reduced and (size is None or size >= parallel_threshold(op))
    parallel = parallel and can_parallel
    sweeps = [0, 1] if has_lse else [0]
    for sweep in sweeps:
        if sweep == 1:
            for r in reductions:
                if r.reduce.kind is LOGSUMEXP:
                    p = r.position
                    w(f"shift{p} = np.where(np.isfinite(acc{p}), acc{p}, 0.0)", f"acc{p} = shift{p}")
                    w(f"sum{p} = np.zeros_like(acc{p})")
        nest(sweep, parallel)

    # 4. results
    outs = []
    for r in results:
        p = r.position
        if p in into:  # the caller has the array already: boxing it again costs a Python call
            continue
        if r.reduce is None:
            outs.append(f"out{p}")
            continue
        kind, dtype = r.reduce.kind, op.infer()[p].dtype
        final = r.reduce.infer(types[r.ref])[0].shape
        value = f"acc{p}"
        if kind is MEAN:
            count = " * ".join(f"d{a}" for a in r.reduce.axes) or "1"
            w(f"acc{p} = acc{p} / ({count})")
        elif kind is LOGSUMEXP:
            w(f"acc{p} = np.log(sum{p}) + shift{p}")
        shape = (
            "("
            + "".join(
                f"d{a}, " if a not in r.reduce.axes else ("1, " if r.reduce.keepdims else "") for a in range(rank)
            )
            + ")"
        )
        assert len(final) == shape.count(",")
        w(f"res{p} = {value}.reshape({shape})" + ("" if acc_dtype[p] == dtype else f".astype({CTOR[dtype]})"))
        outs.append(f"res{p}")
    if rows is not None:
        outs += [f"gm{k}.astype({CTOR[rows.dtype]})" for k in rows.scatter]
    w("return " + ("None" if not outs else outs[0] if len(outs) == 1 else "(" + ", ".join(outs) + ",)"))
    params = [f"a{p}" for p in args] + (["m0", "m1"] if rows else []) + [f"b{k}" for k in given]
    head = f"def kernel({', '.join(params)}):"
    return "\n".join([head] + w.lines), args, can_parallel


def writes_into(op: Fused, position: int, p: int, read_shapes: dict[int, tuple] | None = None) -> bool:
    """Whether result ``position`` of ``op`` can overwrite input ``p``'s array: an elementwise
    result of the input's dtype, the input read at every element of the iteration space (no
    broadcast axis, so each element is read once, in the iteration that writes it), and no
    second sweep (logsumexp) that would read it again after the write."""
    ref, reduce = op.results[position]
    types, n = op._types, op.nin
    space = types[n].shape if op.program else types[op.results[0][0]].shape
    shape = (read_shapes or {}).get(p, op.in_types[p].shape)
    if reduce is not None or any(r is not None and r.kind is LOGSUMEXP for _, r in op.results):
        return False
    if types[ref].dtype != op.in_types[p].dtype or len(shape) != len(space):
        return False
    return all(d != 1 or s == 1 for d, s in zip(shape, space))
