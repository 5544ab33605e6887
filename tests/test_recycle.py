"""Kernel results reuse the previous call's array once nothing else holds it (recycle.py)."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.backends.numba import compiled, recycle


def close(actual, expected) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _lecture():
    x1, x2 = gc.vector("x1"), gc.vector("x2")
    y = x1 * x2 + gc.exp(x1 * x2) - gc.sin(x2)
    return gc.function([x1, x2], y, backend="numba"), gc.function([x1, x2], y, backend="numpy")


@pytest.mark.parametrize("n", [50, 5000])  # the serial and the parallel kernel
def test_a_dropped_result_is_written_again(n):
    f, reference = _lecture()
    a, b = np.random.default_rng(n).standard_normal((2, n))
    first = f(a, b)
    where = _address(first)
    del first
    second = f(a, b)
    assert _address(second) == where
    close(second, reference(a, b))
    third = f(b, a)  # ``second`` is held: a new array, ``second`` unchanged
    assert _address(third) != where
    close(second, reference(a, b))
    close(third, reference(b, a))


def test_the_usual_loop_reuses_the_result_before_last():
    """``y = f(x)``: the last result is still held while the next call runs."""
    f, reference = _lecture()
    a, b = np.random.default_rng(8).standard_normal((2, 3000))
    y = f(a, b)
    seen = []
    for k in range(6):
        y = f(a, b) if k % 2 else f(b, a)
        seen.append(_address(y))
        close(y, reference(a, b) if k % 2 else reference(b, a))
    assert len(set(seen)) == 2  # two arrays take turns


def test_the_probe_found_the_reference_count_of_a_sole_holder():
    assert recycle.ENABLED and recycle.SOLE == recycle._sole_count() is not None


def test_a_view_of_a_result_keeps_it():
    f, reference = _lecture()
    a, b = np.random.default_rng(0).standard_normal((2, 3000))
    head = f(a, b)[:10]
    expected = head.copy()
    again = f(b, a)
    assert not np.shares_memory(head, again)
    np.testing.assert_array_equal(head, expected)
    close(again, reference(b, a))
    view = memoryview(f(a, b))
    other = f(b, a)
    assert not np.shares_memory(np.asarray(view), other)


def test_results_that_changed_are_not_reused():
    f, reference = _lecture()
    a, b = np.random.default_rng(1).standard_normal((2, 4000))
    r = f(a, b)
    r.flags.writeable = False  # the caller froze it, then dropped it
    del r
    close(f(a, b), reference(a, b))
    r = f(a, b)
    r.shape = (2, 2000)  # reshaped in place: another rank
    del r
    close(f(a, b), reference(a, b))
    shorter = a[:1000].copy(), b[:1000].copy()  # another length: the kernel allocates
    close(f(*shorter), reference(*shorter))
    empty = np.empty(0), np.empty(0)
    assert f(*empty).shape == (0,)


def test_an_input_that_is_the_last_result_is_not_overwritten():
    f, reference = _lecture()
    a, b = np.random.default_rng(2).standard_normal((2, 3000))
    r = f(a, b)
    expected = reference(r, b)
    close(f(r, b), expected)  # the caller holds r: it is not the output


def test_intermediates_reuse_their_arrays():
    x = gc.matrix("x")
    h = gc.exp(x) * 2.0
    f = gc.function([x], [gc.sum(h, axis=1), h.T @ h], backend="numba")
    slots = [v for k, v in f._run.driver_env.items() if isinstance(v, recycle.Recycled)]
    assert slots
    value = np.random.default_rng(3).standard_normal((200, 30))
    f(value)
    kept = [_address(s.last) for s in slots]
    results = f(value)
    assert [_address(s.last) for s in slots] == kept
    expected = gc.function([x], [gc.sum(h, axis=1), h.T @ h], backend="numpy")(value)
    for got, want in zip(results, expected):
        close(got, want)


def test_without_reliable_reference_counts_nothing_is_reused(monkeypatch):
    monkeypatch.setattr(recycle, "ENABLED", False)
    f, _ = _lecture()
    a, b = np.random.default_rng(4).standard_normal((2, 3000))
    slot = next(v for v in f._run.driver_env.values() if isinstance(v, recycle.Recycled))
    f(a, b)
    assert slot.take().size == 0


@pytest.mark.skipif(compiled.blas() is None, reason="NumPy without its bundled OpenBLAS: products keep Python")
def test_the_compiled_driver_hands_kernels_empty_arrays(monkeypatch):
    monkeypatch.setattr(compiled, "HOT_CALLS", 2)
    x = gc.matrix("x", shape=(4096, 8))  # big enough for a parallel version: the result is given
    w = gc.shared(np.random.default_rng(5).standard_normal((8, 12)), name="w")
    f = gc.function([x], [gc.relu(x @ w) * 3.0, x @ w > 0.5], backend="numba")
    value = np.random.default_rng(6).standard_normal((4096, 8))
    for _ in range(compiled.HOT_CALLS + 1):
        f(value)
    for thread in list(compiled._compiling):
        thread.join()
    source = f._run.compiled_source
    assert source is not None and "np.empty((0, 0), np.float64)" in source and "np.empty((0, 0), np.bool_)" in source
    slots = [v for v in f._run.driver_env.values() if isinstance(v, recycle.Recycled)]
    assert slots and all(s.last is None and s.older is None for s in slots)  # let go at the swap
    results = [f(value) for _ in range(3)]
    product = value @ w.get_value()
    for r, mask in results:
        close(r, np.maximum(product, 0.0) * 3.0)
        np.testing.assert_array_equal(mask, product > 0.5)
    assert len({_address(r) for r, _ in results}) == 3  # every call a new array, all held here


def test_threads_calling_one_function_never_share_a_result():
    import threading

    f, reference = _lecture()
    rng = np.random.default_rng(7)
    inputs = [rng.standard_normal((2, 3000)) for _ in range(4)]
    expected = [reference(a, b) for a, b in inputs]
    kept, failures = [], []

    def work(t: int) -> None:
        for k in range(60):
            j = (t + k) % len(inputs)
            r = f(*inputs[j])
            if not np.allclose(r, expected[j], rtol=1e-12, atol=1e-12):
                failures.append((t, k))
            if k % 7 == 0:
                kept.append((j, r))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    for j, r in kept:
        close(r, expected[j])
