"""User mistakes and the errors graphc reports for them.

Requirement: building a node with incompatible shapes or dtypes raises a graphc error that names
the op, the shapes and dtypes involved, and the line of user code that created the node; calling
a compiled function with the wrong number, shapes or dtypes of arguments raises a clear error
before any computation.

Each test makes one mistake on a line tagged ``# @tag`` and checks the exception class (and the
builtin class it must also be, as errors.py documents), the key parts of the message, and that
the message points at the tagged line of this file. Tags keep the expected line numbers right
however the file is edited or reformatted.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

import graphc as gc

THIS_FILE = os.path.realpath(__file__)

#: The builtin exception each graphc error must also be (errors.py: "so ``except ValueError``
#: keeps working").
BUILTIN = {
    gc.ShapeError: ValueError,
    gc.DTypeError: TypeError,
    gc.ArityError: TypeError,
    gc.GraphError: ValueError,
    gc.EvaluationError: RuntimeError,
    gc.UsageError: TypeError,
    gc.IndexingError: IndexError,
}


@functools.cache
def _source_lines() -> tuple[str, ...]:
    with open(THIS_FILE, encoding="utf-8") as f:
        return tuple(f.read().splitlines())


def line_of(tag: str) -> int:
    """The line of this file that ends with the marker comment ``# @tag`` (exactly one must)."""
    marker = "# @" + tag
    hits = [n for n, text in enumerate(_source_lines(), start=1) if text.rstrip().endswith(marker)]
    assert len(hits) == 1, f"marker {marker!r} found on lines {hits}"
    return hits[0]


def check(
    err: BaseException,
    cls: type,
    *,
    tag: str,
    op: str | None = None,
    parts: tuple[str, ...] = (),
    builtin: type | tuple[type, ...] | None = None,
    label: str | None = None,
) -> str:
    """Assert that ``err`` is exactly ``cls`` (and its builtin), names ``op`` and ``parts``, and
    points at the line tagged ``tag``; returns the message for further checks."""
    assert type(err) is cls, f"expected {cls.__name__}, got {type(err).__name__}: {err}"
    assert isinstance(err, gc.GraphcError)
    expected_builtin = builtin if builtin is not None else BUILTIN.get(cls)
    if expected_builtin is not None:
        assert isinstance(err, expected_builtin), (
            f"{type(err).__name__} should also be a {expected_builtin} so that `except` on the builtin works: {err}"
        )
    msg = str(err)
    if op is not None:
        assert err.op == op, f"expected the error to name op {op!r}, got {err.op!r}: {msg}"
        assert msg.startswith(f"{op}: "), msg
    for part in parts:
        assert part in msg, f"{part!r} missing from the message:\n{msg}"
    line = line_of(tag)
    assert err.location is not None, f"the error names no line of user code:\n{msg}"
    assert os.path.realpath(err.location.filename) == THIS_FILE, msg
    assert err.location.lineno == line, f"expected line {line}, got {err.location.lineno}:\n{msg}"
    assert f'test_errors.py", line {line}' in msg, msg
    # The offending source text is quoted, so the user sees the line without opening the file.
    code = _source_lines()[line - 1].split("# @")[0].strip()
    assert code in msg, f"the source line {code!r} is not quoted:\n{msg}"
    if label is not None:
        assert f"\n  {label} File" in msg, msg
    return msg


# ================================================================================================
# Building nodes: shape and dtype rules
# ================================================================================================


def test_add_vectors_that_do_not_broadcast():
    a = gc.vector("a", shape=(3,))
    b = gc.vector("b", shape=(4,))
    with pytest.raises(gc.ShapeError) as info:
        _ = a + b  # @add-broadcast
    msg = check(
        info.value,
        gc.ShapeError,
        tag="add-broadcast",
        op="add",
        parts=("(3,)", "(4,)", "broadcast", "float64(3,)", "float64(4,)"),
        label="created at",
    )
    assert "ValueError" not in msg  # a graphc message, not a numpy traceback


def test_elementwise_broadcast_failure_in_a_matrix_expression():
    x = gc.matrix("x", shape=(2, 3))
    y = gc.matrix("y", shape=(3, 2))
    with pytest.raises(gc.ShapeError) as info:
        _ = gc.maximum(x, y)  # @maximum-broadcast
    check(
        info.value,
        gc.ShapeError,
        tag="maximum-broadcast",
        op="maximum",
        parts=("(2, 3)", "(3, 2)", "float64(2, 3)", "float64(3, 2)"),
    )


def test_matmul_with_different_inner_dimensions():
    x = gc.matrix("x", shape=(2, 3))
    w = gc.matrix("w", shape=(4, 5), dtype="float32")
    with pytest.raises(gc.ShapeError) as info:
        _ = x @ w  # @matmul-inner
    check(
        info.value,
        gc.ShapeError,
        tag="matmul-inner",
        op="matmul",
        parts=("(2, 3)", "(4, 5)", "3 != 4", "float64(2, 3)", "float32(4, 5)"),
        label="created at",
    )


def test_matmul_of_a_scalar():
    s = gc.scalar("s")
    m = gc.matrix("m", shape=(2, 3))
    with pytest.raises(gc.ShapeError) as info:
        _ = s @ m  # @matmul-scalar
    check(
        info.value,
        gc.ShapeError,
        tag="matmul-scalar",
        op="matmul",
        parts=("at least 1 dimension", "use *", "float64()", "float64(2, 3)"),
    )


def test_matmul_of_bool_operands():
    p = gc.vector("p", dtype="bool", shape=(3,))
    q = gc.vector("q", dtype="bool", shape=(3,))
    with pytest.raises(gc.DTypeError) as info:
        _ = gc.dot(p, q)  # @matmul-bool
    check(info.value, gc.DTypeError, tag="matmul-bool", op="matmul", parts=("bool", "cast", "bool(3,)"))


def test_logical_and_of_float_inputs():
    a = gc.vector("a", shape=(3,))
    b = gc.vector("b", shape=(3,))
    with pytest.raises(gc.DTypeError) as info:
        _ = a & b  # @and-float
    check(
        info.value,
        gc.DTypeError,
        tag="and-float",
        op="logical_and",
        parts=("must be bool", "float64", "float64(3,)"),
        label="created at",
    )


def test_negating_a_bool_vector():
    mask = gc.vector("mask", dtype="bool", shape=(5,))
    with pytest.raises(gc.DTypeError) as info:
        _ = -mask  # @neg-bool
    check(info.value, gc.DTypeError, tag="neg-bool", op="neg", parts=("int or float", "got bool", "bool(5,)"))


def test_where_with_a_float_condition():
    x = gc.vector("x", shape=(3,))
    with pytest.raises(gc.DTypeError) as info:
        _ = gc.where(x, x, 0.0)  # @where-cond
    check(info.value, gc.DTypeError, tag="where-cond", op="where", parts=("input 1 must be bool", "float64(3,)"))


def test_elementwise_op_called_with_the_wrong_number_of_arguments():
    x = gc.vector("x")
    with pytest.raises(gc.ArityError) as info:
        _ = gc.add(x)  # @add-arity
    check(info.value, gc.ArityError, tag="add-arity", op="add", parts=("takes 2", "got 1"))


def test_reshape_to_a_different_size():
    m = gc.matrix("m", shape=(2, 3))
    with pytest.raises(gc.ShapeError) as info:
        _ = m.reshape((4, 2))  # @reshape-size
    check(
        info.value,
        gc.ShapeError,
        tag="reshape-size",
        op="reshape",
        parts=("(2, 3)", "size 6", "(4, 2)", "float64(2, 3)"),
        label="created at",
    )


def test_reshape_with_two_unknown_dimensions():
    m = gc.matrix("m", shape=(2, 6))
    with pytest.raises(gc.ShapeError) as info:
        _ = gc.reshape(m, (-1, 3, -1))  # @reshape-two-minus-one
    check(info.value, gc.ShapeError, tag="reshape-two-minus-one", op="reshape", parts=("-1", "(-1, 3, -1)"))


def test_concatenate_with_mismatched_non_axis_dimensions():
    a = gc.matrix("a", shape=(2, 3))
    b = gc.matrix("b", shape=(4, 5), dtype="float32")
    with pytest.raises(gc.ShapeError) as info:
        _ = gc.concatenate([a, b], axis=0)  # @concat-dims
    check(
        info.value,
        gc.ShapeError,
        tag="concat-dims",
        op="concatenate",
        parts=("axis 1", "(2, 3)", "(4, 5)", "float64(2, 3)", "float32(4, 5)"),
        label="created at",
    )


def test_concatenate_of_a_single_variable_instead_of_a_list():
    a = gc.matrix("a", shape=(2, 3))
    with pytest.raises(gc.GraphcError) as info:
        _ = gc.concatenate(a)  # @concat-single
    # Passing the wrong kind of argument is a TypeError in Python (torch.cat(t) raises one too).
    check(info.value, type(info.value), tag="concat-single", op="concatenate", parts=("list",), builtin=TypeError)


def test_stack_of_different_shapes():
    a = gc.vector("a", shape=(3,))
    b = gc.vector("b", shape=(4,))
    with pytest.raises(gc.ShapeError) as info:
        _ = gc.stack([a, b])  # @stack-shapes
    check(info.value, gc.ShapeError, tag="stack-shapes", op="stack", parts=("(3,)", "(4,)", "float64(4,)"))


def test_sum_over_an_axis_the_matrix_does_not_have():
    m = gc.matrix("m", shape=(2, 3))
    with pytest.raises(gc.ShapeError) as info:
        _ = m.sum(axis=2)  # @sum-axis
    # The requirement: the error names the shapes and dtypes involved, here the input's.
    check(info.value, gc.ShapeError, tag="sum-axis", op="sum", parts=("axis 2", "out of range", "(2, 3)", "float64"))


def test_softmax_over_an_axis_the_vector_does_not_have():
    v = gc.vector("v", shape=(5,), dtype="float32")
    with pytest.raises(gc.ShapeError) as info:
        _ = gc.softmax(v, axis=1)  # @softmax-axis
    check(info.value, gc.ShapeError, tag="softmax-axis", op="softmax", parts=("axis 1", "out of range", "float32(5,)"))


def test_conv2d_with_a_channel_mismatch():
    x = gc.tensor("x", shape=(None, 3, 8, 8))
    w = gc.tensor("w", shape=(6, 4, 3, 3))
    with pytest.raises(gc.ShapeError) as info:
        _ = gc.conv2d(x, w, padding=1)  # @conv-channels
    check(
        info.value,
        gc.ShapeError,
        tag="conv-channels",
        op="conv2d",
        parts=("3 channels", "expects 4", "float64(?, 3, 8, 8)", "float64(6, 4, 3, 3)"),
        label="created at",
    )


def test_conv2d_of_a_3d_input():
    x = gc.tensor("x", shape=(3, 8, 8))
    w = gc.tensor("w", shape=(6, 3, 3, 3))
    with pytest.raises(gc.ShapeError) as info:
        _ = gc.conv2d(x, w)  # @conv-3d
    check(
        info.value,
        gc.ShapeError,
        tag="conv-3d",
        op="conv2d",
        parts=("(N, C, H, W)", "3-d x", "float64(3, 8, 8)", "float64(6, 3, 3, 3)"),
    )


def test_conv2d_of_int_images():
    x = gc.tensor("x", shape=(1, 3, 8, 8), dtype="int64")
    w = gc.tensor("w", shape=(6, 3, 3, 3))
    with pytest.raises(gc.DTypeError) as info:
        _ = gc.conv2d(x, w)  # @conv-int
    check(info.value, gc.DTypeError, tag="conv-int", op="conv2d", parts=("float", "int64", "int64(1, 3, 8, 8)"))


def test_max_pool_window_larger_than_the_input():
    x = gc.tensor("x", shape=(1, 1, 2, 2))
    with pytest.raises(gc.ShapeError) as info:
        _ = gc.max_pool2d(x, 3)  # @pool-window
    check(info.value, gc.ShapeError, tag="pool-window", op="max_pool2d", parts=("(3, 3)", "(2, 2)"))


def test_index_out_of_bounds_on_a_known_dimension():
    v = gc.vector("v", shape=(3,))
    with pytest.raises(gc.ShapeError) as info:
        _ = v[5]  # @index-oob
    check(
        info.value,
        gc.ShapeError,
        tag="index-oob",
        op="getitem",
        parts=("index 5", "out of bounds", "length 3", "float64(3,)"),
        label="created at",
    )


def test_too_many_indices():
    v = gc.vector("v", shape=(3,))
    with pytest.raises(gc.ShapeError) as info:
        _ = v[0, 1]  # @index-too-many
    check(info.value, gc.ShapeError, tag="index-too-many", op="getitem", parts=("too many indices", "float64(3,)"))


def test_boolean_mask_indexing():
    v = gc.vector("v", shape=(3,))
    with pytest.raises(gc.GraphcError) as info:
        _ = v[v > 0]  # @index-mask
    # Not a supported kind of index: it must still be catchable as a builtin error, like every other.
    check(
        info.value,
        type(info.value),
        tag="index-mask",
        op="getitem",
        parts=("boolean mask", "gc.where"),
        builtin=(TypeError, ValueError, IndexError),
    )


def test_float_index_array():
    v = gc.vector("v", shape=(3,))
    with pytest.raises(gc.IndexingError) as info:
        _ = v[np.array([0.0, 2.0])]  # @index-float
    check(info.value, gc.IndexingError, tag="index-float", op="getitem", parts=("int64", "float64"))


def test_one_hot_of_float_class_indices():
    labels = gc.vector("labels", shape=(4,))
    with pytest.raises(gc.DTypeError) as info:
        _ = gc.one_hot(labels, 10)  # @one-hot-float
    check(info.value, gc.DTypeError, tag="one-hot-float", op="one_hot", parts=("int64", "float64(4,)"))


def test_broadcast_to_an_incompatible_shape():
    v = gc.vector("v", shape=(3,))
    with pytest.raises(gc.ShapeError) as info:
        _ = gc.broadcast_to(v, (2, 4))  # @broadcast-to
    check(info.value, gc.ShapeError, tag="broadcast-to", op="broadcast_to", parts=("(3,)", "(2, 4)", "float64(3,)"))


def test_the_error_points_at_the_users_helper_not_at_graphc():
    def layer(x, w):
        return x @ w  # @helper-line

    x = gc.matrix("x", shape=(8, 3))
    w = gc.matrix("w", shape=(4, 2))
    with pytest.raises(gc.ShapeError) as info:
        layer(x, w)
    check(info.value, gc.ShapeError, tag="helper-line", op="matmul", parts=("(8, 3)", "(4, 2)"))


# ================================================================================================
# Declaring inputs and shared variables
# ================================================================================================


@pytest.mark.parametrize("dtype", ["float16", "complex128", "int32", "uint8"])
def test_unsupported_dtype_for_an_input(dtype):
    with pytest.raises(gc.DTypeError) as info:
        gc.vector("x", dtype=dtype)  # @dtype-unsupported
    check(
        info.value,
        gc.DTypeError,
        tag="dtype-unsupported",
        parts=(repr(dtype), "bool", "int64", "float32", "float64"),
    )


def test_misspelt_dtype():
    with pytest.raises(gc.DTypeError) as info:
        gc.matrix("x", dtype="flaot32")  # @dtype-typo
    check(info.value, gc.DTypeError, tag="dtype-typo", parts=("'flaot32'", "float32"))


def test_unsupported_dtype_for_a_shared_variable():
    with pytest.raises(gc.DTypeError) as info:
        gc.shared(np.zeros(3, dtype=np.complex128), name="z")  # @shared-complex
    check(info.value, gc.DTypeError, tag="shared-complex", parts=("complex128", "float64"))


def test_input_shape_of_the_wrong_rank():
    with pytest.raises(gc.ShapeError) as info:
        gc.matrix("m", shape=(3,))  # @matrix-rank
    check(info.value, gc.ShapeError, tag="matrix-rank", parts=("gc.matrix", "2 dimension", "(3,)", "gc.tensor"))


def test_tensor_without_a_shape():
    with pytest.raises(gc.ShapeError) as info:
        gc.tensor("images")  # @tensor-no-shape
    check(info.value, gc.ShapeError, tag="tensor-no-shape", parts=("gc.tensor", "shape=", "None"))


# ================================================================================================
# Using a symbolic variable as if it were a value
# ================================================================================================


def test_truth_value_of_a_variable():
    x = gc.scalar("x")
    with pytest.raises(gc.GraphcError) as info:
        if x > 0:  # @truth-value
            pass
    # Theano and JAX raise a TypeError here; `except TypeError` around a Python `if` must work.
    check(info.value, type(info.value), tag="truth-value", parts=("truth value", "gc.where"), builtin=TypeError)


def test_iterating_over_a_variable():
    v = gc.vector("v", shape=(3,))
    with pytest.raises(gc.GraphcError) as info:
        for _ in v:  # @iterate
            pass
    # Python reports a non-iterable object with a TypeError, and code that probes iterability
    # (``np.iterable``, ``try: iter(x) except TypeError``) relies on that.
    check(info.value, type(info.value), tag="iterate", parts=("iterated", "x[i]"), builtin=TypeError)
    assert np.iterable(v) is False


def test_gc_constant_of_a_symbolic_variable():
    v = gc.vector("v")
    with pytest.raises(gc.GraphcError) as info:
        gc.constant(v)  # @constant-of-variable
    check(info.value, type(info.value), tag="constant-of-variable", parts=("needs a value",), builtin=TypeError)


# ================================================================================================
# Compiling: inputs, outputs and updates
# ================================================================================================


def test_output_needs_an_input_missing_from_the_inputs_list():
    a = gc.vector("a", shape=(3,))
    bias = gc.vector("bias", shape=(3,))  # @bias-created
    y = a + bias
    with pytest.raises(gc.GraphError) as info:
        gc.function([a], y)  # @missing-input
    msg = check(info.value, gc.GraphError, tag="missing-input", parts=("missing from the inputs list", "bias"))
    # ...and it says where the forgotten input was made.
    assert f'test_errors.py", line {line_of("bias-created")}' in msg, msg
    assert "'a'" not in msg and "a (created" not in msg


def test_update_needs_an_input_missing_from_the_inputs_list():
    x = gc.vector("x", shape=(3,))
    lr = gc.scalar("lr")  # @lr-created
    w = gc.shared(np.zeros(3), name="w")
    with pytest.raises(gc.GraphError) as info:
        gc.function([x], (w * x).sum(), updates={w: w - lr * x})  # @missing-update-input
    msg = check(info.value, gc.GraphError, tag="missing-update-input", parts=("lr",))
    assert f"line {line_of('lr-created')}" in msg, msg


def test_update_with_the_wrong_dtype():
    x = gc.vector("x", shape=(3,))
    w = gc.shared(np.zeros(3), name="w")
    with pytest.raises(gc.DTypeError) as info:
        gc.function([x], x, updates={w: (w + x).astype("float32")})  # @update-dtype
    check(info.value, gc.DTypeError, tag="update-dtype", parts=("w", "float32", "float64", ".astype('float64')"))


def test_update_with_the_wrong_shape():
    x = gc.vector("x", shape=(3,))
    w = gc.shared(np.zeros(3), name="w")
    with pytest.raises(gc.ShapeError) as info:
        gc.function([x], x, updates={w: (w * x).sum()})  # @update-shape
    check(info.value, gc.ShapeError, tag="update-shape", parts=("update of w", "()", "(3,)"))


def test_update_whose_target_is_not_shared():
    x = gc.vector("x", shape=(3,))
    with pytest.raises(gc.GraphError) as info:
        gc.function([x], x.sum(), updates={x: x + 1})  # @update-not-shared
    check(info.value, gc.GraphError, tag="update-not-shared", parts=("shared variables", "gc.shared", "x"))


def test_the_same_shared_variable_updated_twice():
    w = gc.shared(np.zeros(3), name="w")
    with pytest.raises(gc.GraphError) as info:
        gc.function([], w.sum(), updates=[(w, w + 1), (w, w * 2)])  # @update-twice
    check(info.value, gc.GraphError, tag="update-twice", parts=("w", "twice"))


def test_shared_variable_passed_as_an_input():
    x = gc.vector("x", shape=(3,))
    w = gc.shared(np.ones(3), name="w")
    with pytest.raises(gc.GraphError) as info:
        gc.function([x, w], x * w)  # @shared-as-input
    check(info.value, gc.GraphError, tag="shared-as-input", parts=("shared variable w", "cannot be an input"))


def test_an_expression_listed_as_an_input():
    x = gc.vector("x", shape=(3,))
    with pytest.raises(gc.GraphError) as info:
        gc.function([x * 2], x)  # @expression-as-input
    check(info.value, gc.GraphError, tag="expression-as-input", parts=("symbolic inputs", "gc.vector"))


def test_an_input_listed_twice():
    x = gc.vector("x", shape=(3,))
    with pytest.raises(gc.GraphError) as info:
        gc.function([x, x], x)  # @input-twice
    check(info.value, gc.GraphError, tag="input-twice", parts=("twice",))


def test_unknown_backend():
    x = gc.vector("x")
    with pytest.raises(gc.GraphError) as info:
        gc.function([x], x, backend="opencl")  # @backend
    check(info.value, gc.GraphError, tag="backend", parts=("'opencl'", "numpy"))


# ================================================================================================
# Calling a compiled function
# ================================================================================================


def _two_input_function():
    a = gc.vector("a", shape=(3,))
    b = gc.vector("b", shape=(4,))
    return gc.function([a, b], a.sum() + b.sum())


def test_call_with_too_few_arguments():
    f = _two_input_function()
    with pytest.raises(gc.ArityError) as info:
        f(np.ones(3))  # @too-few
    check(info.value, gc.ArityError, tag="too-few", parts=("missing argument", "b", "a: float64(3,)"))


def test_call_with_too_many_arguments():
    f = _two_input_function()
    with pytest.raises(gc.ArityError) as info:
        f(np.ones(3), np.ones(4), np.ones(4))  # @too-many
    check(info.value, gc.ArityError, tag="too-many", parts=("takes 2 arguments", "got 3", "b: float64(4,)"))


def test_call_with_an_unknown_keyword():
    f = _two_input_function()
    with pytest.raises(gc.ArityError) as info:
        f(np.ones(3), c=np.ones(4))  # @unknown-keyword
    check(info.value, gc.ArityError, tag="unknown-keyword", parts=("no input named 'c'", "a: float64(3,)"))


def test_call_with_an_argument_given_twice():
    f = _two_input_function()
    with pytest.raises(gc.ArityError) as info:
        f(np.ones(3), np.ones(4), a=np.ones(3))  # @given-twice
    check(info.value, gc.ArityError, tag="given-twice", parts=("'a'", "twice"))


def test_call_with_float64_data_for_a_float32_input():
    x = gc.vector("x", dtype="float32")
    f = gc.function([x], x * 2)
    with pytest.raises(gc.DTypeError) as info:
        f(np.ones(3))  # @float64-for-float32
    check(
        info.value,
        gc.DTypeError,
        tag="float64-for-float32",
        parts=("argument 1", "x", "float32", "float64", "astype(np.float32)"),
    )


def test_call_with_a_python_float_for_an_int_input():
    k = gc.scalar("k", dtype="int64")
    f = gc.function([k], k + 1)
    with pytest.raises(gc.DTypeError) as info:
        f(1.5)  # @float-for-int
    check(info.value, gc.DTypeError, tag="float-for-int", parts=("argument 1", "k", "int64", "float"))


def test_call_with_the_wrong_number_of_dimensions():
    x = gc.vector("x", dtype="float32")
    f = gc.function([x], x * 2)
    with pytest.raises(gc.ShapeError) as info:
        f(np.ones((3, 2), dtype=np.float32))  # @wrong-ndim
    check(info.value, gc.ShapeError, tag="wrong-ndim", parts=("argument 1", "x", "(?,)", "(3, 2)"))


def test_call_with_the_wrong_static_dimension():
    x = gc.matrix("x", shape=(None, 784))
    f = gc.function([x], x.sum(axis=1))
    with pytest.raises(gc.ShapeError) as info:
        f(np.ones((2, 756)))  # @wrong-dim
    check(info.value, gc.ShapeError, tag="wrong-dim", parts=("argument 1", "x", "(?, 784)", "(2, 756)"))


def test_call_with_a_ragged_list():
    x = gc.matrix("x")
    f = gc.function([x], x.sum())
    with pytest.raises(gc.ShapeError) as info:
        f([[1.0, 2.0], [3.0]])  # @ragged
    check(info.value, gc.ShapeError, tag="ragged", parts=("argument 1", "x"))


def test_call_with_a_symbolic_variable():
    x = gc.vector("x")
    f = gc.function([x], x * 2)
    with pytest.raises(gc.DTypeError) as info:
        f(x)  # @symbolic-argument
    check(info.value, gc.DTypeError, tag="symbolic-argument", parts=("argument 1", "needs a value", "symbolic"))


def test_call_with_a_string():
    x = gc.vector("x")
    f = gc.function([x], x * 2)
    with pytest.raises(gc.DTypeError) as info:
        f("1, 2, 3")  # @string-argument
    check(info.value, gc.DTypeError, tag="string-argument", parts=("argument 1", "float64", "str"))


class _Spy(gc.Op):
    """The identity, recording every evaluation: shows whether any computation happened."""

    name = "spy"
    nin = 1

    def __init__(self):
        self.calls = 0

    def infer(self, t):
        return [t]

    def perform(self, x):
        self.calls += 1
        return (x.copy(),)


@pytest.mark.parametrize(
    "args, kwargs, error",
    [
        pytest.param((np.ones(4),), {}, gc.ShapeError, id="wrong-shape"),
        pytest.param((np.ones(3, dtype=np.float32), np.ones(3)), {}, gc.ArityError, id="too-many"),
        pytest.param((), {}, gc.ArityError, id="too-few"),
        pytest.param((), {"y": np.ones(3)}, gc.ArityError, id="unknown-keyword"),
        pytest.param((np.ones((1, 3)),), {}, gc.ShapeError, id="wrong-ndim"),
        pytest.param((np.arange(3.0).astype(np.complex128),), {}, gc.DTypeError, id="wrong-dtype"),
    ],
)
def test_call_time_errors_happen_before_any_computation(args, kwargs, error):
    spy = _Spy()
    x = gc.vector("x", shape=(3,))
    count = gc.shared(np.int64(0), name="count")
    total = gc.shared(np.zeros(3), name="total")
    f = gc.function([x], spy(x).sum(), updates={count: count + 1, total: total + spy(x)})
    assert f(np.ones(3)) == 3.0
    assert spy.calls == 1 and count.get_value() == 1
    with pytest.raises(error):
        f(*args, **kwargs)
    assert spy.calls == 1, "the graph ran although the arguments were rejected"
    assert count.get_value() == 1
    np.testing.assert_array_equal(total.get_value(), np.ones(3))


# ================================================================================================
# Shared variables
# ================================================================================================


def test_set_value_with_the_wrong_shape():
    w = gc.shared(np.zeros((3, 2)), name="w")
    with pytest.raises(gc.ShapeError) as info:
        w.set_value(np.ones((2, 3)))  # @set-value-shape
    check(info.value, gc.ShapeError, tag="set-value-shape", parts=("shared variable w", "(3, 2)", "(2, 3)"))
    np.testing.assert_array_equal(w.get_value(), np.zeros((3, 2)))


def test_set_value_with_the_wrong_dtype():
    w = gc.shared(np.zeros(3, dtype=np.float32), name="w")
    with pytest.raises(gc.DTypeError) as info:
        w.set_value(np.ones(3))  # @set-value-dtype
    check(info.value, gc.DTypeError, tag="set-value-dtype", parts=("shared variable w", "float32", "float64", "astype"))
    assert w.get_value().dtype == np.float32
    np.testing.assert_array_equal(w.get_value(), np.zeros(3))


# ================================================================================================
# Failures at run time: reported at the line that built the failing node
# ================================================================================================


def test_matmul_of_unknown_shapes_that_do_not_fit_at_run_time():
    x = gc.matrix("x")
    y = gc.matrix("y")
    z = x @ y  # @runtime-matmul
    f = gc.function([x, y], z.sum())
    with pytest.raises(gc.EvaluationError) as info:
        f(np.ones((2, 3)), np.ones((4, 5)))
    check(
        info.value,
        gc.EvaluationError,
        tag="runtime-matmul",
        op="matmul",
        parts=("float64(2, 3)", "float64(4, 5)"),
        label="created at",
    )
    assert isinstance(info.value.__cause__, ValueError)  # numpy's own error is kept as the cause


def test_add_of_unknown_lengths_that_do_not_broadcast_at_run_time():
    a = gc.vector("a")
    b = gc.vector("b")
    c = gc.exp(a) + b  # @runtime-add
    f = gc.function([a, b], c)
    with pytest.raises(gc.EvaluationError) as info:
        f(np.ones(3), np.ones(4))
    check(info.value, gc.EvaluationError, tag="runtime-add", op="add", parts=("float64(3,)", "float64(4,)"))


def test_unknown_length_that_is_1_at_run_time_does_not_broadcast():
    """A None dimension never broadcasts (so gradients can sum back from static types); the
    message says to declare the dimension as 1."""
    x = gc.matrix("x")
    row = gc.matrix("row")
    y = x + row  # @runtime-unknown-broadcast
    f = gc.function([x, row], y)
    with pytest.raises(gc.EvaluationError) as info:
        f(np.ones((3, 2)), np.ones((1, 2)))
    check(
        info.value,
        gc.EvaluationError,
        tag="runtime-unknown-broadcast",
        op="add",
        parts=("input 2 has length 1 in axis 0", "float64(?, ?)", "declared as 1"),
        label="created at",
    )
    declared = gc.matrix("declared", shape=(1, None))
    np.testing.assert_array_equal(gc.function([x, declared], x + declared)(np.ones((3, 2)), np.ones((1, 2))), 2.0)


def test_one_hot_with_an_out_of_range_class_at_run_time():
    labels = gc.vector("labels", dtype="int64")
    targets = gc.one_hot(labels, 3)  # @runtime-one-hot
    f = gc.function([labels], targets)
    with pytest.raises(gc.EvaluationError) as info:
        f(np.array([0, 2, 5]))
    check(
        info.value,
        gc.EvaluationError,
        tag="runtime-one-hot",
        op="one_hot",
        parts=("class index 5", "3 classes", "int64(3,)"),
        label="created at",
    )


def test_runtime_failure_applies_no_update():
    x = gc.matrix("x")
    y = gc.matrix("y")
    steps = gc.shared(np.int64(0), name="steps")
    f = gc.function([x, y], (x @ y).sum(), updates={steps: steps + 1})
    f(np.ones((2, 3)), np.ones((3, 2)))
    assert steps.get_value() == 1
    with pytest.raises(gc.EvaluationError):
        f(np.ones((2, 3)), np.ones((4, 2)))
    assert steps.get_value() == 1


def test_every_graphc_error_is_a_graphc_error_and_the_documented_builtin():
    for cls, builtin in BUILTIN.items():
        assert issubclass(cls, gc.GraphcError)
        assert issubclass(cls, builtin)
    assert issubclass(gc.GraphcError, Exception)
