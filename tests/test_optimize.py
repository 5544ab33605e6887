"""The optimizer: each pass alone, the acceptance cases, and differential tests showing that
rewrites never change results."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from helpers import lecture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.ops.elementwise import Elementwise
from graphc.ops.fused import Fused
from graphc.optimize import constant_fold, cse, dce, fuse, simplify, stabilize


def ops_of(outputs) -> Counter:
    return Counter(n.op.name for n in gc.toposort(outputs))


def run(outputs, inputs, values, optimize="none"):
    return gc.function(inputs, outputs, optimize=optimize)(*values)


# ----- each pass alone ------------------------------------------------------------------------
def test_cse_merges_commuted_operands():
    a, b = gc.vector("a"), gc.vector("b")
    y = gc.exp(a * b) + gc.exp(b * a)
    assert ops_of(y)["mul"] == 2
    (z,) = cse([y], Counter())
    assert ops_of(z)["mul"] == 1 and ops_of(z)["exp"] == 1


def test_lecture_function_computes_x1_x2_once():
    x1, x2, y = lecture()
    f = gc.function([x1, x2], y, optimize="fast")
    assert ops_of(f.graph.outputs)["mul"] == 1


def test_constant_inputs_fold_the_whole_graph_to_one_constant():
    x1, x2, y = lecture()
    folded = gc.optimize(gc.clone_replace(y, {x1: 2.0, x2: 5.0}))
    assert isinstance(folded, gc.Constant)
    assert folded.value == 22037.42471908138


def test_constant_folding_never_materializes_a_huge_array():
    big = gc.zeros((1000, 1000))  # a broadcast scalar: free until folded
    (out,) = constant_fold([big + 1.0], Counter())
    assert not isinstance(out, gc.Constant)
    small = gc.zeros((10, 10)) + 1.0
    (out,) = constant_fold([small], Counter())
    assert isinstance(out, gc.Constant) and out.value.shape == (10, 10)


def test_random_draws_are_not_folded():
    (out,) = constant_fold([gc.random.normal((3,), seed=1) * 2.0], Counter())
    assert not isinstance(out, gc.Constant)


SIMPLIFICATIONS = [
    # (name, build(x), the ops expected after simplify)
    ("x*1", lambda x: x * 1.0, {}),
    ("1*x", lambda x: 1.0 * x, {}),
    ("x+0", lambda x: x + 0.0, {}),
    ("x-0", lambda x: x - 0.0, {}),
    ("0-x", lambda x: 0.0 - x, {"neg": 1}),
    ("x/1", lambda x: x / 1.0, {}),
    ("x*-1", lambda x: x * -1.0, {"neg": 1}),
    ("--x", lambda x: gc.neg(gc.neg(x)), {}),
    ("exp(log x)", lambda x: gc.exp(gc.log(x)), {"where": 1, "lt": 1}),
    ("log(exp x)", lambda x: gc.log(gc.exp(x)), {}),
    ("x**2", lambda x: x**2, {"mul": 1}),
    ("x**3", lambda x: x**3, {"mul": 2}),
    ("x**4", lambda x: x**4, {"mul": 2}),
    ("x**-1", lambda x: x**-1.0, {"div": 1}),
    ("x**0.5", lambda x: x**0.5, {"sqrt": 1}),
    ("double transpose", lambda x: x.T.T, {}),
    ("reshape chain", lambda x: x.reshape((6,)).reshape((3, 2)), {"reshape": 1}),
    ("reshape to itself", lambda x: x.reshape((6,)).reshape((2, 3)), {}),
    ("where(c, x, x)", lambda x: gc.where(x > 0, x, x), {}),
    ("stop_gradient", lambda x: gc.stop_gradient(x), {}),
    ("sum of a broadcast", lambda x: gc.sum(gc.broadcast_to(x, (4, 2, 3))), {"sum": 1, "mul": 1}),
]


@pytest.mark.parametrize(("name", "build", "expected"), SIMPLIFICATIONS, ids=[s[0] for s in SIMPLIFICATIONS])
def test_simplification(name, build, expected):
    x = gc.matrix("x", shape=(2, 3))
    y = build(x)
    fired = Counter()
    (z,) = simplify([y], fired)
    assert sum(fired.values()) >= 1, f"{name}: no rule fired"
    assert dict(ops_of(z)) == expected
    xv = np.abs(np.random.default_rng(0).normal(size=(2, 3))) + 0.1
    np.testing.assert_allclose(run(z, [x], [xv]), run(y, [x], [xv]), rtol=1e-14)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf and NaN on purpose
def test_simplification_keeps_nan_and_inf_results():
    x = gc.vector("x", shape=(3,))
    xv = np.array([np.inf, np.nan, 2.0])
    for y in (x * 0.0, x - x, 0.0 * x):
        (z,) = simplify([y], Counter())
        np.testing.assert_array_equal(run(z, [x], [xv]), run(y, [x], [xv]))  # nan, nan, 0
    assert np.isnan(run(simplify([gc.exp(gc.log(x))], Counter())[0], [x], [np.array([-1.0, 1, 2])])[0])
    k = gc.vector("k", shape=(3,), dtype="int64")  # ints have no inf or NaN: folded
    (z,) = simplify([k * 0 + (k - k)], Counter())
    assert isinstance(z, gc.Constant) or "mul" not in ops_of(z)


# ----- numerical stabilization -----------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf and NaN on purpose
def test_log_sigmoid_at_minus_800():
    x = gc.scalar("x")
    y = gc.log(gc.sigmoid(x))
    value, grad = gc.function([x], [y, gc.grad(y, x)])(-800.0)
    assert value == -800.0 and grad == 1.0
    assert gc.function([x], y, optimize="none")(-800.0) == -np.inf  # what the naive graph gives


def test_log_one_minus_sigmoid():
    x = gc.scalar("x")
    y = gc.log(1.0 - gc.sigmoid(x))
    assert gc.function([x], y)(800.0) == -800.0
    assert "softplus" in ops_of(stabilize([y], Counter()))


def test_softmax_of_equal_large_logits():
    v = gc.vector("v", shape=(2,))
    e = gc.exp(v)
    written_out = e / gc.sum(e, axis=0, keepdims=True)
    np.testing.assert_array_equal(gc.function([v], written_out)(np.array([1000.0, 1000.0])), [0.5, 0.5])
    np.testing.assert_array_equal(gc.function([v], gc.softmax(v))(np.array([1000.0, 1000.0])), [0.5, 0.5])


def test_logsumexp_gradient_stays_finite_at_1000():
    v = gc.vector("v", shape=(3,))
    for y in (gc.logsumexp(v), gc.log(gc.sum(gc.exp(v)))):
        g = gc.function([v], gc.grad(y, v))(np.full(3, 1000.0))
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, [1 / 3] * 3, rtol=1e-12)  # exp(x - (1000 + log 3)): log 3 rounds


def test_log_of_softmax_and_cross_entropy_become_stable_nodes():
    z, t = gc.matrix("z", shape=(4, 3)), gc.matrix("t", shape=(4, 3))
    loss = -gc.mean(gc.sum(t * gc.log(gc.softmax(z)), axis=1))
    (stable,) = stabilize([loss], Counter())
    assert ops_of(stable)["softmax_cross_entropy"] == 1 and "log" not in ops_of(stable)
    zv = np.array([[1000.0, 0.0, -1000.0]] * 4)
    tv = np.eye(3)[[0, 1, 2, 0]]
    value, grad = gc.function([z, t], [loss, gc.grad(loss, z)])(zv, tv)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(value, (0 + 1000 + 2000 + 0) / 4)


# ----- fusion ---------------------------------------------------------------------------------
def kernels(f) -> list:
    return [n for n in f.graph.nodes if isinstance(n.op, Fused)]


def test_lecture_value_and_gradient_run_as_at_most_two_kernels():
    x1, x2, y = lecture()
    f = gc.function([x1, x2], [y, *gc.grad(y, [x1, x2])])
    assert len(kernels(f)) <= 2 and len(f.graph.nodes) == len(kernels(f))
    np.testing.assert_allclose(f(2.0, 5.0), [22037.42471908138, 110137.32897403359, 44054.64792742797], rtol=1e-14)


def test_reduction_absorbs_its_producer():
    x = gc.matrix("x", shape=(None, 4))
    f = gc.function([x], gc.sum(gc.exp(x) * 2.0 + 1.0, axis=1))
    assert [n.op.name for n in f.graph.nodes] == ["fused"]
    (kernel,) = kernels(f)
    assert kernel.op.results[0][1] is not None  # its result is reduced


def test_outputs_from_the_same_inputs_share_one_kernel():
    x = gc.vector("x")
    f = gc.function([x], [gc.sin(x) * x, gc.cos(x) * x, gc.sum(x * x)])
    assert len(kernels(f)) == 1 and len(kernels(f)[0].outputs) == 3


def test_no_cliff_on_the_number_of_operands():
    xs = [gc.vector(f"x{i}", shape=(5,)) for i in range(100)]
    total = xs[0]
    for x in xs[1:]:
        total = total + gc.tanh(x)
    f = gc.function(xs, total)
    (kernel,) = kernels(f)
    assert len(kernel.inputs) == 100
    values = [np.full(5, 0.01 * i) for i in range(100)]
    np.testing.assert_allclose(f(*values), values[0] + sum(np.tanh(v) for v in values[1:]), rtol=1e-13)


def test_fusion_does_not_create_cycles():
    """a and b feed a matmul whose result meets them again: a and b cannot join that last group
    if the matmul depends on it."""
    x = gc.matrix("x", shape=(3, 3))
    a = gc.exp(x)
    m = a @ a
    y = gc.tanh(a) + m
    f = gc.function([x], y)
    xv = np.eye(3) * 0.1
    np.testing.assert_allclose(f(xv), gc.function([x], y, optimize="none")(xv), rtol=1e-14)


def mlp_adam_step():
    """One training step of a 784-256-256-10 ReLU MLP with softmax cross-entropy and Adam."""
    rng = np.random.default_rng(0)
    sizes = [784, 256, 256, 10]
    X, t = gc.matrix("X", shape=(None, 784), dtype="float32"), gc.vector("t", dtype="int64")
    params = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        params.append(gc.shared((rng.normal(size=(fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32)))
        params.append(gc.shared(np.zeros(fan_out, np.float32)))
    h = X
    for k in range(0, len(params), 2):
        h = h @ params[k] + params[k + 1]
        if k < len(params) - 2:
            h = gc.relu(h)
    loss = gc.mean(gc.softmax_cross_entropy(h, gc.one_hot(t, 10, dtype="float32")))
    grads = gc.grad(loss, params)
    step = gc.shared(np.float32(0.0), "step")
    new_step = step + 1.0
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
    updates = {step: new_step}
    for p, g in zip(params, grads):
        m = gc.shared(np.zeros(p.type.shape, np.float32))
        v = gc.shared(np.zeros(p.type.shape, np.float32))
        m_new = b1 * m + (1 - b1) * g
        v_new = b2 * v + (1 - b2) * g * g
        m_hat = m_new / (1 - b1**new_step)
        v_hat = v_new / (1 - b2**new_step)
        updates.update({m: m_new, v: v_new, p: p - lr * m_hat / (gc.sqrt(v_hat) + eps)})
    return X, t, loss, updates


def test_mlp_adam_step_leaves_no_elementwise_op_unfused():
    X, t, loss, updates = mlp_adam_step()
    f = gc.function([X, t], loss, updates=updates)
    report = f.optimization_report()
    left = [n.op.name for n in f.graph.nodes if isinstance(n.op, Elementwise)]
    assert not left, f"unfused elementwise ops: {left}"
    assert report.records[0].nodes_before > 3 * len(f.graph.nodes)
    text = str(report)
    assert "fused kernels" in text and "fuse" in text
    rng = np.random.default_rng(1)
    Xv, tv = rng.normal(size=(32, 784)).astype(np.float32), rng.integers(0, 10, size=32)
    expected = float(gc.function([X, t], loss, optimize="none")(Xv, tv))  # before f updates anything
    first = f(Xv, tv)
    assert first == pytest.approx(expected, rel=1e-5)
    losses = [float(f(Xv, tv)) for _ in range(5)]
    assert losses[-1] < first  # Adam is training


def test_relu_gradient_mask_is_computed_where_it_is_used():
    """The forward kernel of a ReLU layer writes only the activation; the mask o > 0 that its
    gradient needs sinks into the backward kernel, which reads the activation instead."""
    X, t, loss, updates = mlp_adam_step()
    f = gc.function([X, t], loss, updates=updates)
    first = kernels(f)[0]  # bias add and ReLU of the first layer, right after X @ W1
    assert [op.name for op, _ in first.op.program] == ["add", "relu"] and len(first.outputs) == 1
    activation = first.outputs[0]
    readers = [k for k in kernels(f) if activation in k.inputs]
    assert any("gt" in [op.name for op, _ in k.op.program] for k in readers)
    assert sum(r.fired["sink_into_consumer"] for r in f.optimization_report().records) >= 2


def test_every_optimized_node_keeps_a_line_of_the_model():
    """Rewrites, fusion and dead-code removal rebuild nodes through graphc's code; each still
    names a line of the model that wrote it (errors and profiles point there), never the line
    that compiled the function."""
    import inspect

    X, t, loss, updates = mlp_adam_step()
    compiled_at = inspect.currentframe().f_lineno + 1
    f = gc.function([X, t], loss, updates=updates)
    source, first = inspect.getsourcelines(mlp_adam_step)
    model_lines = set(range(first, first + len(source)))
    lines = {n.location.lineno for n in f.graph.nodes if n.location}
    assert lines and lines <= model_lines and compiled_at not in lines
    assert all(n.location for n in f.graph.nodes)


def test_sinking_never_makes_a_kernel_read_more_arrays():
    """exp(a) * b is read only by a later group (the add, which waits for a product of exp(a)):
    computed there, it would make that group read exp(a) and b instead of one array, so it
    stays where it is."""
    a, b = gc.vector("a", shape=(8,)), gc.vector("b", shape=(8,))
    w = gc.matrix("w", shape=(8, 8))
    m = gc.exp(a) * b
    y = m + gc.exp(a) @ w
    f = gc.function([a, b, w], y)
    (first,) = [k for k in kernels(f) if "exp" in [op.name for op, _ in k.op.program]]
    assert [op.name for op, _ in first.op.program] == ["exp", "mul"]
    assert sum(r.fired["sink_into_consumer"] for r in f.optimization_report().records) == 0
    values = [np.linspace(0, 1, 8), np.linspace(1, 2, 8), np.eye(8) * 0.5]
    np.testing.assert_allclose(f(*values), gc.function([a, b, w], y, optimize="none")(*values), rtol=1e-14)


def test_report_lists_each_pass_with_counts_and_time():
    x1, x2, y = lecture()
    z, report = gc.optimize([y, *gc.grad(y, [x1, x2])], report=True)
    names = [r.name for r in report.records]
    assert names[0] == "cse" and "fuse" in names and names[-1] == "dce"
    for r in report.records:
        assert r.nodes_before >= 0 and r.nodes_after >= 0 and r.seconds >= 0
    assert any(r.fired for r in report.records)
    assert "<pre>" in report._repr_html_()


def test_levels_and_passes_run_alone():
    x1, x2, y = lecture()
    assert gc.optimize(y, passes="none") is y
    assert gc.optimize(y, passes=[]) is y
    for p in (cse, constant_fold, simplify, stabilize, fuse, dce):
        (out,) = gc.optimize([y], passes=[p])
        assert run(out, [x1, x2], [2.0, 5.0]) == 22037.42471908138
    with pytest.raises(gc.GraphError, match="optimize must be one of"):
        gc.function([x1, x2], y, optimize="fastest")


# ----- rewrites never change results ---------------------------------------------------------
UNARY = [gc.sin, gc.tanh, gc.sigmoid, gc.softplus, gc.square, gc.neg, gc.gelu, gc.relu, lambda v: gc.exp(gc.tanh(v))]
UNARY += [lambda v: v * 1.0, lambda v: 0.0 + v, lambda v: v**2, lambda v: v**3, lambda v: gc.log(gc.sigmoid(v))]
UNARY += [lambda v: gc.log(gc.exp(v)), lambda v: gc.neg(gc.neg(v)), lambda v: gc.sum(v, axis=-1, keepdims=True)]
UNARY += [lambda v: gc.logsumexp(v, axis=-1, keepdims=True), lambda v: gc.softmax(v), lambda v: v.T.T]
BINARY = [gc.add, gc.sub, gc.mul, gc.maximum, lambda a, b: a / (2.0 + gc.tanh(b)), lambda a, b: gc.where(a > b, a, b)]


@st.composite
def graphs(draw):
    steps = draw(
        st.lists(
            st.tuples(st.booleans(), st.integers(0, len(UNARY) * len(BINARY)), st.integers(0, 99), st.integers(0, 99)),
            min_size=1,
            max_size=10,
        )
    )
    return draw(st.integers(0, 2**31 - 1)), steps


def build(steps):
    x, w = gc.matrix("x", shape=(None, 3)), gc.vector("w", shape=(3,))
    pool = [x, x * w]
    for unary, k, i, j in steps:
        a, b = pool[i % len(pool)], pool[j % len(pool)]
        pool.append(UNARY[k % len(UNARY)](a) if unary else BINARY[k % len(BINARY)](a, b))
    y = gc.sum(pool[-1]) + gc.sum(pool[len(pool) // 2])
    return x, w, y


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_optimized_and_unoptimized_evaluation_agree(example):
    seed, steps = example
    x, w, y = build(steps)
    outputs = [y, *gc.grad(y, [x, w])]
    rng = np.random.default_rng(seed)
    values = [rng.normal(size=(4, 3)), rng.normal(size=3)]
    expected = run(outputs, [x, w], values, optimize="none")
    for level in ("fast", "full"):
        for got, want in zip(run(outputs, [x, w], values, optimize=level), expected):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_a_reduction_with_and_without_keepdims_is_computed_once():
    """A layer norm returns mean(x, -1) and subtracts mean(x, -1, keepdims=True): one kernel
    computes the mean, the other result is a view of it with the axis dropped."""
    x = gc.matrix("x", shape=(4, 6))
    mu = gc.mean(x, axis=-1, keepdims=True)
    outputs = [gc.mean(x, axis=-1), gc.mean((x - mu) * (x - mu), axis=-1), gc.max(x, axis=0)]
    f = gc.function([x], outputs, backend="numba")
    assert len([n for n in f.graph.nodes if n.op.name == "mean"]) == 1  # the other is in the fused kernel
    assert sum(r.fired["reduction_shared_across_keepdims"] for r in f.optimization_report().records) == 1
    value = np.arange(24.0).reshape(4, 6) ** 1.5
    got = f(value)
    for a, want in zip(got, gc.function([x], outputs, backend="numpy", optimize="none")(value)):
        np.testing.assert_allclose(a, want, rtol=1e-12)
    assert not any(np.shares_memory(a, b) for k, a in enumerate(got) for b in got[k + 1 :])
