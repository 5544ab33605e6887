"""Per-call overhead: ``y = x * 2 + 1`` on 4 float64 elements, where the call is all there is.

Rows: numpy itself (the expression, no function), graphc on both backends, PyTensor (NUMBA and
C), JAX jit, torch.compile is left out (its guard overhead is another matter). The ratio column
divides by numpy's expression.

Run: PYTHONPATH=. python benchmarks/call_overhead.py [--quick] [--markdown FILE]
"""

from __future__ import annotations

import numpy as np
from common import Report, Table, graphc_backends, graphc_label, parse_args, parser, pytensor_c_note, run_case

X = np.arange(4.0)


def numpy_impl():
    return lambda: X * 2 + 1


def graphc_impl(backend):
    def make():
        import graphc as gc

        x = gc.vector("x", shape=(4,))
        f = gc.function([x], x * 2 + 1, backend=backend)
        return lambda: f(X)

    return make


def pytensor_impl(mode_name):
    def make():
        import pytensor
        import pytensor.tensor as pt
        from pytensor.compile.mode import Mode

        x = pt.dvector("x")
        mode = "NUMBA" if mode_name == "NUMBA" else Mode(linker="cvm", optimizer="fast_run")
        f = pytensor.function([x], x * 2 + 1, mode=mode)
        return lambda: f(X)

    return make


def jax_impl():
    import jax

    jax.config.update("jax_enable_x64", True)
    f = jax.jit(lambda x: x * 2 + 1)
    xj = jax.numpy.asarray(X)
    return lambda: f(xj).block_until_ready()


def main(argv=None) -> None:
    args = parse_args(parser(__doc__), argv)
    report = Report("per-call overhead of a tiny compiled function", args)
    table = Table("y = x * 2 + 1, 4 float64 elements")
    run_case(table, "numpy", numpy_impl, args=args, note="the expression, no function")
    for backend in graphc_backends():
        run_case(table, graphc_label(backend), graphc_impl(backend), args=args)
    run_case(table, "PyTensor NUMBA", pytensor_impl("NUMBA"), args=args)
    run_case(table, "PyTensor C", pytensor_impl("C"), args=args, note=pytensor_c_note())
    run_case(table, "JAX jit", jax_impl, args=args)
    report.show(table)
    report.finish(["median: seconds per call, after a warm-up call; numpy: the same expression written inline"])


if __name__ == "__main__":
    main()
