"""The CUDA backend against the numpy reference backend, on numba-cuda's simulator.

Every case of tests/test_ops.py runs again here with ``backend="cuda"`` (its results compared
with the numpy backend's, then checked by the case's own independent reference), followed by
generated graphs, reductions over every axis, matrix products, softmax, convolution and pooling
with their gradients, device arguments and results, shared variables that stay on the device, an
MLP trained on both backends, the generated code, and the errors. The last test compiles every
kernel the others generated to PTX, without a GPU (tests/cuda_ptx.py): the simulator runs kernels
as Python and checks no types.

Sizes are small: the simulator runs each GPU thread as a Python thread. On a machine with a GPU,
``NUMBA_ENABLE_CUDASIM=0 pytest tests/test_cuda_backend.py`` runs the same tests on it.
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")  # before numba.cuda is first imported

import functools
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")

import test_ops as ops_table  # noqa: E402  (the case table of every op)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from test_numba_backend import graphs  # noqa: E402  (generated elementwise + reduction graphs)

import graphc as gc  # noqa: E402
from graphc.backends.cuda import runtime  # noqa: E402

TOL = {"float32": 1e-5, "float64": 1e-12}
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def _quick_thread_switches():
    """The simulator's threads wait for each other at every ``syncthreads``; with Python's
    default 5 ms switch interval these tests take five times as long as with 0.1 ms."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(before)


class _PtxWorker:
    """tests/cuda_ptx.py --stream in a process of its own (no simulator there), fed each kernel as
    soon as a test has generated it: it compiles on the second core while the simulator keeps
    this process busy, and the last test reads its verdict."""

    def __init__(self):
        script = str(ROOT / "tests" / "cuda_ptx.py")
        env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
        pipe = subprocess.PIPE
        self.errors = tempfile.TemporaryFile("w+")  # noqa: SIM115  (a pipe read only at the end could fill)
        self.process = subprocess.Popen(
            [sys.executable, script, "--stream"], stdin=pipe, stdout=pipe, stderr=self.errors, text=True, env=env
        )
        self.sent: set = set()
        self.verdict: tuple[dict, str] | None = None

    def feed(self) -> None:
        for (source, signature), name in list(runtime.GENERATED.items()):
            if (source, signature) not in self.sent:
                kernel = {"name": name, "source": source, "signature": signature}
                self.process.stdin.write(json.dumps(kernel) + "\n")
                self.sent.add((source, signature))
        self.process.stdin.flush()

    def finish(self) -> tuple[dict, str]:
        if self.verdict is None:
            self.feed()
            out, _ = self.process.communicate(timeout=900)
            self.errors.seek(0)
            errors = self.errors.read()
            lines = out.strip().splitlines()
            self.verdict = (json.loads(lines[-1]) if lines else {"failures": ["no summary"]}), errors
        return self.verdict

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()
        self.errors.close()


@pytest.fixture(scope="module")
def ptx_worker():
    worker = _PtxWorker()
    yield worker
    if worker.verdict is None and worker.sent:  # the PTX test ran elsewhere (pytest -n) or not at all
        summary, errors = worker.finish()
        assert not summary.get("failures"), summary.get("failures") or errors[-3000:]
    worker.stop()


@pytest.fixture(autouse=True)
def _kernels_to_ptx(ptx_worker):
    yield
    if ptx_worker.process.poll() is None:
        ptx_worker.feed()


def rt() -> runtime.Runtime:
    return runtime.load()


def same(actual, expected) -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype}, numpy backend {expected.dtype}"
    assert actual.shape == expected.shape, f"shape {actual.shape}, numpy backend {expected.shape}"
    tol = TOL.get(expected.dtype.name)
    if tol is None:
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol, equal_nan=True)


def both(inputs, outputs, *values, updates=None, **options):
    """The results of the CUDA and numpy backends on the same call."""
    cuda = gc.function(inputs, outputs, backend="cuda", updates=updates, **options)
    numpy = gc.function(inputs, outputs, backend="numpy", updates=updates)
    return cuda(*values), numpy(*values)


def compare(inputs, outputs, *values):
    got, expected = both(inputs, outputs, *values)
    for a, b in zip(got if isinstance(got, list) else [got], expected if isinstance(expected, list) else [expected]):
        same(a, b)


# ----- every case of tests/test_ops.py ----------------------------------------------------------
def evaluate_on_cuda(outputs, *pairs):
    """test_ops.evaluate on the CUDA backend: each result has its variable's static type and the
    numpy backend's value; the CUDA results go on to the case's own checks."""
    inputs, values = [v for v, _ in pairs], [value for _, value in pairs]
    single = isinstance(outputs, gc.Variable)
    expected = gc.function(inputs, outputs, backend="numpy")(*values)
    got = gc.function(inputs, outputs, backend="cuda")(*values)
    for var, g, e in zip(
        [outputs] if single else outputs, [got] if single else got, [expected] if single else expected
    ):
        assert isinstance(g, np.ndarray)
        assert g.dtype.name == var.dtype and var.type.accepts_shape(g.shape)
        same(g, e)
    return got


@pytest.fixture
def ops_on_cuda(monkeypatch):
    monkeypatch.setattr(ops_table, "evaluate", evaluate_on_cuda)
    monkeypatch.setattr(sys.modules["graphc.function"], "DEFAULT_BACKEND", "cuda")


def _on_cuda(test):
    @functools.wraps(test)
    def run(*args, **kwargs):
        return test(*args, **kwargs)

    run.pytestmark = [*getattr(test, "pytestmark", []), pytest.mark.usefixtures("ops_on_cuda")]
    return run


#: Not rerun: the hypothesis versions draw hundreds of shapes (the generated graphs below cover
#: them on this backend), and the coverage guard compiles nothing.
NOT_RERUN = {
    "test_elementwise_broadcasting_hypothesis",
    "test_reduction_hypothesis",
    "test_getitem_hypothesis",
    "test_every_op_is_covered",
}
for _name, _test in vars(ops_table).copy().items():
    if _name.startswith("test_") and callable(_test) and _name not in NOT_RERUN:
        assert not hasattr(_test, "hypothesis"), f"{_name} uses hypothesis: list it in NOT_RERUN"
        globals()[f"test_op_{_name[5:]}"] = _on_cuda(_test)


# ----- generated graphs --------------------------------------------------------------------------
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(graphs())
def test_generated_graphs_match_the_numpy_backend(case):
    inputs, outputs, values = case
    compare(inputs, outputs, *values)


# ----- reductions ---------------------------------------------------------------------------------
KINDS = ["sum", "mean", "max", "min", "prod", "logsumexp"]


@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 20, 3)], ids=["one-block", "several-blocks"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("axes", [None, 0, 1, 2, (0, 1), (0, 2), (1, 2)], ids=str)
def test_reductions_over_every_axis_combination(axes, dtype, shape):
    """Each kind over every axis set, with and without keepdims; the second shape's reductions
    span several blocks (a final pass combines them) on the simulator's launch sizes."""
    x = gc.tensor("x", shape=(None, shape[1], None), dtype=dtype)
    value = np.random.default_rng(1).normal(size=shape).astype(dtype)
    outputs = []
    for kind in KINDS:
        reduce = getattr(gc, kind)
        outputs += [reduce(gc.exp(x) - 1, axis=axes), reduce(x * 0.75, axis=axes, keepdims=True)]
    compare([x], outputs, value)


def test_simulator_gives_a_blocks_threads_one_shared_array(monkeypatch):
    """The simulator looks a shared array up by source line and creates it when missing, with no
    lock; a thread switch between the two gave threads of one block different arrays (a min over
    a NaN came back as a number, once, in CI). The runtime makes the allocation atomic: here
    every allocation is slowed down so that without the lock the threads would race."""
    if not rt().simulator:
        pytest.skip("a simulator race: a GPU has none")
    import threading
    import time

    import numba as nb
    from numba.cuda.simulator.kernelapi import FakeCUDAShared

    empty = np.empty
    monkeypatch.setattr(np, "empty", lambda *a, **k: (time.sleep(0.01), empty(*a, **k))[1])
    shared, got, start = FakeCUDAShared(0), [], threading.Barrier(8)

    def thread():
        start.wait()
        got.append(shared.array(4, nb.float64))

    threads = [threading.Thread(target=thread) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and all(a is got[0] for a in got)
    assert got[0].dtype == np.float64 and got[0].shape == (4,)


@pytest.mark.parametrize("where", [0, 17, 39])
def test_reductions_of_special_values_across_blocks(where):
    x = gc.vector("x")
    outputs = [gc.max(x), gc.min(x), gc.sum(x), gc.logsumexp(x), gc.mean(x), gc.prod(x)]
    base = np.linspace(-1, 1, 40)
    for special in (np.nan, np.inf, -np.inf):
        value = base.copy()
        value[where] = special
        compare([x], outputs, value)
    compare([x], outputs, np.full(40, -np.inf))
    compare([x], [gc.logsumexp(x), gc.max(x)], np.linspace(-1000, -990, 40))  # a shift far from 0


def test_a_group_with_many_reductions_is_split_across_kernels():
    """Each result of a reduction kernel takes a shared array; 21 of them need two kernels."""
    from graphc.ops.fused import Fused
    from graphc.ops.reduction import LOGSUMEXP, MAX, SUM, Reduce

    x = gc.matrix("x")
    results = tuple((1, Reduce(kind, (1,), False, 2)) for kind in [SUM, MAX, LOGSUMEXP] * 7)
    outputs = list(gc.apply(Fused((x.type,), ((gc.exp, (0,)),), results), [x]))
    value = np.random.default_rng(8).normal(size=(3, 40))
    got = gc.function([x], outputs, backend="cuda", optimize="none")(value)
    for a, b in zip(got, gc.function([x], outputs, backend="numpy", optimize="none")(value)):
        same(a, b)
    assert len(gc.function([x], outputs, backend="cuda", optimize="none").kernels) == 6


def test_integer_and_bool_kernels():
    i = gc.vector("i", dtype="int64")
    b = gc.vector("b", dtype="bool")
    outputs = [i * 3 - 1, gc.sum(i), gc.max(i), gc.sum(b), b & (i > 2), gc.where(b, i, -i), i / 2, gc.exp(i)]
    outputs += [gc.prod(i + 1), gc.min(i), gc.argmax(i), gc.max(b)]
    compare([i, b], outputs, np.arange(20) - 7, np.arange(20) % 3 == 0)


# ----- broadcasting -------------------------------------------------------------------------------
def test_broadcast_inputs_are_read_in_place():
    """Broadcast operands, and the broadcast seed of a mean's gradient, are indexed at 0 on their
    broadcast axes: no kernel copies them into full arrays."""
    x = gc.tensor("x", shape=(None, None, 4))
    y = gc.tensor("y", shape=(3, 1))
    z = gc.scalar("z")
    loss = gc.mean(gc.tanh(x * y) + z)
    outputs = [x * y - gc.sum(y), loss, *gc.grad(loss, [x, y])]
    rng = np.random.default_rng(2)
    values = rng.normal(size=(5, 3, 4)), rng.normal(size=(3, 1)), rng.normal()
    compare([x, y, z], outputs, *values)
    f = gc.function([x, y, z], outputs, backend="cuda")
    assert "broadcast_to" not in f.source() and not [k for k in f.kernels if k.name == "copy"]
    with pytest.raises(gc.EvaluationError):
        f(np.ones((5, 2, 4)), *values[1:])


# ----- matrix products ----------------------------------------------------------------------------
MATMULS = {
    "matrix": (lambda a, b: a @ b, (9, 7), (7, 6)),
    "a.T @ b": (lambda a, b: a.T @ b, (7, 9), (7, 6)),
    "a @ b.T": (lambda a, b: a @ b.T, (9, 7), (6, 7)),
    "a.T @ b.T": (lambda a, b: a.T @ b.T, (7, 9), (6, 7)),
    "batched": (lambda a, b: a @ b, (2, 5, 7), (2, 7, 3)),
    "batched transposed": (lambda a, b: gc.transpose(a, (0, 2, 1)) @ b, (2, 7, 5), (7, 3)),
    "broadcast batch": (lambda a, b: a @ b, (2, 1, 3, 4), (5, 4, 2)),
    "vector @ matrix": (lambda a, b: a @ b, (7,), (7, 5)),
    "matrix @ vector": (lambda a, b: a @ b, (6, 7), (7,)),
    "vector @ vector": (lambda a, b: a @ b, (7,), (7,)),
}


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
@pytest.mark.parametrize("case", MATMULS)
def test_matrix_products(case, dtype):
    build, sa, sb = MATMULS[case]
    rng = np.random.default_rng(3)
    av, bv = (rng.normal(size=s) * 3 for s in (sa, sb))
    av, bv = av.astype(dtype), bv.astype(dtype)
    a = gc.tensor("a", shape=tuple(None for _ in sa), dtype=dtype)
    b = gc.tensor("b", shape=tuple(None for _ in sb), dtype=dtype)
    compare([a, b], build(a, b), av, bv)
    f = gc.function([a, b], build(a, b), backend="cuda")
    assert [k.name for k in f.kernels] == ["matmul"]  # transposes are read in place, never copied


# ----- softmax and cross-entropy ------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_kernels(axis, dtype):
    z = gc.tensor("z", shape=(None, None, None), dtype=dtype)
    t = gc.tensor("t", shape=(None, None, None), dtype=dtype)
    rng = np.random.default_rng(4)
    zv = (rng.normal(size=(3, 6, 2)) * 10).astype(dtype)
    tv = np.moveaxis(rng.dirichlet(np.ones(zv.shape[axis]), size=[d for i, d in enumerate(zv.shape) if i != axis % 3]),
                     -1, axis).astype(dtype)  # fmt: skip
    loss = gc.sum(gc.softmax_cross_entropy(z, t, axis))
    outputs = [gc.softmax(z, axis), gc.log_softmax(z, axis), gc.softmax_cross_entropy(z, t, axis), *gc.grad(loss, [z])]
    compare([z, t], outputs, zv, tv)


# ----- convolution and pooling --------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_convolution_network_and_its_gradient(dtype):
    """conv2d (im2col + the tiled product), pooling, and their gradients (patches, col2im)."""
    rng = np.random.default_rng(5)
    x = gc.tensor("x", shape=(None, 2, 7, 7), dtype=dtype)
    w = gc.tensor("w", shape=(3, 2, 3, 3), dtype=dtype)
    h = gc.relu(gc.conv2d(x, w, stride=1, padding=1))
    pooled = gc.max_pool2d(h, 2) + gc.avg_pool2d(h, 3, stride=2)[:, :, :3, :3]
    loss = gc.sum(gc.tanh(pooled))
    outputs = [gc.conv2d(x, w, stride=2, padding=(0, 1)), pooled, loss, *gc.grad(loss, [x, w])]
    values = rng.normal(size=(2, 2, 7, 7)).astype(dtype), rng.normal(size=(3, 2, 3, 3)).astype(dtype)
    compare([x, w], outputs, *values)
    names = {k.name for k in gc.function([x, w], outputs, backend="cuda").kernels}
    assert {"im2col", "matmul", "max_pool2d", "avg_pool2d", "patches", "col2im"} <= names
    assert not [n for n in names if n.startswith("host:")]


# ----- device arrays ------------------------------------------------------------------------------
def _counting(monkeypatch, owner, name: str) -> list:
    calls: list = []
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_device_arguments_are_taken_as_they_are(monkeypatch):
    x = gc.vector("x")
    f = gc.function([x], gc.exp(x) * 2, backend="cuda")
    value = np.linspace(-1, 1, 5)
    device = rt().to_device(value)
    uploads = _counting(monkeypatch, rt().cuda, "to_device")
    same(f(device), np.exp(value) * 2)
    assert uploads == []  # not copied
    same(f(value), np.exp(value) * 2)
    assert len(uploads) == 1  # a host argument is uploaded
    with pytest.raises(gc.DTypeError, match="device array of float32"):
        f(rt().to_device(value.astype(np.float32)))
    with pytest.raises(gc.ShapeError):
        f(rt().to_device(np.ones((2, 2))))
    strided = rt().to_device(np.linspace(-1, 1, 10))[::2]  # not C-contiguous: through the host once
    same(f(strided), np.exp(np.linspace(-1, 1, 10)[::2]) * 2)


def test_device_outputs_stay_on_the_device():
    x = gc.vector("x")
    outputs = [gc.exp(x), x, gc.sum(x), gc.reshape(x, (5, 1))]
    f = gc.function([x], outputs, backend="cuda", device_outputs=True)
    value = np.linspace(-1, 1, 5)
    device = rt().to_device(value)
    results = f(device)
    assert all(rt().is_device(r) for r in results)
    for r, expected in zip(results, [np.exp(value), value, np.sum(value), value.reshape(5, 1)]):
        same(rt().to_host(r), expected)
    assert results[1] is not device  # results never alias the arguments
    with pytest.raises(gc.GraphError, match="device backend"):
        gc.function([x], x * 2, backend="numpy", device_outputs=True)


def test_shared_variables_stay_on_the_device(monkeypatch):
    rng = np.random.default_rng(6)
    w = gc.shared(rng.normal(size=3), name="w")
    c = gc.shared(np.array([0.5, 1.0, 2.0]), name="c")  # read, never updated
    x = gc.vector("x", shape=(3,))
    loss = gc.sum(w * x * c)
    step = gc.function([x], loss, updates={w: w - 0.1 * gc.grad(loss, w)}, backend="cuda")
    xv = rng.normal(size=3)
    expected = w.get_value()
    step(xv)  # the first call uploads w and c
    expected = expected - 0.1 * xv * c.get_value()
    kept, before = c.device, w.device
    assert kept is not None and before is not None
    uploads = _counting(monkeypatch, rt().cuda, "to_device")
    downloads = _counting(monkeypatch, type(before), "copy_to_host")
    loss_value = step(xv)
    expected = expected - 0.1 * xv * c.get_value()
    assert len(uploads) == 1 and len(downloads) == 1  # x up, the loss down: parameters never move
    assert c.device is kept and w.device is not before  # updated on the device
    same(loss_value, np.sum((expected + 0.1 * xv * c.get_value()) * xv * c.get_value()))
    same(w.get_value(), expected)  # read back on demand
    assert len(downloads) == 2
    same(gc.function([], w * 2, backend="numpy")(), expected * 2)  # other backends see it too
    w.set_value(np.zeros(3))
    assert w.device is None
    step(xv)
    same(w.get_value(), -0.1 * xv * c.get_value())


# ----- training -----------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_mlp_training_matches_the_numpy_backend_step_by_step(optimizer):
    """An 8-16-4 MLP with softmax cross-entropy: the parameters after every step agree."""
    rng = np.random.default_rng(7)
    start = [rng.normal(size=(8, 16)) * 0.5, np.zeros(16), rng.normal(size=(16, 4)) * 0.5, np.zeros(4)]
    xs = rng.normal(size=(8, 8)).astype(np.float32)
    ts = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 8)]

    def build(backend):
        params = [gc.shared(p.astype(np.float32), name=f"p{i}") for i, p in enumerate(start)]
        x = gc.matrix("x", shape=(None, 8), dtype="float32")
        t = gc.matrix("t", shape=(None, 4), dtype="float32")
        h = gc.relu(x @ params[0] + params[1])
        loss = gc.mean(gc.softmax_cross_entropy(h @ params[2] + params[3], t))
        opt = gc.optim.SGD(params, lr=0.5, momentum=0.9) if optimizer == "SGD" else gc.optim.Adam(params, lr=0.05)
        return gc.function([x, t], loss, updates=opt.updates(loss), backend=backend), params

    (cuda, on_device), (numpy, on_host) = build("cuda"), build("numpy")
    losses = []
    for _ in range(3):
        losses.append(cuda(xs, ts))
        same(losses[-1], numpy(xs, ts))
        for a, b in zip(on_device, on_host):
            same(a.get_value(), b.get_value())
    assert losses[-1] < losses[0]


# ----- the generated code -------------------------------------------------------------------------
def test_source_and_kernels_name_the_graph_nodes():
    x = gc.matrix("x")
    i = gc.vector("i", dtype="int64")
    outputs = [gc.sum(gc.exp(x) * 2, axis=0), gc.take(x, i) + 1]
    f = gc.function([x, i], outputs, backend="cuda")
    source = f.source()
    assert "def driver(values):" in source and "def kernel(" in source and "cuda.grid(1)" in source
    for kernel in f.kernels:
        assert kernel.nodes and all(n in f.graph.nodes for n in kernel.nodes)
    (host,) = [k for k in f.kernels if k.host]
    assert host.name == "host:take" and "on the host" in host.source
    assert "# take [kernel" in source


def test_profile_times_every_step_and_waits_for_each(monkeypatch):
    x = gc.matrix("x", shape=(8, 8))
    W = gc.shared(np.eye(8), name="W")
    f = gc.function([x], gc.sum(gc.exp(x @ W) * 2), updates={W: W * 0.5}, backend="cuda")
    waits = []
    real = f._run.rt.cuda.synchronize
    monkeypatch.setattr(f._run.rt.cuda, "synchronize", lambda: waits.append(1) or real())
    profile = f.profile(np.ones((8, 8)), repeat=2, warmup=0)
    assert len(profile.rows) == len(f._run.profile_steps) >= 3
    assert all(row.calls == 2 for row in profile.rows)
    assert len(waits) == 2 * len(profile.rows)  # one wait per step per timed call
    assert any("matmul" in row.step.ops for row in profile.rows)
    np.testing.assert_allclose(W.get_value(), np.eye(8) * 0.5**4)  # the calls were real


def test_float32_kernels_stay_float32():
    """Scalar constants are kernel arguments of the kernel's dtype: the code has no float64."""
    x = gc.vector("x", dtype="float32")
    f = gc.function([x], gc.exp(x * 0.5) + 1.25, backend="cuda")
    (kernel,) = f.kernels
    assert "nb.float64" not in kernel.signature and "np.float64" not in kernel.source
    g = gc.function([x], gc.exp(x * 0.25) + 3.5, backend="cuda")
    assert g.kernels[0].source == kernel.source  # one kernel for both sets of constants
    same(g(np.ones(3, np.float32)), np.exp(np.full(3, 0.25, np.float32)) + np.float32(3.5))


def test_random_draws_match_the_numpy_backend():
    """Draws run on the host with the numpy backend's generators: the same numbers."""
    x = gc.matrix("x")
    out = gc.random.normal((x.shape[0], 3), seed=11) * x[:, :3]
    values = np.ones((4, 5))
    for _ in range(2):
        compare([x], out, values)


# ----- errors --------------------------------------------------------------------------------------
def test_shape_mismatch_gets_the_numpy_backends_error():
    x, y = gc.vector("x"), gc.vector("y")
    z = x + y  # this line is named in the error
    f = gc.function([x, y], gc.exp(z), backend="cuda")
    with pytest.raises(gc.EvaluationError) as info:
        f(np.ones(3), np.ones(4))
    assert "add" in str(info.value) and "test_cuda_backend.py" in str(info.value)


def test_empty_max_is_an_error_not_garbage():
    x = gc.vector("x")
    f = gc.function([x], gc.max(gc.exp(x)), backend="cuda")
    with pytest.raises(gc.EvaluationError, match="max"):
        f(np.zeros(0))


def _run(script: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


NO_GPU = """
    import graphc as gc
    x = gc.vector("x")
    try:
        gc.function([x], x * 2, backend="cuda")
    except gc.GraphError as err:
        print(err)
    else:
        print("compiled")
"""


def test_without_a_gpu_the_error_says_what_to_do():
    done = _run(NO_GPU, NUMBA_ENABLE_CUDASIM="0")
    assert done.returncode == 0, done.stderr
    if done.stdout.strip() == "compiled":
        pytest.skip("this machine has a CUDA GPU")
    message = done.stdout
    assert "no CUDA GPU" in message and 'pip install "graphc[cuda]"' in message
    assert "NUMBA_ENABLE_CUDASIM=1" in message and "simulator" in message


def test_without_numba_cuda_the_error_says_what_to_install():
    done = _run("import sys\nsys.modules['numba.cuda'] = None\n" + textwrap.dedent(NO_GPU))
    assert done.returncode == 0, done.stderr
    assert "numba-cuda is not installed" in done.stdout and 'pip install "graphc[cuda]"' in done.stdout


def test_numba_cuda_is_imported_only_for_cuda_functions():
    done = _run(
        """
        import sys
        import graphc as gc
        import graphc.backends.cuda
        x = gc.vector("x")
        gc.function([x], x * 2, backend="numpy")
        print("numba.cuda" in sys.modules)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# ----- every kernel compiles to PTX ---------------------------------------------------------------
def test_every_generated_kernel_compiles_to_ptx(ptx_worker):
    """Every kernel this session generated (all the tests above) compiles for a GPU: the
    simulator runs kernels as Python, without numba's type checks. A zoo of every kernel kind
    is generated first, so the check means something when this test runs alone."""
    x = gc.tensor("x", shape=(None, 2, 6, 6))
    w = gc.shared(np.ones((3, 2, 3, 3)), name="w")
    i = gc.vector("i", dtype="int64")
    m = gc.matrix("m", dtype="float32")
    h = gc.max_pool2d(gc.relu(gc.conv2d(x, w, padding=1)), 2)
    loss = gc.sum(gc.log_softmax(gc.reshape(h, (x.shape[0], -1)))) + gc.logsumexp(x) + gc.sum(gc.take(x, i))
    outputs = [loss, gc.argmax(x, axis=1), gc.concatenate([x, x[:, ::-1]], 1), gc.stack([x, x]), m.T @ m]
    outputs += [gc.transpose(x, (0, 2, 3, 1)), gc.softmax_cross_entropy(x, x), *gc.grad(loss, [x, w])]
    gc.function([x, i, m], outputs, backend="cuda")
    summary, errors = ptx_worker.finish()
    assert not summary.get("failures"), summary.get("failures") or errors[-3000:]
    assert summary["compiled"] + summary["cached"] == len(ptx_worker.sent) == len(runtime.GENERATED) > 20
