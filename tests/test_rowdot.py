"""The vector-lane row dot product of the row-streaming kernel keeps the scalar lanes' bits."""

import numba
import numpy as np
import pytest

import graphc as gc
from graphc.backends.numba.rowdot import row_dot


@numba.njit
def all_rows(m, v):
    out = np.empty(m.shape[0])
    for i in range(m.shape[0]):
        out[i] = row_dot(m, i, v)
    return out


def lanes_reference(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Lane k sums the products at columns j % 8 == k (products in the arrays' dtype, sums in
    float64), the lanes pair up as ((0+1)+(2+3))+((4+5)+(6+7)), then the columns past the last
    whole group of 8 are added one by one."""
    n, d = m.shape
    whole = d - d % 8
    products = (m * v).astype(np.float64)
    out = np.empty(n)
    for i in range(n):
        lanes = [0.0] * 8
        for j in range(whole):
            lanes[j % 8] += products[i, j]
        while len(lanes) > 1:
            lanes = [lanes[k] + lanes[k + 1] for k in range(0, len(lanes), 2)]
        tail = 0.0
        for j in range(whole, d):
            tail += products[i, j]
        out[i] = lanes[0] + tail
    return out


DTYPES = [("float32", "float32"), ("float64", "float64"), ("float32", "float64"), ("float64", "float32")]


@pytest.mark.parametrize("dtypes", DTYPES)
@pytest.mark.parametrize("d", [0, 3, 8, 13, 100])
def test_row_dot_has_the_scalar_lanes_bits(dtypes, d):
    """Products in the arrays' dtype, or in float64 when they differ (NumPy's promotion, and
    numba's for scalars)."""
    rng = np.random.default_rng(d)
    m = (rng.standard_normal((7, d)) * 10.0 ** rng.integers(-3, 4, size=(7, d))).astype(dtypes[0])
    v = rng.standard_normal(d).astype(dtypes[1])
    got = all_rows(m, v)
    np.testing.assert_array_equal(got, lanes_reference(m, v))
    single = dtypes == ("float32", "float32")
    np.testing.assert_allclose(
        got, (m.astype(np.float64) @ v.astype(np.float64)), rtol=1e-5 if single else 1e-12, atol=1e-3
    )


@pytest.mark.parametrize("dtypes", DTYPES[2:])
def test_a_regression_gradient_streams_a_matrix_of_another_dtype(dtypes):
    """float32 data with float64 weights (or the reverse): the product promotes, and the matrix
    is still streamed once."""
    rng = np.random.default_rng(8)
    X = gc.matrix("X", shape=(None, 13), dtype=dtypes[0])
    y = gc.vector("y")
    w = gc.shared(rng.normal(size=13).astype(dtypes[1]), name="w")
    residual = gc.sigmoid(X @ w + 0.5) - y
    outputs = [X.T @ residual, gc.mean(residual)]
    values = rng.normal(size=(50, 13)).astype(dtypes[0]), (rng.random(50) > 0.5).astype(np.float64)
    f = gc.function([X, y], outputs, backend="numba")
    assert [k.name for k in f.kernels] == ["rows"]
    for got, want in zip(f(*values), gc.function([X, y], outputs, backend="numpy")(*values)):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_row_dot_carries_nan_and_inf():
    m = np.array([[1.0, np.nan] + [0.0] * 8, [np.inf] + [1.0] * 9, [np.inf, -np.inf] + [1.0] * 8])
    got = all_rows(m, np.ones(10))
    assert np.isnan(got[0]) and got[1] == np.inf and np.isnan(got[2])


def test_row_dot_refuses_views_it_would_misread():
    m = np.ones((4, 16))
    with pytest.raises(numba.errors.TypingError):
        all_rows(m[:, ::2], np.ones(8))  # rows not contiguous
    with pytest.raises(numba.errors.TypingError):
        all_rows(np.ones((4, 16), np.int64), np.ones(16))  # not floats
