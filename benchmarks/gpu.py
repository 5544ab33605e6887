"""GPU: graphc's CUDA backend (backend="cuda") on W1 and W2, against numpy, graphc on the CPU, PyTorch and JAX.

Run: cd benchmarks && PYTHONPATH=.. python gpu.py [--quick] [--simulator] [--markdown [FILE]] [--skip NAMES]

Why: docs/cuda.md describes a backend that was written and tested on numba-cuda's simulator only. This script
measures it on a real GPU, on the two workloads the CPU benchmarks already define, reusing their code
(w1_lecture.py, w2_mlp_step.py): the same inputs, the same graphs, the same checks.

* W1, the lecture function f = x1*x2 + exp(x1*x2) - sin(x2) and its gradient (gc.grad of sum(f)), float64
  vectors of 10^6 and 10^7 elements (--quick: 10^5). Rows: numpy by hand (the baseline of "vs numpy"), graphc
  backend="numba" (CPU), graphc cuda called with numpy arrays (every call uploads x1 and x2 and downloads the
  results: transfers included), graphc cuda on device arrays with device_outputs=True (the kernels alone:
  numba.cuda.synchronize() before the clock stops), PyTorch eager on CUDA tensors (torch.cuda.synchronize()),
  JAX jit on the GPU (block_until_ready). GB/s counts the arrays the task must move (f 3, gradient 4).
* W2, one training step (forward, backward, Adam) of the 784-256-256-10 ReLU MLP, float32, batch 128. Rows:
  numpy by hand, graphc numba, graphc cuda with x and t uploaded once as device arrays and with numpy x and t
  (parameters and Adam state stay on the device in both; the loss comes back each step), PyTorch CUDA eager
  (torch.optim.Adam), JAX jit on the GPU. Check: the losses of the first two steps against numpy's.

Rows whose library is missing, or that has no GPU (torch without CUDA, JAX on its CPU backend), say so instead of
a time. JAX is kept from reserving most of the GPU's memory (XLA_PYTHON_CLIENT_PREALLOCATE=false unless set).

--simulator runs the graphc and numpy rows on numba-cuda's simulator (NUMBA_ENABLE_CUDASIM=1), with tiny sizes
(W1 n = 2000; W2 32-16-16-10, batch 8) and a tiny budget: it proves the script works without a GPU; its times
mean nothing.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import sys

import w1_lecture as w1
import w2_mlp_step as w2
from common import FIRST_CALL, Report, Skip, Table, check_text, parse_args, parser, rel_err, run_case, to_numpy

SIM_N, SIM_SIZES, SIM_BATCH = 2000, (32, 16, 16, 10), 8  # --simulator: ~7000 GPU threads per second


def load_cuda(simulator: bool):
    """numba.cuda (the simulator with --simulator: set before its first import) and the GPU's name."""
    if simulator:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
        sys.setswitchinterval(1e-4)  # the simulator's threads meet at every syncthreads (docs/cuda.md)
    from numba import cuda

    if simulator:
        return cuda, "numba-cuda's simulator (NUMBA_ENABLE_CUDASIM=1)"
    if not cuda.is_available():
        return cuda, "no GPU (numba.cuda.is_available() is False)"
    name = cuda.get_current_device().name
    return cuda, name.decode() if isinstance(name, bytes) else str(name)


def need_gpu(cuda) -> None:
    if not cuda.is_available():
        raise Skip("no GPU (numba.cuda.is_available() is False)")


def torch_cuda():
    import torch

    if not torch.cuda.is_available():
        raise Skip(f"no GPU for PyTorch (torch {torch.__version__}, CUDA {torch.version.cuda})")
    return torch


def jax_gpu() -> None:
    import jax

    if jax.default_backend() != "gpu":
        raise Skip(f"no GPU for JAX (default backend: {jax.default_backend()})")


def host(out):
    """Results as numpy arrays: numba device arrays are copied down."""
    if isinstance(out, (list, tuple)):
        return [host(o) for o in out]
    return out.copy_to_host() if hasattr(out, "copy_to_host") else to_numpy(out)


def synced(fn, sync):
    """fn, waiting for the device before returning, so that the clock stops when the work is done."""

    def call(*args):
        out = fn(*args)
        sync()
        return out

    return call


# ---------------------------------------------------------------------------------------------------------------
# W1


def w1_implementations(cuda):
    """(name, setup(task) -> (prepare, fn), note of f rows, note of gradient rows, a GPU peer)."""

    def cuda_device(task):
        need_gpu(cuda)
        _, fn = w1.graphc_impl(task, "cuda", device_outputs=True)
        return (lambda x1, x2: (cuda.to_device(x1), cuda.to_device(x2))), synced(fn, cuda.synchronize)

    def cuda_host(task):
        need_gpu(cuda)
        return w1.graphc_impl(task, "cuda")

    def torch_setup(task):
        torch = torch_cuda()
        prepare, fn = w1.torch_impl(task, False, device="cuda")
        return prepare, synced(fn, torch.cuda.synchronize)

    def jax_setup(task):
        jax_gpu()
        return w1.jax_impl(task)

    dev = "device arrays in, device_outputs=True, synchronized: kernels only"
    return [
        ("numpy", w1.numpy_impl, "CPU", "CPU, hand-written gradient", False),
        ("graphc numba (CPU)", functools.partial(w1.graphc_impl, backend="numba"), "", "gc.grad", False),
        ("graphc cuda, numpy in/out", cuda_host, "with transfers", "with transfers, gc.grad", False),
        ("graphc cuda, device arrays", cuda_device, dev, dev + ", gc.grad", False),
        ("PyTorch CUDA eager", torch_setup, "synchronized", "autograd, synchronized", True),
        ("JAX jit GPU", jax_setup, "block_until_ready", "jax.grad, block_until_ready", True),
    ]


def run_w1(report, args, cuda, sizes) -> None:
    import numpy as np

    functions = {}  # (name, task) -> (prepare, fn), set up once and reused for every size
    rng = np.random.default_rng(2024)
    for n in sizes:
        x1, x2 = rng.uniform(-2.0, 2.0, n), rng.uniform(-2.0, 2.0, n)
        for task, arrays in w1.TASKS.items():
            want = w1.numpy_impl(task)[1](x1, x2)
            nbytes = arrays * 8 * n
            table = Table(f"W1 {task}, n = {n:.0e} float64", extra_columns=["check", "GB/s", FIRST_CALL])
            for name, setup, f_note, gradient_note, peer in w1_implementations(cuda):
                make = w1.case_maker(functions, name, setup, task, x1, x2)
                run_case(
                    table,
                    name,
                    None if peer and args.simulator else make,
                    args=args,
                    check=lambda out, _, want=want: check_text(rel_err(host(out), want), w1.TOL),
                    extra=lambda timing, nbytes=nbytes: {"GB/s": f"{nbytes / timing.median / 1e9:.1f}"},
                    note=f_note if task == "f" else gradient_note,
                    skip_note="left out by --simulator",
                )
            report.show(table)


# ---------------------------------------------------------------------------------------------------------------
# W2


def w2_implementations(cuda, params, x, labels, targets, batch):
    """(name, make() -> step returning the loss, note, a GPU peer)."""

    def numpy_make():
        step = w2.NumpyStep(params)
        return lambda: float(step(x, targets))

    def graphc_make(backend, device_inputs=False):
        if backend == "cuda":
            need_gpu(cuda)
        fn = w2.graphc_function(params, backend, batch)
        inputs = (cuda.to_device(x), cuda.to_device(targets)) if device_inputs else (x, targets)
        return lambda: float(fn(*inputs))

    def torch_make():
        torch_cuda()
        return w2.torch_impl(params, x, labels, False, device="cuda")

    def jax_make():
        jax_gpu()
        return w2.jax_impl(params, x, targets)

    return [
        ("numpy", numpy_make, "CPU", False),
        ("graphc numba (CPU)", lambda: graphc_make("numba"), "", False),
        ("graphc cuda, device x, t", lambda: graphc_make("cuda", True), "x, t uploaded once; loss copied back", False),
        ("graphc cuda, numpy x, t", lambda: graphc_make("cuda"), "x, t uploaded every step", False),
        ("PyTorch CUDA eager", torch_make, "torch.optim.Adam, loss.item()", True),
        ("JAX jit GPU", jax_make, "donate_argnums, float(loss)", True),
    ]


def run_w2(report, args, cuda, sizes, batch) -> list[float]:
    params = w2.init_params(sizes=sizes)
    x, labels, targets = w2.make_batch(batch=batch, sizes=sizes)
    ref = w2.NumpyStep(params)
    want = [float(ref(x, targets)), float(ref(x, targets))]  # the losses of the first two steps

    def check(first, fn):
        second = fn()
        err = max(abs(first - want[0]) / abs(want[0]), abs(second - want[1]) / abs(want[1]))
        return check_text(err, w2.TOL)

    shape = "-".join(map(str, sizes))
    table = Table(f"W2 training step, MLP {shape}, batch {batch}", extra_columns=["check", "steps/s", FIRST_CALL])
    for name, make, note, peer in w2_implementations(cuda, params, x, labels, targets, batch):
        run_case(
            table,
            name,
            None if peer and args.simulator else make,
            args=args,
            check=check,
            extra=lambda timing: {"steps/s": f"{1 / timing.median:.0f}"},
            note=note,
            skip_note="left out by --simulator",
        )
    report.show(table)
    return want


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--simulator", action="store_true", help="numba-cuda's simulator, tiny sizes: a smoke test")
    args = parse_args(p, argv)
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # before JAX is imported
    cuda, gpu = load_cuda(args.simulator)
    if args.simulator:
        args.budget = args.budget or 0.01
        n_sizes, sizes, batch = [SIM_N], SIM_SIZES, SIM_BATCH
    else:
        n_sizes, sizes, batch = [10**5] if args.quick else [10**6, 10**7], w2.SIZES, w2.BATCH
    report = Report(f'GPU: graphc backend="cuda" on W1 and W2; GPU: {gpu}', args)
    extra = [f"numba-cuda {importlib.metadata.version('numba-cuda')}; XLA_PYTHON_CLIENT_PREALLOCATE=false unless set"]
    if args.simulator:
        extra.append(
            "SIMULATOR: every GPU thread is a Python thread, sizes are shrunk and the budget is tiny. "
            "The times below MEAN NOTHING: this run only shows that the script works."
        )
    for line in extra:
        print(f"# {line}", flush=True)
    report.header += extra

    run_w1(report, args, cuda, n_sizes)
    want = run_w2(report, args, cuda, sizes, batch)
    report.finish(
        [
            *(["SIMULATOR run: the times mean nothing."] if args.simulator else []),
            "vs numpy: median time / numpy's median time in the same table (below 1 is faster than numpy); "
            "spread: (slowest - fastest repeat) / median; runs: repeats x calls per repeat, after the first call.",
            "W1 check: max abs error / max |numpy result|; GB/s: f moves 3 arrays, the gradient 4, of 8 bytes an "
            "element. 'numpy in/out' rows include the host-device copies; 'device arrays' rows are kernels only.",
            f"W2 check: losses of the first two steps vs numpy's ({want[0]:.6f}, {want[1]:.6f}), max relative "
            "error; the timed steps keep training from there.",
            f"{FIRST_CALL}: building and compiling the function (CUDA kernels compile at their first launch) plus "
            "one call; at later W1 sizes only what a new shape costs.",
        ]
    )


if __name__ == "__main__":
    main()
