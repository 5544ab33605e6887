"""Reduction kernels: sum, mean, prod, max, min and logsumexp of a fused group's values over any
axes (with ``keepdims``), and argmax.

The reduced values are computed inline by the group's scalar program. Which kernel runs is
decided at each call from the collapsed lengths: M output elements, each reducing K values.

- **rows** (K < ``rows_below``): one thread per output element, in a grid-stride loop over
  the outputs, reduces its K values sequentially.
- **blocks**: each output element is split into ``parts`` contiguous ranges (about ``items``
  values per thread, at most ``max_parts``), one block each. A block's threads accumulate
  strided values, then a shared-memory tree halves them to one. With one part the block writes
  the result; otherwise it writes a partial, and a **final** pass (one thread per output)
  combines the parts.

float32 and ints accumulate in float64 and int64. ``max``/``min`` propagate NaN as NumPy does (a
NaN once taken is never replaced). ``logsumexp`` takes a second sweep shifted by the maximum (by
0 where the maximum is not finite, as the numpy reference does); its partials are pairs (block
maximum, shifted sum), rescaled to the overall maximum when combined.
"""

from __future__ import annotations

import math

from ...graph import Node
from ...ops.fused import Fused
from ...ops.reduction import LOGSUMEXP, MAX, MEAN, MIN, PROD, Argmax
from ..numba.loops import CTOR, scalar_program
from .lowering import Context, Step, launch, lower, make_kernel
from .space import NB, Space, Writer, array_type, decompose, product, signature

_LOWEST = {"float64": "np.float64(-math.inf)", "int64": "np.int64(-9223372036854775807 - 1)"}
_HIGHEST = {"float64": "np.float64(math.inf)", "int64": "np.int64(9223372036854775807)"}


def accumulator(kind, dtype: str) -> str:
    return "float64" if kind in (MEAN, LOGSUMEXP) or dtype in ("float32", "float64") else "int64"


def init(kind, acc: str) -> str:
    if kind in (MAX, LOGSUMEXP):
        return _LOWEST[acc]
    if kind is MIN:
        return _HIGHEST[acc]
    return f"{CTOR[acc]}({1 if kind is PROD else 0})"


def combine(kind, target: str, value: str) -> list[str]:
    """Lines folding ``value`` into ``target`` (``kind``'s operation; NaN-propagating extremes)."""
    if kind in (MAX, LOGSUMEXP):
        return [f"if {value} > {target} or {value} != {value}:", f"    {target} = {value}"]
    if kind is MIN:
        return [f"if {value} < {target} or {value} != {value}:", f"    {target} = {value}"]
    return [f"{target} = {target} {'*' if kind is PROD else '+'} {value}"]


def finite_or_zero(x: str) -> str:
    """``x`` where finite, else 0: the shift of logsumexp (``x - x`` is NaN for inf and NaN)."""
    return f"{x} if {x} - {x} == 0 else np.float64(0)"


def tree(w: Writer, shared: list[tuple[str, object]], threads: int) -> None:
    """Halve each shared array to its element 0: ``shared`` holds (name, kind) pairs."""
    w("cuda.syncthreads()", f"half = {threads // 2}")
    w.block("while half > 0:")
    w.block("if t < half:")
    for name, kind in shared:
        w(f"u_{name} = {name}[t]", f"w_{name} = {name}[t + half]", *combine(kind, f"u_{name}", f"w_{name}"))
        w(f"{name}[t] = u_{name}")
    w.end()
    w("cuda.syncthreads()", "half = half // 2")
    w.end()


class ReductionPlan:
    """The kernels reducing a fused op's results at ``positions``, all over ``axes``."""

    def __init__(
        self, op: Fused, node: Node, inputs: dict, names: list[str], positions, axes: tuple, name: str, threads: int
    ):
        arrays, scalars = inputs["arrays"], inputs["scalars"]
        self.space = space = Space(op, arrays, inputs["read"], inputs["expect"], reduced=axes)
        self.op, self.names, self.scalars, self.axes = op, names, scalars, axes
        self.c = c = len(space.groups)
        self.kept = [j for j in range(c) if not space.reduced[j]]
        self.red = [j for j in range(c) if space.reduced[j]]
        outs = op.infer()
        self.results = [(k, op.results[k][0], op.results[k][1]) for k in positions]
        self.out = {k: outs[k].dtype for k in positions}
        self.acc = {k: accumulator(red.kind, op._types[ref].dtype) for k, ref, red in self.results}
        self.lse = [k for k, _, red in self.results if red.kind is LOGSUMEXP]
        self.needs_elements = any(red.kind.needs_elements for _, _, red in self.results)
        lengths = [f"n{j}" for j in range(c)]
        self.params = [f"a{p}" for p in arrays] + [f"s{p}" for p in scalars] + lengths
        self.types = [array_type(op.in_types[p].dtype, c) for p in arrays]
        self.types += [NB[op.in_types[p].dtype] for p in scalars] + ["nb.int64"] * c
        results = [array_type(self.out[k], 1) for k, _, _ in self.results]
        partials = [array_type(self.acc[k], 2) for k, _, _ in self.results] + [array_type("float64", 2)] * len(self.lse)
        self.rows = make_kernel(f"{name} (rows)", self._rows(), signature(results + self.types), [node])
        self.blocks = make_kernel(
            f"{name} (blocks)",
            self._blocks(threads),
            signature(results + partials + self.types + ["nb.int64"]),
            [node],
        )
        self.final = make_kernel(
            f"{name} (final)", self._final(), signature(results + partials + ["nb.int64"] * 3), [node]
        )
        self.kernels = [self.rows, self.blocks, self.final]

    # ----- source --------------------------------------------------------------------------------
    def _head(self, w: Writer) -> None:
        w(f"M = {product([f'n{j}' for j in self.kept])}", f"K = {product([f'n{j}' for j in self.red])}")

    def _element(self, w: Writer, flat: str) -> list[str]:
        """Lines computing the program at reduced position ``flat``; returns the value names."""
        decompose(w, flat, self.red)
        for p in self.space.arrays:
            w(f"x{p} = a{p}[{self.space.index(p)}]")
        values = list(self.names)
        w(*scalar_program(self.op, values))
        return values

    def _fold(self, w: Writer, values: list[str], sweep: int) -> None:
        for k, ref, red in self.results:
            if sweep == 0:
                w(f"v{k} = {CTOR[self.acc[k]]}({values[ref]})", *combine(red.kind, f"acc{k}", f"v{k}"))
            elif red.kind is LOGSUMEXP:
                w(f"sum{k} = sum{k} + math.exp(np.float64({values[ref]}) - shift{k})")

    def _finish(self, k: int, red, acc: str) -> str:
        if red.kind is MEAN:
            return f"{CTOR[self.out[k]]}({acc} / K)"
        if red.kind is LOGSUMEXP:
            return f"{CTOR[self.out[k]]}(math.log({acc}) + shift{k})"
        return f"{CTOR[self.out[k]]}({acc})"

    def _result_params(self) -> list[str]:
        return [f"r{k}" for k, _, _ in self.results]

    def _partial_params(self) -> list[str]:
        return [f"p{k}" for k, _, _ in self.results] + [f"ps{k}" for k in self.lse]

    def _rows(self) -> str:
        w = Writer(f"def kernel({', '.join(self._result_params() + self.params)}):")
        self._head(w)
        w("m = cuda.grid(1)", "step = cuda.gridsize(1)")
        w.block("while m < M:")
        decompose(w, "m", self.kept)
        for k, _, red in self.results:
            w(f"acc{k} = {init(red.kind, self.acc[k])}")
        w.block("for k in range(K):")
        self._fold(w, self._element(w, "k"), 0)
        w.end()
        if self.lse:
            for k in self.lse:
                w(f"shift{k} = {finite_or_zero(f'acc{k}')}", f"sum{k} = np.float64(0)")
            w.block("for k in range(K):")
            self._fold(w, self._element(w, "k"), 1)
            w.end()
        for k, _, red in self.results:
            w(f"r{k}[m] = {self._finish(k, red, f'sum{k}' if red.kind is LOGSUMEXP else f'acc{k}')}")
        w("m += step")
        return w.text()

    def _blocks(self, threads: int) -> str:
        w = Writer(f"def kernel({', '.join(self._result_params() + self._partial_params() + self.params)}, parts):")
        for k, _, _ in self.results:
            w(f"sh{k} = cuda.shared.array({threads}, {NB[self.acc[k]]})")
        self._head(w)
        w("t = cuda.threadIdx.x")
        w.block("for b in range(cuda.blockIdx.x, M * parts, cuda.gridsize(1) // cuda.blockDim.x):")
        w("m = b // parts", "part = b - m * parts")
        decompose(w, "m", self.kept)
        for k, _, red in self.results:
            w(f"acc{k} = {init(red.kind, self.acc[k])}")
        w(f"k = part * {threads} + t")
        w.block("while k < K:")
        self._fold(w, self._element(w, "k"), 0)
        w(f"k += parts * {threads}")
        w.end()
        w(*(f"sh{k}[t] = acc{k}" for k, _, _ in self.results))
        tree(w, [(f"sh{k}", red.kind) for k, _, red in self.results], threads)
        if self.lse:
            w(*(f"top{k} = sh{k}[0]" for k in self.lse), "cuda.syncthreads()")
            for k in self.lse:
                w(f"shift{k} = {finite_or_zero(f'top{k}')}", f"sum{k} = np.float64(0)")
            w(f"k = part * {threads} + t")
            w.block("while k < K:")
            self._fold(w, self._element(w, "k"), 1)
            w(f"k += parts * {threads}")
            w.end()
            w(*(f"sh{k}[t] = sum{k}" for k in self.lse))
            tree(w, [(f"sh{k}", None) for k in self.lse], threads)
        w.block("if t == 0:")
        w.block("if parts == 1:")
        for k, _, red in self.results:
            w(f"r{k}[m] = {self._finish(k, red, f'sh{k}[0]')}")
        w.end()
        w.block("else:")
        for k, _, red in self.results:
            w(f"p{k}[m, part] = {f'top{k}' if red.kind is LOGSUMEXP else f'sh{k}[0]'}")
        w(*(f"ps{k}[m, part] = sh{k}[0]" for k in self.lse))
        w.end(2)
        w("cuda.syncthreads()")
        return w.text()

    def _final(self) -> str:
        w = Writer(f"def kernel({', '.join(self._result_params() + self._partial_params())}, M, parts, K):")
        w("m = cuda.grid(1)", "step = cuda.gridsize(1)")
        w.block("while m < M:")
        for k, _, red in self.results:
            w(f"acc{k} = {init(red.kind, self.acc[k])}")
            w.block("for j in range(parts):")
            w(f"v{k} = p{k}[m, j]", *combine(red.kind, f"acc{k}", f"v{k}"))
            w.end()
            if red.kind is LOGSUMEXP:
                w(f"shift{k} = {finite_or_zero(f'acc{k}')}", f"sum{k} = np.float64(0)")
                w.block("for j in range(parts):")
                w(f"part_sum = ps{k}[m, j]")
                w.block("if part_sum != 0:")
                w(f"top = p{k}[m, j]", f"sum{k} = sum{k} + part_sum * math.exp(({finite_or_zero('top')}) - shift{k})")
                w.end(2)
                w(f"r{k}[m] = {self._finish(k, red, f'sum{k}')}")
            else:
                w(f"r{k}[m] = {self._finish(k, red, f'acc{k}')}")
        w("m += step")
        return w.text()

    # ----- at run time ---------------------------------------------------------------------------
    def run(self, rt, d: list[int], arrays: dict, scalars: dict):
        n = self.space.collapsed(d)
        outputs = math.prod(n[j] for j in self.kept)  # M in the kernels
        length = math.prod(n[j] for j in self.red)  # K in the kernels
        if length == 0 and self.needs_elements:
            raise ValueError("max or min of an empty array")
        outs = []
        for k, _, red in self.results:
            shape = [1 if a in self.axes else d[a] for a in range(len(d)) if red.keepdims or a not in self.axes]
            outs.append(rt.empty(shape, self.out[k]))
        if outputs:
            results = [o.reshape(outputs) for o in outs]
            args = [self.space.view(p, arrays[p], n) for p in self.space.arrays]
            args += [scalars[p] for p in self.scalars] + n
            cfg = rt.config
            if length < cfg.rows_below:
                threads = min(cfg.threads, outputs)
                launch(self.rows, rt, rt.blocks(outputs, threads), threads, *results, *args)
            else:
                parts = min(max(1, -(-length // (cfg.threads * cfg.items))), cfg.max_parts)
                shape = (outputs, parts) if parts > 1 else (1, 1)
                partials = [rt.empty(shape, self.acc[k]) for k, _, _ in self.results]
                partials += [rt.empty(shape, "float64") for _ in self.lse]
                blocks = min(outputs * parts, cfg.max_blocks)
                launch(self.blocks, rt, blocks, cfg.threads, *results, *partials, *args, parts)
                if parts > 1:
                    threads = min(cfg.threads, outputs)
                    launch(self.final, rt, rt.blocks(outputs, threads), threads, *results, *partials,
                           outputs, parts, length)  # fmt: skip
        return zip([k for k, _, _ in self.results], outs)


# ----- argmax ------------------------------------------------------------------------------------
@lower.register
def _(op: Argmax, node: Node, ctx: Context) -> Step:
    """One thread per output element scans its values; the first maximum wins, and a NaN (the
    first one) beats every number, as in NumPy. Over several axes the index is flat (C order)
    within them, which the collapsed reduced axes give directly."""
    x = node.inputs[0]
    fused = Fused((x.type,), (), ((0, None),))
    space = Space(fused, [0], {}, {}, reduced=op.axes)
    c = len(space.groups)
    kept = [j for j in range(c) if not space.reduced[j]]
    red = [j for j in range(c) if space.reduced[j]]
    w = Writer(f"def kernel(r, a0, {', '.join(f'n{j}' for j in range(c))}):")
    w(f"M = {product([f'n{j}' for j in kept])}", f"K = {product([f'n{j}' for j in red])}")
    w("m = cuda.grid(1)", "step = cuda.gridsize(1)")
    w.block("while m < M:")
    decompose(w, "m", kept)
    w(*(f"i{j} = 0" for j in red), f"best = a0[{space.index(0)}]", "where = 0")
    w.block("for k in range(1, K):")
    decompose(w, "k", red)
    w(f"v = a0[{space.index(0)}]")
    w.block("if v > best or (v != v and best == best):")
    w("best = v", "where = k")
    w.end(2)
    w("r[m] = where", "m += step")
    types = [array_type("int64", 1), array_type(x.dtype, c)] + ["nb.int64"] * c
    kernel = make_kernel("argmax", w.text(), signature(types), [node])
    rt = ctx.rt

    def argmax(a):
        d = space.lengths({0: a}, {})
        n = space.collapsed(d)
        outputs, length = math.prod(n[j] for j in kept), math.prod(n[j] for j in red)
        if length == 0:
            raise ValueError("argmax of an empty array")
        shape = [1 if i in op.axes else d[i] for i in range(len(d)) if op.keepdims or i not in op.axes]
        out = rt.empty(shape, "int64")
        if outputs:
            threads = min(rt.config.threads, outputs)
            launch(kernel, rt, rt.blocks(outputs, threads), threads, out.reshape(outputs), space.view(0, a, n), *n)
        return (out,)

    return Step(argmax, [x], [kernel])
