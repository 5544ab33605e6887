"""``f.profile``: every step of a function's program timed over real calls, on each CPU backend
(the CUDA backend's profile is tested in test_cuda_backend.py)."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.errors import UsageError

BACKENDS = ["numba", "numpy"]


def _model():
    """A product of two 200x200 matrices next to a 3-element update: the product dominates."""
    x = gc.matrix("x", shape=(200, 200))
    W = gc.shared(np.eye(200), name="W")
    count = gc.shared(np.zeros(3), name="count")
    big = gc.sum(x @ W)  # line A
    small = count + 1.0  # line B
    return x, big, {count: small}, count


def _line_of(text: str) -> int:
    import inspect

    source, first = inspect.getsourcelines(_model)
    return first + next(i for i, line in enumerate(source) if text in line)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_step_is_timed_on_every_call_and_the_product_leads(backend):
    x, big, updates, _ = _model()
    f = gc.function([x], big, updates=updates, backend=backend)
    profile = f.profile(np.ones((200, 200)), repeat=4, warmup=1)
    steps = f._run.profile_steps
    assert len(profile.rows) == len(steps) >= 2
    assert all(row.calls == 4 for row in profile.rows)
    assert all(row.seconds > 0 for row in profile.rows)
    # 200x200x200 multiply-adds against three additions: the product is the slowest step.
    assert "matmul" in profile.rows[0].step.ops
    assert f"test_profiling.py:{_line_of('# line A')}" in profile.rows[0].step.created_at
    assert profile.steps_seconds == pytest.approx(sum(r.seconds for r in profile.rows) / 4)
    assert 0 < profile.steps_seconds <= profile.timed_seconds


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_calls_are_real_and_the_function_is_left_as_it_was(backend):
    x, big, updates, count = _model()
    f = gc.function([x], big, updates=updates, backend=backend)
    driver = getattr(f._run, "driver", None)
    f.profile(np.ones((200, 200)), repeat=3, warmup=2)
    np.testing.assert_array_equal(count.get_value(), 2 + 2 * 3)  # warmup, then repeat twice
    assert getattr(f._run, "driver", None) is driver
    assert f(np.ones((200, 200))) == pytest.approx(200 * 200)


def test_a_failing_call_leaves_no_clocks_behind():
    x, big, updates, _ = _model()
    f = gc.function([x], big, updates=updates, backend="numba")
    driver = f._run.driver
    f._run.driver_env["op0"], real = None, f._run.driver_env["op0"]  # the timed twin calls None
    try:
        with pytest.raises(TypeError):
            f.profile(np.ones((200, 200)), repeat=1, warmup=0)
    finally:
        f._run.driver_env["op0"] = real
    assert f._run.driver is driver
    assert f(np.ones((200, 200))) == pytest.approx(200 * 200)


def test_fused_kernels_list_the_ops_and_lines_inside_them():
    v = gc.vector("v", shape=(1000,))
    y = gc.exp(v) * 2.0  # first line
    z = gc.sin(y) + v  # second line
    f = gc.function([v], z, backend="numba")
    (row,) = [r for r in f.profile(np.zeros(1000), repeat=2).rows if r.step.label.startswith("fused")]
    assert {"exp", "mul", "sin", "add"} <= set(row.step.ops.split(", "))
    lines = row.step.created_at.split(", ")
    assert len(lines) == 2 and all(line.startswith("test_profiling.py:") for line in lines)


def test_a_parallel_kernel_is_timed_too():
    """Above the parallel threshold the driver calls the kernel's parallel version instead."""
    v = gc.vector("v", shape=(100_000,))
    f = gc.function([v], gc.exp(v) * 2.0 + v, backend="numba")
    (row,) = f.profile(np.zeros(100_000), repeat=3).rows
    assert row.calls == 3 and row.seconds > 0
    assert any(kernel.parallel for kernel in f.kernels)  # the parallel version ran


def test_the_report_reads_as_a_table():
    x, big, updates, _ = _model()
    profile = gc.function([x], big, updates=updates, backend="numba").profile(np.ones((200, 200)), repeat=2)
    text = str(profile)
    assert "2 calls (numba backend)" in text and "per call without clocks" in text
    assert text.count("\n") >= 3 + len(profile.rows)
    assert "matmul" in text.splitlines()[5]  # the first row: two summary lines, a blank, header, rule
    html = profile._repr_html_()
    assert html.count("<tr>") == 1 + len(profile.rows)
    assert "Profile" in repr(profile)


@pytest.mark.parametrize("repeat, warmup", [(0, 1), (2, -1)])
def test_bad_counts_are_refused(repeat, warmup):
    x, big, updates, _ = _model()
    f = gc.function([x], big, updates=updates, backend="numpy")
    with pytest.raises(UsageError, match="repeat"):
        f.profile(np.ones((200, 200)), repeat=repeat, warmup=warmup)


def test_an_input_named_like_an_option_is_still_an_input():
    repeat = gc.vector("repeat", shape=(3,))
    f = gc.function([repeat], repeat * 2, backend="numpy")
    profile = f.profile(np.ones(3), repeat=2)
    assert profile.calls == 2 and all(row.calls == 2 for row in profile.rows)
