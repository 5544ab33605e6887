"""graphc's optimizer against PyTensor's graph rewriting, on the graphs of optimizer_scaling.py.

Needs PyTensor, which graphc does not depend on, so run it from a separate environment:

    python3 -m venv /tmp/ptvenv && /tmp/ptvenv/bin/pip install pytensor numpy && /tmp/ptvenv/bin/pip install -e .
    /tmp/ptvenv/bin/python benchmarks/optimizer_vs_pytensor.py [--repeat 3]

Both graph families are built twice with the same loop and the same ops: once in graphc, once in PyTensor.
A chain is built in graphc until it has about n nodes (as in optimizer_scaling.py) and the PyTensor graph
gets the same number of loop steps, so both hold the same computation; PyTensor counts more Apply nodes
because it adds a DimShuffle for every broadcast constant.

What is timed:

* graphc: ``gc.optimize(outputs, passes="full")``.
* PyTensor: exactly the interval ``pytensor.function`` reports as its rewriting time. ``pytensor.function``
  clones the graph (``construct_function_ins_and_outs``), builds the FunctionGraph
  (``FunctionMaker.create_fgraph``), and then ``FunctionMaker.prepare_fgraph`` runs ``mode.optimizer(fgraph)``
  under ``config.change_flags(mode=mode, ...)`` and times only that call. Linking (Numba/C code generation
  and compilation, ``FunctionMaker.create``) is not run. The mode is ``get_mode(None)``, the one
  ``pytensor.function`` uses by default (``config.mode="Mode"``; in PyTensor 3 that is the Numba linker and
  the "fast_run" rewrite query, the same query as ``get_mode("FAST_RUN")``).

PyTensor's default rewrites expand the logistic map algebraically (``local_greedy_distributor`` and
``local_add_canonizer`` in the canonicalize phase), which grows exponentially with the number of iterations,
so the logistic-gradient graphs run with PyTensor's defaults only for a few iterations. At the intended sizes
(n = 112 and more) the PyTensor rows use the default rewrites minus ``local_greedy_distributor``; they are
labelled "[pt -distributor]".
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import time

import numpy as np
import pytensor
import pytensor.tensor as pt
from optimizer_scaling import chain_step, chain_with_steps, logistic_gradient  # the same graphs, one source
from pytensor.compile.maker import FunctionMaker
from pytensor.compile.mode import get_mode
from pytensor.compile.rebuild import construct_function_ins_and_outs
from pytensor.configdefaults import config
from pytensor.graph.traversal import io_toposort

import graphc as gc

# PyTensor clones graphs recursively (compile/rebuild.py): a 10000-node chain needs a deeper stack than the
# default limit of 1000, as it would inside pytensor.function.
sys.setrecursionlimit(100_000)

PT_DEFAULT = get_mode(None)
PT_NO_DISTRIBUTOR = PT_DEFAULT.excluding("local_greedy_distributor")


# graphc graphs: the same loops as benchmarks/optimizer_scaling.py, also returning the number of loop steps.


gc_chain = chain_with_steps


def gc_logistic_gradient(n: int):
    return logistic_gradient(n), n


# PyTensor graphs: the same ops, for a given number of loop steps. Returns (inputs, outputs).


def pt_chain(steps: int):
    x = pt.matrix("x", shape=(None, 8), dtype="float64")
    w = pytensor.shared(np.eye(8), "w")
    v = x
    for k in range(1, steps + 1):
        v = chain_step(k, v, w, pt.tanh, pt.sin)
    return [x], [pt.sum(v)]


def pt_logistic_gradient(n: int):
    x = pt.dscalar("l0")
    v = x
    for _ in range(n):
        v = 4.0 * v * (1.0 - v)
    return [x], [v, pytensor.grad(v, x)]


class _MaxedOut(logging.Handler):
    """Counts PyTensor's "EquilibriumGraphRewriter max'ed out" errors (rewriting stopped by its use limit)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record):
        if "max'ed out" in record.getMessage():
            self.count += 1


MAXED_OUT = _MaxedOut()
_pt_rewrite_logger = logging.getLogger("pytensor.graph.rewriting.basic")
_pt_rewrite_logger.addHandler(MAXED_OUT)
_pt_rewrite_logger.propagate = False  # counted and footnoted instead of printed mid-table


def pt_rewrite_once(inputs, outputs, mode):
    """Rewrite a fresh FunctionGraph as pytensor.function does; return (seconds, apply nodes after)."""
    ins, outs = construct_function_ins_and_outs(inputs, outputs)
    ins = [FunctionMaker.wrap_in(i) for i in ins]
    outs = [FunctionMaker.wrap_out(o) for o in outs]
    fgraph, _ = FunctionMaker.create_fgraph(ins, outs)
    rewriter = mode.optimizer  # fetched outside the timed region, as in FunctionMaker.prepare_fgraph
    start = time.perf_counter()
    with config.change_flags(mode=mode, traceback__limit=config.traceback__compile_limit):
        rewriter(fgraph)
    return time.perf_counter() - start, len(fgraph.apply_nodes)


def measure_graphc(build, size, repeat):
    times = []
    for _ in range(repeat):
        outputs, steps = build(size)
        before = len(gc.toposort(outputs))
        start = time.perf_counter()
        optimized = gc.optimize(outputs, passes="full")
        times.append(time.perf_counter() - start)
    return steps, before, len(gc.toposort(optimized)), statistics.median(times)


def measure_pytensor(build, steps, repeat, mode):
    times, maxed = [], False
    for _ in range(repeat):
        inputs, outputs = build(steps)
        before = len(io_toposort(inputs, outputs))
        MAXED_OUT.count = 0
        seconds, after = pt_rewrite_once(inputs, outputs, mode)
        maxed = maxed or MAXED_OUT.count > 0
        times.append(seconds)
    return before, after, statistics.median(times), maxed


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {platform.system()} {platform.machine()}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    r = args.repeat
    print(
        f"# graphc {getattr(gc, '__version__', '?')} vs pytensor {pytensor.__version__} "
        f"(python {platform.python_version()}, {machine()})"
    )
    print(
        f"# graphc: gc.optimize(passes='full'); pytensor: get_mode(None).optimizer(fgraph) = the rewriting step of "
        f"pytensor.function (linker {type(PT_DEFAULT.linker).__name__}, not run); median of repeats"
    )

    # Warm both up (first-call imports and caches) on small graphs before measuring.
    measure_graphc(gc_chain, 50, 1)
    measure_graphc(gc_logistic_gradient, 4, 1)
    pt_rewrite_once(*pt_chain(10), PT_DEFAULT)
    pt_rewrite_once(*pt_logistic_gradient(2), PT_DEFAULT)

    # (label, graphc builder, pytensor builder, size, pytensor mode, graphc repeats, pytensor repeats)
    cases = [("chain", gc_chain, pt_chain, n, PT_DEFAULT, r, r) for n in (100, 300, 1000, 3000)]
    cases.append(("chain", gc_chain, pt_chain, 10000, PT_DEFAULT, r, 1))
    lg = "logistic-map gradient"
    cases += [(lg, gc_logistic_gradient, pt_logistic_gradient, n, PT_DEFAULT, r, r) for n in (4, 6)]
    cases.append((lg, gc_logistic_gradient, pt_logistic_gradient, 7, PT_DEFAULT, r, 1))
    lg_nd = "logistic-map gradient [pt -distributor]"
    cases.append((lg_nd, gc_logistic_gradient, pt_logistic_gradient, 112, PT_NO_DISTRIBUTOR, r, r))
    cases.append((lg_nd, gc_logistic_gradient, pt_logistic_gradient, 250, PT_NO_DISTRIBUTOR, r, 1))

    print(
        f"{'graph':<42}{'n':>6}{'gc nodes':>10}{'pt nodes':>10}{'gc after':>10}{'pt after':>10}"
        f"{'gc s':>10}{'pt s':>10}{'pt/gc':>9}{'pt reps':>9}"
    )
    any_maxed = False
    total_start = time.perf_counter()
    for label, gc_build, pt_build, size, mode, gc_repeat, pt_repeat in cases:
        steps, gc_before, gc_after, gc_s = measure_graphc(gc_build, size, gc_repeat)
        pt_before, pt_after, pt_s, maxed = measure_pytensor(pt_build, steps, pt_repeat, mode)
        any_maxed = any_maxed or maxed
        mark = " *" if maxed else ""
        print(
            f"{label:<42}{size:>6}{gc_before:>10}{pt_before:>10}{gc_after:>10}{pt_after:>10}"
            f"{gc_s:>10.4f}{pt_s:>10.4f}{pt_s / gc_s:>9.1f}{pt_repeat:>9}{mark}",
            flush=True,
        )
    print(f"# total benchmark time {time.perf_counter() - total_start:.0f} s")
    print("# n: chain target size (graphc nodes), or logistic-map iterations. Nodes are op nodes (graphc) and")
    print("#    Apply nodes (PyTensor) before and after rewriting; both graphs have the same loop steps and ops.")
    print("# Sizes reduced from the optimizer_scaling.py set: with PyTensor's default rewrites the logistic-map")
    print("#    gradient grows exponentially in rewrite time with n (polynomial expansion), so default-mode rows")
    print("#    stop at n = 7; n = 112 and 250 use the defaults minus local_greedy_distributor; n = 1250 is not run.")
    print("#    PyTensor runs chain 10000 and the n = 7 and 250 rows once (pt reps).")
    if any_maxed:
        print("# *: PyTensor logged 'EquilibriumGraphRewriter max'ed out' (a rewriter hit its use limit) in this row.")


if __name__ == "__main__":
    main()
