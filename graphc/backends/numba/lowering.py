"""Lowering: what the generated driver calls for each node, chosen by the type of its op.

``lower(op, node)`` is a :func:`functools.singledispatch` function: fused groups, lone
elementwise ops and reductions become generated loop kernels (``loops.py``), softmax and its
cross-entropy become row kernels, matrix products go to NumPy's BLAS, and every other op runs
its NumPy reference ``perform`` (shape ops, whose results are views, and the rarer ops). A new
op needs nothing here to work; it gets a kernel here when it is worth one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ...graph import Constant, Node, Variable
from ...ops.elementwise import Elementwise
from ...ops.fused import Fused
from ...ops.linalg import MatMul
from ...ops.nn import Softmax, SoftmaxCrossEntropy
from ...ops.reduction import Reduce
from ...ops.shape import BroadcastTo, DimShuffle
from ...types import TensorType, float_result
from . import cache, loops


@dataclass
class Kernel:
    """A kernel: its generated source, the graph nodes it computes, and once loaded (compiled,
    or read from the cache) the numba dispatcher ``fn``."""

    name: str
    source: str
    nodes: list[Node]
    parallel: bool = False
    text: str = field(default="", repr=False)  # the whole module
    fn: Callable | None = field(default=None, repr=False)

    def load(self) -> Kernel:
        if self.fn is None:
            self.fn = cache.load(self.text)
        return self

    def __repr__(self) -> str:
        ops = ", ".join(n.op.name for n in self.nodes)
        return f"<Kernel {self.name}: {ops}{' (parallel)' if self.parallel else ''}>"


@dataclass
class Step:
    """One driver line: ``outputs = call(*args)``; a ``call`` that is a :class:`Kernel` means
    its dispatcher, once loaded."""

    call: Callable
    args: list  # the variables passed to ``call`` (usually the node's inputs)
    multi: bool  # ``call`` returns a tuple (else one array)
    kernel: Kernel | None = None
    contiguous_out: bool = False  # its results are fresh C-contiguous arrays
    contiguous_in: bool = False  # its arguments must be C-contiguous arrays
    parallel: Callable | None = None  # the same with a parallel loop, for big arguments
    size_arg: int = 0  # the argument whose size picks between them
    threshold: int = 0  # the size from which the parallel version runs
    blas: bool = False  # it calls BLAS (whose threads must not meet parallel loops)
    outputs: list | None = None  # the variables it returns, when not just its node's outputs
    aliases: dict = field(default_factory=dict)  # result -> the argument whose array it was written into
    # The call in the compiled driver (compiled.py): ``{0}``... stand for the arguments, ``{kernel}`` for
    # the kernel; None: a kernel step is called directly, any other step keeps the Python driver.
    inline: str | None = None
    # Results the kernel may write into an array the driver hands it, one trailing argument each
    # (the previous call's array, recycle.py); the compiled driver hands empty ones.
    given: list = field(default_factory=list)


class _Later:
    """A parallel kernel, compiled on its first call (a parallel loop takes seconds to compile)."""

    def __init__(self, make: Callable[[], Kernel]):
        self.make, self.fn, self.kernel = make, None, None

    def __call__(self, *args):
        if self.fn is None:
            self.kernel = self.make().load()
            self.fn = self.kernel.fn
        return self.fn(*args)


def make_kernel(
    name: str,
    body: str,
    types: list[TensorType],
    nodes: list[Node],
    parallel: bool,
    signature: str | None = None,
    flags: str | None = None,
) -> Kernel:
    """The kernel ``def kernel`` in ``body`` with an explicit signature (read-only C-contiguous
    arrays of ``types`` unless ``signature`` says otherwise), to be loaded by the program, which
    compiles its kernels together (``cache.load_all``)."""
    flags = flags or "cache=True, error_model='numpy', nogil=True" + (", parallel=True" if parallel else "")
    decorated = f"@nb.njit({signature or loops.signature(types)}, {flags})\n{body}\n"
    text = loops.module_text(decorated)
    return Kernel(name, text[text.index("@nb.njit") :], nodes, parallel, text)


@functools.singledispatch
def lower(op, node: Node) -> Step:
    """The NumPy reference, for ops without a kernel of their own."""
    perform = op.perform
    if getattr(op, "needs_rng", False):
        rng = np.random.default_rng(op.seed)
        perform = functools.partial(perform, rng=rng)
    return Step(perform, list(node.inputs), multi=True)


def unbroadcast(op: Fused, inputs: list) -> tuple[Fused, list, dict[int, int], dict[int, tuple]]:
    """Read ``broadcast_to(x, shape)`` inputs as ``x``: the loop broadcasts by itself, so the
    broadcast array (the seed of every gradient of a sum or mean) is never materialized.

    Returns the op with the run-time lengths in ``shape`` as extra int64 inputs, the inputs,
    ``expect`` (extra input position -> iteration axis, checked by the kernel) and the shapes of
    the arrays now read in place of the broadcasts."""
    n = op.nin
    space = len(op._types[n if op.program else op.results[0][0]].shape)
    inputs, extra, expect, read_shapes = list(inputs), [], {}, {}
    for p, v in enumerate(inputs):
        if v.owner is None or not isinstance(v.owner.op, BroadcastTo):
            continue
        target, dims = v.owner.op.shape, iter(v.owner.inputs[1:])
        inputs[p] = v.owner.inputs[0]
        read_shapes[p] = inputs[p].type.shape
        for j, d in enumerate(target):
            if d is None:
                expect[n + len(extra)] = j + space - len(target)
                extra.append(next(dims))
    if not extra:
        return op, inputs, expect, read_shapes

    def moved(r: int) -> int:
        return r if r < n else r + len(extra)

    program = tuple((row, tuple(map(moved, refs))) for row, refs in op.program)
    results = tuple((moved(ref), red) for ref, red in op.results)
    fused = Fused(op.in_types + tuple(v.type for v in extra), program, results, op.sources)
    return fused, inputs + extra, expect, read_shapes


@lower.register
def _(op: Fused, node: Node) -> Step:
    return fused_step(op, node)


def fused_step(op: Fused, node: Node, stream=None, into: dict[int, Variable] | None = None) -> Step:
    """The kernel of a fused node; with ``stream`` (a :class:`streaming.Stream`), the kernel
    that also computes the two matrix products around it in one pass over the matrix; with
    ``into`` (result position -> one of the node's inputs), a kernel that writes those results
    into the inputs' arrays, which the caller vouches are its own to overwrite (see
    :func:`writable_results`)."""
    op, inputs, expect, read_shapes = unbroadcast(op, list(node.inputs))
    inline = {}
    for p, v in enumerate(inputs):
        if isinstance(v, Constant) and v.value.size == 1:
            inline[p] = loops.literal(v.value)
    rows = None
    if stream is not None:
        rows = loops.RowProducts(stream.dot, [stream.scatter], stream.last.outputs[0].dtype)
    positions = {k: inputs.index(v) for k, v in (into or {}).items()}
    body, args, can_parallel = loops.fused_source(op, inline, expect, read_shapes, rows=rows, into=positions)
    # Results that may be big (the sizes that get a parallel version) reuse their last array.
    given = tuple(
        k
        for k, (_, reduce) in enumerate(op.results)
        if can_parallel and reduce is None and k not in positions and node.outputs[k].ndim
    )
    if given:
        body = loops.fused_source(op, inline, expect, read_shapes, rows=rows, into=positions, given=given)[0]
    types = [inputs[p].type for p in args]
    extra = [] if stream is None else list(stream.first.inputs)  # the matrix and the vector
    results = [node.outputs[k].type for k in given]
    writable = frozenset(args.index(p) for p in positions.values()) | frozenset(
        range(len(types) + len(extra), len(types) + len(extra) + len(given))
    )
    signature = loops.signature(types + [v.type for v in extra] + results, writable)
    kernel = make_kernel("fused", body, [], [node], False, signature=signature)
    returned = [v for k, v in enumerate(node.outputs) if k not in positions]
    multi = len(returned) > 1 or stream is not None
    step = Step(kernel, [inputs[p] for p in args] + extra, multi, kernel, True, True)
    step.given = [node.outputs[k] for k in given]
    if positions:
        step.outputs = returned
        step.aliases = {node.outputs[k]: inputs[p] for k, p in positions.items()}
    if stream is not None:
        kernel.name = "rows"
        kernel.nodes = [stream.first, node, stream.last]
        step.outputs = list(node.outputs) + list(stream.last.outputs)
    if can_parallel:

        def parallel_kernel() -> Kernel:
            body = loops.fused_source(op, inline, expect, read_shapes, True, rows=rows, into=positions, given=given)[0]
            return make_kernel(kernel.name, body, [], kernel.nodes, True, signature=signature)

        step.parallel = _Later(parallel_kernel)
        step.threshold = loops.parallel_threshold(op)
        # the argument whose size tells the work: the streamed matrix, or the largest input
        step.size_arg = (
            len(args) if stream else max(range(len(args)), key=lambda k: sum(d != 1 for d in types[k].shape))
        )
    return step


def writable_results(node: Node, candidates: dict[Variable, Variable]) -> dict[int, Variable]:
    """Which results of a fused ``node`` can be written into an input's array: ``candidates``
    maps a result to the input whose array may take it (a shared variable's value it updates).
    The caller checks that nothing reads the input after this node."""
    op = node.op
    if type(op) is not Fused:
        return {}
    op, inputs, _, read_shapes = unbroadcast(op, list(node.inputs))
    found = {}
    for k, v in enumerate(node.outputs):
        target = candidates.get(v)
        if target is None or target not in inputs or target in found.values():
            continue
        if loops.writes_into(op, k, inputs.index(target), read_shapes):
            found[k] = target
    return found


@lower.register
def _(op: Elementwise, node: Node) -> Step:
    fused = Fused(tuple(v.type for v in node.inputs), ((op, tuple(range(op.nin))),), ((op.nin, None),))
    return _alone(fused, node)


@lower.register
def _(op: Reduce, node: Node) -> Step:
    return _alone(Fused((node.inputs[0].type,), (), ((0, op),)), node)


def _alone(fused: Fused, node: Node) -> Step:
    step = lower(fused, node)
    step.kernel.name = node.op.name
    return step


@lower.register
def _(op: MatMul, node: Node) -> Step:
    # NumPy's matmul calls the same BLAS as np.dot inside a kernel would, without the copy of
    # transposed operands that a C-contiguous kernel signature would force.
    if node.outputs[0].ndim == 0:  # vector @ vector: np.matmul returns a NumPy scalar
        return Step(op.perform, list(node.inputs), multi=True)
    a, b = node.inputs
    dtype = node.outputs[0].dtype
    plain = a.ndim == b.ndim == 2 and a.dtype == b.dtype == dtype and dtype in ("float32", "float64")
    # NumPy's matmul calls gemv or dot when a side has length 1; the compiled driver always calls
    # gemm, whose bits differ: it takes only products whose lengths are known to be 2 or more.
    if plain:
        m, n = a.type.shape[0], b.type.shape[1]
        plain = m is not None and n is not None and m >= 2 and n >= 2
    inline = f"_matmul({{0}}, {{1}}, _gemm_{dtype})" if plain else None
    return Step(np.matmul, list(node.inputs), multi=False, contiguous_out=True, blas=True, inline=inline)


@lower.register
def _(op: DimShuffle, node: Node) -> Step:
    """A view made by squeeze, transpose and ``None`` indexing, planned once: the generic
    ``perform`` redoes its bookkeeping every call (about 10 us; a training step has several)."""
    kept = [o for o in op.order if o != "x"]
    dropped = tuple(a for a in range(node.inputs[0].ndim) if a not in kept)
    remaining = [a for a in range(node.inputs[0].ndim) if a not in dropped]
    perm = tuple(remaining.index(o) for o in kept)
    permute = perm != tuple(range(len(perm)))
    index = tuple(None if o == "x" else slice(None) for o in op.order) if "x" in op.order else None

    def dimshuffle(x):
        x = np.asarray(x)
        if dropped:
            x = x.squeeze(dropped)  # a dropped axis not of length 1 raises; the driver then re-runs
        if permute:  # the call on the reference backend, whose error names the op
            x = x.transpose(perm)
        return x if index is None else x[index]

    inline = _inline_dimshuffle(node.inputs[0].type.shape, op.order)
    return Step(dimshuffle, list(node.inputs), multi=False, inline=inline)


def _inline_dimshuffle(shape: tuple, order: tuple) -> str | None:
    """The same view in the compiled driver: a transpose, or a reshape that drops axes known to
    have length one or inserts them (a reshape would not notice a dropped axis of length 0);
    other views keep the Python driver."""
    ndim = len(shape)
    kept = [o for o in order if o != "x"]
    if "x" not in order and len(kept) == ndim:
        return "{0}.T" if ndim == 2 and kept == [1, 0] else f"{{0}}.transpose({tuple(kept)})"
    if kept != sorted(kept) or any(shape[a] != 1 for a in range(ndim) if a not in kept):
        return None
    shape = ", ".join("1" if o == "x" else f"{{0}}.shape[{o}]" for o in order)
    return f"{{0}}.reshape(({shape}{',' if len(order) == 1 else ''}))"


# ----- softmax and its cross-entropy: rows in parallel ------------------------------------------
# Three sweeps: each row's maximum (NaN-propagating, as NumPy's) and shifted values, then the
# exponentials of the whole block in one loop with no reduction in it, which LLVM vectorizes
# (libmvec, docs/numba.md), then each row's sum and result. Rows of a classifier are short (10
# classes): a per-row exp loop would run in scalar remainder code, one libm call per element
# (the W2 step's two row kernels took 64 us for 128 x 10 that way).
_SHIFT = """rows, n = a0.shape
    shifted = np.empty((rows, n), {T})
    for r in {loop}(rows):
        m = -math.inf
        for j in range(n):
            v = {T}(a0[r, j])
            if v > m or v != v:
                m = v
        for j in range(n):
            shifted[r, j] = {T}(a0[r, j]) - m
    flat = shifted.reshape(rows * n)
    e = np.empty((rows, n), {T})
    flat_e = e.reshape(rows * n)
    for i in {loop}(rows * n):
        flat_e[i] = {T}(math.exp(flat[i]))"""
_SOFTMAX = """def kernel(a0):
    {shift}
    for r in {loop}(rows):
        s = 0.0
        for j in range(n):
            s += e[r, j]
        {finish}
    return {result}"""
_FINISH_SOFTMAX = """for j in range(n):
            e[r, j] = {T}(e[r, j] / s)"""
_FINISH_LOG = """ls = math.log(s)
        for j in range(n):
            shifted[r, j] = {T}(shifted[r, j] - ls)"""

_CROSS_ENTROPY = """def kernel(a0, a1):
    {shift}
    out = np.empty(rows, {T})
    for r in {loop}(rows):
        s = 0.0
        for j in range(n):
            s += e[r, j]
        ls = {T}(math.log(s))
        total = 0.0
        for j in range(n):
            total += {T}(a1[r, j]) * (shifted[r, j] - ls)
        out[r] = {T}(-total)
    return out"""


def _rows(x: np.ndarray, axis: int) -> np.ndarray:
    """``x`` as a C-contiguous (rows, n) matrix with ``axis`` last."""
    if axis != x.ndim - 1:
        x = np.moveaxis(x, axis, -1)
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)


def _row_kernel(template: str, node: Node, arity: int, finish: str = "", result: str = "") -> Kernel:
    dtype = node.outputs[0].dtype
    ctor = loops.CTOR[dtype]
    types = [TensorType(v.dtype, (None, None)) for v in node.inputs[:arity]]
    size = [v.type.shape for v in node.inputs]
    big = any(None in s for s in size) or max(int(np.prod(s)) for s in size) >= loops.PARALLEL_THRESHOLD
    body = template.replace("{shift}", _SHIFT).replace("{finish}", finish).replace("{result}", result)
    body = body.replace("{loop}", "prange" if big else "range").replace("{T}", ctor)
    return make_kernel(node.op.name, body, types, [node], parallel=big)


@lower.register
def _(op: Softmax, node: Node) -> Step:
    finish = (_FINISH_LOG if op.log else _FINISH_SOFTMAX).replace("{T}", loops.CTOR[node.outputs[0].dtype])
    kernel = _row_kernel(_SOFTMAX, node, 1, finish, "shifted" if op.log else "e")
    axis = op.axis

    def softmax(x):
        rows = _rows(x, axis)
        out = kernel.fn(rows)
        moved = x.shape[:axis] + x.shape[axis + 1 :] + (x.shape[axis],)
        return np.moveaxis(out.reshape(moved), -1, axis) if axis != x.ndim - 1 else out.reshape(x.shape)

    last = node.inputs[0].ndim == 2 and op.axis == 1
    return Step(
        softmax,
        list(node.inputs),
        multi=False,
        kernel=kernel,
        contiguous_out=op.axis == node.inputs[0].ndim - 1,
        inline="{kernel}(np.ascontiguousarray({0}))" if last else None,
    )


@lower.register
def _(op: SoftmaxCrossEntropy, node: Node) -> Step:
    kernel = _row_kernel(_CROSS_ENTROPY, node, 2)
    axis = op.axis
    dtype = float_result(*(v.dtype for v in node.inputs))

    def cross_entropy(z, t):
        t = np.broadcast_to(t, z.shape) if t.shape != z.shape else t
        out = kernel.fn(_rows(z, axis), _rows(t, axis))
        return out.reshape(z.shape[:axis] + z.shape[axis + 1 :]).astype(dtype, copy=False)

    z, t = node.inputs
    rows = z.ndim == 2 and axis == 1 and t.type.shape == z.type.shape and None not in z.type.shape
    rows = rows and z.dtype == t.dtype == node.outputs[0].dtype == dtype
    inline = "{kernel}(np.ascontiguousarray({0}), np.ascontiguousarray({1}))" if rows else None
    return Step(cross_entropy, list(node.inputs), multi=False, kernel=kernel, contiguous_out=True, inline=inline)
