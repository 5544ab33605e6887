"""W2: one training step (forward, backward, Adam) of a 784-256-256-10 ReLU MLP, softmax cross-entropy, float32.

Run: PYTHONPATH=. python benchmarks/w2_mlp_step.py [--quick] [--threads N] [--markdown [FILE]] [--skip NAMES]
     [--profile CALLS]

Batch 128 (--quick: the same step, fewer repeats, no torch.compile row). Every implementation starts from the
same He-initialised parameters (seeded numpy rng) and the same batch (seeded inputs, integer labels given as
one-hot float32 targets), and runs the same step: loss = mean over the batch of the softmax cross-entropy,
gradients of the loss with respect to the six parameters, then Adam (lr 1e-3, betas 0.9 and 0.999, eps 1e-8,
bias-corrected: p -= lr/(1 - b1^t) * m / (sqrt(v/(1 - b2^t)) + eps), as torch.optim.Adam computes it).

* numpy: forward, backward and Adam written by hand (the baseline of the "vs numpy" column);
* graphc: parameters and Adam moments as gc.shared float32 arrays, beta1^t and beta2^t as shared scalars, one
  gc.function([x, t], loss, updates=...) with backend="numba" when graphc has it (else the numpy backend);
* JAX: the whole step under jax.jit, parameters and moments donated;
* PyTensor: shared variables and updates, one pytensor.function per backend (NUMBA, and C via the cvm linker);
* PyTorch: torch.optim.Adam, eager, and torch.compile (the loss function compiled, backward through
  AOTAutograd, and optimizer.step compiled).

Each row runs in a fresh process of this script (common.run_cases): in one process, a row paid for the thread
pools and allocator state the rows before it left, and numpy, timed first, did not.

The check column: each implementation runs two steps from the initial state before timing; the losses they return
(the second one is computed with the parameters after one Adam step) are compared with numpy's (max relative
error, must be below 1e-4). The timed calls then keep training from there.
"""

from __future__ import annotations

import numpy as np
from common import (
    FIRST_CALL,
    Report,
    Skip,
    Table,
    check_text,
    graphc_backend,
    graphc_backends,
    graphc_label,
    parse_args,
    parser,
    pytensor_c_note,
    run_cases,
    set_torch_threads,
)

SIZES = (784, 256, 256, 10)
BATCH = 128
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8
TOL = 1e-4


def init_params(seed: int = 0, sizes=SIZES) -> list[np.ndarray]:
    """[W1, b1, W2, b2, W3, b3], float32, He-initialised weights (normal, std sqrt(2/fan_in)), zero biases."""
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append((rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32))
        params.append(np.zeros(fan_out, dtype=np.float32))
    return params


def make_batch(seed: int = 1, batch: int = BATCH, sizes=SIZES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x float32 (batch, 784), labels int64 (batch,), one-hot targets float32 (batch, 10)); batch 128 by default."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    labels = rng.integers(0, sizes[-1], batch)
    return x, labels, np.eye(sizes[-1], dtype=np.float32)[labels]


# ---------------------------------------------------------------------------------------------------------------
# numpy, by hand


class NumpyStep:
    """Forward, backward and Adam in numpy; call it with (x, targets) for one step; returns the loss."""

    def __init__(self, params):
        self.params = [p.copy() for p in params]
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def __call__(self, x, targets):
        W1, b1, W2, b2, W3, b3 = self.params
        n = x.shape[0]
        h1 = np.maximum(x @ W1 + b1, 0)
        h2 = np.maximum(h1 @ W2 + b2, 0)
        z = h2 @ W3 + b3
        shifted = z - z.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        loss = -np.sum(targets * (shifted - np.log(s))) / n
        dz = (e / s - targets) / n
        dh2 = (dz @ W3.T) * (h2 > 0)
        dh1 = (dh2 @ W2.T) * (h1 > 0)
        grads = [x.T @ dh1, dh1.sum(axis=0), h1.T @ dh2, dh2.sum(axis=0), h2.T @ dz, dz.sum(axis=0)]
        self.t += 1
        step_size = LR / (1 - BETA1**self.t)
        bc2 = 1 - BETA2**self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= BETA1
            m += (1 - BETA1) * g
            v *= BETA2
            v += (1 - BETA2) * (g * g)
            p -= step_size * m / (np.sqrt(v / bc2) + EPS)
        return loss


# ---------------------------------------------------------------------------------------------------------------
# graphc


def graphc_step_graph(params, batch: int = BATCH):
    """The step as graphc graphs: (inputs [x, t], loss, updates). Shared variables are made from ``params``."""
    import graphc as gc

    x = gc.matrix("x", dtype="float32", shape=(batch, params[0].shape[0]))
    t = gc.matrix("t", dtype="float32", shape=(batch, params[-1].shape[0]))
    names = ["W1", "b1", "W2", "b2", "W3", "b3"]
    ps = [gc.shared(p, name=name) for p, name in zip(params, names)]
    W1, b1, W2, b2, W3, b3 = ps
    h1 = gc.relu(x @ W1 + b1)
    h2 = gc.relu(h1 @ W2 + b2)
    loss = gc.mean(gc.softmax_cross_entropy(h2 @ W3 + b3, t))
    grads = gc.grad(loss, ps)
    b1t = gc.shared(np.float32(1.0), name="beta1^t")
    b2t = gc.shared(np.float32(1.0), name="beta2^t")
    b1t_new, b2t_new = b1t * BETA1, b2t * BETA2
    updates = {b1t: b1t_new, b2t: b2t_new}
    step_size = LR / (1.0 - b1t_new)
    bc2 = 1.0 - b2t_new
    for p, g, name in zip(ps, grads, names):
        m = gc.shared(np.zeros_like(p.get_value(borrow=True)), name=f"m_{name}")
        v = gc.shared(np.zeros_like(p.get_value(borrow=True)), name=f"v_{name}")
        m_new = BETA1 * m + (1.0 - BETA1) * g
        v_new = BETA2 * v + (1.0 - BETA2) * (g * g)
        updates[m], updates[v] = m_new, v_new
        updates[p] = p - step_size * m_new / (gc.sqrt(v_new / bc2) + EPS)
    return [x, t], loss, updates


def graphc_function(params, backend=None, batch: int = BATCH):
    import graphc as gc

    inputs, loss, updates = graphc_step_graph(params, batch)
    return gc.function(inputs, loss, updates=updates, backend=backend or graphc_backend())


# ---------------------------------------------------------------------------------------------------------------
# JAX


def jax_step_function():
    """The jitted step (params, m, v, t, x, targets) -> (params, m, v, t, loss); params, m, v donated."""
    import jax
    import jax.numpy as jnp

    def loss_fn(params, x, targets):
        W1, b1, W2, b2, W3, b3 = params
        h1 = jax.nn.relu(x @ W1 + b1)
        h2 = jax.nn.relu(h1 @ W2 + b2)
        logp = jax.nn.log_softmax(h2 @ W3 + b3, axis=1)
        return -jnp.mean(jnp.sum(targets * logp, axis=1))

    def step(params, m, v, t, x, targets):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, targets)
        t = t + 1
        step_size = LR / (1 - BETA1**t)
        bc2 = 1 - BETA2**t
        m = [BETA1 * mi + (1 - BETA1) * g for mi, g in zip(m, grads)]
        v = [BETA2 * vi + (1 - BETA2) * g * g for vi, g in zip(v, grads)]
        params = [p - step_size * mi / (jnp.sqrt(vi / bc2) + EPS) for p, mi, vi in zip(params, m, v)]
        return params, m, v, t, loss

    return jax.jit(step, donate_argnums=(0, 1, 2))


def jax_initial_state(params):
    import jax
    import jax.numpy as jnp

    ps = [jax.device_put(p) for p in params]
    return ps, [jnp.zeros_like(p) for p in ps], [jnp.zeros_like(p) for p in ps], jnp.float32(0)


def jax_impl(params, x, targets):
    import jax

    step = jax_step_function()
    state = list(jax_initial_state(params))
    xj, tj = jax.device_put(x), jax.device_put(targets)

    def call():
        *state[:4], loss = step(*state, xj, tj)
        return float(loss)  # waits for the result

    return call


# ---------------------------------------------------------------------------------------------------------------
# PyTensor


def pytensor_mode(backend: str):
    import pytensor
    from pytensor.compile.mode import Mode, get_mode

    if backend == "C":
        if not pytensor.config.cxx:
            raise Skip("no C++ compiler: pytensor.config.cxx is empty, so the C backend cannot run")
        return Mode(linker="cvm", optimizer="fast_run")
    return get_mode("NUMBA")


def pytensor_step_graph(params):
    """The step as PyTensor graphs: (inputs [x, t], loss, updates), float32 throughout."""
    import pytensor
    import pytensor.tensor as pt
    from pytensor.tensor.special import log_softmax

    f32 = np.float32
    x = pt.tensor("x", dtype="float32", shape=(BATCH, SIZES[0]))
    t = pt.tensor("t", dtype="float32", shape=(BATCH, SIZES[-1]))
    names = ["W1", "b1", "W2", "b2", "W3", "b3"]
    ps = [pytensor.shared(p, name=name) for p, name in zip(params, names)]
    W1, b1, W2, b2, W3, b3 = ps
    h1 = pt.maximum(x @ W1 + b1, f32(0))
    h2 = pt.maximum(h1 @ W2 + b2, f32(0))
    loss = -pt.mean(pt.sum(t * log_softmax(h2 @ W3 + b3, axis=1), axis=1))
    grads = pytensor.grad(loss, ps)
    b1t, b2t = pytensor.shared(f32(1.0), name="beta1^t"), pytensor.shared(f32(1.0), name="beta2^t")
    b1t_new, b2t_new = b1t * f32(BETA1), b2t * f32(BETA2)
    updates = [(b1t, b1t_new), (b2t, b2t_new)]
    step_size = f32(LR) / (f32(1) - b1t_new)
    bc2 = f32(1) - b2t_new
    for p, g, value in zip(ps, grads, params):
        m, v = pytensor.shared(np.zeros_like(value)), pytensor.shared(np.zeros_like(value))
        m_new = f32(BETA1) * m + f32(1 - BETA1) * g
        v_new = f32(BETA2) * v + f32(1 - BETA2) * (g * g)
        updates += [(m, m_new), (v, v_new), (p, p - step_size * m_new / (pt.sqrt(v_new / bc2) + f32(EPS)))]
    return [x, t], loss, updates


def pytensor_impl(params, x, targets, backend):
    import pytensor

    mode = pytensor_mode(backend)
    inputs, loss, updates = pytensor_step_graph(params)
    fn = pytensor.function(inputs, loss, updates=updates, mode=mode)
    return lambda: float(fn(x, targets))


# ---------------------------------------------------------------------------------------------------------------
# PyTorch


def torch_impl(params, x, labels, compiled: bool, device: str = "cpu"):
    import torch

    set_torch_threads(torch)
    import torch.nn.functional as F

    ps = [torch.tensor(p, requires_grad=True, device=device) for p in params]
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(labels).to(device)
    opt = torch.optim.Adam(ps, lr=LR, betas=(BETA1, BETA2), eps=EPS)

    def loss_fn(x, y):
        W1, b1, W2, b2, W3, b3 = ps
        h1 = torch.relu(x @ W1 + b1)
        h2 = torch.relu(h1 @ W2 + b2)
        return F.cross_entropy(h2 @ W3 + b3, y)

    opt_step = opt.step
    if compiled:
        loss_fn = torch.compile(loss_fn)
        opt_step = torch.compile(opt.step)

    def call():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(xt, yt)
        loss.backward()
        opt_step()
        return loss.item()

    return call


# ---------------------------------------------------------------------------------------------------------------


def implementations(params, x, labels, targets):
    """(name, make, note): make() returns the zero-argument step callable (returning the loss as a float)."""

    def numpy_make():
        step = NumpyStep(params)
        return lambda: float(step(x, targets))

    def graphc_make(backend):
        fn = graphc_function(params, backend)
        return lambda: float(fn(x, targets))

    def products_make():
        """The step's eight matrix products alone, on arrays of the step's shapes: what any implementation
        calling numpy's BLAS spends at least (the step needs no gradient of x, so no ninth product)."""
        rng = np.random.default_rng(2)
        W1, _, W2, _, W3, _ = (p.copy() for p in params)
        h1, h2, dh1, dh2 = (rng.standard_normal((x.shape[0], W1.shape[1])).astype(np.float32) for _ in range(4))
        dz = rng.standard_normal((x.shape[0], W3.shape[1])).astype(np.float32)

        def products():
            x @ W1, h1 @ W2, h2 @ W3  # forward
            dz @ W3.T, dh2 @ W2.T  # backward through the layers
            x.T @ dh1, h1.T @ dh2, h2.T @ dz  # weight gradients

        return products

    return [
        ("numpy", numpy_make, ""),
        ("numpy, the 8 products only", products_make, "the floor for code calling numpy's BLAS"),
        ("JAX jit", lambda: jax_impl(params, x, targets), "donate_argnums"),
        ("PyTensor NUMBA", lambda: pytensor_impl(params, x, targets, "NUMBA"), 'mode="NUMBA"'),
        ("PyTensor C", lambda: pytensor_impl(params, x, targets, "C"), pytensor_c_note()),
        ("PyTorch eager", lambda: torch_impl(params, x, labels, False), "torch.optim.Adam"),
        ("torch.compile", lambda: torch_impl(params, x, labels, True), "loss fn and opt.step compiled"),
    ] + [(graphc_label(b), lambda b=b: graphc_make(b), f'backend="{b}"') for b in graphc_backends()]


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="CALLS",
        help="only print where graphc's step spends its time (f.profile over CALLS calls), no table",
    )
    args = parse_args(p, argv)
    report = Report("W2: MLP 784-256-256-10 training step (forward, backward, Adam), float32, batch 128", args)
    params = init_params()
    x, labels, targets = make_batch()
    if args.profile:
        print(graphc_function(params).profile(x, targets, repeat=args.profile, warmup=20))
        return
    ref = NumpyStep(params)
    want = [float(ref(x, targets)), float(ref(x, targets))]  # the losses of the first two steps

    def check(first, fn):
        if first is None:  # the products-only row computes no loss
            return "-"
        second = fn()
        err = max(abs(first - want[0]) / abs(want[0]), abs(second - want[1]) / abs(want[1]))
        return check_text(err, TOL)

    table = Table("W2 training step, batch 128", extra_columns=["check", "steps/s", FIRST_CALL])
    run_cases(
        table,
        implementations(params, x, labels, targets),
        args=args,
        check=check,
        extra=lambda timing: {"steps/s": f"{1 / timing.median:.0f}"},
    )
    if args.row is not None:
        return
    report.show(table)
    report.finish(
        [
            f"losses of the first two steps (numpy): {want[0]:.6f}, {want[1]:.6f}",
            "vs numpy: median time / numpy's median time (below 1 is faster than numpy); "
            "spread: (slowest - fastest repeat) / median.",
            "runs: repeats x calls per repeat, after the two checked steps (the first compiles); each row in a "
            "fresh process (common.run_cases).",
        ]
    )


if __name__ == "__main__":
    main()
