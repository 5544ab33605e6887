"""How long the optimizer takes as graphs grow: chains of 100 to 10000 nodes, and gradient graphs.

Prints one table: nodes before and after, seconds for the "full" pipeline, and microseconds per
node (flat means linear time). Run: python benchmarks/optimizer_scaling.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

import graphc as gc


def chain_step(k: int, v, w, tanh, sin):
    """Step k of the chain, in any library with @, *, + and these functions (also PyTensor's)."""
    if k % 10 == 0:
        return v @ w  # breaks fusion groups, as layers do
    if k % 7 == 0:
        return v * 1.0 + 0.0  # identities the simplifier removes
    return tanh(v) * 0.5 + sin(v)


def chain_with_steps(n: int):
    """A chain of about n nodes mixing elementwise ops, rewritable identities and matmuls; also
    returns its number of steps, so other libraries can build the same computation."""
    x = gc.matrix("x", shape=(None, 8))
    w = gc.shared(np.eye(8), "w")
    v = x
    k = 0
    while len(gc.toposort(v)) < n:
        k += 1
        v = chain_step(k, v, w, gc.tanh, gc.sin)
    return [gc.sum(v)], k


def chain(n: int):
    return chain_with_steps(n)[0]


def logistic_gradient(n: int):
    """The gradient of the logistic map iterated n times (8n - 1 nodes): a gradient graph."""
    x = gc.scalar("l0")
    v = x
    for _ in range(n):
        v = 4.0 * v * (1.0 - v)
    return [v, gc.grad(v, x)]


def measure(build, size, repeat):
    times = []
    for _ in range(repeat):
        outputs = build(size)
        before = len(gc.toposort(outputs))
        start = time.perf_counter()
        optimized = gc.optimize(outputs, passes="full")
        times.append(time.perf_counter() - start)
    return before, len(gc.toposort(optimized)), statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    machine = platform.processor() or platform.machine()
    print(f"# graphc optimizer scaling ({machine}, python {platform.python_version()})")
    print(f"{'graph':<26}{'nodes':>8}{'after':>8}{'seconds':>10}{'us/node':>10}")
    cases = [("chain", chain, n) for n in (100, 300, 1000, 3000, 10000)]
    cases += [("logistic-map gradient", logistic_gradient, n) for n in (112, 1250)]
    for name, build, size in cases:
        before, after, seconds = measure(build, size, args.repeat)
        print(f"{name:<26}{before:>8}{after:>8}{seconds:>10.3f}{1e6 * seconds / before:>10.1f}")


if __name__ == "__main__":
    main()
