"""Every op of graphc against plain numpy/scipy, on random inputs, with broadcasting, in float32 and float64.

Each expected value is written independently of graphc (numpy, scipy or a naive loop), and each
result is checked three ways: its value, its dtype against the variable's static dtype, and that
dtype against what NumPy 2 promotion gives. ``test_every_op_is_covered`` fails when an op (an
``Op`` subclass in ``graphc.ops``, a row of ``ELEMENTWISE``, a reduction kind, ...) has no test
here.
"""

from __future__ import annotations

import itertools
import warnings
import zlib
from typing import NamedTuple

import numpy as np
import pytest
import scipy.special
from helpers import discovered_ops
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphc as gc
import graphc.ops
from graphc.ops.reduction import KINDS
from graphc.optimize import fuse

FLOATS = ("float32", "float64")
DTYPES = ("bool", "int64", "float32", "float64")
KIND_DTYPES = {"bool": ("bool",), "int": ("int64",), "float": FLOATS}
#: Tolerances of one op (rtol, also used as atol for results near 0): float32 within ~8 ulps.
RTOL = {"float32": 1e-6, "float64": 1e-12}
#: The Numba backend against the numpy backend.
BACKEND_RTOL = {"float32": 1e-5, "float64": 1e-12}
#: Tolerances of ops that accumulate (matmul, conv, pooling): the summation order is the backend's.
ACCUM_RTOL = {"float32": 1e-5, "float64": 1e-12}


# ----- helpers ----------------------------------------------------------------------------------
def rng_for(*key) -> np.random.Generator:
    """A generator seeded by the test's parameters: reproducible, and the same in every xdist worker."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def symbolic(name: str, value: np.ndarray, known: bool = True) -> gc.Variable:
    """An input of ``value``'s dtype and rank; its shape is static when ``known``; otherwise every
    dimension is ``None`` except those of length 1, which must be declared to broadcast."""
    value = np.asarray(value)
    shape = value.shape if known else tuple(1 if d == 1 else None for d in value.shape)
    return gc.tensor(name, shape=shape, dtype=value.dtype.name)


def evaluate(outputs, *pairs):
    """Compile ``outputs`` as a function of the inputs in ``pairs`` ((variable, value) each) and call it.

    Every result must match its variable's static type: same dtype, and a shape its static shape
    accepts.
    """
    f = gc.function([v for v, _ in pairs], outputs, backend="numpy")
    results = f(*[value for _, value in pairs])
    single = isinstance(outputs, gc.Variable)
    for var, result in zip([outputs] if single else outputs, [results] if single else results):
        assert isinstance(result, np.ndarray)
        assert result.dtype.name == var.dtype, f"result is {result.dtype}, static type is {var.type}"
        assert var.type.accepts_shape(result.shape), f"result shape {result.shape}, static type {var.type}"
    # The same case compiled to Numba kernels gives the numpy backend's results.
    compiled = gc.function([v for v, _ in pairs], outputs, backend="numba")(*[value for _, value in pairs])
    for fast, slow in zip([compiled] if single else compiled, [results] if single else results):
        assert fast.dtype == slow.dtype and fast.shape == slow.shape
        tol = BACKEND_RTOL.get(slow.dtype.name)
        if tol is None:
            np.testing.assert_array_equal(fast, slow)
        else:
            np.testing.assert_allclose(fast, slow, rtol=tol, atol=tol, equal_nan=True)
    return results


def check(actual: np.ndarray, expected, dtype: str | None = None, rtol: dict = RTOL) -> None:
    """``actual`` has ``dtype`` (``expected``'s by default), ``expected``'s shape, and its values."""
    expected = np.asarray(expected)
    dtype = dtype or expected.dtype.name
    assert actual.dtype.name == dtype, f"dtype {actual.dtype}, expected {dtype}"
    assert actual.shape == expected.shape, f"shape {actual.shape}, expected {expected.shape}"
    if dtype in rtol:
        tol = rtol[dtype]
        np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)
    else:
        np.testing.assert_array_equal(actual, expected)


def shape_id(shape) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


# ----- elementwise: one independent reference per row --------------------------------------------
class Spec(NamedTuple):
    ref: object  # the numpy/scipy reference
    domains: tuple[str, ...]  # where each input is drawn from (see DOMAINS)
    float_fn: bool = False  # a floating-point function: the reference runs in float64


def _gelu(x):
    return x * 0.5 * (1 + scipy.special.erf(x / np.sqrt(2)))


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _cast(dtype):
    return lambda x: x.astype(dtype)


SPECS: dict[str, Spec] = {
    "add": Spec(lambda x, y: x + y, ("any", "any")),
    "sub": Spec(lambda x, y: x - y, ("any", "any")),
    "mul": Spec(lambda x, y: x * y, ("any", "any")),
    "div": Spec(lambda x, y: x / y, ("any", "nonzero")),
    "pow": Spec(lambda x, y: x**y, ("base", "expo")),
    "neg": Spec(lambda x: -x, ("any",)),
    "maximum": Spec(np.maximum, ("grid", "grid")),
    "minimum": Spec(np.minimum, ("grid", "grid")),
    "abs": Spec(np.abs, ("any",)),
    "sign": Spec(np.sign, ("grid",)),
    "square": Spec(lambda x: x * x, ("any",)),
    "clip": Spec(np.clip, ("any", "lo", "hi")),
    "where": Spec(np.where, ("cond", "any", "any")),
    "exp": Spec(np.exp, ("any",), True),
    "log": Spec(np.log, ("pos",), True),
    "log1p": Spec(np.log1p, ("gtm1",), True),
    "expm1": Spec(np.expm1, ("any",), True),
    "sin": Spec(np.sin, ("any",), True),
    "cos": Spec(np.cos, ("any",), True),
    "tan": Spec(np.tan, ("trig",), True),
    "tanh": Spec(np.tanh, ("any",), True),
    "sqrt": Spec(np.sqrt, ("pos",), True),
    "erf": Spec(scipy.special.erf, ("any",), True),
    "sigmoid": Spec(_sigmoid, ("any",), True),
    "relu": Spec(lambda x: np.maximum(x, 0), ("any",)),
    "softplus": Spec(lambda x: np.logaddexp(0, x), ("any",), True),
    "gelu": Spec(_gelu, ("any",), True),
    "stop_gradient": Spec(lambda x: x, ("any",)),
    "lt": Spec(lambda x, y: x < y, ("grid", "grid")),
    "le": Spec(lambda x, y: x <= y, ("grid", "grid")),
    "gt": Spec(lambda x, y: x > y, ("grid", "grid")),
    "ge": Spec(lambda x, y: x >= y, ("grid", "grid")),
    "eq": Spec(np.equal, ("grid", "grid")),
    "neq": Spec(np.not_equal, ("grid", "grid")),
    "logical_and": Spec(lambda x, y: x & y, ("cond", "cond")),
    "logical_or": Spec(lambda x, y: x | y, ("cond", "cond")),
    "logical_not": Spec(lambda x: ~x, ("cond",)),
    **{f"cast_{d}": Spec(_cast(d), ("any",)) for d in DTYPES},
}

#: The input kinds docs/ops.md gives each elementwise op.
DOCUMENTED_KINDS = {
    **dict.fromkeys(["add", "mul", "maximum", "minimum", "lt", "le", "gt", "ge", "eq", "neq"], "bool int float"),
    **dict.fromkeys(["sub", "neg", "pow", "abs", "sign", "square", "relu", "div"], "int float"),
    **dict.fromkeys(
        ["exp", "log", "log1p", "expm1", "sin", "cos", "tan", "tanh", "sqrt", "erf", "sigmoid", "softplus", "gelu"],
        "bool int float",
    ),
    "clip": ("int float",) * 3,
    "where": ("bool", "bool int float", "bool int float"),
    **dict.fromkeys(["logical_and", "logical_or", "logical_not"], "bool"),
    "stop_gradient": "bool int float",
    **{f"cast_{d}": "bool int float" for d in DTYPES},
}

# domain -> (float range, int range, bools)
DOMAINS = {
    "any": ((-3.0, 3.0), (-4, 4), "random"),
    "grid": (None, (-2, 2), "random"),  # integer-valued, so comparisons, max and min see ties
    "pos": ((0.1, 4.0), (1, 4), "true"),
    "gtm1": ((-0.9, 4.0), (0, 4), "random"),
    "trig": ((-1.2, 1.2), (-1, 1), "random"),
    "nonzero": ((0.5, 3.0), (1, 4), "true"),  # with a random sign
    "base": ((0.5, 2.0), (1, 4), "true"),
    "expo": ((-2.0, 2.0), (0, 3), "random"),
    "lo": ((-2.0, -0.5), (-3, -1), "false"),
    "hi": ((0.5, 2.0), (1, 3), "true"),
    "cond": (None, None, "random"),
}


def draw(rng: np.random.Generator, domain: str, dtype: str, shape=()) -> np.ndarray:
    """Random values of ``dtype`` and ``shape`` inside ``domain``."""
    floats, ints, bools = DOMAINS[domain]
    if dtype == "bool":
        return {"random": rng.random(shape) < 0.5, "true": np.ones(shape, bool), "false": np.zeros(shape, bool)}[bools]
    if dtype == "int64" or floats is None:
        values = rng.integers(ints[0], ints[1] + 1, shape)
    else:
        values = rng.uniform(floats[0], floats[1], shape)
    if domain == "nonzero":
        values = values * rng.choice([-1, 1], shape)
    return np.asarray(values, dtype=dtype)


def numpy_float_dtype(dtype: str) -> str:
    """The dtype NumPy gives a floating-point function (np.exp) of ``dtype``.

    NumPy computes bools in float16, which graphc does not have: there graphc documents float64,
    the dtype NumPy gives ints.
    """
    out = np.exp(np.zeros(0, dtype)).dtype.name
    return "float64" if out == "float16" else out


def accepted(row) -> list[tuple[str, ...]]:
    """Every combination of input dtypes the row's ``accepts`` field allows."""
    accepts = row.accepts if isinstance(row.accepts, tuple) else (row.accepts,) * row.nin
    per_input = [[d for kind in a.split() for d in KIND_DTYPES[kind]] for a in accepts]
    return list(itertools.product(*per_input))


def elementwise_expected(row, arrays: list[np.ndarray]) -> tuple[np.ndarray, str]:
    """The reference value of ``row`` on ``arrays`` and the dtype NumPy 2 gives it."""
    spec = SPECS[row.name]
    if spec.float_fn:
        dtype = numpy_float_dtype(np.result_type(*arrays).name)
        with np.errstate(all="ignore"):
            value = spec.ref(*[a.astype("float64") for a in arrays])
        return np.asarray(value), dtype
    value = np.asarray(spec.ref(*arrays))
    return value, value.dtype.name


ROW_DTYPES = [
    pytest.param(row, dtypes, id=f"{row.name}-{'-'.join(dtypes)}") for row in gc.ELEMENTWISE for dtypes in accepted(row)
]
BROADCAST_SHAPES = {1: [(2, 3)], 2: [(3, 1), (4,)], 3: [(3, 1), (4,), ()]}


@pytest.mark.parametrize(("row", "dtypes"), ROW_DTYPES)
def test_elementwise(row, dtypes):
    """Each row on each accepted combination of dtypes, with broadcasting (3,1) x (4,) x ()."""
    rng = rng_for(row.name, dtypes)
    shapes = BROADCAST_SHAPES[row.nin]
    arrays = [draw(rng, dom, d, s) for dom, d, s in zip(SPECS[row.name].domains, dtypes, shapes)]
    xs = [symbolic(f"x{i}", a) for i, a in enumerate(arrays)]
    out = row(*xs)
    expected, dtype = elementwise_expected(row, arrays)
    assert out.dtype == dtype, f"static dtype {out.dtype}, NumPy 2 gives {dtype}"
    assert out.type.shape == expected.shape
    check(evaluate(out, *zip(xs, arrays)), expected, dtype)


SHAPE_PATTERNS = {
    1: [(), (5,), (2, 0, 3), (2, 3, 4)],
    2: [((3, 1), (4,)), ((), (2, 3)), ((2, 3), ()), ((2, 1, 4), (3, 1)), ((0, 1), (5,))],
    3: [((3, 1), (4,), ()), ((), (2,), (3, 1)), ((2, 1, 1), (1, 3, 1), (1, 1, 4))],
}


def _first_dtypes(row) -> tuple[str, ...]:
    """float64 wherever the row takes floats, else its only dtype (bool)."""
    accepts = row.accepts if isinstance(row.accepts, tuple) else (row.accepts,) * row.nin
    return tuple("float64" if "float" in a.split() else KIND_DTYPES[a.split()[0]][0] for a in accepts)


ROW_SHAPES = [
    pytest.param(
        row, shapes, known, id=f"{row.name}-{'+'.join(map(shape_id, shapes))}-{'static' if known else 'dynamic'}"
    )
    for row in gc.ELEMENTWISE
    for shapes in ([(s,) for s in SHAPE_PATTERNS[1]] if row.nin == 1 else SHAPE_PATTERNS[row.nin])
    for known in (True, False)
]


@pytest.mark.parametrize(("row", "shapes", "known"), ROW_SHAPES)
def test_elementwise_broadcasting(row, shapes, known):
    """Broadcasting of scalars, size-0 and unit axes, with static shapes and with unknown ones."""
    rng = rng_for(row.name, shapes)
    dtypes = _first_dtypes(row)
    arrays = [draw(rng, dom, d, s) for dom, d, s in zip(SPECS[row.name].domains, dtypes, shapes)]
    xs = [symbolic(f"x{i}", a, known) for i, a in enumerate(arrays)]
    out = row(*xs)
    expected, dtype = elementwise_expected(row, arrays)
    if known:
        assert out.type.shape == expected.shape
    check(evaluate(out, *zip(xs, arrays)), expected, dtype)


@pytest.mark.parametrize("row", [r for r in gc.ELEMENTWISE if r.nin > 1], ids=lambda r: r.name)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_elementwise_broadcasting_hypothesis(row, data):
    """Shapes drawn by hypothesis: any mutually broadcastable shapes of up to 4 dimensions."""
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=row.nin, max_dims=4, max_side=3)).input_shapes
    dtypes = data.draw(st.sampled_from(accepted(row)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    arrays = [draw(rng, dom, d, s) for dom, d, s in zip(SPECS[row.name].domains, dtypes, shapes)]
    xs = [symbolic(f"x{i}", a, data.draw(st.booleans())) for i, a in enumerate(arrays)]
    expected, dtype = elementwise_expected(row, arrays)
    check(evaluate(row(*xs), *zip(xs, arrays)), expected, dtype)


@pytest.mark.parametrize("row", gc.ELEMENTWISE, ids=lambda r: r.name)
def test_elementwise_accepts_is_documented_and_enforced(row):
    """``accepts`` matches docs/ops.md, and every other dtype kind is refused when the node is built."""
    documented = DOCUMENTED_KINDS[row.name]
    documented = documented if isinstance(documented, tuple) else (documented,) * row.nin
    accepts = row.accepts if isinstance(row.accepts, tuple) else (row.accepts,) * row.nin
    assert [sorted(a.split()) for a in accepts] == [sorted(d.split()) for d in documented]
    ok = [KIND_DTYPES[a.split()[0]][-1] for a in accepts]
    for position, allowed in enumerate(accepts):
        for kind in {"bool", "int", "float"} - set(allowed.split()):
            dtypes = list(ok)
            dtypes[position] = KIND_DTYPES[kind][0]
            with pytest.raises(gc.DTypeError):
                row(*[gc.tensor(f"x{i}", shape=(2,), dtype=d) for i, d in enumerate(dtypes)])


def test_elementwise_shape_mismatch_is_an_error():
    with pytest.raises(gc.ShapeError):
        gc.add(gc.vector("a", shape=(3,)), gc.vector("b", shape=(4,)))
    with pytest.raises(gc.ArityError):
        gc.add(gc.vector("a"))


@pytest.mark.parametrize("dtype", FLOATS)
def test_stable_activations_do_not_overflow(dtype):
    """sigmoid and softplus are stable for |x| large (docs/ops.md): no overflow, no warning."""
    xv = np.array([-1000.0, -100.0, -20.0, 0.0, 20.0, 100.0, 1000.0], dtype)
    x = symbolic("x", xv)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sig, sp = evaluate([gc.sigmoid(x), gc.softplus(x)], (x, xv))
    check(sig, scipy.special.expit(xv.astype("float64")).astype(dtype))
    check(sp, np.logaddexp(0, xv.astype("float64")).astype(dtype))
    assert sig[0] == 0 and sig[-1] == 1 and sp[-1] == 1000


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", ["maximum", "minimum", "relu", "clip"])
def test_nan_propagates(name, dtype):
    """maximum, minimum and relu propagate NaN as NumPy does (docs/ops.md)."""
    xv = np.array([np.nan, 1.0, -1.0, np.nan], dtype)
    yv = np.array([0.0, np.nan, 2.0, np.nan], dtype)
    x, y = symbolic("x", xv), symbolic("y", yv)
    ops = {
        "maximum": (gc.maximum(x, y), np.maximum(xv, yv)),
        "minimum": (gc.minimum(x, y), np.minimum(xv, yv)),
        "relu": (gc.relu(x), np.maximum(xv, 0)),
        "clip": (gc.clip(x, -0.5, 0.5), np.clip(xv, -0.5, 0.5)),
    }
    out, expected = ops[name]
    check(evaluate(out, (x, xv), (y, yv)), expected)


# ----- operators and Python-scalar weak typing --------------------------------------------------
OPERATORS = {
    "add": (lambda a, b: a + b, gc.add),
    "sub": (lambda a, b: a - b, gc.sub),
    "mul": (lambda a, b: a * b, gc.mul),
    "truediv": (lambda a, b: a / b, gc.div),
    "pow": (lambda a, b: a**b, gc.pow),
    "lt": (lambda a, b: a < b, gc.lt),
    "le": (lambda a, b: a <= b, gc.le),
    "gt": (lambda a, b: a > b, gc.gt),
    "ge": (lambda a, b: a >= b, gc.ge),
}


REFLECTED = {"lt": gc.gt, "le": gc.ge, "gt": gc.lt, "ge": gc.le}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", OPERATORS)
def test_binary_operators(name, dtype):
    """Each operator builds its row's node, forwards and reflected, and computes what numpy does."""
    fn, row = OPERATORS[name]
    rng = rng_for(name, dtype)
    av, bv = draw(rng, "base", dtype, (3, 1)), draw(rng, "hi", dtype, (4,))
    a, b = symbolic("a", av), symbolic("b", bv)
    out = fn(a, b)
    assert out.owner.op is row
    check(evaluate(out, (a, av), (b, bv)), fn(av, bv))
    # reflected: a numpy array on the left defers to the variable (__array_ufunc__ = None);
    # Python reflects ``av < b`` into ``b > av``
    out = fn(av, b)
    assert out.owner.op is REFLECTED.get(name, row)
    check(evaluate(out, (b, bv)), fn(av, bv))
    # a Python scalar on either side
    check(evaluate(fn(a, 1.5), (a, av)), fn(av, 1.5))
    check(evaluate(fn(2, b), (b, bv)), fn(2, bv))


@pytest.mark.parametrize("dtype", [*FLOATS, "int64"])
def test_unary_operators(dtype):
    xv = draw(rng_for("unary", dtype), "any", dtype, (2, 3))
    x = symbolic("x", xv)
    assert (-x).owner.op is gc.neg and abs(x).owner.op is gc.abs and +x is x
    neg, ab = evaluate([-x, abs(x)], (x, xv))
    check(neg, -xv)
    check(ab, np.abs(xv))


def test_logical_operators():
    rng = rng_for("logical")
    av, bv = rng.random((3, 1)) < 0.5, rng.random(4) < 0.5
    a, b = symbolic("a", av), symbolic("b", bv)
    outs = [a & b, a | b, ~a, a & True, False | b, True & b]
    assert [o.owner.op for o in outs[:3]] == [gc.logical_and, gc.logical_or, gc.logical_not]
    results = evaluate(outs, (a, av), (b, bv))
    for got, want in zip(results, [av & bv, av | bv, ~av, av & True, False | bv, True & bv]):
        check(got, want)


def test_matmul_operator():
    rng = rng_for("@")
    av, bv = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    a, b = symbolic("a", av), symbolic("b", bv)
    assert (a @ b).owner.op == gc.MatMul()
    check(evaluate(a @ b, (a, av), (b, bv)), av @ bv, rtol=ACCUM_RTOL)
    check(evaluate(av @ b, (b, bv)), av @ bv, rtol=ACCUM_RTOL)
    check(evaluate(a @ bv, (a, av)), av @ bv, rtol=ACCUM_RTOL)
    check(evaluate(a.dot(b), (a, av), (b, bv)), av @ bv, rtol=ACCUM_RTOL)


# (expression on a variable, the dtype of the variable): the result dtype must be NumPy 2's.
WEAK_SCALAR_CASES = {
    "f32*2.0": (lambda x: x * 2.0, "float32"),
    "2.0*f32": (lambda x: 2.0 * x, "float32"),
    "f32+1": (lambda x: x + 1, "float32"),
    "f32/2": (lambda x: x / 2, "float32"),
    "f32**2": (lambda x: x**2, "float32"),
    "2**f32": (lambda x: 2**x, "float32"),
    "f32-1e3": (lambda x: x - 1e3, "float32"),
    "f32<0.5": (lambda x: x < 0.5, "float32"),
    "f32*np.float64(2)": (lambda x: x * np.float64(2), "float32"),  # numpy scalars are strong
    "f32*np.float32(2)": (lambda x: x * np.float32(2), "float32"),
    "f32*f64array": (lambda x: x * np.ones(3), "float32"),
    "i64+1.5": (lambda x: x + 1.5, "int64"),
    "i64*2": (lambda x: x * 2, "int64"),
    "i64/2": (lambda x: x / 2, "int64"),
    "i64**2": (lambda x: x**2, "int64"),
    "i64*np.float32(2)": (lambda x: x * np.float32(2), "int64"),
    "bool+1": (lambda x: x + 1, "bool"),
    "bool*1.5": (lambda x: x * 1.5, "bool"),
    "bool+True": (lambda x: x + True, "bool"),
    "f64*2": (lambda x: x * 2, "float64"),
}
GC_FUNCTION_CASES = {
    "maximum(f32,0.0)": (lambda m, x: m.maximum(x, 0.0), "float32"),
    "where(b,f32,0)": (lambda m, x: m.where(x > 0, x, 0), "float32"),
    "where(b,i64,0.5)": (lambda m, x: m.where(x > 0, x, 0.5), "int64"),
    "clip(i64,0,1.5)": (lambda m, x: m.clip(x, 0, 1.5), "int64"),
    "clip(f32,0,1)": (lambda m, x: m.clip(x, 0, 1), "float32"),
    "minimum(i64,2)": (lambda m, x: m.minimum(x, 2), "int64"),
}


@pytest.mark.parametrize("case", WEAK_SCALAR_CASES)
def test_python_scalars_are_weak(case):
    """``float32 var * 2.0`` stays float32, ``int64 var + 1.5`` is float64: NumPy 2 promotion."""
    fn, dtype = WEAK_SCALAR_CASES[case]
    xv = draw(rng_for(case), "grid", dtype, (3,))
    x = symbolic("x", xv)
    out = fn(x)
    expected = np.asarray(fn(xv))
    assert out.dtype == expected.dtype.name
    check(evaluate(out, (x, xv)), expected)


def _scalar_cases():
    """(row, variable dtype, Python scalar, side) for every binary row and scalar kind it accepts."""
    for row in gc.ELEMENTWISE:
        if row.nin != 2:
            continue
        kinds = row.accepts if isinstance(row.accepts, tuple) else (row.accepts,) * 2
        for side in (0, 1):
            scalar_kinds = kinds[1 - side].split()
            for dtype in [d for kind in kinds[side].split() for d in KIND_DTYPES[kind]]:
                for scalar in (True, 2, 0.5):
                    kind = {bool: "bool", int: "int", float: "float"}[type(scalar)]
                    if kind in scalar_kinds:
                        side_id = "var-op-scalar" if side == 0 else "scalar-op-var"
                        yield pytest.param(row, dtype, scalar, side, id=f"{row.name}-{dtype}-{scalar!r}-{side_id}")


@pytest.mark.parametrize(("row", "dtype", "scalar", "side"), list(_scalar_cases()))
def test_python_scalar_operands(row, dtype, scalar, side):
    """Every binary row with a Python scalar on either side: NumPy 2's weak-scalar dtype and values."""
    xv = draw(rng_for(row.name, dtype, scalar, side), SPECS[row.name].domains[side], dtype, (3,))
    x = symbolic("x", xv)
    out = row(x, scalar) if side == 0 else row(scalar, x)
    with np.errstate(all="ignore"):
        expected = np.asarray(SPECS[row.name].ref(xv, scalar) if side == 0 else SPECS[row.name].ref(scalar, xv))
    assert out.dtype == expected.dtype.name
    check(evaluate(out, (x, xv)), expected)


@pytest.mark.parametrize("case", GC_FUNCTION_CASES)
def test_python_scalars_are_weak_in_functions(case):
    fn, dtype = GC_FUNCTION_CASES[case]
    xv = draw(rng_for(case), "grid", dtype, (3,))
    x = symbolic("x", xv)
    out = fn(gc, x)
    expected = np.asarray(fn(np, xv))
    assert out.dtype == expected.dtype.name
    check(evaluate(out, (x, xv)), expected)


@pytest.mark.parametrize(("src", "dst"), [pytest.param(s, d, id=f"{s}-to-{d}") for s in DTYPES for d in DTYPES])
def test_astype(src, dst):
    xv = draw(rng_for("astype", src, dst), "any", src, (2, 3))
    x = symbolic("x", xv)
    out = x.astype(dst)
    if src == dst:
        assert out is x
    else:
        assert out.owner.op is gc.ops.elementwise.CASTS[dst]
    assert out.dtype == dst
    check(evaluate(out, (x, xv)), xv.astype(dst))
    assert gc.cast(x, np.dtype(dst)).dtype == dst


def test_cast_to_unsupported_dtype_is_an_error():
    with pytest.raises(gc.DTypeError):
        gc.vector("x").astype("float16")


# ----- reductions ----------------------------------------------------------------------------------
def argmax_reference(a: np.ndarray, axis=None, keepdims=False) -> np.ndarray:
    """np.argmax, extended to several axes: the flat (C-order) index within them, by a loop."""
    axes = tuple(range(a.ndim)) if axis is None else (axis,) if isinstance(axis, int) else axis
    axes = sorted(ax % a.ndim for ax in axes)
    rest = [i for i in range(a.ndim) if i not in axes]
    out = np.empty([a.shape[i] for i in rest], np.int64)
    for index in np.ndindex(*out.shape):
        select = [slice(None)] * a.ndim
        for axis_, i in zip(rest, index):
            select[axis_] = i
        out[index] = np.argmax(a[tuple(select)])
    return np.expand_dims(out, tuple(axes)) if keepdims else out


def logsumexp_reference(a: np.ndarray, axis=None, keepdims=False) -> np.ndarray:
    """scipy's logsumexp, with NumPy's result shape (scipy gives a 0-d input kept dims shape (1,))."""
    return np.reshape(
        scipy.special.logsumexp(a, axis=axis, keepdims=keepdims), np.sum(a, axis, keepdims=keepdims).shape
    )


REDUCTIONS = {
    "sum": (gc.sum, np.sum),
    "mean": (gc.mean, np.mean),
    "prod": (gc.prod, np.prod),
    "max": (gc.max, np.max),
    "min": (gc.min, np.min),
    "argmax": (gc.argmax, argmax_reference),
    "logsumexp": (gc.logsumexp, logsumexp_reference),
}
AXES = [None, 0, 1, -1, (0, 2), (-1, 0), (0, 1, 2), ()]


@pytest.mark.parametrize("known", [True, False], ids=["static", "dynamic"])
@pytest.mark.parametrize("keepdims", [False, True], ids=["", "keepdims"])
@pytest.mark.parametrize("axis", AXES, ids=lambda a: f"axis={a}")
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction(name, dtype, axis, keepdims, known):
    fn, ref = REDUCTIONS[name]
    xv = draw(rng_for(name, dtype, axis), "base", dtype, (2, 3, 4))
    xv = xv * np.where(rng_for(name, axis).random(xv.shape) < 0.5, -1, 1).astype(dtype)
    x = symbolic("x", xv, known)
    out = fn(x, axis=axis, keepdims=keepdims)
    expected = np.asarray(ref(xv, axis=axis, keepdims=keepdims))
    assert out.dtype == expected.dtype.name
    if known:
        assert out.type.shape == expected.shape
    check(evaluate(out, (x, xv)), expected)
    if name != "logsumexp":  # the method form
        check(evaluate(getattr(x, name)(axis=axis, keepdims=keepdims), (x, xv)), expected)


@pytest.mark.parametrize("axis", [None, 1, (0, 1)], ids=lambda a: f"axis={a}")
@pytest.mark.parametrize("dtype", ["int64", "bool"])
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction_of_ints_and_bools(name, dtype, axis):
    """sum and prod of bools give int64, mean and logsumexp of ints and bools give float64."""
    xv = draw(rng_for(name, dtype, axis), "grid", dtype, (3, 4))
    x = symbolic("x", xv)
    out = REDUCTIONS[name][0](x, axis=axis)
    if name == "logsumexp":  # NumPy computes exp of bools in float16; graphc documents float64
        expected = logsumexp_reference(xv.astype("float64"), axis=axis)
    else:
        expected = np.asarray(REDUCTIONS[name][1](xv, axis=axis))
    documented = {"sum": "int64", "prod": "int64", "mean": "float64", "logsumexp": "float64", "argmax": "int64"}
    assert out.dtype == documented.get(name, dtype) == np.asarray(expected).dtype.name
    check(evaluate(out, (x, xv)), expected)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_reduction_hypothesis(data):
    """Shapes (size-1 and unknown axes included) and axes drawn by hypothesis."""
    name = data.draw(st.sampled_from(sorted(REDUCTIONS)))
    dtype = data.draw(st.sampled_from(FLOATS))
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=3))
    axis = data.draw(
        st.none() | hnp.valid_tuple_axes(len(shape), min_size=1) | st.integers(-len(shape), len(shape) - 1)
        if shape
        else st.none()
    )
    keepdims = data.draw(st.booleans())
    xv = data.draw(hnp.arrays(dtype, shape, elements=st.floats(-2, 2, width=int(dtype[-2:]))))
    x = symbolic("x", xv, data.draw(st.booleans()))
    fn, ref = REDUCTIONS[name]
    expected = np.asarray(ref(xv, axis=axis, keepdims=keepdims))
    check(evaluate(fn(x, axis=axis, keepdims=keepdims), (x, xv)), expected)


@pytest.mark.parametrize("keepdims", [False, True], ids=["", "keepdims"])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction_of_a_scalar(name, dtype, keepdims):
    """A 0-d input: every reduction over all (no) axes gives a 0-d result, as in NumPy."""
    xv = np.asarray(-0.75, dtype)
    x = symbolic("x", xv)
    fn, ref = REDUCTIONS[name]
    expected = np.asarray(ref(xv, axis=None, keepdims=keepdims))
    out = fn(x, keepdims=keepdims)
    assert out.type.shape == expected.shape == ()
    check(evaluate(out, (x, xv)), expected)


def test_argmax_takes_the_first_maximum():
    xv = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    x = symbolic("x", xv)
    flat, rows = evaluate([gc.argmax(x), gc.argmax(x, axis=1)], (x, xv))
    check(flat, np.int64(1))
    check(rows, np.array([1, 0]))


def test_empty_reductions():
    """sum/prod/mean over an empty axis give numpy's identities; max/min/argmax refuse (docs/ops.md)."""
    xv = np.zeros((0, 3))
    x = symbolic("x", xv)
    s, p = evaluate([gc.sum(x, axis=0), gc.prod(x, axis=0)], (x, xv))
    check(s, np.zeros(3))
    check(p, np.ones(3))
    for fn in (gc.max, gc.min, gc.argmax):
        with pytest.raises(gc.ShapeError):
            fn(x, axis=0)


def test_reduction_axis_errors():
    x = gc.matrix("x")
    with pytest.raises(gc.ShapeError):
        gc.sum(x, axis=2)
    with pytest.raises(gc.ShapeError):
        gc.sum(x, axis=(0, -2))


# ----- matmul ------------------------------------------------------------------------------------
MATMUL_SHAPES = [
    ((4,), (4,)),
    ((3, 4), (4,)),
    ((4,), (4, 5)),
    ((3, 4), (4, 5)),
    ((2, 3, 4), (4, 5)),
    ((3, 4), (2, 4, 5)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((2, 3, 4), (2, 4, 5)),
]


@pytest.mark.parametrize("known", [True, False], ids=["static", "dynamic"])
@pytest.mark.parametrize("dtype", [*FLOATS, "int64"])
@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=lambda s: f"{shape_id(s[0])}@{shape_id(s[1])}")
def test_matmul(shapes, dtype, known):
    rng = rng_for("matmul", shapes, dtype)
    av, bv = (draw(rng, "any", dtype, s) for s in shapes)
    a, b = symbolic("a", av, known), symbolic("b", bv, known)
    expected = np.matmul(av, bv)
    for out in (gc.matmul(a, b), gc.dot(a, b), a @ b):
        assert out.dtype == expected.dtype.name
        if known:
            assert out.type.shape == expected.shape
        else:
            assert out.ndim == expected.ndim
        check(evaluate(out, (a, av), (b, bv)), expected, rtol=ACCUM_RTOL)


@pytest.mark.parametrize(("da", "db"), [("float32", "int64"), ("int64", "float64"), ("float32", "float64")])
def test_matmul_promotes(da, db):
    rng = rng_for("matmul-mixed", da, db)
    av, bv = draw(rng, "any", da, (3, 4)), draw(rng, "any", db, (4,))
    a, b = symbolic("a", av), symbolic("b", bv)
    expected = av @ bv
    out = a @ b
    assert out.dtype == expected.dtype.name
    check(evaluate(out, (a, av), (b, bv)), expected, rtol=ACCUM_RTOL)


def test_matmul_errors():
    with pytest.raises(gc.ShapeError):
        gc.matrix("a", shape=(3, 4)) @ gc.matrix("b", shape=(5, 2))
    with pytest.raises(gc.ShapeError):
        gc.scalar("a") @ gc.vector("b")
    with pytest.raises(gc.DTypeError):
        gc.vector("a", dtype=bool) @ gc.vector("b", dtype=bool)
    with pytest.raises(gc.ShapeError):
        gc.tensor("a", shape=(2, 3, 4)) @ gc.tensor("b", shape=(3, 4, 5))


# ----- permutations, reshapes, broadcasts ---------------------------------------------------------
DIMSHUFFLES = {
    "T": (lambda x: x.T, lambda a: a.T),
    "transpose()": (lambda x: x.transpose(), lambda a: a.transpose()),
    "transpose(1,0,2)": (lambda x: x.transpose(1, 0, 2), lambda a: a.transpose(1, 0, 2)),
    "transpose((2,0,1))": (lambda x: x.transpose((2, 0, 1)), lambda a: a.transpose((2, 0, 1))),
    "gc.transpose(-1,0,1)": (lambda x: gc.transpose(x, (-1, 0, 1)), lambda a: np.transpose(a, (-1, 0, 1))),
    "expand_dims(0)": (lambda x: gc.expand_dims(x, 0), lambda a: np.expand_dims(a, 0)),
    "expand_dims(2)": (lambda x: gc.expand_dims(x, 2), lambda a: np.expand_dims(a, 2)),
    "expand_dims(-1)": (lambda x: gc.expand_dims(x, -1), lambda a: np.expand_dims(a, -1)),
    "squeeze()": (lambda x: gc.squeeze(x[:, :1]), lambda a: np.squeeze(a[:, :1])),
    "squeeze(1)": (lambda x: gc.squeeze(x[:, :1], 1), lambda a: np.squeeze(a[:, :1], 1)),
    "squeeze(-2)": (lambda x: gc.squeeze(x[:, :1], -2), lambda a: np.squeeze(a[:, :1], -2)),
    "squeeze(expand(1))": (lambda x: gc.squeeze(gc.expand_dims(x, 1)), lambda a: a),
}


@pytest.mark.parametrize("dtype", [*FLOATS, "int64", "bool"])
@pytest.mark.parametrize("case", DIMSHUFFLES)
def test_dimshuffle(case, dtype):
    fn, ref = DIMSHUFFLES[case]
    xv = draw(rng_for(case, dtype), "any", dtype, (2, 3, 4))
    x = symbolic("x", xv)
    out = fn(x)
    expected = ref(xv)
    assert out.type.shape == expected.shape
    check(evaluate(out, (x, xv)), expected)


def test_dimshuffle_errors():
    x = gc.tensor("x", shape=(2, 3, 4))
    with pytest.raises(gc.ShapeError):
        gc.transpose(x, (0, 0, 1))
    with pytest.raises(gc.ShapeError):
        gc.squeeze(x, 0)
    with pytest.raises(gc.ShapeError):
        gc.expand_dims(x, 4)


@pytest.mark.parametrize("known", [True, False], ids=["static", "dynamic"])
@pytest.mark.parametrize(
    "target", [(6, 4), (-1,), (4, -1), (2, 3, 2, 2), (-1, 2, 1)], ids=lambda s: "(" + ",".join(map(str, s)) + ")"
)
def test_reshape(target, known):
    xv = draw(rng_for("reshape", target), "any", "float32", (2, 3, 4))
    x = symbolic("x", xv, known)
    expected = xv.reshape(target)
    for out in (gc.reshape(x, target), x.reshape(target), x.reshape(*target)):
        if known:
            assert out.type.shape == expected.shape
        check(evaluate(out, (x, xv)), expected)


def test_reshape_with_symbolic_sizes():
    xv = draw(rng_for("reshape-sym"), "any", "float64", (5, 3, 2))
    x = gc.tensor("x", shape=(None, 3, 2))
    n = x.shape[0]
    cases = [
        (gc.reshape(x, (n, -1)), (None, None), xv.reshape(5, -1)),
        (x.reshape(n, 6), (None, 6), xv.reshape(5, 6)),
        (x.reshape((2, n, 3)), (2, None, 3), xv.reshape(2, 5, 3)),
        (x.reshape(n * 6), (None,), xv.reshape(30)),
        (x.flatten(), (None,), xv.reshape(-1)),
    ]
    for out, static, expected in cases:
        # sizes given as ints stay known; a size that depends on x.shape[0] may be unknown
        assert len(out.type.shape) == len(static) == expected.ndim
        assert all(s == t or (t is None and s in (None, e)) for s, t, e in zip(out.type.shape, static, expected.shape))
        check(evaluate(out, (x, xv)), expected)


def test_reshape_errors():
    x = gc.tensor("x", shape=(2, 3))
    with pytest.raises(gc.ShapeError):
        gc.reshape(x, (4, 2))
    with pytest.raises(gc.ShapeError):
        gc.reshape(x, (-1, -1))
    with pytest.raises(gc.ShapeError):
        gc.reshape(x, (4, -1))
    with pytest.raises(gc.DTypeError):
        gc.reshape(x, (gc.scalar("n"), 2))


BROADCASTS = [((3,), (2, 3)), ((1,), (4,)), ((), (2, 2)), ((2, 1), (3, 2, 5)), ((1, 1), (1, 1))]


@pytest.mark.parametrize("dtype", [*FLOATS, "int64", "bool"])
@pytest.mark.parametrize("shapes", BROADCASTS, ids=lambda s: f"{shape_id(s[0])}-to-{shape_id(s[1])}")
def test_broadcast_to(shapes, dtype):
    src, target = shapes
    xv = draw(rng_for("broadcast", shapes, dtype), "any", dtype, src)
    x = symbolic("x", xv)
    out = gc.broadcast_to(x, target)
    assert out.type.shape == target
    check(evaluate(out, (x, xv)), np.broadcast_to(xv, target))
    # the result is a fresh writable array, not a read-only broadcast view
    result = evaluate(out, (x, xv))
    result[...] = result  # must not raise
    xd = symbolic("x", xv, known=False)
    check(evaluate(gc.broadcast_to(xd, target), (xd, xv)), np.broadcast_to(xv, target))


def test_broadcast_to_symbolic():
    vv, yv = np.arange(3.0), np.zeros((4, 2))
    v, y = symbolic("v", vv), gc.matrix("y")
    out = gc.broadcast_to(v, (y.shape[0], y.shape[1], 3))
    assert out.type.shape == (None, None, 3)
    check(evaluate(out, (v, vv), (y, yv)), np.broadcast_to(vv, (4, 2, 3)))
    out = gc.full((y.shape[0], 2), 1.5, "float32")
    assert out.type == gc.TensorType("float32", (None, 2))
    check(evaluate(out, (y, yv)), np.full((4, 2), 1.5, np.float32))
    out = gc.zeros(y.shape, "int64")
    check(evaluate(out, (y, yv)), np.zeros((4, 2), np.int64))
    col = gc.tensor("c", shape=(None, 1))
    out = gc.broadcast_to(col, (col.shape[0], 5))
    cv = np.arange(3.0)[:, None]
    check(evaluate(out, (col, cv)), np.broadcast_to(cv, (3, 5)))


def test_broadcast_to_errors():
    x = gc.matrix("x", shape=(2, 3))
    with pytest.raises(gc.ShapeError):
        gc.broadcast_to(x, (3,))
    with pytest.raises(gc.ShapeError):
        gc.broadcast_to(x, (2, 4))
    with pytest.raises(gc.ShapeError):
        gc.broadcast_to(x, (-1, 3))


# (call, numpy equivalent): constants built by broadcasting
FILLS = {
    "zeros((2,3))": (lambda: gc.zeros((2, 3)), np.zeros((2, 3))),
    "zeros(4,int64)": (lambda: gc.zeros(4, "int64"), np.zeros(4, np.int64)),
    "ones((2,3),float32)": (lambda: gc.ones((2, 3), "float32"), np.ones((2, 3), np.float32)),
    "ones((),bool)": (lambda: gc.ones((), bool), np.ones((), bool)),
    "full((2,),3)": (lambda: gc.full((2,), 3), np.full((2,), 3)),
    "full((2,),3.5)": (lambda: gc.full((2,), 3.5), np.full((2,), 3.5)),
    "full((3,1),True)": (lambda: gc.full((3, 1), True), np.full((3, 1), True)),
    "full((2,2),1.5,float32)": (lambda: gc.full((2, 2), 1.5, "float32"), np.full((2, 2), 1.5, np.float32)),
}


@pytest.mark.parametrize("case", FILLS)
def test_fill_constructors(case):
    fn, expected = FILLS[case]
    out = fn()
    assert out.type.shape == expected.shape
    check(evaluate(out), expected)


@pytest.mark.parametrize("known", [True, False], ids=["static", "dynamic"])
@pytest.mark.parametrize("dtype", [*FLOATS, "int64", "bool"])
def test_zeros_ones_like(dtype, known):
    xv = draw(rng_for("like", dtype), "any", dtype, (2, 3))
    x = symbolic("x", xv, known)
    outs = [gc.zeros_like(x), gc.ones_like(x), gc.zeros_like(x, dtype="float32"), gc.ones_like(x, "int64")]
    expected = [np.zeros_like(xv), np.ones_like(xv), np.zeros_like(xv, np.float32), np.ones_like(xv, np.int64)]
    for out, want in zip(outs, expected):
        assert out.dtype == want.dtype.name
        assert out.type.shape == (xv.shape if known else (None, None))
    for got, want in zip(evaluate(outs, (x, xv)), expected):
        check(got, want)


@pytest.mark.parametrize("known", [True, False], ids=["static", "dynamic"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate(axis, known):
    rng = rng_for("concatenate", axis)
    shapes = [(2, 3), (2, 3), (2, 3)]
    shapes = [tuple(s + i if k == axis % 2 else s for k, s in enumerate(shape)) for i, shape in enumerate(shapes)]
    arrays = [draw(rng, "any", d, s) for d, s in zip(["float32", "float32", "int64"], shapes)]
    xs = [symbolic(f"x{i}", a, known) for i, a in enumerate(arrays)]
    for pair in ([0, 1], [0, 1, 2], [2, 2]):
        out = gc.concatenate([xs[i] for i in pair], axis=axis)
        expected = np.concatenate([arrays[i] for i in pair], axis=axis)
        assert out.dtype == expected.dtype.name  # float32 with int64 is float64, as in NumPy
        if known:
            assert out.type.shape == expected.shape
        check(evaluate(out, *[(xs[i], arrays[i]) for i in sorted(set(pair))]), expected)


def test_concatenate_with_constants_and_bools():
    xv = np.array([[True, False]])
    x = symbolic("x", xv)
    out = gc.concatenate([x, np.zeros((1, 2))], axis=0)
    check(evaluate(out, (x, xv)), np.concatenate([xv, np.zeros((1, 2))]))
    out = gc.concatenate([x, x], axis=1)
    check(evaluate(out, (x, xv)), np.concatenate([xv, xv], axis=1))
    with pytest.raises(gc.ShapeError):
        gc.concatenate([x, gc.matrix("y", shape=(1, 3))], axis=0)


@pytest.mark.parametrize("known", [True, False], ids=["static", "dynamic"])
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_stack(axis, known):
    rng = rng_for("stack", axis)
    arrays = [draw(rng, "any", d, (2, 3)) for d in ("float32", "float64", "bool")]
    xs = [symbolic(f"x{i}", a, known) for i, a in enumerate(arrays)]
    for pair in ([0], [0, 0], [0, 1], [0, 2], [0, 1, 2]):
        out = gc.stack([xs[i] for i in pair], axis=axis)
        expected = np.stack([arrays[i] for i in pair], axis=axis)
        assert out.dtype == expected.dtype.name
        if known:
            assert out.type.shape == expected.shape
        check(evaluate(out, *[(xs[i], arrays[i]) for i in sorted(set(pair))]), expected)
    with pytest.raises(gc.ShapeError):
        gc.stack([gc.matrix("a", shape=(2, 3)), gc.matrix("b", shape=(3, 2))])


# ----- indexing ----------------------------------------------------------------------------------
INDEXES = {
    "[0]": lambda a: a[0],
    "[-1]": lambda a: a[-1],
    "[1:3]": lambda a: a[1:3],
    "[::-1]": lambda a: a[::-1],
    "[...,None]": lambda a: a[..., None],
    "[None]": lambda a: a[None],
    "[...,0]": lambda a: a[..., 0],
    "[0,...,None]": lambda a: a[0, ..., None],
    "[1:3,::-1]": lambda a: a[1:3, ::-1],
    "[:,-2:]": lambda a: a[:, -2:],
    "[None,1,::2]": lambda a: a[None, 1, ::2],
    "[1,2,0]": lambda a: a[1, 2, 0],
    "[-3:-1,1:100]": lambda a: a[-3:-1, 1:100],
    "[::-2,:,1:2]": lambda a: a[::-2, :, 1:2],
    "[5:]": lambda a: a[5:],
}


@pytest.mark.parametrize("known", [True, False], ids=["static", "dynamic"])
@pytest.mark.parametrize("index", INDEXES)
def test_getitem(index, known):
    fn = INDEXES[index]
    xv = draw(rng_for("getitem", index), "any", "float32", (4, 5, 3))
    x = symbolic("x", xv, known)
    out = fn(x)
    expected = fn(xv)
    if known:
        assert out.type.shape == expected.shape
    else:
        assert out.ndim == expected.ndim
    check(evaluate(out, (x, xv)), expected)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_getitem_hypothesis(data):
    """Basic indices drawn by hypothesis: ints, slices (any bounds and steps), None and Ellipsis."""
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
    index = data.draw(hnp.basic_indices(shape, min_dims=0, allow_newaxis=True, allow_ellipsis=True))
    known = data.draw(st.booleans())
    xv = np.arange(int(np.prod(shape)), dtype="float64").reshape(shape)
    x = symbolic("x", xv, known)
    out = x[index]
    expected = xv[index]
    if known:
        assert out.type.shape == expected.shape
    check(evaluate(out, (x, xv)), expected)


def test_getitem_errors():
    x = gc.matrix("x", shape=(2, 3))
    with pytest.raises(gc.ShapeError):
        x[0, 0, 0]
    with pytest.raises(gc.ShapeError):
        x[2]
    with pytest.raises(gc.GraphcError):
        x[::0]
    with pytest.raises(gc.GraphcError):
        x[..., ...]
    with pytest.raises(gc.GraphcError):
        x[x > 0]


@pytest.mark.parametrize("known", [True, False], ids=["static", "dynamic"])
@pytest.mark.parametrize("dtype", [*FLOATS, "int64", "bool"])
def test_gather(dtype, known):
    """``x[idx]``, ``x[:, idx]`` with an int64 vector variable, ``gc.take``; negative indices wrap."""
    rng = rng_for("gather", dtype)
    xv = draw(rng, "any", dtype, (4, 5, 6))
    iv = np.array([3, 0, -1, 1, 3])
    mv = np.array([[0, 2], [-2, 1]])
    x, i, m = symbolic("x", xv, known), symbolic("i", iv, known), symbolic("m", mv, known)
    sv = np.int64(-2)
    s = gc.scalar("s", dtype="int64")
    cases = [
        (x[i], np.take(xv, iv, axis=0)),
        (x[:, i], xv[:, iv]),
        (x[:, :, i], xv[:, :, iv]),
        (x[m], xv[mv]),
        (x[:, m], xv[:, mv]),
        (x[s], xv[sv]),
        (x[[1, -1]], xv[[1, -1]]),
        (x[:, np.array([4, 0])], xv[:, [4, 0]]),
        (gc.take(x, i), np.take(xv, iv, axis=0)),
        (gc.take(x, m, axis=2), np.take(xv, mv, axis=2)),
        (gc.take(x, i, axis=-2), np.take(xv, iv, axis=-2)),
    ]
    results = evaluate([c[0] for c in cases], (x, xv), (i, iv), (m, mv), (s, sv))
    for (out, expected), got in zip(cases, results):
        assert isinstance(out.owner.op, gc.Take)
        if known:
            assert out.type.shape == expected.shape
        check(got, expected)


def test_gather_errors():
    x = gc.matrix("x")
    with pytest.raises(gc.GraphcError):
        x[gc.vector("i", dtype="float64")]
    with pytest.raises(gc.DTypeError):
        gc.take(x, gc.vector("i", dtype="float32"))
    with pytest.raises(gc.GraphcError):
        x[gc.vector("i", dtype="int64"), 0]
    with pytest.raises(gc.GraphcError):
        x[gc.vector("i", dtype="int64"), gc.vector("j", dtype="int64")]
    with pytest.raises(gc.EvaluationError):
        gc.function([x], gc.take(x, np.array([5])))(np.zeros((2, 2)))


def test_shape_dim():
    """``x.shape`` is an int where known and an int64 scalar variable where not."""
    x = gc.tensor("x", shape=(None, 3, None))
    xv = np.zeros((7, 3, 2))
    n, three, m = x.shape
    assert three == 3 and type(three) is int
    assert isinstance(n, gc.Variable) and n.dtype == "int64" and n.ndim == 0
    assert isinstance(m, gc.Variable) and m.owner.op == gc.ShapeDim(2)
    assert gc.shape_dim(x, -1) is m  # hash-consed
    rn, rm, rk = evaluate([n, m, gc.shape_dim(x, 1)], (x, xv))
    check(rn, np.int64(7))
    check(rm, np.int64(2))
    check(rk, np.int64(3))
    check(evaluate(n * m + 1, (x, xv)), np.int64(15))
    assert len(gc.vector("v", shape=(4,))) == 4
    with pytest.raises(gc.GraphcError):
        len(x)


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "bool"])
def test_one_hot(dtype):
    iv = np.array([[0, 3, 1], [2, 2, 0]])
    i = symbolic("i", iv, known=False)
    out = gc.one_hot(i, 4, dtype=dtype)
    assert out.type == gc.TensorType(dtype, (None, None, 4))
    check(evaluate(out, (i, iv)), np.eye(4, dtype=dtype)[iv])
    with pytest.raises(gc.EvaluationError):
        gc.function([i], out)(np.array([[0, 4]]))
    with pytest.raises(gc.EvaluationError):
        gc.function([i], out)(np.array([[-1, 0]]))


def test_one_hot_default_and_errors():
    iv = np.array([2, 0])
    i = symbolic("i", iv)
    check(evaluate(gc.one_hot(i, 3), (i, iv)), np.eye(3)[iv])
    with pytest.raises(gc.DTypeError):
        gc.one_hot(gc.vector("f"), 3)
    with pytest.raises(gc.ShapeError):
        gc.one_hot(i, 0)


# ----- neural-network primitives -------------------------------------------------------------------
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, 1, -1, -2])
@pytest.mark.parametrize("dtype", [*FLOATS, "int64"])
def test_softmax(dtype, axis, log):
    xv = draw(rng_for("softmax", dtype, axis), "any", dtype, (3, 4, 5))
    x = symbolic("x", xv)
    out = (gc.log_softmax if log else gc.softmax)(x, axis=axis)
    ref = scipy.special.log_softmax if log else scipy.special.softmax
    dtype_out = numpy_float_dtype(dtype)
    assert out.dtype == dtype_out and out.type.shape == xv.shape
    check(evaluate(out, (x, xv)), ref(xv.astype("float64"), axis=axis), dtype_out)


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_default_axis_and_large_inputs(dtype):
    xv = np.array([[1000.0, 1000.0], [-1000.0, 0.0]], dtype)
    x = symbolic("x", xv, known=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sm, lsm = evaluate([gc.softmax(x), gc.log_softmax(x)], (x, xv))
    check(sm, np.array([[0.5, 0.5], [0.0, 1.0]], dtype))
    check(lsm, np.array([[-np.log(2), -np.log(2)], [-1000.0, 0.0]], dtype))


def conv2d_reference(x, w, stride, padding):
    """Cross-correlation by a loop over output positions, in float64."""
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph : ph + h, pw : pw + wd] = x
    ho, wo = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((n, o, ho, wo))
    for b, f, i, j in np.ndindex(n, o, ho, wo):
        out[b, f, i, j] = np.sum(xp[b, :, i * sh : i * sh + kh, j * sw : j * sw + kw] * w[f])
    return out


CONVS = [
    # x shape, w shape, stride, padding
    ((2, 3, 7, 6), (4, 3, 3, 3), 1, 0),
    ((2, 3, 7, 6), (4, 3, 3, 2), (2, 1), (1, 0)),
    ((1, 2, 8, 9), (3, 2, 2, 4), 2, 1),
    ((1, 1, 5, 5), (1, 1, 5, 5), 1, 0),
    ((2, 2, 5, 4), (2, 2, 1, 3), (3, 2), (2, 1)),
    ((1, 3, 4, 4), (2, 3, 3, 3), 3, 2),
]


def _pair(v):
    return (v, v) if isinstance(v, int) else v


@pytest.mark.parametrize("known", [True, False], ids=["static", "dynamic"])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    "case", CONVS, ids=lambda c: f"x{shape_id(c[0])}-w{shape_id(c[1])}-s{_pair(c[2])}-p{_pair(c[3])}".replace(" ", "")
)
def test_conv2d(case, dtype, known):
    xshape, wshape, stride, padding = case
    rng = rng_for("conv", case, dtype)
    xv, wv = draw(rng, "trig", dtype, xshape), draw(rng, "trig", dtype, wshape)
    x, w = symbolic("x", xv, known), symbolic("w", wv, known)
    out = gc.conv2d(x, w, stride=stride, padding=padding)
    expected = conv2d_reference(xv, wv, _pair(stride), _pair(padding))
    assert out.dtype == dtype
    if known:
        assert out.type.shape == expected.shape
    check(evaluate(out, (x, xv), (w, wv)), expected, dtype, rtol=ACCUM_RTOL)


def test_conv2d_promotes_and_checks():
    rng = rng_for("conv-mixed")
    xv, wv = draw(rng, "any", "float32", (1, 2, 4, 4)), draw(rng, "any", "float64", (3, 2, 2, 2))
    x, w = symbolic("x", xv), symbolic("w", wv)
    out = gc.conv2d(x, w)
    assert out.dtype == "float64"
    check(evaluate(out, (x, xv), (w, wv)), conv2d_reference(xv, wv, (1, 1), (0, 0)), rtol=ACCUM_RTOL)
    with pytest.raises(gc.ShapeError):
        gc.conv2d(x, gc.tensor("w", shape=(3, 5, 2, 2)))
    with pytest.raises(gc.ShapeError):
        gc.conv2d(x, gc.tensor("w", shape=(3, 2, 5, 2)))
    with pytest.raises(gc.DTypeError):
        gc.conv2d(gc.tensor("xi", shape=(1, 2, 4, 4), dtype="int64"), w)
    with pytest.raises(gc.ShapeError):
        gc.conv2d(x, w, stride=0)


def pool_reference(x, kind, kernel, stride):
    kh, kw = kernel
    sh, sw = stride
    n, c, h, w = x.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.zeros((n, c, ho, wo), x.dtype if kind == "max" else "float64")
    for b, f, i, j in np.ndindex(n, c, ho, wo):
        window = x[b, f, i * sh : i * sh + kh, j * sw : j * sw + kw]
        out[b, f, i, j] = window.max() if kind == "max" else window.astype("float64").mean()
    return out


POOLS = [((2, 2), None), ((2, 3), (1, 2)), ((3, 3), 2), (2, (3, 1)), ((1, 1), None), ((5, 6), None)]


@pytest.mark.parametrize("known", [True, False], ids=["static", "dynamic"])
@pytest.mark.parametrize("dtype", [*FLOATS, "int64"])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOLS, ids=lambda c: f"k{_pair(c[0])}-s{c[1] and _pair(c[1])}".replace(" ", ""))
def test_pool2d(case, kind, dtype, known):
    kernel, stride = case
    fn = gc.max_pool2d if kind == "max" else gc.avg_pool2d
    xv = draw(rng_for("pool", case, kind, dtype), "any", dtype, (2, 3, 5, 6))
    x = symbolic("x", xv, known)
    if kind == "avg" and dtype == "int64":
        with pytest.raises(gc.DTypeError):
            fn(x, kernel, stride)
        return
    out = fn(x, kernel, stride) if stride is not None else fn(x, kernel)
    expected = pool_reference(xv, kind, _pair(kernel), _pair(stride or kernel))
    assert out.dtype == dtype
    if known:
        assert out.type.shape == expected.shape
    check(evaluate(out, (x, xv)), expected, dtype, rtol=ACCUM_RTOL)


def test_pool2d_errors():
    x = gc.tensor("x", shape=(1, 1, 3, 3))
    with pytest.raises(gc.ShapeError):
        gc.max_pool2d(x, 4)
    with pytest.raises(gc.ShapeError):
        gc.avg_pool2d(gc.matrix("m"), 2)
    with pytest.raises(gc.ShapeError):
        gc.max_pool2d(x, 0)


# ----- random draws ------------------------------------------------------------------------------
RANDOMS = {
    "normal": lambda shape, seed, dtype: gc.random.normal(shape, 1.5, 2.0, seed=seed, dtype=dtype),
    "uniform": lambda shape, seed, dtype: gc.random.uniform(shape, -1.0, 3.0, seed=seed, dtype=dtype),
    "bernoulli": lambda shape, seed, dtype: gc.random.bernoulli(shape, 0.3, seed=seed, dtype=dtype),
}
#: mean and standard deviation of each distribution above
MOMENTS = {"normal": (1.5, 2.0), "uniform": (1.0, 4 / np.sqrt(12)), "bernoulli": (0.3, np.sqrt(0.3 * 0.7))}
RANDOM_DTYPES = {"normal": FLOATS, "uniform": FLOATS, "bernoulli": DTYPES}


@pytest.mark.parametrize(
    ("name", "dtype"), [pytest.param(n, d, id=f"{n}-{d}") for n, ds in RANDOM_DTYPES.items() for d in ds]
)
def test_random_shapes_dtypes_and_moments(name, dtype):
    out = RANDOMS[name]((200, 500), 7, dtype)
    assert out.type == gc.TensorType(dtype, (200, 500))
    assert out.owner.op.name == name
    draws = evaluate(out)
    assert draws.shape == (200, 500) and draws.dtype == dtype
    values = draws.astype("float64")
    mean, std = MOMENTS[name]
    assert abs(values.mean() - mean) < 0.03 * max(std, 1)
    assert abs(values.std() - std) < 0.03 * max(std, 1)
    if name == "uniform":
        assert values.min() >= -1.0 and values.max() < 3.0
    if name == "bernoulli":
        assert set(np.unique(values)) <= {0.0, 1.0}


@pytest.mark.parametrize("name", RANDOMS)
def test_random_seeds(name):
    """Same seed: the same first draw in two compiled functions; each call draws anew."""
    dtype = "float64"
    f = gc.function([], RANDOMS[name]((50,), 3, dtype))
    g = gc.function([], RANDOMS[name]((50,), 3, dtype) * 1.0)
    h = gc.function([], RANDOMS[name]((50,), 4, dtype))
    first = f()
    np.testing.assert_array_equal(g(), first)
    second = f()
    assert not np.array_equal(first, second)
    assert not np.array_equal(h(), first)
    # two nodes with the same arguments and seed are one node
    assert RANDOMS[name]((50,), 3, dtype) is RANDOMS[name]((50,), 3, dtype)
    # recompiling starts the sequence again
    f2 = gc.function([], RANDOMS[name]((50,), 3, dtype))
    np.testing.assert_array_equal(f2(), first)
    np.testing.assert_array_equal(f2(), second)


@pytest.mark.parametrize("name", RANDOMS)
def test_random_symbolic_shape(name):
    x = gc.matrix("x", shape=(None, 3))
    out = RANDOMS[name]((x.shape[0], 2, x.shape[1]), 1, "float32")
    assert out.type == gc.TensorType("float32", (None, 2, 3))
    f = gc.function([x], out)
    assert f(np.zeros((4, 3))).shape == (4, 2, 3)
    assert f(np.zeros((6, 3))).shape == (6, 2, 3)
    assert f(np.zeros((6, 3))).dtype == np.float32


def test_random_errors():
    with pytest.raises(gc.DTypeError):
        gc.random.normal((2,), dtype="int64")
    with pytest.raises(gc.DTypeError):
        gc.random.uniform((2,), dtype="bool")
    with pytest.raises(gc.ShapeError):
        gc.random.bernoulli((2,), p=1.5)
    with pytest.raises(gc.ShapeError):
        gc.random.normal((2,), std=-1.0)
    with pytest.raises(gc.ShapeError):
        gc.random.normal((-1, 2))
    with pytest.raises(gc.ShapeError):
        gc.random.normal((2,), seed=-1)
    with pytest.raises(gc.DTypeError):
        gc.random.normal((gc.scalar("n"),))


# ----- the ops derivatives need: scatters, split, im2col patches --------------------------------
def test_split_cuts_where_concatenate_joins():
    xv = np.arange(24.0).reshape(2, 12)
    x = gc.matrix("x", shape=(2, None))
    n = gc.scalar("n", dtype="int64")
    pieces = gc.apply(graphc.ops.shape.Split(1, (3, None, 4)), [x, n])
    assert [p.type.shape for p in pieces] == [(2, 3), (2, None), (2, 4)]
    got = gc.function([x, n], list(pieces))(xv, 5)
    for g, e in zip(got, np.split(xv, [3, 8], axis=1)):
        check(g, e)
    with pytest.raises(gc.EvaluationError):
        gc.function([x, n], list(pieces))(xv, 4)


def test_getitem_adjoint_writes_into_zeros():
    gv = np.arange(6.0).reshape(2, 3)
    g = gc.matrix("g", shape=(2, 3))
    index = gc.matrix("x", shape=(5, 3))[1:5:2].owner.op.index
    out = gc.apply(graphc.ops.indexing.GetItemAdjoint(index, (5, 3)), [g])[0]
    expected = np.zeros((5, 3))
    expected[1:5:2] = gv
    check(evaluate(out, (g, gv)), expected)


def test_take_adjoint_adds_repeated_indices():
    gv = np.arange(12.0).reshape(4, 3)
    g, idx = gc.matrix("g", shape=(4, 3)), gc.vector("i", dtype="int64")
    out = gc.apply(graphc.ops.indexing.TakeAdjoint(0, (5, 3)), [g, idx])[0]
    iv = np.array([1, 4, 1, -1])
    expected = np.zeros((5, 3))
    np.add.at(expected, iv, gv)
    check(evaluate(out, (g, gv), (idx, iv)), expected)


@pytest.mark.parametrize(("kernel", "stride", "padding"), [((2, 2), (1, 1), (0, 0)), ((3, 2), (2, 1), (1, 2))])
def test_patches_and_their_adjoint(kernel, stride, padding):
    """Patches against a loop; the adjoint satisfies <P x, y> = <x, P* y>, the definition of an adjoint."""
    rng = np.random.default_rng(0)
    xv = rng.normal(size=(2, 3, 6, 5))
    x = gc.tensor("x", shape=(2, 3, 6, 5))
    patches = gc.apply(graphc.ops.nn.Patches(kernel, stride, padding), [x])[0]
    pv = evaluate(patches, (x, xv))
    padded = np.pad(xv, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    ho, wo = pv.shape[2:4]
    for p in range(ho):
        for q in range(wo):
            window = padded[:, :, p * stride[0] : p * stride[0] + kernel[0], q * stride[1] : q * stride[1] + kernel[1]]
            np.testing.assert_array_equal(pv[:, :, p, q], window)
    yv = rng.normal(size=pv.shape)
    y = gc.tensor("y", shape=pv.shape)
    adjoint = gc.apply(graphc.ops.nn.PatchesAdjoint(kernel, stride, padding, (6, 5)), [y])[0]
    av = evaluate(adjoint, (y, yv))
    assert av.shape == xv.shape
    np.testing.assert_allclose(np.sum(pv * yv), np.sum(xv * av), rtol=1e-12)


def test_softmax_cross_entropy_matches_its_definition():
    rng = np.random.default_rng(3)
    for dtype in FLOATS:
        zv = (rng.normal(size=(4, 5)) * 50).astype(dtype)  # large logits: must stay finite
        tv = rng.dirichlet(np.ones(5), size=4).astype(dtype)
        z, t = symbolic("z", zv), symbolic("t", tv)
        shifted = zv.astype(np.float64) - zv.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        check(evaluate(gc.softmax_cross_entropy(z, t), (z, zv), (t, tv)), -(tv * log_p).sum(axis=1).astype(dtype))
        check(
            evaluate(gc.softmax_cross_entropy(z.T, t.T, axis=0), (z, zv), (t, tv)),
            -(tv * log_p).sum(axis=1).astype(dtype),
        )


def test_fused_kernel_matches_its_unfused_ops():
    """A fused kernel (elementwise program, broadcasting, a reduction) gives what its ops give."""
    rng = np.random.default_rng(4)
    xv, wv = rng.normal(size=(3, 4)), rng.normal(size=(4,))
    for dtype in FLOATS:
        x, w = symbolic("x", xv.astype(dtype)), symbolic("w", wv.astype(dtype))
        outs = [gc.tanh(x * w) + 1.0, gc.sum(gc.exp(x * w), axis=0), gc.max(x * w)]
        fused = gc.optimize(outs, passes=[fuse])
        assert {v.owner.op.name for v in fused} == {"fused"} and len({v.owner for v in fused}) == 1
        expected = gc.function([x, w], outs, optimize="none")(xv.astype(dtype), wv.astype(dtype))
        got = gc.function([x, w], fused, optimize="none")(xv.astype(dtype), wv.astype(dtype))
        for g, e in zip(got, expected):
            check(g, e)


# ----- coverage guard ----------------------------------------------------------------------------
#: Every op (and every variant of a parametrized op) -> the tests here that check it against numpy.
TESTED = {
    "MatMul": [test_matmul, test_matmul_promotes, test_matmul_operator],
    "DimShuffle": [test_dimshuffle],
    "Reshape": [test_reshape, test_reshape_with_symbolic_sizes],
    "BroadcastTo": [test_broadcast_to, test_broadcast_to_symbolic, test_fill_constructors, test_zeros_ones_like],
    "Concatenate": [test_concatenate, test_concatenate_with_constants_and_bools],
    "Stack": [test_stack],
    "GetItem": [test_getitem],
    "Take": [test_gather],
    "ShapeDim": [test_shape_dim],
    "OneHot": [test_one_hot, test_one_hot_default_and_errors],
    "Argmax": [test_reduction, test_reduction_of_ints_and_bools, test_argmax_takes_the_first_maximum],
    "Conv2d": [test_conv2d, test_conv2d_promotes_and_checks],
    "Fused": [test_fused_kernel_matches_its_unfused_ops],
    "SoftmaxCrossEntropy": [test_softmax_cross_entropy_matches_its_definition],
    "Split": [test_split_cuts_where_concatenate_joins],
    "GetItemAdjoint": [test_getitem_adjoint_writes_into_zeros],
    "TakeAdjoint": [test_take_adjoint_adds_repeated_indices],
    "Patches": [test_patches_and_their_adjoint],
    "PatchesAdjoint": [test_patches_and_their_adjoint],
    **{f"Reduce:{k}": [test_reduction, test_reduction_of_ints_and_bools] for k in REDUCTIONS if k != "argmax"},
    "Softmax:softmax": [test_softmax, test_softmax_default_axis_and_large_inputs],
    "Softmax:log_softmax": [test_softmax, test_softmax_default_axis_and_large_inputs],
    "Pool2d:max_pool2d": [test_pool2d],
    "Pool2d:avg_pool2d": [test_pool2d],
    **{f"Random:{k}": [test_random_shapes_dtypes_and_moments, test_random_seeds] for k in RANDOMS},
    **{f"Elementwise:{k}": [test_elementwise, test_elementwise_broadcasting] for k in SPECS},
}


def test_every_op_is_covered():
    ops = discovered_ops()
    assert {"MatMul", "Elementwise:add", "Reduce:logsumexp", "Pool2d:avg_pool2d", "Random:bernoulli"} <= ops
    untested = sorted(ops - set(TESTED))
    assert not untested, f"ops with no test in tests/test_ops.py: {untested}"
    stale = sorted(set(TESTED) - ops)
    assert not stale, f"TESTED names ops graphc no longer has: {stale}"
    # every elementwise row has a reference, and is exactly one of the parametrized cases
    assert {row.name for row in gc.ELEMENTWISE} == set(SPECS)
    assert len({row.name for row in gc.ELEMENTWISE}) == len(gc.ELEMENTWISE)
    assert {row.name for row, _ in (p.values for p in ROW_DTYPES)} == set(SPECS)
    assert {kind.name for kind in KINDS} | {"argmax"} == set(REDUCTIONS)
    module = globals()
    for tests in TESTED.values():
        for test in tests:
            assert module.get(test.__name__) is test and test.__name__.startswith("test_")
