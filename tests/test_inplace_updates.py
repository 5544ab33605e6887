"""Updates that overwrite their shared variable's array (numba backend), and every case where
they must not: the results always equal the numpy backend's, step after step."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc


def _pair(build, steps=3, args=()):
    """Run the function ``build`` makes on both backends for ``steps`` calls; return what each
    call returned and the shared values after each call, per backend."""
    runs = {}
    for backend in ("numpy", "numba"):
        fn, shared = build(backend)
        seen = []
        for _ in range(steps):
            out = fn(*args)
            outs = [np.array(o) for o in (out if isinstance(out, list) else [out])]
            seen.append((outs, [s.get_value() for s in shared]))
        runs[backend] = (fn, shared, seen)
    for (outs_ref, vals_ref), (outs, vals) in zip(runs["numpy"][2], runs["numba"][2]):
        for a, b in zip(outs_ref + vals_ref, outs + vals):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=0)
    return runs


def _adam_like(backend, dtype="float64"):
    rng = np.random.default_rng(0)
    x = gc.matrix("x", dtype=dtype, shape=(8, 5))
    w = gc.shared(rng.standard_normal((5, 3)).astype(dtype), name="w")
    m = gc.shared(np.zeros((5, 3), dtype), name="m")
    loss = gc.sum(gc.tanh(x @ w) ** 2)
    (g,) = gc.grad(loss, [w])
    m_new = 0.9 * m + 0.1 * g
    fn = gc.function([x], loss, updates={m: m_new, w: w - 0.01 * m_new}, backend=backend)
    return fn, [w, m]


def test_updates_write_into_the_shared_arrays_and_match_the_numpy_backend():
    x = np.random.default_rng(1).standard_normal((8, 5))
    runs = _pair(_adam_like, steps=4, args=(x,))
    fn, (w, m), _ = runs["numba"]
    before = (w.get_value(borrow=True), m.get_value(borrow=True))
    fn(x)
    assert w.get_value(borrow=True) is before[0] and m.get_value(borrow=True) is before[1]
    assert "_own(" in fn.source() and "_W(" in fn.source()


def test_a_kernel_does_not_return_the_arrays_it_wrote_into():
    """Each returned array costs numba a Python call to box; the driver already holds the arrays
    a kernel overwrote, so a kernel writing only updates returns None and its line assigns
    nothing, while an update that is also an output still comes back (the shared array)."""
    w = gc.shared(np.zeros(4), name="w")
    m = gc.shared(np.zeros(4), name="m")
    x = gc.vector("x", shape=(4,))
    m_new = 0.9 * m + x
    fn = gc.function([x], [m_new * 2.0], updates={w: w - 0.1 * m, m: m_new}, backend="numba")
    (kernel,) = [k for k in fn.kernels if "_W(" in k.source]
    assert "return None" not in kernel.source  # m_new * 2 is a fresh result
    (out,) = fn(np.ones(4))
    np.testing.assert_array_equal(out, np.full(4, 2.0))
    np.testing.assert_array_equal(m.get_value(), np.ones(4))
    only = gc.function([x], [], updates={w: w - 0.1 * m, m: 0.9 * m + x}, backend="numba")
    (kernel,) = only.kernels
    assert kernel.source.rstrip().endswith("return None")
    driver = only.source().split("# kernel")[0]
    assert any(line.strip().startswith("op") for line in driver.splitlines())  # called, nothing assigned
    only(np.ones(4))
    np.testing.assert_allclose(w.get_value(), np.full(4, -0.1))
    np.testing.assert_allclose(m.get_value(), np.full(4, 1.9))


def test_get_value_copies_do_not_change():
    fn, (w, m) = _adam_like("numba")
    x = np.ones((8, 5))
    fn(x)
    kept = w.get_value()
    again = kept.copy()
    fn(x)
    np.testing.assert_array_equal(kept, again)
    assert not np.array_equal(w.get_value(), kept)


def test_an_output_that_reads_the_old_value_keeps_it():
    """The old value is also an output (and a transpose of it): the update gets a new array."""

    def build(backend):
        w = gc.shared(np.arange(6.0).reshape(2, 3), name="w")
        fn = gc.function([], [w, w.T, w * 2], updates={w: w + 1}, backend=backend)
        return fn, [w]

    runs = _pair(build)
    fn, (w,), seen = runs["numba"]
    outs, _ = seen[-1]
    np.testing.assert_array_equal(outs[0], np.arange(6.0).reshape(2, 3) + 2)
    assert "_own(" not in fn.source()


def test_a_view_read_after_the_update_blocks_it():
    """``w.T`` is read by a product that may run after w's update: still the old w."""

    def build(backend):
        w = gc.shared(np.arange(6.0).reshape(2, 3), name="w")
        v = gc.shared(np.ones((3, 2)), name="v")
        fn = gc.function([], gc.sum(w.T @ w), updates={w: w * 0.5, v: v + w.T}, backend=backend)
        return fn, [w, v]

    _pair(build)


def test_swapped_updates_read_the_old_values():
    def build(backend):
        a = gc.shared(np.arange(4.0), name="a")
        b = gc.shared(np.arange(4.0) * 10, name="b")
        fn = gc.function([], [], updates={a: b + 1, b: a * 2}, backend=backend)
        return fn, [a, b]

    _pair(build, steps=4)


def test_broadcast_reads_are_not_overwritten():
    """One update reads a variable broadcast (a row against a matrix) that another update
    overwrites: the row's kernel must run after every read of the old row."""

    def build(backend):
        row = gc.shared(np.arange(3.0).reshape(1, 3), name="row")
        big = gc.shared(np.ones((4, 3)), name="big")
        fn = gc.function([], [], updates={big: big + row, row: row * 2}, backend=backend)
        return fn, [row, big]

    _pair(build, steps=3)


def test_borrowed_read_only_and_non_contiguous_values_are_copied_not_written():
    fn, (w, m) = _adam_like("numba")
    ref, (w_ref, m_ref) = _adam_like("numpy")
    frozen = np.asfortranarray(w.get_value())
    frozen.flags.writeable = False
    w.set_value(frozen, borrow=True)
    w_ref.set_value(frozen.copy())
    x = np.ones((8, 5))
    fn(x)
    ref(x)
    np.testing.assert_allclose(w.get_value(), w_ref.get_value(), rtol=1e-12)
    assert not frozen.flags.writeable and w.get_value(borrow=True) is not frozen


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_big_updates_take_the_parallel_kernel_in_place(dtype):
    def build(backend):
        p = gc.shared(np.linspace(-1, 1, 50_000).astype(dtype), name="p")
        fn = gc.function([], gc.sum(p), updates={p: gc.exp(p) * 0.5 - p}, backend=backend)
        return fn, [p]

    runs = {}
    for backend in ("numpy", "numba"):
        fn, (p,) = build(backend)
        for _ in range(2):
            fn()
        runs[backend] = p.get_value()
    assert any(k.parallel and "_W(" in k.source for k in fn.kernels)
    np.testing.assert_allclose(runs["numba"], runs["numpy"], rtol=1e-5 if dtype == "float32" else 1e-12)


def test_a_constant_update_is_not_overwritten_by_another_function():
    """An update to a constant makes the variable hold the constant's value; a second function
    updating the variable in place must not write into the first function's constant."""
    for backend in ("numpy", "numba"):
        m = gc.shared(np.ones(3), name="m")
        reset = gc.function([], [], updates={m: gc.zeros_like(m)}, backend=backend)
        step = gc.function([], [], updates={m: m * 0.9 + 1}, backend=backend)
        reset()
        step()
        reset()
        np.testing.assert_array_equal(m.get_value(), np.zeros(3))


def test_constant_outputs_are_copies():
    c = gc.constant(np.arange(3.0))
    f = gc.function([], [c, c * 1], optimize="none")
    first = f()[0]
    first[:] = -1
    np.testing.assert_array_equal(f()[0], np.arange(3.0))


def test_a_call_that_fails_leaves_the_shared_values_as_they_were():
    """The steps that overwrite shared values run after every step that does not need them, so
    an error in another step (an index out of range) happens before any write."""
    for backend in ("numpy", "numba"):
        w = gc.shared(np.arange(3.0), name="w")
        v = gc.shared(np.zeros(2), name="v")
        idx = gc.vector("idx", dtype="int64", shape=(2,))
        f = gc.function([idx], [], updates={w: w * 2, v: v + gc.take(gc.constant(np.ones(3)), idx)}, backend=backend)
        with pytest.raises(gc.EvaluationError):
            f(np.array([0, 5]))
        np.testing.assert_array_equal(w.get_value(), np.arange(3.0))
        f(np.array([0, 2]))
        np.testing.assert_array_equal(w.get_value(), np.arange(3.0) * 2)
