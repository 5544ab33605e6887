"""W1: the lecture function f = x1*x2 + exp(x1*x2) - sin(x2) and its gradient, elementwise on float64 vectors.

Run: PYTHONPATH=. python benchmarks/w1_lecture.py [--quick] [--threads N] [--markdown [FILE]] [--skip NAMES]

Two tasks on vectors of 10^6 and 10^7 elements (--quick: 10^5, and no torch.compile row):

* f: the elementwise value f(x1, x2), one output vector;
* gradient: df/dx1 = x2 + x2*exp(x1*x2) and df/dx2 = x1 + x1*exp(x1*x2) - cos(x2), two output vectors. graphc,
  JAX, PyTensor and PyTorch get them by differentiating sum(f) (gc.grad, jax.grad, pytensor.grad, autograd /
  torch.func.grad); numpy and numexpr evaluate the formulas above by hand.

Implementations: numpy hand-written (the baseline of the "vs numpy" column), numexpr, JAX jit, PyTensor with the
Numba backend (mode="NUMBA") and with the C backend (the "cvm" linker, i.e. Theano's FAST_RUN: in PyTensor 3
mode="FAST_RUN" is the Numba backend), PyTorch eager and torch.compile, and graphc (gc.function with
backend="numba" when graphc has it, else the numpy reference backend, labelled so). Each returns fresh arrays.

Effective bandwidth is bytes per call over time: f reads 2 arrays and writes 1 (24 bytes per element), the
gradient reads 2 and writes 2 (32 bytes). "% STREAM" compares it with the best STREAM triad bandwidth measured at
the start of the same run (stream.py: numpy with out= and a numba prange triad). Every implementation's result is
compared with numpy's before timing (check: max abs error / max |numpy|).
"""

from __future__ import annotations

import functools

import numpy as np
from common import (
    FIRST_CALL,
    Report,
    Skip,
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
from stream import triad

TASKS = {"f": 3, "gradient": 4}  # arrays moved per call (8 bytes per element each)
TOL = 1e-10


# Each implementation: setup(task) -> (prepare(x1, x2) -> args, fn(*args) -> output(s)). Set-up builds and
# compiles what it can; prepare converts the numpy inputs once (JAX: device arrays; PyTorch: zero-copy tensors).


def same(x1, x2):
    return x1, x2


def numpy_impl(task: str):
    def f(x1, x2):
        p = x1 * x2
        return p + np.exp(p) - np.sin(x2)

    def gradient(x1, x2):
        e = np.exp(x1 * x2)
        return x2 + x2 * e, x1 + x1 * e - np.cos(x2)

    return same, {"f": f, "gradient": gradient}[task]


def numexpr_impl(task: str):
    import numexpr as ne

    def f(x1, x2):
        return ne.evaluate("x1*x2 + exp(x1*x2) - sin(x2)")

    def gradient(x1, x2):
        return ne.evaluate("x2 + x2*exp(x1*x2)"), ne.evaluate("x1 + x1*exp(x1*x2) - cos(x2)")

    return same, {"f": f, "gradient": gradient}[task]


def jax_impl(task: str):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def f(x1, x2):
        return x1 * x2 + jnp.exp(x1 * x2) - jnp.sin(x2)

    if task == "f":
        compiled = jax.jit(f)
    else:
        compiled = jax.jit(jax.grad(lambda a, b: jnp.sum(f(a, b)), argnums=(0, 1)))

    def prepare(x1, x2):
        return jax.device_put(x1), jax.device_put(x2)

    return prepare, lambda a, b: jax.block_until_ready(compiled(a, b))


def pytensor_impl(task: str, backend: str):
    import pytensor
    import pytensor.tensor as pt
    from pytensor.compile.mode import Mode, get_mode

    if backend == "C":
        if not pytensor.config.cxx:
            raise Skip("no C++ compiler: pytensor.config.cxx is empty, so the C backend cannot run")
        mode = Mode(linker="cvm", optimizer="fast_run")
    else:
        mode = get_mode("NUMBA")
    x1, x2 = pt.dvector("x1"), pt.dvector("x2")
    y = x1 * x2 + pt.exp(x1 * x2) - pt.sin(x2)
    outputs = y if task == "f" else pytensor.grad(pt.sum(y), [x1, x2])
    return same, pytensor.function([x1, x2], outputs, mode=mode)


def torch_impl(task: str, compiled: bool, device: str = "cpu"):
    import torch

    set_torch_threads(torch)

    def f(a, b):
        p = a * b
        return p + torch.exp(p) - torch.sin(b)

    def prepare(x1, x2):
        return torch.from_numpy(x1).to(device), torch.from_numpy(x2).to(device)

    if compiled:
        if task == "f":
            return prepare, torch.compile(f)
        return prepare, torch.compile(torch.func.grad(lambda a, b: f(a, b).sum(), argnums=(0, 1)))
    if task == "f":
        return prepare, f

    def gradient(a, b):
        a, b = a.detach().requires_grad_(), b.detach().requires_grad_()
        return torch.autograd.grad(f(a, b).sum(), (a, b))

    return prepare, gradient


def graphc_impl(task: str, backend: str, **options):
    import graphc as gc

    x1, x2 = gc.vector("x1"), gc.vector("x2")
    y = x1 * x2 + gc.exp(x1 * x2) - gc.sin(x2)
    outputs = y if task == "f" else gc.grad(gc.sum(y), [x1, x2])
    return same, gc.function([x1, x2], outputs, backend=backend, **options)


def implementations():
    """(name, setup(task), note, note of the gradient rows) for every row, graphc's backends last."""
    rows = [
        ("numpy", numpy_impl, "", "hand-written gradient"),
        ("numexpr", numexpr_impl, "", "hand-written gradient"),
        ("JAX jit", jax_impl, "", "jax.grad"),
        ("PyTensor NUMBA", lambda task: pytensor_impl(task, "NUMBA"), 'mode="NUMBA"', 'mode="NUMBA", pytensor.grad'),
        ("PyTensor C", lambda task: pytensor_impl(task, "C"), "cvm linker", "cvm linker, pytensor.grad"),
        ("PyTorch eager", lambda task: torch_impl(task, False), "", "autograd"),
        ("torch.compile", lambda task: torch_impl(task, True), "", "torch.func.grad"),
    ]
    for b in graphc_backends():
        setup = functools.partial(graphc_impl, backend=b)
        rows.append((graphc_label(b), setup, f'backend="{b}"', f'backend="{b}", gc.grad'))
    return rows


def bandwidth_cells(nbytes: int, stream_best: float):
    def cells(timing):
        gbs = nbytes / timing.median / 1e9
        return {"GB/s": f"{gbs:.1f}", "% STREAM": f"{100 * gbs / stream_best:.0f}%"}

    return cells


def case_maker(functions: dict, name: str, setup, task: str, x1, x2):
    """``make`` for ``run_case``: ``setup(task)`` runs once per implementation and task (kept in
    ``functions``, so the second size reuses what the first compiled), then the inputs are prepared."""

    def make():
        if (name, task) not in functions:
            functions[name, task] = setup(task)
        prepare, fn = functions[name, task]
        args = prepare(x1, x2)
        return lambda: fn(*args)

    return make


def main(argv=None) -> None:
    args = parse_args(parser(__doc__), argv)
    sizes = [10**5] if args.quick else [10**6, 10**7]
    report = Report("W1: lecture function f = x1*x2 + exp(x1*x2) - sin(x2) and its gradient, float64", args)

    stream_table, stream_best = triad(10**6 if args.quick else 2 * 10**7, args.quick, args.budget)
    stream_table.notes.append(f"best: {stream_best:.1f} GB/s; the '% STREAM' columns below divide by it")
    report.show(stream_table)

    functions = {}  # (name, task) -> fn, set up once and reused for every size
    rng = np.random.default_rng(2024)
    for n in sizes:
        x1, x2 = rng.uniform(-2.0, 2.0, n), rng.uniform(-2.0, 2.0, n)
        for task, arrays in TASKS.items():
            want = numpy_impl(task)[1](x1, x2)
            nbytes = arrays * 8 * n
            table = Table(
                f"W1 {task}, n = {n:.0e} float64 ({nbytes / 1e6:.0f} MB moved per call)",
                extra_columns=["check", "GB/s", "% STREAM", FIRST_CALL],
            )
            for name, setup, f_note, gradient_note in implementations():
                make = case_maker(functions, name, setup, task, x1, x2)
                run_case(
                    table,
                    name,
                    make,
                    args=args,
                    check=lambda out, _, want=want: check_text(rel_err(to_numpy(out), want), TOL),
                    extra=bandwidth_cells(nbytes, stream_best),
                    note=f_note if task == "f" else gradient_note,
                )
            report.show(table)
    report.finish(
        [
            "vs numpy: median time / numpy's median time in the same table (below 1 is faster than numpy); "
            "spread: (slowest - fastest repeat) / median.",
            "runs: repeats x calls per repeat, after the first (compiling) call.",
            "check: max abs error / max |numpy result|.",
            f"GB/s counts the arrays the task must move (f: 3, gradient: 4, of 8 bytes per element); "
            f"STREAM best {stream_best:.1f} GB/s (triad, STREAM byte count).",
            f"{FIRST_CALL}: building and compiling the function (at the first size; at later sizes only what a new "
            "shape costs) plus one call.",
        ]
    )


if __name__ == "__main__":
    main()
