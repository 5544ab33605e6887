"""Reductions fused with their producers: a loss over a whole array, sums over rows, and the
mean and variance of a layer normalization.

Run: PYTHONPATH=. python benchmarks/reductions.py [--quick] [--threads N] [--markdown [FILE]] [--skip NAMES]

* whole: ``mean(x * x)`` over a (1024, 1024) float64 array, one number (a loss);
* rows: ``sum(x * x, axis=1)`` over (4096, 256) float64, one number per row;
* layer norm statistics: ``mean(x, -1)`` and ``mean((x - mean(x, -1))**2, -1)`` over (512, 1024)
  float32, accumulated in float64 by graphc (float32 by numpy, JAX and PyTorch).

Rows: numpy's expression, JAX jit, PyTorch eager, graphc. graphc's generated loops add each
element in order of the loop, in 8 interleaved lanes (docs/numba.md, "Reductions"), with no
fast-math reassociation; numpy's ``sum`` is pairwise.
"""

from __future__ import annotations

import numpy as np
from common import (
    FIRST_CALL,
    Report,
    Table,
    check_text,
    graphc_backends,
    graphc_label,
    parse_args,
    parser,
    rel_err,
    run_case,
    set_torch_threads,
    to_numpy,
)

TOL = {"float64": 1e-12, "float32": 1e-5}


def workloads(quick: bool):
    """(title, dtype, shape, numpy function, graphc builder, jax function, torch function)."""
    scale = 4 if quick else 1

    def whole_gc(gc, x):
        return gc.mean(x * x)

    def rows_gc(gc, x):
        return gc.sum(x * x, axis=1)

    def norm_gc(gc, x):
        mu = gc.mean(x, axis=-1, keepdims=True)
        return [gc.mean(x, axis=-1), gc.mean((x - mu) * (x - mu), axis=-1)]

    def norm_np(x):
        mu = x.mean(axis=-1, keepdims=True)
        return [mu[:, 0], ((x - mu) ** 2).mean(axis=-1)]

    return [
        ("whole: mean(x * x)", "float64", (1024 // scale, 1024), lambda x: np.mean(x * x), whole_gc,
         lambda jnp, x: jnp.mean(x * x), lambda torch, x: torch.mean(x * x)),
        ("rows: sum(x * x, axis=1)", "float64", (4096 // scale, 256), lambda x: np.sum(x * x, axis=1), rows_gc,
         lambda jnp, x: jnp.sum(x * x, axis=1), lambda torch, x: torch.sum(x * x, dim=1)),
        ("layer norm statistics", "float32", (512 // scale, 1024), norm_np, norm_gc,
         lambda jnp, x: [jnp.mean(x, -1), jnp.var(x, -1)],
         lambda torch, x: list(torch.var_mean(x, -1, correction=0))[::-1]),
    ]  # fmt: skip


def implementations(value, gc_build, np_fn, jax_fn, torch_fn):
    def numpy_make():
        return lambda: np_fn(value)

    def jax_make():
        import jax

        jax.config.update("jax_enable_x64", True)
        f = jax.jit(lambda x: jax_fn(jax.numpy, x))
        xj = jax.device_put(value)
        return lambda: jax.block_until_ready(f(xj))

    def torch_make():
        import torch

        set_torch_threads(torch)
        xt = torch.from_numpy(value)
        return lambda: torch_fn(torch, xt)

    def graphc_make(backend):
        import graphc as gc

        x = gc.tensor("x", shape=value.shape, dtype=value.dtype.name)
        f = gc.function([x], gc_build(gc, x), backend=backend)
        return lambda: f(value)

    rows = [("numpy", numpy_make), ("JAX jit", jax_make), ("PyTorch eager", torch_make)]
    return rows + [(graphc_label(b), lambda b=b: graphc_make(b)) for b in graphc_backends()]


def main(argv=None) -> None:
    args = parse_args(parser(__doc__), argv)
    report = Report("reductions fused with their producers", args)
    rng = np.random.default_rng(7)
    for title, dtype, shape, np_fn, gc_build, jax_fn, torch_fn in workloads(args.quick):
        value = rng.uniform(-1.0, 1.0, shape).astype(dtype)
        want = to_numpy(np_fn(value.astype(np.float64)))  # the reference, in float64
        table = Table(f"{title}, {shape[0]}x{shape[1]} {dtype}", extra_columns=["check", FIRST_CALL])
        for name, make in implementations(value, gc_build, np_fn, jax_fn, torch_fn):
            run_case(
                table,
                name,
                make,
                args=args,
                check=lambda out, _, want=want, tol=TOL[dtype]: check_text(rel_err(to_numpy(out), want), tol),
            )
        report.show(table)
    report.finish(
        [
            "vs numpy: median time / numpy's median time in the same table; check: max abs error / max |result| "
            "against numpy in float64.",
        ]
    )


if __name__ == "__main__":
    main()
