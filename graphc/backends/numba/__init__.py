"""The Numba CPU backend: generated loop kernels, one generated driver per function.

``compile(leaves, outputs)`` lowers each node (``lowering.py``: fused groups and reductions to
generated loop kernels, softmax to row kernels, matrix products to BLAS, the rest to their NumPy
reference), then writes one straight-line Python *driver* that calls them with positional
arrays, so a call costs one Python frame plus one dispatch per kernel rather than a loop over
nodes. Kernels are compiled by numba with explicit signatures and kept in the persistent cache
(``cache.py``). A function called often switches to a compiled driver (``compiled.py``): the same
calls from one numba function.

Errors: kernels check the lengths they rely on and raise a bare ``ValueError``; on any failure
the driver re-runs the call on the NumPy reference backend, which raises the same precise error
(op, shapes, user line) the numpy backend would. If the reference succeeds where the kernels
failed, that is a graphc bug and the original error is raised with a note saying so.
"""

from __future__ import annotations

import builtins
import heapq
import os

import numpy as np

from ...graph import Constant, Variable, toposort
from ...profiling import Clocks, StepInfo, swapped_driver
from .. import reference
from . import (
    cache,
    compiled,
    image,  # noqa: F401  (the conv and pooling kernels, registered with lower)
    streaming,
)
from .loops import CTOR
from .lowering import Kernel, Step, fused_step, lower, writable_results
from .recycle import Recycled

__all__ = ["compile", "Program"]


def _contiguous(x) -> np.ndarray:
    """``x`` as a C-contiguous array of its own rank (np.ascontiguousarray makes 0-d arrays 1-d)."""
    if type(x) is np.ndarray and x.flags.c_contiguous:
        return x
    x = np.asarray(x)
    return x if x.flags.c_contiguous else np.ascontiguousarray(x).reshape(x.shape)


def _own(x) -> np.ndarray:
    """``x`` as a C-contiguous array a kernel may overwrite: itself when it is one, else a copy."""
    if type(x) is np.ndarray and x.flags.c_contiguous and x.flags.writeable:
        return x
    return np.array(x, order="C")


def _write_in_place(units: list, order: list[int], outputs: list[Variable], candidates: dict) -> tuple[set, dict]:
    """Let updates overwrite the arrays of the shared values they replace, as the numpy code of a
    training step does (``m *= beta1``): the Adam step of a network then writes no new arrays.

    ``order`` lists the live steps in topological order; ``candidates`` maps an output to the
    leaf whose array it may take. A fused step gets a kernel
    writing into the leaf's array when the leaf is read by nothing after it, neither directly
    nor through a view (a transpose made earlier and read later), is not itself an output, and
    the step reads it at every element (``writable_results``). Returns the leaves written, and
    for each step that writes one, the steps that read the leaf or a view of it (they must run
    before it)."""
    written: set[Variable] = set()
    by_step: dict[int, dict] = {}
    readers: dict[int, set[int]] = {}
    for out, leaf in candidates.items():
        if outputs.count(out) != 1 or leaf in outputs or leaf in written:
            continue
        views, last, reading = {leaf}, None, set()
        for k in order:
            made, step = units[k]
            if any(a in views for a in step.args):
                last = k
                reading.add(k)
                if not (step.contiguous_out and (step.kernel or step.blas)):  # its results may be views
                    views.update(made)
        made, step = units[last] if last is not None else ((), None)
        if out not in made or any(v in views for v in outputs) or sum(a in views for a in step.args) != 1:
            continue
        by_step.setdefault(last, {})[out] = leaf
        readers.setdefault(last, set()).update(reading - {last})
        written.add(leaf)
    done: set[Variable] = set()
    writers: dict[int, set[int]] = {}
    for k, wanted in by_step.items():
        made, step = units[k]
        node = made[0].owner
        if step.outputs is not None or step.kernel is None:  # a streaming kernel, or not a loop kernel
            continue
        into = writable_results(node, wanted)
        if into:
            units[k] = (made, fused_step(node.op, node, into=into))
            done.update(into.values())
            writers[k] = readers[k]
    return done, writers


def _writes_last(units: list, order: list[int], writers: dict[int, set[int]]) -> list[int]:
    """The order of the live steps: every step that overwrites a shared value as late as its
    results allow (after the steps reading the old value, and after every other step that does
    not need its results), so that a call failing in some other step leaves the shared values as
    they were, as the numpy backend does."""
    if not writers:
        return order
    producer = {v: k for k in order for v in units[k][0]}
    waits = {k: {producer[a] for a in units[k][1].args if a in producer} | writers.get(k, set()) for k in order}
    unblocks: dict[int, list[int]] = {k: [] for k in order}
    for k, before in waits.items():
        for j in before:
            unblocks[j].append(k)
    pending = {k: len(before) for k, before in waits.items()}
    ready: tuple[list[int], list[int]] = ([], [])  # heaps of step indices: others first, then writers
    for k in order:
        if not pending[k]:
            heapq.heappush(ready[k in writers], k)
    done: list[int] = []
    while ready[0] or ready[1]:
        k = heapq.heappop(ready[0] if ready[0] else ready[1])
        done.append(k)
        for j in unblocks[k]:
            pending[j] -= 1
            if not pending[j]:
                heapq.heappush(ready[j in writers], j)
    return done


def _brief_spin() -> None:
    """Let numba's OpenMP workers spin only briefly after a parallel loop, unless the user chose.

    libgomp's default spin kept them busy for milliseconds: OpenBLAS's threads, and the caller's
    own NumPy, then shared the cores with spinning workers (a product right after a parallel
    kernel took 8.2 ms instead of 3.6 ms on 2 cores). Sleeping at once (``OMP_WAIT_POLICY=PASSIVE``,
    sessions 3-8) cost a wake-up per loop instead: W3's steps, one parallel kernel each, took
    5.05-5.47 ms against 4.55-4.89 ms with a spin of 1000 (docs/performance.md, session 9), which
    also kept the product case at 1.8-2.2 ms a pair. libgomp reads these when numba first starts
    its threads, which happens after this runs (at the first parallel call)."""
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", "1000")


class Program:
    """What the backend built for one function: the driver, its kernels and their source."""

    def __init__(
        self,
        leaves: list[Variable],
        outputs: list[Variable],
        inplace: dict[int, int] | None = None,
        compile_driver: bool = True,
    ):
        self.leaves, self.outputs = leaves, outputs
        names: dict[Variable, str] = {v: f"v{i}" for i, v in enumerate(leaves)}
        contiguous: set[Variable] = set()
        env: dict[str, object] = {"np": np, "_ascontiguous": _contiguous, "_own": _own}
        lines: list[str] = []
        prologue: list[str] = []
        leaf_set = set(leaves)
        self._kernels: list[Kernel] = []
        self._parallel: list = []  # parallel versions, compiled on first use
        self.profile_steps: list[StepInfo] = []  # the driver's steps, in call order (graphc.profiling)

        def name_of(v: Variable) -> str:
            if v not in names:
                names[v] = f"v{len(names)}"
                if isinstance(v, Constant):  # read-only, as the graph's: a call returning it hands out a copy
                    value = _contiguous(v.value)
                    value.setflags(write=False)
                    env[names[v]] = value
                    contiguous.add(v)
            return names[v]

        nodes = toposort(outputs)
        streams = {id(s.group): s for s in streaming.find(nodes, outputs)}
        absorbed = {id(n) for s in streams.values() for n in (s.first, s.last)}
        units = []  # (variables computed, step)
        for node in nodes:
            if id(node) in streams:
                step = fused_step(node.op, node, streams[id(node)])
                units.append((step.outputs, step))
            elif id(node) not in absorbed:
                units.append((node.outputs, lower(node.op, node)))
        # Drop steps nothing reads any more (a broadcast_to a kernel now reads through).
        live = set(outputs)
        for made, step in reversed(units):
            if any(v in live for v in made):
                live.update(step.args)
        # OpenBLAS's threads keep spinning after a product and numba's OpenMP threads after a
        # parallel loop: in one function they fight over the cores (the W2 training step took
        # 25 ms instead of 5.4 ms). A function with matrix products runs its loops serially.
        order = [k for k, (made, _) in enumerate(units) if any(v in live for v in made)]  # the live steps
        candidates = {outputs[o]: leaves[k] for o, k in (inplace or {}).items()}
        overwritten, writers = _write_in_place(units, order, outputs, candidates) if candidates else (set(), {})
        uses_blas = any(step.blas for _, step in units)
        needed = [units[k][1].kernel for k in order if units[k][1].kernel is not None]
        plan = compiled.Plan() if compile_driver else None
        _brief_spin()
        cache.load_all([k.text for k in needed])  # compiles what is not cached, two at a time
        for kernel in needed:
            kernel.load()
        for k in _writes_last(units, order, writers):
            made, step = units[k]
            env[f"op{k}"] = step.call.fn if isinstance(step.call, Kernel) else step.call
            args = []
            for v in step.args:
                text = name_of(v)
                if step.contiguous_in and v not in contiguous:
                    if v in leaf_set:  # once, at the top of the driver
                        prologue.append(f"    {text} = {'_own' if v in overwritten else '_ascontiguous'}({text})")
                        contiguous.add(v)
                    else:
                        text = f"_ascontiguous({text})"
                args.append(text)
            outs = [name_of(v) for v in (made if step.outputs is None else step.outputs)]
            for v, arg in step.aliases.items():  # written into that argument's array
                names[v] = name_of(arg)
            target = ", ".join(outs) + ("," if step.multi and len(outs) == 1 else "")
            what = step.kernel.nodes if step.kernel else [v.owner for v in made[:1]]
            comment = f"  # {', '.join(n.op.name for n in what)}"
            comment += f" [{step.kernel.name} {len(self._kernels)}]" if step.kernel else ""
            call, names_of_call = f"op{k}", (f"op{k}",)
            if step.parallel is not None and not uses_blas:
                env[f"op{k}p"] = step.parallel
                self._parallel.append(step.parallel)
                call = f"(op{k}p if {args[step.size_arg]}.size >= {step.threshold} else op{k})"
                names_of_call += (f"op{k}p",)
            label = f"{step.kernel.name} [kernel {len(self._kernels)}]" if step.kernel else what[0].op.name
            self.profile_steps.append(StepInfo(names_of_call, label, tuple(what)))
            slots = [f"r{k}_{j}" for j in range(len(step.given))]
            env.update({slot: Recycled(v.dtype, v.ndim) for slot, v in zip(slots, step.given)})
            given = [f"{slot}.take()" for slot in slots]
            lines.append(f"    {target + ' = ' if target else ''}{call}({', '.join(args + given)}){comment}")
            lines += [f"    {slot}.last = {name_of(v)}" for slot, v in zip(slots, step.given)]
            if plan is not None:
                empty = [f"np.empty({(0,) * v.ndim}, {CTOR[v.dtype]})" for v in step.given]
                plan.add(step, target, args + empty, comment, parallel=call != f"op{k}")
            if step.kernel is not None:
                self._kernels.append(step.kernel)
            if step.contiguous_out:
                contiguous.update(made)
        results = [name_of(v) for v in outputs]
        # Fresh: new arrays, and arrays of shared values a kernel overwrote (the update's own).
        fresh = {v for made, step in units if step.contiguous_out and (step.kernel or step.blas) for v in made}
        self.fresh_outputs = [v in fresh and outputs.count(v) == 1 for v in outputs]
        unpack = ", ".join(names[v] for v in leaves) + ("," if len(leaves) == 1 else "")
        head = "def driver(values):\n" + (f"    {unpack} = values\n" if leaves else "")
        self.driver_source = (
            head + "\n".join(prologue + lines) + ("\n" if lines else "") + f"    return [{', '.join(results)}]\n"
        )
        exec(builtins.compile(self.driver_source, "<graphc driver>", "exec"), env)
        self.driver, self.driver_env = env["driver"], env
        self._reference = None
        self.compiled_source = None  # the compiled driver's module, once it works (compiled.py)
        if plan is not None and plan.ok:
            self._try_compiled(plan, head, prologue, results, leaves, names)

    def _try_compiled(self, plan, head: str, prologue: list[str], results: list[str], leaves, names) -> None:
        """Run the Python driver until the function is hot, then the compiled one (compiled.py)."""
        params = [names[v] for v in leaves]
        constants = plan.constants(self.driver_env)
        text = plan.module_text(params, constants, results)
        if text is None:
            return
        body = head + "\n".join(prologue) + ("\n" if prologue else "")
        arguments = ", ".join(params + constants + plan.extra_args)
        namespace = dict(self.driver_env, **plan.extra_values())
        packed = f"({arguments},)" if arguments else "()"
        exec(builtins.compile(body + f"    return {packed}\n", "<graphc driver arguments>", "exec"), namespace)
        self.driver = compiled.Upgrade(self, text, namespace["driver"])

    def forget_recycled(self) -> None:
        """Let go of the arrays the Python driver kept for its kernels (recycle.py): the
        compiled driver, now making the calls, does not use them."""
        for value in self.driver_env.values():
            if isinstance(value, Recycled):
                value.forget()

    @property
    def kernels(self) -> list[Kernel]:
        """The compiled kernels, in call order; parallel versions once a call has needed them."""
        return self._kernels + [later.kernel for later in self._parallel if later.kernel is not None]

    def source(self) -> str:
        """The driver and every kernel's source, as generated."""
        parts = ["# driver\n" + self.driver_source]
        if self.compiled_source:
            parts.append("# compiled driver (the calls run it; profiling runs the one above)\n" + self.compiled_source)
        for k, kernel in enumerate(self.kernels):
            parts.append(f"# kernel {k}: {kernel.name}\n{kernel.source}")
        return "\n".join(parts)

    def timed(self, clocks: Clocks):
        """While active, calls run a twin of the driver with each step timed into ``clocks``."""
        return swapped_driver(self, clocks)

    def __call__(self, values):
        try:
            return self.driver(values)
        except Exception as err:
            if self._reference is None:
                self._reference = reference.compile(self.leaves, self.outputs)
            self._reference(values)  # raises the numpy backend's error, naming the op and line
            err.add_note("graphc: the numpy backend computed this call; the numba kernels failed (a graphc bug)")
            raise


def compile(leaves: list[Variable], outputs: list[Variable], inplace: dict[int, int] | None = None) -> Program:
    """A callable ``run(values)`` evaluating ``outputs`` from one value per leaf.

    ``inplace`` maps output positions to leaf positions whose arrays the output may overwrite
    (the shared values that updates replace); the caller guarantees nothing else holds them."""
    return Program(leaves, outputs, inplace)
