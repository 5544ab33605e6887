"""W3: 100 steps of full-batch gradient descent for logistic regression on a 100000 x 100 float64 X.

Run: PYTHONPATH=. python benchmarks/w3_logistic.py [--quick] [--threads N] [--markdown [FILE]]
     [--skip NAMES] [--steps N]

Seeded data: X standard normal, labels y in {0, 1} drawn from a logistic model. Each step, in every
implementation: p = sigmoid(X @ w + b); g = p - y; w -= lr * X.T @ g / n; b -= lr * mean(g) (lr 0.5, w and b
start at zero). The time is for all steps together (--quick: n = 10000), with w and b reset to zero first.

* numpy: the step written by hand (the baseline of the "vs numpy" column);
* graphc: w and b shared, one gc.function([X, y], [], updates={w: ..., b: ...}) called once per step (backend
  "numba" when graphc has it, else the numpy backend);
* JAX: the step under jax.jit, called once per step (as graphc is), waiting for the result after the last; a
  second row writes X.T @ g as g @ X, which XLA's CPU backend computes much faster;
* PyTensor: the same step with shared variables and updates, mode="NUMBA" and the C backend (cvm linker);
* PyTorch eager: the step on tensors sharing X's memory.

X and y are arguments of every call (none of the implementations keeps a private copy of X between calls,
except JAX, whose device arrays are made once). The check column compares w and b after the first run of all
steps with numpy's (max abs error / max |numpy|). GB/s counts X read twice per step (X @ w and X.T @ g).
"""

from __future__ import annotations

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
    pytensor_c_note,
    rel_err,
    run_case,
    set_torch_threads,
)

LR = 0.5
TOL = 1e-8


def _stepper(step, w, b, X, y, steps: int):
    """A run() that resets the shared parameters (graphc or PyTensor) and takes ``steps`` steps."""
    d = X.shape[1]

    def run():
        w.set_value(np.zeros(d))
        b.set_value(np.float64(0.0))
        for _ in range(steps):
            step(X, y)
        return w.get_value(borrow=True), b.get_value(borrow=True)

    return run


def make_data(n: int, d: int = 100, seed: int = 3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w_true = rng.standard_normal(d) / np.sqrt(d)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w_true + 0.5)))).astype(np.float64)
    return X, y


# Each implementation: setup(X, y, steps) -> run() that resets w and b to zero, runs all steps and returns (w, b).


def numpy_impl(X, y, steps):
    n, d = X.shape

    def run():
        w, b = np.zeros(d), 0.0
        for _ in range(steps):
            g = 1 / (1 + np.exp(-(X @ w + b))) - y
            w -= (LR / n) * (X.T @ g)
            b -= LR * g.mean()
        return w, b

    return run


def graphc_impl(X, y, steps, backend):
    import graphc as gc

    n, d = X.shape
    Xv, yv = gc.matrix("X", shape=(n, d)), gc.vector("y", shape=(n,))
    w, b = gc.shared(np.zeros(d), name="w"), gc.shared(np.float64(0.0), name="b")
    g = gc.sigmoid(Xv @ w + b) - yv
    step = gc.function([Xv, yv], [], updates={w: w - (LR / n) * (Xv.T @ g), b: b - LR * gc.mean(g)}, backend=backend)

    return _stepper(step, w, b, X, y, steps)


def jax_impl(X, y, steps, vector_first=False):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    n, d = X.shape

    @jax.jit
    def step(w, b, X, y):
        g = jax.nn.sigmoid(X @ w + b) - y
        grad_w = g @ X if vector_first else X.T @ g
        return w - (LR / n) * grad_w, b - LR * jnp.mean(g)

    Xj, yj = jax.device_put(X), jax.device_put(y)

    def run():
        w, b = jnp.zeros(d), jnp.float64(0.0)
        for _ in range(steps):
            w, b = step(w, b, Xj, yj)
        return jax.block_until_ready((w, b))

    return run


def pytensor_impl(X, y, steps, backend):
    import pytensor
    import pytensor.tensor as pt
    from pytensor.compile.mode import Mode, get_mode

    if backend == "C":
        if not pytensor.config.cxx:
            raise Skip("no C++ compiler: pytensor.config.cxx is empty, so the C backend cannot run")
        mode = Mode(linker="cvm", optimizer="fast_run")
    else:
        mode = get_mode("NUMBA")
    n, d = X.shape
    Xv, yv = pt.dmatrix("X"), pt.dvector("y")
    w, b = pytensor.shared(np.zeros(d), name="w"), pytensor.shared(np.float64(0.0), name="b")
    g = pt.sigmoid(Xv @ w + b) - yv
    updates = [(w, w - (LR / n) * (Xv.T @ g)), (b, b - LR * pt.mean(g))]
    step = pytensor.function([Xv, yv], [], updates=updates, mode=mode)

    return _stepper(step, w, b, X, y, steps)


def torch_impl(X, y, steps):
    import torch

    set_torch_threads(torch)
    n, d = X.shape
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def run():
        w, b = torch.zeros(d, dtype=torch.float64), torch.zeros((), dtype=torch.float64)
        for _ in range(steps):
            g = torch.sigmoid(Xt @ w + b) - yt
            w -= (LR / n) * (Xt.T @ g)
            b -= LR * g.mean()
        return w, b

    return run


def implementations():
    rows = [
        ("numpy", numpy_impl, ""),
        ("JAX jit", jax_impl, "jit step, called per step"),
        ("JAX jit, g @ X", lambda X, y, s: jax_impl(X, y, s, True), "X.T @ g written as g @ X"),
        ("PyTensor NUMBA", lambda X, y, s: pytensor_impl(X, y, s, "NUMBA"), 'mode="NUMBA"'),
        ("PyTensor C", lambda X, y, s: pytensor_impl(X, y, s, "C"), pytensor_c_note()),
        ("PyTorch eager", torch_impl, ""),
    ]
    rows += [
        (graphc_label(b), lambda X, y, s, b=b: graphc_impl(X, y, s, b), f'backend="{b}"') for b in graphc_backends()
    ]
    return rows


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--steps", type=int, default=100, help="gradient steps per timed run (default 100)")
    args = parse_args(p, argv)
    n, steps = (10_000 if args.quick else 100_000), args.steps
    report = Report(f"W3: logistic regression, {steps} full-batch gradient steps, float64", args)
    X, y = make_data(n)
    w_want, b_want = numpy_impl(X, y, steps)()
    nbytes = steps * 2 * X.nbytes
    table = Table(
        f"W3 {steps} steps, X {n} x {X.shape[1]} float64 ({X.nbytes / 1e6:.0f} MB, read twice per step)",
        extra_columns=["check", "ms/step", "GB/s", FIRST_CALL],
    )

    def check(out, _):
        w, b = out
        return check_text(max(rel_err(np.asarray(w), w_want), abs(float(b) - b_want) / abs(b_want)), TOL)

    def cells(timing):
        return {"ms/step": f"{1e3 * timing.median / steps:.2f}", "GB/s": f"{nbytes / timing.median / 1e9:.1f}"}

    for name, setup, note in implementations():
        run_case(table, name, lambda setup=setup: setup(X, y, steps), args=args, check=check, extra=cells, note=note)
    report.show(table)
    report.finish(
        [
            f"median: seconds for all {steps} steps (w and b reset to zero first); ms/step = median / {steps}.",
            "vs numpy: median time / numpy's median time (below 1 is faster than numpy); "
            "spread: (slowest - fastest repeat) / median.",
            f"check: w and b after {steps} steps against numpy's, max abs error / max |numpy|.",
            "runs: timed runs of all steps, after the first (compiling) run.",
            f"{FIRST_CALL}: building and compiling the step plus one run of all steps.",
        ]
    )


if __name__ == "__main__":
    main()
