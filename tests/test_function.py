"""gc.function: calling conventions, updates, aliasing, argument coercion, random draws."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import LECTURE_LISTING, lecture

import graphc as gc


# ----- outputs and arguments --------------------------------------------------------------------
def test_single_output_returns_an_array():
    x1, x2, y = lecture()
    out = gc.function([x1, x2], y)(2.0, 5.0)
    assert isinstance(out, np.ndarray)
    assert out.shape == () and out.dtype == np.float64
    assert out.item() == 22037.42471908138


def test_list_of_outputs_returns_a_list():
    x1, x2, y = lecture()
    f = gc.function([x1, x2], [y, x1 * x2, gc.sin(x2)])
    outs = f(2.0, 5.0)
    assert isinstance(outs, list) and len(outs) == 3
    assert all(isinstance(o, np.ndarray) for o in outs)
    assert [o.item() for o in outs] == [22037.42471908138, 10.0, np.sin(5.0)]
    one = gc.function([x1, x2], [y])(2.0, 5.0)
    assert isinstance(one, list) and len(one) == 1
    assert gc.function([x1], [])(1.0) == []


def test_keyword_arguments_by_input_name():
    a, b = gc.scalar("a"), gc.scalar("b")
    f = gc.function([a, b], a - b)
    assert f(5.0, 2.0).item() == 3.0
    assert f(a=5.0, b=2.0).item() == 3.0
    assert f(b=2.0, a=5.0).item() == 3.0


def test_positional_and_keyword_mix():
    a, b, c = gc.scalar("a"), gc.vector("b"), gc.scalar("c")
    f = gc.function([a, b, c], (a - b) * c)
    expected = (1.0 - np.array([1.0, 2.0])) * 3.0
    np.testing.assert_array_equal(f(1.0, c=3.0, b=[1.0, 2.0]), expected)
    np.testing.assert_array_equal(f(1.0, [1.0, 2.0], c=3.0), expected)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((5.0,), {"a": 1.0}), ((), {"a": 1.0}), ((1.0, 2.0, 3.0), {}), ((1.0,), {"c": 2.0}), ((), {})],
    ids=["twice", "missing", "too-many", "unknown-name", "none"],
)
def test_bad_arguments_raise_arity_error(args, kwargs):
    a, b = gc.scalar("a"), gc.scalar("b")
    f = gc.function([a, b], a - b)
    with pytest.raises(gc.ArityError):
        f(*args, **kwargs)


def test_single_input_need_not_be_a_list():
    x = gc.vector("x")
    f = gc.function(x, x * 2.0)
    np.testing.assert_array_equal(f([1.0, 2.0]), [2.0, 4.0])


def test_function_with_no_inputs():
    f = gc.function([], gc.constant(3.0) * 2.0)
    out = f()
    assert isinstance(out, np.ndarray) and out.item() == 6.0
    w = gc.shared(np.array([1.0, 2.0]), "w")
    g = gc.function([], w * 2.0)
    np.testing.assert_array_equal(g(), [2.0, 4.0])
    w.set_value([3.0, 4.0])
    np.testing.assert_array_equal(g(), [6.0, 8.0])  # shared values are read at each call
    with pytest.raises(gc.ArityError):
        g(1.0)


def test_graph_and_repr():
    x1, x2, y = lecture()
    f = gc.function([x1, x2], y, optimize="none")
    assert isinstance(f.graph, gc.Graph)
    assert str(f.graph) == LECTURE_LISTING
    assert len(f.graph) == 5
    assert "numpy" in repr(f)
    assert "x1" in repr(f) and "x2" in repr(f)
    assert f.backend == "numpy"


def test_graph_lists_inputs_in_the_given_order():
    x1, x2, y = lecture()
    f = gc.function([x2, x1], y, optimize="none")
    assert f.graph.inputs == [x2, x1]
    assert str(f.graph).splitlines()[:3] == ["v1 = x2", "v2 = x1", "v3 = v2 * v1"]
    assert f(5.0, 2.0).item() == 22037.42471908138


def test_compile_errors():
    x1, x2, y = lecture()
    with pytest.raises(gc.GraphError):
        gc.function([x1], y)  # x2 is missing
    with pytest.raises(gc.GraphError):
        gc.function([x1, x2], y, backend="no-such-backend")
    with pytest.raises(gc.GraphError):
        gc.function([x1, x1, x2], y)
    with pytest.raises(gc.GraphError):
        gc.function([x1, gc.shared(1.0, "s")], x1)
    with pytest.raises(gc.GraphError):
        gc.function([x1, x2 * 2.0], y)


# ----- updates ----------------------------------------------------------------------------------
def test_counter_is_incremented_on_every_call():
    count = gc.shared(0, "count")
    f = gc.function([], count, updates={count: count + 1})
    assert [f().item() for _ in range(4)] == [0, 1, 2, 3]  # outputs see the value before the update
    assert count.get_value() == 4
    assert count.get_value().dtype == np.int64
    g = gc.function([], [], updates=[(count, count + 10)])  # updates as pairs
    g()
    assert count.get_value() == 14


def test_simultaneous_updates_read_old_values():
    a = gc.shared(np.array([1.0, 2.0]), "a")
    b = gc.shared(np.array([3.0, 4.0]), "b")
    swap = gc.function([], [], updates={a: b, b: a})
    swap()
    np.testing.assert_array_equal(a.get_value(), [3.0, 4.0])
    np.testing.assert_array_equal(b.get_value(), [1.0, 2.0])
    swap()
    np.testing.assert_array_equal(a.get_value(), [1.0, 2.0])
    np.testing.assert_array_equal(b.get_value(), [3.0, 4.0])
    # after the swap, the two variables do not share storage
    a.get_value(borrow=True)[0] = 100.0
    np.testing.assert_array_equal(b.get_value(), [3.0, 4.0])


def test_simultaneous_updates_with_arithmetic():
    a, b = gc.shared(1.0, "a"), gc.shared(1.0, "b")
    fib = gc.function([], a, updates={a: b, b: a + b})
    assert [fib().item() for _ in range(7)] == [1.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0]


def test_update_depending_on_inputs():
    x = gc.vector("x")
    total = gc.shared(np.zeros(3), "total")
    lr = gc.scalar("lr")
    f = gc.function([x, lr], gc.sum(total), updates={total: total + lr * x})
    assert f([1.0, 2.0, 3.0], 0.5).item() == 0.0
    np.testing.assert_array_equal(total.get_value(), [0.5, 1.0, 1.5])
    assert f(x=[1.0, 1.0, 1.0], lr=2.0).item() == 3.0
    np.testing.assert_array_equal(total.get_value(), [2.5, 3.0, 3.5])


def test_update_type_is_checked():
    w = gc.shared(np.zeros(3), "w")
    with pytest.raises(gc.DTypeError):
        gc.function([], [], updates={w: w.astype("float32")})
    with pytest.raises(gc.ShapeError):
        gc.function([], [], updates={w: gc.sum(w)})
    with pytest.raises(gc.GraphError):
        gc.function([], [], updates={gc.vector("v"): w})


# ----- aliasing ---------------------------------------------------------------------------------
def test_identity_function_does_not_alias_its_argument():
    x = gc.vector("x")
    f = gc.function([x], x)
    arg = np.array([1.0, 2.0, 3.0])
    out = f(arg)
    assert out is not arg
    assert not np.shares_memory(out, arg)
    out[0] = 100.0
    np.testing.assert_array_equal(arg, [1.0, 2.0, 3.0])
    arg[1] = -5.0
    assert out[1] == 2.0
    s = gc.scalar("s")
    value = np.array(4.0)
    assert gc.function([s], s)(value) is not value


def test_outputs_do_not_alias_arguments_through_views():
    m = gc.matrix("m")
    f = gc.function([m], [m.T, m[0], m.reshape((-1,))])
    arg = np.arange(6.0).reshape(2, 3)
    for out in f(arg):
        assert not np.shares_memory(out, arg)
        out[...] = -1.0
    np.testing.assert_array_equal(arg, np.arange(6.0).reshape(2, 3))


def test_outputs_do_not_alias_shared_values():
    w = gc.shared(np.array([1.0, 2.0]), "w")
    f = gc.function([], w)
    out = f()
    out[0] = 100.0
    np.testing.assert_array_equal(w.get_value(), [1.0, 2.0])
    assert not np.shares_memory(out, w.get_value(borrow=True))


def test_output_and_update_of_the_same_expression_do_not_alias():
    w = gc.shared(np.zeros(2), "w")
    f = gc.function([], w + 1.0, updates={w: w + 1.0})
    out = f()
    np.testing.assert_array_equal(w.get_value(), [1.0, 1.0])
    out[0] = 100.0
    np.testing.assert_array_equal(w.get_value(), [1.0, 1.0])  # the shared value must not change


def test_repeated_outputs_are_distinct_arrays():
    x = gc.vector("x")
    y = x + 1.0
    first, second = gc.function([x], [y, y])(np.zeros(2))
    first[0] = 100.0
    np.testing.assert_array_equal(second, [1.0, 1.0])
    p, q = gc.function([x], [x, x])(np.zeros(2))
    p[0] = 100.0
    np.testing.assert_array_equal(q, [0.0, 0.0])


def test_shared_value_set_from_an_argument_is_a_copy():
    x = gc.vector("x")
    r = gc.shared(np.zeros(2), "r")
    f = gc.function([x], [], updates={r: x})
    arg = np.array([1.0, 2.0])
    f(arg)
    arg[0] = 50.0
    np.testing.assert_array_equal(r.get_value(), [1.0, 2.0])


def test_constant_output_is_writable_and_does_not_change_the_constant():
    f = gc.function([], gc.constant([1.0, 2.0]))
    out = f()
    out[0] = 9.0
    np.testing.assert_array_equal(f(), [1.0, 2.0])


# ----- argument coercion ------------------------------------------------------------------------
def test_python_numbers_and_lists_for_float_inputs():
    s, v = gc.scalar("s"), gc.vector("v")
    f = gc.function([s, v], s * v)
    for scalar_arg in (2, 2.0, np.float64(2.0)):
        out = f(scalar_arg, [1, 2.5])
        assert out.dtype == np.float64
        np.testing.assert_array_equal(out, [2.0, 5.0])
    np.testing.assert_array_equal(f(3, [1, 2]), [3.0, 6.0])


def test_float32_input_accepts_python_float():
    s = gc.scalar("s", dtype="float32")
    v = gc.vector("v", dtype="float32")
    f = gc.function([s, v], s * v)
    out = f(1.5, [1.0, 2.0])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([1.5, 3.0], np.float32))
    assert f(np.float32(2.0), np.ones(2, np.float32)).dtype == np.float32


def test_float32_input_refuses_lossy_float64_arrays():
    v = gc.vector("v", dtype="float32")
    f = gc.function([v], v)
    with pytest.raises(gc.DTypeError):
        f(np.array([1.0, 2.0]))
    with pytest.raises(gc.DTypeError):
        f(np.arange(2))  # int64 does not fit float32 exactly either


def test_int64_array_into_float64_input_is_accepted():
    v = gc.vector("v")
    out = gc.function([v], v * 0.5)(np.arange(4))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [0.0, 0.5, 1.0, 1.5])
    out = gc.function([v], v)(np.arange(3, dtype=np.int32))
    assert out.dtype == np.float64


def test_bad_argument_values():
    v = gc.vector("v", shape=(3,))
    i = gc.vector("i", dtype="int64")
    f = gc.function([v, i], v)
    with pytest.raises(gc.ShapeError):
        f([1.0, 2.0], [1])
    with pytest.raises(gc.ShapeError):
        f([[1.0, 2.0, 3.0]], [1])
    with pytest.raises(gc.DTypeError):
        f([1.0, 2.0, 3.0], [1.5])  # a float into an int input would truncate
    with pytest.raises(gc.DTypeError):
        f(["a", "b", "c"], [1])


def test_arguments_are_not_modified():
    v = gc.vector("v")
    f = gc.function([v], [gc.exp(v), v * 2.0, gc.sum(v)])
    arg = np.array([0.5, 1.5])
    f(arg)
    np.testing.assert_array_equal(arg, [0.5, 1.5])


# ----- random ops -------------------------------------------------------------------------------
def test_random_draws_reproducible_across_functions_and_new_on_each_call():
    x = gc.vector("x", shape=(4,))
    noise = gc.random.normal((4,), seed=7)
    y = x + noise
    f, g = gc.function([x], y), gc.function([x], y)
    zeros = np.zeros(4)
    f1, f2, f3 = f(zeros), f(zeros), f(zeros)
    g1, g2, g3 = g(zeros), g(zeros), g(zeros)
    np.testing.assert_array_equal(f1, g1)
    np.testing.assert_array_equal(f2, g2)
    np.testing.assert_array_equal(f3, g3)
    assert not np.array_equal(f1, f2) and not np.array_equal(f2, f3)
    # a differently seeded draw gives other numbers
    other = gc.function([x], x + gc.random.normal((4,), seed=8))(zeros)
    assert not np.array_equal(other, f1)


def test_random_draw_with_symbolic_shape():
    x = gc.vector("x")
    u = gc.random.uniform((x.shape[0],), low=-1.0, high=1.0, seed=3)
    f, g = gc.function([x], u + x), gc.function([x], u + x)
    a, b = f(np.zeros(5)), g(np.zeros(5))
    assert a.shape == (5,)
    np.testing.assert_array_equal(a, b)
    assert np.all((a >= -1.0) & (a < 1.0))
    assert not np.array_equal(f(np.zeros(5)), a)


def test_random_draw_used_twice_in_one_call_is_one_draw():
    noise = gc.random.normal((3,), seed=1)
    first, second = gc.function([], [noise, noise * 1.0])()
    np.testing.assert_array_equal(first, second)
