"""The compiled driver (graphc/backends/numba/compiled.py): a hot function's calls run in one numba
function that calls the kernels by symbol and the products through NumPy's BLAS. It must give the
Python driver's bits, fall back to it whenever numba cannot compile it, and load from the cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numba as nb
import numpy as np
import pytest

import graphc as gc
from graphc.backends.numba import cache, compiled


def _finish_compiling():
    for thread in list(compiled._compiling):
        thread.join()


def _hot(f, *args):
    """Call ``f`` until its compiled driver is in use (or it is clear there will be none)."""
    for _ in range(compiled.HOT_CALLS + 1):
        f(*args)
    _finish_compiling()
    return f(*args)


def _mlp_step(seed: int = 0, features: int | None = 8):
    """A training step with every kind of step the compiled driver takes: products with transposed
    operands, fused kernels, softmax cross-entropy rows, bias sums squeezed, in-place updates."""
    rng = np.random.default_rng(seed)
    x = gc.matrix("x", dtype="float32", shape=(16, features))
    t = gc.matrix("t", dtype="float32", shape=(16, 3))
    w1 = gc.shared(rng.normal(size=(8, 12)).astype(np.float32), name="w1")
    b1 = gc.shared(np.zeros(12, np.float32), name="b1")
    w2 = gc.shared(rng.normal(size=(12, 3)).astype(np.float32), name="w2")
    b2 = gc.shared(np.zeros(3, np.float32), name="b2")
    h = gc.relu(x @ w1 + b1)
    loss = gc.mean(gc.softmax_cross_entropy(h @ w2 + b2, t))
    params = [w1, b1, w2, b2]
    updates = {p: p - 0.1 * g for p, g in zip(params, gc.grad(loss, params))}
    return gc.function([x, t], loss, updates=updates, backend="numba"), params


def _batch(seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(16, 8)).astype(np.float32), np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]


@pytest.mark.skipif(compiled.blas() is None, reason="NumPy without its bundled OpenBLAS: products keep Python")
def test_a_hot_training_step_swaps_in_the_compiled_driver_and_keeps_the_bits(monkeypatch):
    monkeypatch.setattr(compiled, "HOT_CALLS", 3)
    hot, hot_params = _mlp_step()
    held, held_params = _mlp_step()
    held._run.driver = held._run.driver.python  # this one keeps the Python driver
    x, t = _batch()
    for step in range(12):
        assert hot(x, t) == held(x, t)
        if step == 3:
            _finish_compiling()
    assert hot._run.compiled_source is not None and held._run.compiled_source is None
    assert "# compiled driver" in hot.source() and "unlinked(kernel_by_key(" in hot.source()
    for a, b in zip(hot_params, held_params):
        assert np.array_equal(a.get_value(), b.get_value())


@pytest.mark.skipif(compiled.blas() is None, reason="NumPy without its bundled OpenBLAS: products keep Python")
def test_errors_after_the_swap_still_name_the_op(monkeypatch):
    monkeypatch.setattr(compiled, "HOT_CALLS", 2)
    x = gc.matrix("x", dtype="float32", shape=(16, None))  # a length the call does not check: the product does
    w = gc.shared(np.ones((8, 12), np.float32), name="w")
    steps = gc.shared(np.zeros(3, np.float32), name="steps")
    f = gc.function([x], gc.relu(x @ w), updates={steps: steps + 1.0}, backend="numba")
    value = np.ones((16, 8), np.float32)
    np.testing.assert_array_equal(_hot(f, value), np.full((16, 12), 8.0, np.float32))
    assert f._run.compiled_source is not None
    before = steps.get_value()
    with pytest.raises(gc.EvaluationError, match="matmul"):
        f(np.ones((16, 9), np.float32))
    assert np.array_equal(steps.get_value(), before)  # a failed call leaves the shared values as they were


def test_a_driver_that_does_not_compile_leaves_the_python_driver(monkeypatch):
    monkeypatch.setattr(compiled, "HOT_CALLS", 2)

    def broken(text, name="kernel"):
        if name == "driver":
            raise nb.core.errors.TypingError("not today")
        return load(text, name)

    load = cache.load
    monkeypatch.setattr(cache, "load", broken)
    f, _ = _mlp_step()
    x, t = _batch()
    first = [f(x, t) for _ in range(4)]
    _finish_compiling()
    assert f._run.compiled_source is None and not isinstance(f._run.driver, compiled.Upgrade)
    g, _ = _mlp_step()
    g._run.driver = g._run.driver.python
    assert first == [g(x, t) for _ in range(4)]


def test_a_kernel_called_by_symbol_takes_only_its_signatures_types():
    @nb.njit("float64[:, ::1](float64[:, ::1])")
    def double(a):
        return a * 2.0

    call = compiled.unlinked(double)

    @nb.njit
    def twice(a):
        return call(a)

    a = np.arange(6.0).reshape(2, 3)
    assert np.array_equal(twice(a), a * 2.0)
    with pytest.raises(nb.core.errors.TypingError):  # a transposed view is not C-contiguous
        twice(a.T)
    with pytest.raises(nb.core.errors.TypingError):
        twice(a.astype(np.float32))
    with pytest.raises(LookupError):  # a kernel compiled again under another symbol is refused
        compiled.unlinked(double, "not its symbol")


@pytest.mark.skipif(compiled.blas() is None, reason="NumPy without its bundled OpenBLAS")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shapes", [((5, 7), (7, 3)), ((1, 4), (4, 1)), ((0, 3), (3, 2)), ((3, 0), (0, 2))])
def test_products_through_numpys_blas(dtype, shapes):
    s, d, bits = compiled.blas()
    matmul = compiled.matmul_for(bits)
    rng = np.random.default_rng(0)
    (m, k), (_, n) = shapes
    a, b = rng.normal(size=(m, k)).astype(dtype), rng.normal(size=(k, n)).astype(dtype)
    address = s if dtype == "float32" else d
    tol = 1e-5 if dtype == "float32" else 1e-12
    for left in (a, np.asfortranarray(a), a.T.copy().T):
        for right in (b, np.asfortranarray(b), b[:, ::-1][:, ::-1]):
            got = matmul(left, right, address)
            assert got.dtype == dtype and got.flags.c_contiguous
            np.testing.assert_allclose(got, left @ right, rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="operand lengths"):
        matmul(a, rng.normal(size=(k + 1, n)).astype(dtype), address)


@pytest.mark.skipif(compiled.blas() is None, reason="NumPy without its bundled OpenBLAS")
def test_products_with_a_side_of_length_one_keep_numpys_bits(monkeypatch):
    """NumPy's matmul calls gemv or dot there, whose bits differ from gemm's: such a product
    keeps the function on the Python driver, which calls NumPy."""
    monkeypatch.setattr(compiled, "HOT_CALLS", 2)
    rng = np.random.default_rng(0)
    for a_shape, b_shape in [((64, 300), (300, 1)), ((1, 300), (300, 64)), ((1, 300), (300, 1))]:
        a, b = gc.matrix("a", dtype="float32", shape=a_shape), gc.matrix("b", dtype="float32", shape=b_shape)
        f = gc.function([a, b], (a @ b) * 2.0, backend="numba")
        av, bv = rng.normal(size=a_shape).astype(np.float32), rng.normal(size=b_shape).astype(np.float32)
        got = _hot(f, av, bv)
        assert np.array_equal(got, (av @ bv) * np.float32(2.0))
        assert f._run.compiled_source is None


def test_arguments_of_another_layout_after_the_swap_take_the_python_driver(monkeypatch):
    monkeypatch.setattr(compiled, "HOT_CALLS", 2)
    x = gc.matrix("x", shape=(4, 6))
    f = gc.function([x], gc.expand_dims(x, 1) * 2.0, backend="numba")
    value = np.arange(24.0).reshape(4, 6)
    np.testing.assert_array_equal(_hot(f, value), value[:, None, :] * 2.0)
    assert f._run.compiled_source is not None
    strided = np.arange(48.0).reshape(4, 12)[:, ::2]  # not contiguous: numba's reshape refuses it
    np.testing.assert_array_equal(f(strided), strided[:, None, :] * 2.0)
    np.testing.assert_array_equal(f(value), value[:, None, :] * 2.0)


def test_squeezing_an_axis_not_known_to_have_length_one_keeps_the_error(monkeypatch):
    monkeypatch.setattr(compiled, "HOT_CALLS", 2)
    x = gc.matrix("x", shape=(None, None))
    f = gc.function([x], gc.squeeze(x, 0) * 2.0, backend="numba")
    np.testing.assert_array_equal(_hot(f, np.ones((1, 3))), np.full(3, 2.0))
    with pytest.raises(gc.EvaluationError):  # a reshape would turn (2, 0) into (0,)
        f(np.ones((2, 0)))


SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_compiled_driver import _batch, _finish_compiling, _mlp_step
    from graphc.backends.numba import compiled
    compiled.HOT_CALLS = 2
    f, _ = _mlp_step()
    x, t = _batch()
    f(x, t)
    print("compiled at the first call:", f._run.compiled_source is not None)
    for _ in range(3):
        f(x, t)
    _finish_compiling()
    print("compiled later:", f._run.compiled_source is not None)
    """
)


@pytest.mark.skipif(compiled.blas() is None, reason="NumPy without its bundled OpenBLAS")
def test_a_second_process_loads_the_compiled_driver_on_its_first_call(tmp_path):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path))
    script = SCRIPT.format(tests=os.path.dirname(__file__))
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)]
    runs.append(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600))
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
    assert "compiled at the first call: False" in runs[0].stdout and "compiled later: True" in runs[0].stdout
    assert "compiled at the first call: True" in runs[1].stdout
