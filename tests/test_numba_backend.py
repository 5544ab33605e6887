"""The Numba backend against the numpy reference backend: generated graphs, the lecture, training,
errors, the generated code, and the persistent kernel cache (across processes, under concurrent
writers, with damaged entries).

Every op is also compiled on both backends, case by case, in tests/test_ops.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import lecture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.backends.numba import cache

TOL = {"float32": 1e-5, "float64": 1e-12}


def same(actual, expected, dtype: str | None = None) -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    tol = TOL.get(dtype or expected.dtype.name)
    if tol is None:
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol, equal_nan=True)


def both(inputs, outputs, *values, updates=None):
    """Results of the numba and numpy backends on the same call."""
    fast = gc.function(inputs, outputs, backend="numba", updates=updates)
    slow = gc.function(inputs, outputs, backend="numpy", updates=updates)
    return fast(*values), slow(*values)


# ----- generated graphs ------------------------------------------------------------------------
UNARY = [gc.exp, gc.sin, gc.cos, gc.tanh, gc.sigmoid, gc.relu, gc.softplus, gc.abs, gc.square, gc.neg, gc.gelu]
BINARY = [gc.add, gc.sub, gc.mul, gc.maximum, gc.minimum, gc.div]
SHAPES = [(3, 4), (1, 4), (4,), (3, 1), ()]


@st.composite
def graphs(draw):
    """A random expression over three inputs of broadcasting shapes, with reductions on top."""
    dtype = draw(st.sampled_from(["float32", "float64"]))
    shapes = [draw(st.sampled_from(SHAPES)) for _ in range(3)]
    known = draw(st.booleans())
    inputs = [
        gc.tensor(f"x{i}", shape=s if known else tuple(1 if d == 1 else None for d in s), dtype=dtype)
        for i, s in enumerate(shapes)
    ]
    pool = list(inputs)
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):
            pool.append(draw(st.sampled_from(UNARY))(draw(st.sampled_from(pool))))
        else:
            a, b = draw(st.sampled_from(pool)), draw(st.sampled_from(pool))
            pool.append(draw(st.sampled_from(BINARY))(a, b) * draw(st.sampled_from([1, 0.5, 2])))
    out = pool[-1]
    outputs = [out]
    if out.ndim:
        axis = draw(st.sampled_from([None, *range(out.ndim)]))
        keepdims = draw(st.booleans())
        kind = draw(st.sampled_from([gc.sum, gc.mean, gc.max, gc.min, gc.prod, gc.logsumexp]))
        outputs.append(kind(out, axis=axis, keepdims=keepdims))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = [rng.uniform(-2, 2, size=s).astype(dtype) for s in shapes]
    return inputs, outputs, values


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_generated_graphs_match_the_numpy_backend(case):
    inputs, outputs, values = case
    fast, slow = both(inputs, outputs, *values)
    for a, b in zip(fast, slow):
        same(a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("axes", [None, 0, 1, (0, 2), (1, 2), 2])
@pytest.mark.parametrize("kind", ["sum", "mean", "max", "min", "prod", "logsumexp"])
def test_reductions_over_axes(kind, axes, dtype):
    x = gc.tensor("x", shape=(None, 5, None), dtype=dtype)
    value = np.random.default_rng(1).normal(size=(4, 5, 6)).astype(dtype)
    reduce = getattr(gc, kind)
    outputs = [reduce(gc.exp(x) - 1, axis=axes), reduce(x * 2, axis=axes, keepdims=True)]
    fast, slow = both([x], outputs, value)
    for a, b in zip(fast, slow):
        same(a, b)


def test_reductions_of_special_values():
    x = gc.vector("x")
    outputs = [gc.max(x), gc.min(x), gc.sum(x), gc.logsumexp(x), gc.mean(x)]
    for value in ([1.0, np.nan, 3.0], [np.inf, 1.0], [-np.inf, -np.inf], [np.inf, -np.inf]):
        fast, slow = both([x], outputs, np.array(value))
        for a, b in zip(fast, slow):
            same(a, b)


@pytest.mark.parametrize("length", [1, 7, 8, 9, 15, 16, 17, 24, 61])
def test_laned_reductions_match_for_every_length_and_special_value(length):
    """Float reductions over the innermost axis run in 8 interleaved lanes and a tail: whatever
    lane (or the tail) a NaN or an infinity falls in, the result is the numpy backend's."""
    x = gc.vector("x")  # length unknown: the kernel decides at run time
    m = gc.matrix("m", shape=(3, None))
    outputs = [gc.sum(x), gc.mean(gc.exp(x)), gc.max(x), gc.min(x), gc.sum(m * 2.0, axis=1), gc.max(m, axis=1)]
    base = np.linspace(0.5, 2.0, length)
    for special in (None, np.nan, np.inf, -np.inf):
        for where in sorted({0, length // 2, length - 1}):
            value = base.copy()
            if special is not None:
                value[where] = special
            fast, slow = both([x, m], outputs, value, np.stack([value, -value, value[::-1]]))
            for a, b in zip(fast, slow):
                same(a, b)


def test_long_float_reductions_run_in_lanes_and_short_or_integer_ones_do_not():
    x, i = gc.vector("x"), gc.vector("i", dtype="int64")
    rows = gc.matrix("rows", shape=(None, 10))  # rows known to be short
    f = gc.function([x, i, rows], [gc.sum(x * x), gc.sum(i), gc.sum(rows, axis=1)], backend="numba")
    assert len(f.kernels) == 3
    laned = [kernel.source for kernel in f.kernels if "_7 +=" in kernel.source]
    assert len(laned) == 1 and "x0_7 * x0_7" in laned[0]  # the float sum of squares only
    same(f(np.arange(20.0), np.arange(20), np.ones((3, 10)))[0], np.sum(np.arange(20.0) ** 2))


DIVISORS = [3.0, -7.5, 0.1, 1e-30, 1e30, 0.0, -0.0, np.inf, -np.inf, np.nan]


def _same_division(got, want, x, dtype, exact_only=False):
    """The contract of graphc.backends.numba.division: the division's bits where |x| is at least
    2**(emin + p) and the quotient is not subnormal; infinities, NaNs and signed zeros
    everywhere; elsewhere within one unit in the last place of the result."""
    info = np.finfo(dtype)
    assert got.dtype == want.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got) * np.sign(got), np.isinf(want) * np.sign(want))
    np.testing.assert_array_equal(np.signbit(got) | np.isnan(got), np.signbit(want) | np.isnan(want))
    small = 2.0 ** (info.minexp + info.nmant + 1)  # 2**-102 in float32, 2**-969 in float64
    with np.errstate(invalid="ignore"):
        covered = (np.abs(x) >= small) & ~((np.abs(want) < info.tiny) & (want != 0))
    np.testing.assert_array_equal(got[covered], want[covered])
    if not exact_only:
        finite = ~covered & np.isfinite(want)
        assert np.all(np.abs(got[finite] - want[finite]) <= np.spacing(np.abs(want[finite])))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_division_by_a_value_the_loop_does_not_change_gives_the_divisions_bits(dtype):
    """x / d with d a scalar input or a constant divides through d's reciprocal, computed once,
    with one correction step (graphc.backends.numba.division): the division's bits, its
    infinities, NaNs and signed zeros, and one ulp at most where the operands are tiny. Where
    1/d is not a normal number (d zero, infinite, NaN, subnormal, huge) the kernel divides."""
    info = np.finfo(dtype)
    tiny, huge = float(info.tiny), 1.0 / float(info.tiny)  # the divisors divided through 1/d
    x, d = gc.vector("x", dtype=dtype), gc.scalar("d", dtype=dtype)
    # the last two: a subnormal constant, and a sum over lanes
    outputs = [x / d, gc.sqrt(gc.abs(x) / d) * 2.0, x / 3.0, x / (tiny / 2), gc.sum(x / d)]
    fast = gc.function([x, d], outputs, backend="numba")
    slow = gc.function([x, d], outputs, backend="numpy")
    assert sum(k.source.count("quotient(") for k in fast.kernels) >= 4  # 4 divisions, each checked once
    rng = np.random.default_rng(0)
    special = [169.0, 1.5, -2.0, 0.0, -0.0, info.max, -info.max, tiny, info.smallest_subnormal, np.inf, -np.inf, np.nan]
    exponents = rng.uniform(info.minexp - info.nmant, info.maxexp, 400)
    spread = np.exp2(exponents) * rng.choice([-1.0, 1.0], 400)  # every magnitude, subnormal to huge
    for divisor in DIVISORS + [13.0, tiny, tiny / 2, huge, huge * 2, float(info.max), float(info.max) / 3]:
        dv = np.array(divisor, dtype)
        with np.errstate(all="ignore"):
            multiples = np.arange(1, 30) * dv  # quotients near whole numbers: 169 / 13 is 13
            value = np.concatenate([special, spread, multiples, rng.normal(size=40)]).astype(dtype)
            got, want = fast(value, dv), slow(value, dv)
        if tiny <= abs(divisor) <= huge:
            _same_division(got[0], want[0], value, dtype)
            _same_division(got[1], want[1], value, dtype, exact_only=True)  # sqrt of a subnormal magnifies an ulp
            assert fast(np.array([divisor, 169.0], dtype), dv)[0][0] == 1  # d / d, not 1 - 1 ulp
        else:
            np.testing.assert_array_equal(got[0], want[0])  # divided as written
            np.testing.assert_array_equal(got[1], want[1])
        _same_division(got[2], want[2], value, dtype)
        np.testing.assert_array_equal(got[3], want[3])
        if np.isfinite(divisor) and divisor:
            ok = np.isfinite(value) & (np.abs(value) < 1e30)
            np.testing.assert_allclose(fast(value[ok], dv)[4], slow(value[ok], dv)[4], rtol=TOL[dtype])
    big = rng.normal(size=40_000).astype(dtype)
    parallel = gc.function([x, d], x / d, backend="numba")
    np.testing.assert_array_equal(parallel(big, np.array(0.3, dtype)), big / np.array(0.3, dtype))
    assert any(k.parallel and "quotient(" in k.source for k in parallel.kernels)


def test_integer_and_bool_kernels():
    i = gc.vector("i", dtype="int64")
    b = gc.vector("b", dtype="bool")
    outputs = [i * 3 - 1, gc.sum(i), gc.max(i), gc.sum(b), b & (i > 2), gc.where(b, i, -i), i / 2, gc.exp(i)]
    fast, slow = both([i, b], outputs, np.arange(6), np.array([1, 0, 1, 1, 0, 0], bool))
    for a, b_ in zip(fast, slow):
        same(a, b_)


def test_big_inputs_take_the_parallel_kernel():
    x1, x2 = gc.vector("x1"), gc.vector("x2")
    y = x1 * x2 + gc.exp(x1 * x2) - gc.sin(x2)
    f = gc.function([x1, x2], y, backend="numba")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300_000), rng.normal(size=300_000)
    same(f(a, b), a * b + np.exp(a * b) - np.sin(b))
    assert any(k.parallel for k in f.kernels) and any(not k.parallel for k in f.kernels)


def test_non_contiguous_and_read_only_arguments():
    x = gc.matrix("x")
    f = gc.function([x], gc.exp(x) * 2, backend="numba")
    value = np.arange(12.0).reshape(3, 4)
    same(f(value.T), np.exp(value.T) * 2)
    value.setflags(write=False)
    same(f(value[:, ::2]), np.exp(value[:, ::2]) * 2)


@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_kernels(axis, dtype):
    z = gc.matrix("z", dtype=dtype)
    t = gc.matrix("t", dtype=dtype)
    rng = np.random.default_rng(2)
    zv = rng.normal(size=(5, 7)).astype(dtype) * 10
    tv = rng.dirichlet(np.ones(7 if axis == -1 else 5), size=5 if axis == -1 else 7).astype(dtype)
    tv = tv if axis == -1 else tv.T.copy()
    outputs = [gc.softmax(z, axis), gc.log_softmax(z, axis), gc.softmax_cross_entropy(z, t, axis)]
    fast, slow = both([z, t], outputs, zv, tv)
    for a, b in zip(fast, slow):
        same(a, b)


# ----- the lecture and a training step -----------------------------------------------------------
def test_lecture_function_and_gradient():
    x1, x2, y = lecture()
    fast, slow = both([x1, x2], [y, *gc.grad(y, [x1, x2])], 2.0, 5.0)
    for a, b in zip(fast, slow):
        same(a, b)
    assert float(fast[0]) == pytest.approx(22037.42471908138, rel=1e-15)


def test_mlp_training_steps_match():
    rng = np.random.default_rng(0)

    def build(backend):
        x = gc.matrix("x", dtype="float32", shape=(16, 8))
        t = gc.matrix("t", dtype="float32", shape=(16, 3))
        w1 = gc.shared(rng_w1.copy(), name="w1")
        b1 = gc.shared(np.zeros(12, np.float32), name="b1")
        w2 = gc.shared(rng_w2.copy(), name="w2")
        h = gc.relu(x @ w1 + b1)
        loss = gc.mean(gc.softmax_cross_entropy(h @ w2, t))
        grads = gc.grad(loss, [w1, b1, w2])
        updates = {p: p - 0.1 * g for p, g in zip([w1, b1, w2], grads)}
        return gc.function([x, t], loss, updates=updates, backend=backend), w1

    rng_w1 = rng.normal(size=(8, 12)).astype(np.float32)
    rng_w2 = rng.normal(size=(12, 3)).astype(np.float32)
    xs = rng.normal(size=(16, 8)).astype(np.float32)
    ts = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
    (fast, w_fast), (slow, w_slow) = build("numba"), build("numpy")
    for _ in range(5):
        same(fast(xs, ts), slow(xs, ts))
    same(w_fast.get_value(), w_slow.get_value())


# ----- errors ----------------------------------------------------------------------------------
def test_length_mismatch_gets_the_numpy_backends_error():
    x, y = gc.vector("x"), gc.vector("y")
    z = x + y  # this line is named in the error
    for backend in ("numba", "numpy"):
        f = gc.function([x, y], gc.exp(z), backend=backend)
        with pytest.raises(gc.EvaluationError) as info:
            f(np.ones(3), np.ones(4))
        assert "add" in str(info.value) and "test_numba_backend.py" in str(info.value)


def test_a_static_length_no_input_fixes_is_checked():
    """broadcast_to(w, (4, 3)) of a w whose first length is unknown: a kernel reading w in place
    of the broadcast must not iterate over w's own length (it returned shape (1, 3))."""
    w = gc.matrix("w", shape=(None, 3))
    for backend in ("numba", "numpy"):
        f = gc.function([w], gc.broadcast_to(w, (4, 3)) * 2, backend=backend)
        np.testing.assert_array_equal(f(np.ones((4, 3))), np.full((4, 3), 2.0))
        with pytest.raises(gc.EvaluationError, match="broadcast"):
            f(np.ones((1, 3)))


@pytest.mark.parametrize(
    "build",
    [
        lambda x: gc.transpose(x, (2, 0, 1)),
        lambda x: gc.squeeze(x, 1),
        lambda x: gc.expand_dims(gc.squeeze(x, 1), 0),
        lambda x: gc.transpose(gc.expand_dims(gc.squeeze(x, 1), -1), (1, 0, 2)),
    ],
)
def test_dimshuffle_views(build):
    x = gc.tensor("x", shape=(None, 1, 3))
    y = build(x)
    value = np.arange(12.0).reshape(4, 1, 3)
    expected = gc.function([x], y, backend="numpy")(value)
    got = gc.function([x], y, backend="numba")(value)
    assert got.shape == expected.shape and np.array_equal(got, expected)


def test_squeezing_a_longer_axis_gets_the_numpy_backends_error():
    x = gc.tensor("x", shape=(None, None))
    f = gc.function([x], gc.squeeze(x, 0) * 2.0, backend="numba")
    assert np.array_equal(f(np.ones((1, 3))), np.full(3, 2.0))
    with pytest.raises(gc.EvaluationError, match="squeeze|dimshuffle"):
        f(np.ones((2, 3)))


def test_empty_max_is_an_error_not_garbage():
    x = gc.vector("x")
    f = gc.function([x], gc.max(gc.exp(x)), backend="numba")
    with pytest.raises(gc.EvaluationError, match="max"):
        f(np.zeros(0))


# ----- the generated code ----------------------------------------------------------------------
def test_source_and_kernels_name_the_graph_nodes():
    x1, x2, y = lecture()
    f = gc.function([x1, x2], [y, *gc.grad(y, [x1, x2])], backend="numba")
    assert len(f.kernels) == 1
    (kernel,) = f.kernels
    assert kernel.nodes and kernel.nodes[0] in f.graph.nodes
    source = f.source()
    assert "def driver(values):" in source and "def kernel(" in source and "@nb.njit(" in source


def test_float32_kernels_write_float32_constants():
    x = gc.vector("x", dtype="float32")
    f = gc.function([x], gc.exp(x * 0.5) + 1.25, backend="numba")
    body = f.kernels[0].source
    assert "np.float32(0.5)" in body and "np.float32(1.25)" in body
    assert "np.float64" not in body


def test_numpy_backend_has_no_source():
    x = gc.vector("x")
    f = gc.function([x], x + 1, backend="numpy")
    assert f.kernels == []
    with pytest.raises(gc.GraphError, match="numba"):
        f.source()


# ----- the persistent cache ----------------------------------------------------------------------
SCRIPT = textwrap.dedent(
    """
    import numpy as np, graphc as gc
    x = gc.vector("x")
    f = gc.function([x], [gc.sum(gc.tanh(x) * 3.5 - x), gc.exp(x) + 7.25], backend="numba")
    a = np.linspace(-1, 1, 11)
    s, e = f(a)
    assert abs(s - np.sum(np.tanh(a) * 3.5 - a)) < 1e-12 and np.allclose(e, np.exp(a) + 7.25, rtol=1e-15)
    print(sum(k.fn.stats.cache_hits.get(s, 0) for k in f.kernels for s in k.fn.signatures),
          sum(k.fn.stats.cache_misses.get(s, 0) for k in f.kernels for s in k.fn.signatures))
    """
)


def run_script(directory: Path) -> tuple[int, int]:
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(directory))
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    hits, misses = map(int, done.stdout.split())
    return hits, misses


def test_a_second_process_loads_kernels_from_the_cache(tmp_path):
    hits, compiled = run_script(tmp_path)
    assert hits == 0 and compiled > 0
    assert run_script(tmp_path) == (compiled, 0)  # every kernel loaded, none compiled
    assert list(tmp_path.rglob("k*.py")) and list(tmp_path.rglob("*.nbc"))


QUICK_LOAD_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, graphc as gc
    from numba.core.caching import Cache
    before = Cache.load_overload
    x = gc.vector("x")
    f = gc.function([x], [gc.sum(gc.tanh(x) * 3.5 - x), gc.exp(x) + 7.25], backend="numba")
    a = np.linspace(-1, 1, 11)
    assert abs(f(a)[0] - np.sum(np.tanh(a) * 3.5 - a)) < 1e-12
    print("numba.np.linalg" in sys.modules, Cache.load_overload.__wrapped__ is before)
    g = gc.function([x], gc.cos(x) * 0.125, backend="numba")  # not cached: compiled in this process
    assert np.allclose(g(a), np.cos(a) * 0.125, rtol=1e-15)
    """
)


def test_a_cached_load_does_not_refresh_numbas_target_context(tmp_path):
    """Loading compiled kernels skips numba's context refresh (it imports all of numba's NumPy
    implementations, numba.np.linalg among them: 0.2 s of a warm start); compiling afterwards
    in the same process still works, and numba's own method is what graphc's wrapper calls
    outside its loads."""
    run_script(tmp_path)
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path))
    run = subprocess.run(
        [sys.executable, "-c", QUICK_LOAD_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["False", "True"]


def test_quick_loads_are_for_the_loading_thread_only(monkeypatch):
    """Inside the window a load skips the refresh; another thread's load at the same time, and
    any load after it, refresh as numba does."""
    import threading

    from numba.core.caching import Cache
    from numba.core.runtime import rtsys

    refreshed = []

    class Context:
        def refresh(self):
            refreshed.append(threading.current_thread().name)

    entry = Cache.__new__(Cache)  # numba's own load_overload needs only _load_overload of it
    entry._load_overload = lambda sig, ctx: "loaded"
    monkeypatch.setattr(rtsys, "initialize", lambda ctx: None)
    with cache._quick_loads():
        assert Cache.load_overload(entry, (), Context()) == "loaded"
        other = threading.Thread(target=Cache.load_overload, args=(entry, (), Context()), name="other")
        other.start()
        other.join()
    assert Cache.load_overload(entry, (), Context()) == "loaded"
    assert refreshed == ["other", threading.current_thread().name]


@pytest.mark.parametrize("damage", ["truncate_machine_code", "garble_index", "truncate_source", "garble_source"])
def test_damaged_cache_entries_are_rebuilt(tmp_path, damage):
    _, compiled = run_script(tmp_path)
    kind, what = damage.split("_", 1)
    pattern = {"machine_code": "*.nbc", "index": "*.nbi", "source": "k*.py"}[what]
    path = sorted(tmp_path.rglob(pattern))[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if kind == "truncate" else data[:40] + b"\x00garbage\xff" + data[40:])
    hits, misses = run_script(tmp_path)  # correct results (checked in the script), recompiled
    assert misses == 1 and hits == compiled - 1
    assert run_script(tmp_path) == (compiled, 0)  # and cached again


def test_concurrent_processes_share_one_cache(tmp_path):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path))
    procs = [
        subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    hits, misses = run_script(tmp_path)
    assert hits > 0 and misses == 0


def test_an_entry_is_checked_and_compiled_by_one_process_at_a_time(tmp_path):
    """Two processes compiling one kernel at once once left checksums of one process's machine
    code beside the other's, and the next process recompiled; now the second waits."""
    entry = tmp_path / "kabc.py"
    entry.write_text("")
    hold = "import sys, time; from pathlib import Path; from graphc.backends.numba import cache\n"
    hold += "with cache._entry_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(1.0)"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(entry)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    start = time.perf_counter()
    with cache._entry_lock(entry):
        waited = time.perf_counter() - start
    holder.wait()
    assert waited > 0.5


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    assert cache.cache_dir() == tmp_path
    monkeypatch.delenv("GRAPHC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "graphc"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_convolution_network_and_its_gradient(dtype):
    """conv2d (im2col kernel + BLAS), pooling kernels and their gradients (col2im) on both backends."""
    rng = np.random.default_rng(3)
    x = gc.tensor("x", shape=(None, 2, 9, 9), dtype=dtype)
    w = gc.shared(rng.normal(size=(3, 2, 3, 3)).astype(dtype), name="w")
    h = gc.relu(gc.conv2d(x, w, stride=1, padding=1))
    pooled = gc.max_pool2d(h, 2) + gc.avg_pool2d(h, 3, stride=2)[:, :, :4, :4]
    loss = gc.sum(gc.tanh(pooled))
    outputs = [pooled, loss, gc.grad(loss, w)]
    fast, slow = both([x], outputs, rng.normal(size=(4, 2, 9, 9)).astype(dtype))
    for a, b in zip(fast, slow):
        same(a, b)
    f = gc.function([x], outputs, backend="numba")
    assert {"im2col", "max_pool2d", "avg_pool2d"} <= {k.name for k in f.kernels}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_regression_gradient_streams_the_matrix_once(dtype):
    """X @ w, the residual and X.T @ residual become one kernel over the rows of X."""
    rng = np.random.default_rng(4)
    n, d = 50, 13  # 13: the 8-lane dot product has a tail
    X = gc.matrix("X", shape=(None, d), dtype=dtype)
    y = gc.vector("y", dtype=dtype)
    w = gc.shared(rng.normal(size=d).astype(dtype), name="w")
    residual = gc.sigmoid(X @ w + 0.5) - y
    outputs = [X.T @ residual, gc.mean(residual)]
    values = rng.normal(size=(n, d)).astype(dtype), (rng.random(n) > 0.5).astype(dtype)
    fast, slow = both([X, y], outputs, *values)
    for a, b in zip(fast, slow):
        same(a, b)
    f = gc.function([X, y], outputs, backend="numba")
    assert [k.name for k in f.kernels] == ["rows"]
    # X @ w needed elsewhere too: two products as before, same results
    fast, slow = both([X, y], [*outputs, X @ w], *values)
    for a, b in zip(fast, slow):
        same(a, b)
    with pytest.raises(gc.EvaluationError):
        gc.function([X, y], outputs, backend="numba")(values[0], values[1][:-1])


PARALLEL_SCRIPT = textwrap.dedent(
    """
    import numpy as np, graphc as gc
    x, y = gc.vector("x"), gc.matrix("y")
    outputs = [gc.softmax(y), gc.log_softmax(y, axis=0), gc.exp(x) * 2.5]
    outputs += [gc.sum(gc.sin(y) * y, axis=1), gc.max(y, axis=0)]
    f = gc.function([x, y], outputs, backend="numba")
    xv, yv = np.linspace(-1, 1, 5), np.linspace(-2, 2, 12).reshape(3, 4)
    for a, b in zip(f(xv, yv), gc.function([x, y], outputs, backend="numpy")(xv, yv)):
        assert np.allclose(a, b, rtol=1e-12, atol=1e-12)
    print(len(f.kernels), sum(k.fn.stats.cache_misses.get(s, 0) for k in f.kernels for s in k.fn.signatures))
    """
)


def test_uncached_kernels_compile_in_two_processes(tmp_path):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", PARALLEL_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    kernels, compiled_here = map(int, done.stdout.split())
    assert kernels >= cache.PARALLEL_COMPILE
    assert 0 < compiled_here < kernels  # the worker process compiled the others into the cache
    again = subprocess.run(
        [sys.executable, "-c", PARALLEL_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert again.stdout.split() == [str(kernels), "0"]  # all of them cached


def test_row_streaming_in_parallel_chunks():
    rng = np.random.default_rng(5)
    n, d = 6000, 13
    X, y = gc.matrix("X", shape=(None, d)), gc.vector("y")
    w = gc.shared(rng.normal(size=d), name="w")
    residual = gc.sigmoid(X @ w - 1.0) - y
    outputs = [X.T @ residual, gc.mean(residual), gc.sum(residual * residual)]
    values = rng.normal(size=(n, d)), (rng.random(n) > 0.5).astype(float)
    f = gc.function([X, y], outputs, backend="numba")
    for a, b in zip(f(*values), gc.function([X, y], outputs, backend="numpy")(*values)):
        same(a, b)
    assert [k.name for k in f.kernels if k.parallel] == ["rows"]


def test_cache_works_with_numba_cache_dir_set(tmp_path):
    """NUMBA_CACHE_DIR moves numba's files; the cache still finds (and checks) them."""
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path / "graphc"), NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    runs = [subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)]
    runs.append(subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300))
    assert all(r.returncode == 0 for r in runs), runs[0].stderr + runs[1].stderr
    (_, compiled), (hits, misses) = (map(int, r.stdout.split()) for r in runs)
    assert (hits, misses) == (compiled, 0)
    assert list((tmp_path / "numba").rglob("*.nbc")) and list((tmp_path / "graphc").rglob("*.sums"))
