"""Every op's VJP and JVP rule against central differences in float64.

One table entry per op (and per variant of a parametrized op) builds the op on inputs drawn by
hypothesis (shapes and values, kept away from kinks), and the test checks:

- reverse mode: the gradient of L = sum(u * op(x)) for a random u equals central differences;
- forward mode: the tangent of op(x) along a random direction v equals (op(x+hv) - op(x-hv))/2h.

An op with no entry fails ``test_every_op_has_a_derivative_entry``. Ops with no derivative
(comparisons, argmax, random draws...) are listed as such and checked to give zero derivatives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from helpers import discovered_ops
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
import graphc.ops
from graphc.optimize import fuse

H = 1e-6  # central-difference step; float64 errors are then about 1e-9 relative
RTOL = 1e-6


class Draw:
    """Values for one example: shapes from hypothesis (n, m), values from a seeded generator."""

    def __init__(self, seed: int, n: int, m: int):
        self.rng = np.random.default_rng(seed)
        self.n, self.m = n, m
        self.args: list[tuple[gc.Variable, np.ndarray]] = []

    def value(self, shape, domain: str = "any") -> np.ndarray:
        r = self.rng
        if domain == "any":
            return r.normal(size=shape)
        if domain == "pos":
            return r.uniform(0.5, 2.0, size=shape)
        if domain == "away":  # |x| >= 0.2: away from the kink at 0
            return r.uniform(0.2, 1.5, size=shape) * r.choice([-1.0, 1.0], size=shape)
        if domain == "around":  # below, inside and above [-0.15, 0.15], away from the bounds
            return r.choice([-0.4, 0.0, 0.4], size=shape) + r.uniform(-0.02, 0.02, size=shape)
        if domain in ("lo", "hi"):
            return r.uniform(0.1, 0.2, size=shape) * (-1 if domain == "lo" else 1)
        if domain == "small":
            return r.uniform(-0.9, 0.9, size=shape)
        if domain == "distinct":  # a permutation scaled: no ties, gaps of 0.1
            size = int(np.prod(shape))
            return (r.permutation(size) * 0.1 - size * 0.05).reshape(shape)
        raise ValueError(domain)

    def x(self, shape, domain: str = "any", dtype: str = "float64") -> gc.Variable:
        value = self.value(shape, domain).astype(dtype)
        var = gc.tensor(f"x{len(self.args)}", shape=shape, dtype=dtype)
        self.args.append((var, value))
        return var

    def ints(self, values) -> gc.Variable:
        value = np.asarray(values, dtype=np.int64)
        var = gc.tensor(f"i{len(self.args)}", shape=value.shape, dtype="int64")
        self.args.append((var, value))
        return var


@dataclass
class Entry:
    build: Callable[[Draw], gc.Variable] | None  # None: the op has no derivative to check
    no_derivative: Callable[[Draw], gc.Variable] | None = None  # builds it to check zeros
    step: float = H
    rtol: float = RTOL


def binary(row, da="any", db="any"):
    return Entry(lambda d: row(d.x((d.n, d.m), da), d.x((d.m,), db)))


def unary(row, domain="any"):
    return Entry(lambda d: row(d.x((d.n, d.m), domain)))


def zero(build):
    return Entry(None, build)


def predicate(row):
    """A comparison (or logic op) turned back into floats: its derivative must be zero."""
    if row.accepts == "bool":
        return zero(lambda d: gc.where(row(d.x((d.n,)) > 0, True), 1.0, 0.0))
    return zero(lambda d: gc.where(row(d.x((d.n,)), 0.0), 1.0, 0.0))


E = graphc.ops.elementwise
TABLE: dict[str, Entry] = {
    # elementwise, with broadcasting (n, m) against (m,)
    "Elementwise:add": binary(gc.add),
    "Elementwise:sub": binary(gc.sub),
    "Elementwise:mul": binary(gc.mul),
    "Elementwise:div": binary(gc.div, "any", "pos"),
    "Elementwise:pow": binary(gc.pow, "pos", "any"),
    "Elementwise:neg": unary(gc.neg),
    "Elementwise:maximum": Entry(lambda d: gc.maximum(d.x((d.n, d.m), "distinct"), d.x((d.n, d.m), "distinct") + 0.05)),
    "Elementwise:minimum": Entry(lambda d: gc.minimum(d.x((d.n, d.m), "distinct"), d.x((d.n, d.m), "distinct") + 0.05)),
    "Elementwise:abs": unary(gc.abs, "away"),
    "Elementwise:square": unary(gc.square),
    "Elementwise:clip": Entry(lambda d: gc.clip(d.x((d.n, d.m), "around"), d.x((d.m,), "lo"), d.x((), "hi"))),
    "Elementwise:where": Entry(lambda d: gc.where(d.x((d.n, d.m)) > 0, d.x((d.n, d.m)), d.x((d.m,)))),
    "Elementwise:exp": unary(gc.exp),
    "Elementwise:log": unary(gc.log, "pos"),
    "Elementwise:log1p": unary(gc.log1p, "pos"),
    "Elementwise:expm1": unary(gc.expm1),
    "Elementwise:sin": unary(gc.sin),
    "Elementwise:cos": unary(gc.cos),
    "Elementwise:tan": unary(gc.tan, "small"),
    "Elementwise:tanh": unary(gc.tanh),
    "Elementwise:sqrt": unary(gc.sqrt, "pos"),
    "Elementwise:erf": unary(gc.erf),
    "Elementwise:sigmoid": unary(gc.sigmoid),
    "Elementwise:relu": unary(gc.relu, "away"),
    "Elementwise:softplus": unary(gc.softplus),
    "Elementwise:gelu": unary(gc.gelu),
    # casts are linear, so a coarse step is exact up to float32 rounding of the moved inputs
    "Elementwise:cast_float64": Entry(
        lambda d: gc.cast(d.x((d.n,), dtype="float32"), "float64") * 3.0, step=1e-2, rtol=1e-4
    ),
    "Elementwise:cast_float32": Entry(
        lambda d: gc.cast(gc.cast(d.x((d.n,)), "float32"), "float64"), step=1e-2, rtol=1e-4
    ),
    "Elementwise:stop_gradient": zero(lambda d: gc.stop_gradient(d.x((d.n,)))),
    "Elementwise:sign": zero(lambda d: gc.sign(d.x((d.n,), "away"))),
    "Elementwise:cast_int64": zero(lambda d: gc.cast(gc.cast(d.x((d.n,)), "int64"), "float64")),
    "Elementwise:cast_bool": zero(lambda d: gc.cast(gc.cast(d.x((d.n,)), "bool"), "float64")),
    **{f"Elementwise:{name}": predicate(getattr(E, name)) for name in ("lt", "le", "gt", "ge", "eq", "neq")},
    **{f"Elementwise:{name}": predicate(getattr(E, name)) for name in ("logical_and", "logical_or")},
    "Elementwise:logical_not": zero(lambda d: gc.where(~(d.x((d.n,)) > 0), 1.0, 0.0)),
    # reductions over one axis, several axes and all of them
    "Reduce:sum": Entry(lambda d: gc.sum(d.x((d.n, d.m, 2)), axis=(0, 2))),
    "Reduce:mean": Entry(lambda d: gc.mean(d.x((d.n, d.m)), axis=1, keepdims=True)),
    "Reduce:prod": Entry(lambda d: gc.prod(d.x((d.n, d.m), "away"), axis=0)),
    "Reduce:max": Entry(lambda d: gc.max(d.x((d.n, d.m), "distinct"), axis=1)),
    "Reduce:min": Entry(lambda d: gc.min(d.x((d.n, d.m), "distinct"))),
    "Reduce:logsumexp": Entry(lambda d: gc.logsumexp(d.x((d.n, d.m)), axis=-1)),
    "Argmax": zero(lambda d: gc.cast(gc.argmax(d.x((d.n, d.m)), axis=1), "float64")),
    # structure
    "MatMul": Entry(lambda d: d.x((2, d.n, d.m)) @ d.x((d.m, 3)) + d.x((d.m,)) @ d.x((d.m, 2))[:, 0]),
    "DimShuffle": Entry(lambda d: gc.expand_dims(d.x((d.n, d.m)).T, 1) * 1.0),
    "Reshape": Entry(lambda d: gc.reshape(d.x((d.n, d.m, 2)), (-1, 2 * d.n))),
    "BroadcastTo": Entry(lambda d: gc.broadcast_to(d.x((d.m, 1)), (d.n, d.m, 3))),
    "Concatenate": Entry(lambda d: gc.concatenate([d.x((d.n, 2)), d.x((d.n, d.m))], axis=1)),
    "Split": Entry(lambda d: gc.apply(graphc.ops.shape.Split(0, (1, d.n)), [d.x((d.n + 1, d.m))])[1] * 2.0),
    "Stack": Entry(lambda d: gc.stack([d.x((d.n,)), d.x((d.n,))], axis=1)),
    "GetItem": Entry(lambda d: d.x((d.n + 2, d.m))[1:, ::-1][0]),
    "GetItemAdjoint": Entry(
        lambda d: gc.apply(graphc.ops.indexing.GetItemAdjoint((("slice", 1, None, 2),), (2 * d.n + 1,)), [d.x((d.n,))])[
            0
        ]
    ),
    "Take": Entry(lambda d: gc.take(d.x((d.n, d.m)), d.ints([0, d.n - 1, 0]), axis=0)),
    "TakeAdjoint": Entry(
        lambda d: gc.apply(graphc.ops.indexing.TakeAdjoint(1, (2, d.m)), [d.x((2, 3)), d.ints([0, d.m - 1, 0])])[0]
    ),
    "ShapeDim": zero(lambda d: gc.cast(gc.shape_dim(d.x((d.n,)), 0), "float64") * 1.0),
    "OneHot": zero(lambda d: gc.one_hot(d.ints([0, d.n]), d.n + 1)),
    # neural-network primitives
    "Softmax:softmax": Entry(lambda d: gc.softmax(d.x((d.n, d.m)), axis=0)),
    "Softmax:log_softmax": Entry(lambda d: gc.log_softmax(d.x((d.n, d.m)))),
    "Fused": Entry(
        lambda d: gc.optimize(
            gc.sum(gc.tanh(d.x((d.n, d.m)) * d.x((d.m,))) ** 2, axis=1) + gc.exp(d.x((d.n,))), passes=[fuse]
        )
    ),
    "SoftmaxCrossEntropy": Entry(
        lambda d: gc.softmax_cross_entropy(d.x((d.n, d.m + 1)), gc.sigmoid(d.x((d.n, d.m + 1))))
    ),
    "Conv2d": Entry(lambda d: gc.conv2d(d.x((1, 2, d.n + 3, 4)), d.x((2, 2, 2, 3)), stride=(2, 1), padding=(1, 0))),
    "Patches": Entry(lambda d: gc.apply(graphc.ops.nn.Patches((2, 2), (1, 2), (1, 0)), [d.x((1, 2, d.n + 2, 4))])[0]),
    "PatchesAdjoint": Entry(
        lambda d: gc.apply(graphc.ops.nn.PatchesAdjoint((2, 2), (1, 1), (0, 0), (3, 3)), [d.x((1, 1, 2, 2, 2, 2))])[0]
    ),
    "Pool2d:max_pool2d": Entry(lambda d: gc.max_pool2d(d.x((1, 2, 4, d.n + 3), "distinct"), 2, stride=1)),
    "Pool2d:avg_pool2d": Entry(lambda d: gc.avg_pool2d(d.x((1, 2, 4, d.n + 3)), (2, 3), stride=(2, 1))),
    "Random:normal": zero(lambda d: gc.random.normal((gc.shape_dim(d.x((d.n,)), 0),)) * 1.0),
    "Random:uniform": zero(lambda d: gc.random.uniform((2,)) + 0 * d.x((2,))),
    "Random:bernoulli": zero(lambda d: gc.random.bernoulli((2,), 0.5) + 0 * d.x((2,))),
}


def test_every_op_has_a_derivative_entry():
    missing = sorted(discovered_ops() - set(TABLE))
    assert not missing, f"ops with no derivative entry in tests/test_autodiff_rules.py: {missing}"
    stale = sorted(set(TABLE) - discovered_ops())
    assert not stale, f"entries for ops graphc no longer has: {stale}"


def _float_args(d: Draw):
    return [(v, a) for v, a in d.args if v.dtype in ("float32", "float64")]


def _numeric_directional(f, values, positions, directions, h):
    """(f(x + hv) - f(x - hv)) / 2h, moving the float inputs at ``positions`` along ``directions``."""

    def at(sign):
        moved = list(values)
        for p, v in zip(positions, directions):
            moved[p] = (values[p] + sign * h * v).astype(values[p].dtype)
        return np.asarray(f(*moved), dtype=np.float64)

    return (at(1) - at(-1)) / (2 * h)


examples = st.tuples(st.integers(0, 2**31 - 1), st.integers(1, 3), st.integers(1, 3))
DIFFERENTIABLE = sorted(k for k, e in TABLE.items() if e.build is not None)
NONE = sorted(k for k, e in TABLE.items() if e.build is None)


@pytest.mark.parametrize("key", DIFFERENTIABLE)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(example=examples)
def test_vjp_and_jvp_agree_with_finite_differences(key, example):
    d, entry = Draw(*example), TABLE[key]
    y = gc.cast(entry.build(d), "float64")
    variables = [v for v, _ in d.args]
    values = [a for _, a in d.args]
    wrt = [v for v, _ in _float_args(d)]
    positions = [variables.index(v) for v in wrt]
    f = gc.function(variables, y)
    y_value = f(*values)

    # reverse: gradient of L = sum(u * y) is u^T J; check it along random directions v: u^T J v
    u = d.rng.normal(size=y_value.shape)
    cost = gc.sum(y * gc.constant(u))
    grads = gc.function(variables, gc.grad(cost, wrt))(*values)
    directions = [d.rng.normal(size=values[p].shape) for p in positions]
    numeric = _numeric_directional(f, values, positions, directions, entry.step)  # J v
    reverse_side = sum(float(np.sum(g * v)) for g, v in zip(grads, directions))
    np.testing.assert_allclose(reverse_side, np.sum(u * numeric), rtol=entry.rtol, atol=entry.rtol)

    # forward: the whole tangent J v, elementwise
    seeds = [gc.constant(v.astype(w.dtype)) for v, w in zip(directions, wrt)]
    tangent = gc.function(variables, gc.jvp(y, wrt, seeds))(*values)
    np.testing.assert_allclose(tangent, numeric, rtol=entry.rtol, atol=entry.rtol)


@pytest.mark.parametrize("key", NONE)
def test_ops_without_derivative_give_zeros(key):
    d = Draw(0, 2, 3)
    y = gc.cast(TABLE[key].no_derivative(d), "float64")
    variables = [v for v, _ in d.args]
    values = [a for _, a in d.args]
    wrt = [v for v, _ in _float_args(d)]
    grads = gc.function(variables, gc.grad(gc.sum(y), wrt))(*values)
    for g in grads:
        np.testing.assert_array_equal(g, 0.0)
    tangent = gc.function(variables, gc.jvp(y, wrt, [gc.constant(np.ones(v.type.shape)) for v in wrt]))(*values)
    np.testing.assert_array_equal(tangent, 0.0)


# ----- conventions at non-differentiable points (PyTorch's and JAX's) -------------------------
def _grad_at(build, value):
    x = gc.vector("x", shape=np.shape(value))
    return gc.function([x], gc.grad(gc.sum(build(x)), x))(np.asarray(value, dtype=np.float64))


@pytest.mark.filterwarnings("ignore:divide by zero")  # sqrt'(0) = inf is the convention being tested
def test_kink_conventions():
    np.testing.assert_array_equal(_grad_at(gc.relu, [0.0, -1.0, 2.0]), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(_grad_at(gc.abs, [0.0, -1.0, 2.0]), [0.0, -1.0, 1.0])
    np.testing.assert_array_equal(_grad_at(gc.sqrt, [0.0, 4.0]), [np.inf, 0.25])
    np.testing.assert_array_equal(_grad_at(lambda x: gc.maximum(x, 1.0), [1.0, 0.0, 2.0]), [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(_grad_at(lambda x: gc.minimum(x, 1.0), [1.0, 0.0, 2.0]), [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(_grad_at(gc.max, [3.0, 1.0, 3.0, 3.0]), [1 / 3, 0.0, 1 / 3, 1 / 3])
    np.testing.assert_array_equal(_grad_at(lambda x: gc.clip(x, -1.0, 1.0), [-1.0, 1.0, 2.0, 0.0]), [1, 1, 0, 1])
    np.testing.assert_array_equal(_grad_at(gc.prod, [2.0, 0.0, 3.0]), [0.0, 6.0, 0.0])
    np.testing.assert_array_equal(_grad_at(gc.prod, [2.0, 0.0, 0.0]), [0.0, 0.0, 0.0])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_gates_pass_no_infinite_or_nan_derivative_where_they_are_shut(backend):
    """relu, clip and where select the incoming derivative (as JAX and PyTorch do): an inf or NaN
    arriving where the gate is shut gives 0, in both modes, not inf * 0 = NaN."""
    x, g = gc.vector("x"), gc.vector("g")
    values = np.array([-1.0, 0.5, 2.0, -3.0])
    incoming = np.array([np.inf, 1.0, np.nan, np.nan])
    gates = {
        "relu": (gc.relu(x), [0.0, 1.0, np.nan, 0.0]),
        "clip": (gc.clip(x, -1.0, 1.0), [np.inf, 1.0, 0.0, 0.0]),
        "where": (gc.where(x > 0, x, 0.0), [0.0, 1.0, np.nan, 0.0]),
    }
    for name, (y, want) in gates.items():
        (back,) = gc.vjp(y, [x], g)
        forward = gc.jvp(y, [x], [g])
        for got in gc.function([x, g], [back, forward], backend=backend)(values, incoming):
            np.testing.assert_array_equal(got, want, err_msg=name)


def test_max_pool_ties_split_evenly():
    x = gc.tensor("x", shape=(1, 1, 2, 2))
    g = gc.function([x], gc.grad(gc.sum(gc.max_pool2d(x, 2)), x))(np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(g, 0.25)
