"""Automatic differentiation: the lecture's numbers, agreement of the modes on random
compositions, an MLP against hand-written backprop, linear growth of reverse mode, and the API."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import lecture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc

LECTURE_GRAD = (110137.32897403359, 44054.64792742797)
LECTURE_HESSIAN = [[550661.644870168, 242292.123742874], [242292.123742874, 88104.9042549522]]


# ----- the lecture function ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_lecture_gradient_in_both_modes(mode):
    x1, x2, y = lecture()
    g = gc.function([x1, x2], gc.grad(y, [x1, x2], mode=mode))(2.0, 5.0)
    np.testing.assert_allclose(g, LECTURE_GRAD, rtol=1e-12)


def test_lecture_hessian_forward_over_reverse():
    x1, x2, y = lecture()
    blocks = gc.hessian(y, [x1, x2])
    values = gc.function([x1, x2], [h for row in blocks for h in row])(2.0, 5.0)
    np.testing.assert_allclose(np.reshape(values, (2, 2)), LECTURE_HESSIAN, rtol=1e-12)


def test_lecture_jvp_vjp_and_hvp():
    x1, x2, y = lecture()
    (tangent,) = [gc.jvp(y, [x1, x2], [1.0, 0.0])]  # seeded on x1, as in the lecture's tangent trace
    assert gc.function([x1, x2], tangent)(2.0, 5.0) == pytest.approx(LECTURE_GRAD[0], rel=1e-12)
    adjoints = gc.vjp(y, [x1, x2], 1.0)
    np.testing.assert_allclose(gc.function([x1, x2], adjoints)(2.0, 5.0), LECTURE_GRAD, rtol=1e-12)
    hv = gc.hvp(y, [x1, x2], [1.0, 2.0])
    expected = np.array(LECTURE_HESSIAN) @ [1.0, 2.0]
    np.testing.assert_allclose(gc.function([x1, x2], hv)(2.0, 5.0), expected, rtol=1e-12)


def test_third_derivative_of_a_derivative():
    x = gc.scalar("x")
    d3 = gc.grad(gc.grad(gc.grad(gc.sin(x) * x**3, x), x), x)
    xv = 0.7  # d3/dx3 of x^3 sin x = 6 sin x + 18 x cos x - 9 x^2 sin x - x^3 cos x
    expected = 6 * np.sin(xv) + 18 * xv * np.cos(xv) - 9 * xv**2 * np.sin(xv) - xv**3 * np.cos(xv)
    assert gc.function([x], d3)(xv) == pytest.approx(expected, rel=1e-12)


# ----- forward and reverse Jacobians on random compositions -------------------------------------
UNARY = {
    "sin": gc.sin,
    "tanh": gc.tanh,
    "sigmoid": gc.sigmoid,
    "softplus": gc.softplus,
    "square": gc.square,
    "exp_tanh": lambda v: gc.exp(gc.tanh(v)),
    "gelu": gc.gelu,
    "softmax": lambda v: gc.softmax(v) if v.ndim else v * 1.5,
    "sum_keep": lambda v: gc.sum(v, axis=-1, keepdims=True) if v.ndim else -v,
    "logsumexp": lambda v: gc.logsumexp(v, axis=-1, keepdims=True) if v.ndim else 2.0 * v,
    "reverse": lambda v: v[::-1] if v.ndim else v,
}
BINARY = {
    "add": gc.add,
    "sub": gc.sub,
    "mul": gc.mul,
    "div": lambda a, b: a / (1.5 + gc.sin(b)),
    "maximum_smooth": lambda a, b: a * gc.sigmoid(b),
    # a product of two vectors of one length; otherwise (a scalar, or a keepdims reduction's
    # length 1 against n) the broadcasting product
    "dot": lambda a, b: gc.matmul(a, b) * gc.ones_like(a) if a.ndim and a.type.shape == b.type.shape else a * b,
}


@st.composite
def compositions(draw):
    """A random DAG over two inputs (a vector of length n and a scalar), reusing earlier nodes."""
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    steps = draw(
        st.lists(
            st.tuples(st.sampled_from(sorted(UNARY) + sorted(BINARY)), st.integers(0, 50), st.integers(0, 50)),
            min_size=1,
            max_size=7,
        )
    )
    return n, seed, steps


def build(n, steps):
    x = gc.vector("x", shape=(n,))
    s = gc.scalar("s")
    pool = [x, s]
    for name, i, j in steps:
        a, b = pool[i % len(pool)], pool[j % len(pool)]
        pool.append(UNARY[name](a) if name in UNARY else BINARY[name](a, b))
    y = pool[-1] + gc.sum(pool[-2]) if len(pool) > 2 else pool[-1]
    return x, s, y


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(compositions())
def test_forward_and_reverse_jacobians_agree_with_each_other_and_finite_differences(example):
    n, seed, steps = example
    x, s, y = build(n, steps)
    rng = np.random.default_rng(seed)
    xv, sv = rng.normal(size=n), float(rng.normal())
    forward = gc.function([x, s], gc.jacobian(y, [x, s], mode="forward"))(xv, sv)
    reverse = gc.function([x, s], gc.jacobian(y, [x, s], mode="reverse"))(xv, sv)
    f = gc.function([x, s], y)
    for fw, rv in zip(forward, reverse):
        np.testing.assert_allclose(fw, rv, rtol=1e-10, atol=1e-12)
    h = 1e-6
    numeric_x = np.stack([(f(xv + h * e, sv) - f(xv - h * e, sv)) / (2 * h) for e in np.eye(n)], axis=-1)
    numeric_s = (f(xv, sv + h) - f(xv, sv - h)) / (2 * h)
    np.testing.assert_allclose(reverse[0], numeric_x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reverse[1], numeric_s, rtol=1e-5, atol=1e-6)


# ----- an MLP against hand-written backprop -----------------------------------------------------
def test_mlp_gradient_equals_handwritten_numpy_backprop():
    """784-256-10, ReLU, softmax cross-entropy: backprop as in the lecture notes (delta rule)."""
    rng = np.random.default_rng(0)
    batch = 32
    Xv = rng.normal(size=(batch, 784))
    labels = rng.integers(0, 10, size=batch)
    W1v, b1v = rng.normal(size=(784, 256)) * 0.05, rng.normal(size=256) * 0.1
    W2v, b2v = rng.normal(size=(256, 10)) * 0.05, rng.normal(size=10) * 0.1

    X, t = gc.matrix("X", shape=(None, 784)), gc.vector("t", dtype="int64")
    W1, b1 = gc.shared(W1v, "W1"), gc.shared(b1v, "b1")
    W2, b2 = gc.shared(W2v, "W2"), gc.shared(b2v, "b2")
    h = gc.relu(X @ W1 + b1)
    logits = h @ W2 + b2
    loss = -gc.mean(gc.sum(gc.one_hot(t, 10) * gc.log_softmax(logits), axis=1))
    grads = gc.function([X, t], gc.grad(loss, [W1, b1, W2, b2]))(Xv, labels)

    # numpy backprop
    z1 = Xv @ W1v + b1v
    a1 = np.maximum(z1, 0)
    z2 = a1 @ W2v + b2v
    p = np.exp(z2 - z2.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    delta2 = (p - np.eye(10)[labels]) / batch
    dW2, db2 = a1.T @ delta2, delta2.sum(axis=0)
    delta1 = (delta2 @ W2v.T) * (z1 > 0)
    dW1, db1 = Xv.T @ delta1, delta1.sum(axis=0)

    for got, want in zip(grads, [dW1, db1, dW2, db2]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


# ----- reverse mode grows linearly --------------------------------------------------------------
def logistic_map(n: int):
    x = gc.scalar("l0")
    v = x
    for _ in range(n):
        v = 4.0 * v * (1.0 - v)
    return x, v


def test_reverse_mode_gradient_graph_grows_linearly():
    sizes = {}
    for n in range(1, 51):
        x, y = logistic_map(n)
        g = gc.grad(y, x)
        sizes[n] = len(gc.Graph(g).nodes)
        assert sizes[n] <= 12 * n, f"n={n}: {sizes[n]} nodes"
    # and the per-step cost is constant: the graph grows by the same amount each step
    increments = {sizes[n + 1] - sizes[n] for n in range(5, 50)}
    assert len(increments) == 1, increments
    # the value is right: d l_n / d l_0 by the chain rule on numbers
    x, y = logistic_map(8)
    lv, d = 0.3, 1.0
    for _ in range(8):
        d *= 4 - 8 * lv
        lv = 4 * lv * (1 - lv)
    assert gc.function([x], gc.grad(y, x))(0.3) == pytest.approx(d, rel=1e-12)


def test_forward_mode_grad_costs_one_sweep_per_input_element():
    x = gc.vector("x", shape=(6,))
    cost = gc.sum(gc.sin(x) * gc.exp(x))
    rev, fwd = gc.grad(cost, x, mode="reverse"), gc.grad(cost, x, mode="forward")
    assert len(gc.Graph(fwd).nodes) > 3 * len(gc.Graph(rev).nodes)
    xv = np.linspace(-1, 1, 6)
    np.testing.assert_allclose(gc.function([x], fwd)(xv), gc.function([x], rev)(xv), rtol=1e-12)


# ----- API details ----------------------------------------------------------------------------
def test_disconnected_inputs_get_zeros_or_raise():
    x, z = gc.vector("x", shape=(3,)), gc.matrix("z", shape=(2, 2))
    cost = gc.sum(x**2)
    g = gc.grad(cost, [x, z])
    values = gc.function([x, z], g)(np.ones(3), np.ones((2, 2)))
    np.testing.assert_array_equal(values[1], np.zeros((2, 2)))
    with pytest.raises(gc.GraphError, match="does not depend on z"):
        gc.grad(cost, [x, z], disconnected="raise")
    with pytest.raises(gc.GraphError, match="does not depend on z"):
        gc.grad(cost, z, mode="forward", disconnected="raise")


def test_adjoints_accumulate_over_fan_out():
    x = gc.scalar("x")
    y = x * x + x + gc.sin(x)  # x is used four times
    assert gc.function([x], gc.grad(y, x))(0.5) == pytest.approx(2 * 0.5 + 1 + np.cos(0.5), rel=1e-14)


def test_stop_gradient_blocks_derivatives_but_not_values():
    x = gc.scalar("x")
    y = x * gc.stop_gradient(x)
    f = gc.function([x], [y, gc.grad(y, x), gc.grad(y, x, mode="forward")])
    np.testing.assert_allclose(f(3.0), [9.0, 3.0, 3.0])


def test_gradients_keep_float32():
    x = gc.vector("x", shape=(4,), dtype="float32")
    w = gc.shared(np.ones(4, np.float32), "w")
    g = gc.grad(gc.sum(gc.tanh(x * w) * 2.0), [x, w])
    assert [v.dtype for v in g] == ["float32", "float32"]
    assert gc.function([x], g)(np.ones(4, np.float32))[0].dtype == np.float32


def test_gradient_of_broadcast_operands_sums_back():
    X, b = gc.matrix("X", shape=(None, 3)), gc.vector("b", shape=(3,))
    row = gc.matrix("row", shape=(1, 3))
    cost = gc.sum((X + b) * row)
    gb, grow = gc.function([X, b, row], gc.grad(cost, [b, row]))(np.ones((5, 3)), np.zeros(3), np.full((1, 3), 2.0))
    np.testing.assert_array_equal(gb, [10.0, 10.0, 10.0])
    np.testing.assert_array_equal(grow, [[5.0, 5.0, 5.0]])


def test_mistakes_get_clear_errors():
    x, k = gc.vector("x", shape=(3,)), gc.scalar("k", dtype="int64")
    with pytest.raises(gc.ShapeError, match="scalar cost"):
        gc.grad(x * 2.0, x)
    with pytest.raises(gc.DTypeError, match="int64"):
        gc.grad(gc.sum(x) * k, k)
    with pytest.raises(gc.GraphcError, match="mode must be one of forward, reverse, symbolic"):
        gc.grad(gc.sum(x), x, mode="sideways")
    v = gc.vector("v")
    with pytest.raises(gc.ShapeError, match="static shape"):
        gc.grad(gc.sum(v), v, mode="forward")
    with pytest.raises(gc.ShapeError, match="does not fit"):
        gc.jvp(gc.sum(x), [x], [np.ones(4)])


# ----- gradient checking --------------------------------------------------------------------
def test_numeric_grad_is_central_differences():
    grads = gc.numeric_grad(lambda a, b: np.sum(a**2) * b, [np.array([1.0, 2.0]), np.array(3.0)])
    np.testing.assert_allclose(grads[0], [6.0, 12.0], rtol=1e-8)
    np.testing.assert_allclose(grads[1], 5.0, rtol=1e-8)


def test_check_grad_sweeps_steps_and_catches_a_wrong_rule():
    x1, x2, y = lecture()
    report = gc.check_grad(y, [x1, x2], at={x1: 2.0, x2: 5.0})
    assert report.worst < 1e-9
    assert len(report.table) == 9 and set(report.errors) == {"x1", "x2"}
    assert "best" in str(report)
    # the error is smallest at an intermediate step: truncation on one side, round-off on the other
    errors = [row[0] for row in report.table]
    best = int(np.argmin(errors))
    assert 0 < best < len(errors) - 1
    # a wrong gradient is caught: d/dx of x*stop_gradient(x) is x, not 2x
    x = gc.scalar("x")
    assert gc.check_grad(x * gc.stop_gradient(x), x, at={x: 1.5}).worst > 0.3
