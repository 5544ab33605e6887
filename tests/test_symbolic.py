"""Symbolic differentiation through SymPy: round trips, agreement with reverse mode on every
elementwise op, the options, expression swell, and clear errors."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest
import sympy as sp
from helpers import lecture

import graphc as gc

ROOT = pathlib.Path(__file__).resolve().parents[1]

# A point away from every kink and inside every domain (log, sqrt, tan...), per argument.
POINT = {1: (0.7,), 2: (0.7, 1.3), 3: (0.7, -0.4, 1.3)}
DIFFERENTIABLE = [r for r in gc.ELEMENTWISE if r.d is not None and r.sympy is not None and "cast" not in r.name]


def test_lecture_round_trip_and_gradient():
    x1, x2, y = lecture()
    expr = gc.to_sympy(y)
    a, b = sp.symbols("x1 x2", real=True)
    assert sp.simplify(expr - (a * b + sp.exp(a * b) - sp.sin(b))) == 0
    back = gc.from_sympy(expr, [x1, x2])
    assert gc.function([x1, x2], back)(2.0, 5.0) == 22037.42471908138
    symbolic = gc.function([x1, x2], gc.grad(y, [x1, x2], mode="symbolic"))(2.0, 5.0)
    reverse = gc.function([x1, x2], gc.grad(y, [x1, x2]))(2.0, 5.0)
    np.testing.assert_allclose(symbolic, reverse, rtol=1e-14)
    np.testing.assert_allclose(symbolic, [110137.32897403359, 44054.64792742797], rtol=1e-14)


@pytest.mark.parametrize("row", DIFFERENTIABLE, ids=[r.name for r in DIFFERENTIABLE])
def test_symbolic_gradient_equals_reverse_mode_on_every_elementwise_op(row):
    xs = [gc.scalar(f"a{i}") for i in range(row.nin)]
    args = list(xs)
    if row.name == "where":
        args[0] = xs[0] > 0.0
    y = row(*args)
    values = POINT[row.nin]
    wrt = xs[1:] if row.name == "where" else xs
    symbolic = gc.function(xs, gc.grad(y, wrt, mode="symbolic"))(*values)
    reverse = gc.function(xs, gc.grad(y, wrt))(*values)
    np.testing.assert_allclose(symbolic, reverse, rtol=1e-12, atol=1e-15)
    # and the round trip evaluates to the same value
    np.testing.assert_allclose(gc.function(xs, gc.from_sympy(gc.to_sympy(y), xs))(*values), gc.function(xs, y)(*values))


def test_elementwise_tensor_graphs_round_trip():
    x, w = gc.vector("x", shape=(3,)), gc.scalar("w")
    y = gc.tanh(x * w) + gc.sigmoid(x) ** 2
    back = gc.from_sympy(gc.to_sympy(y), [x, w])
    xv = np.array([-1.0, 0.5, 2.0])
    np.testing.assert_allclose(gc.function([x, w], back)(xv, 0.3), gc.function([x, w], y)(xv, 0.3), rtol=1e-14)


def test_options_cse_and_simplify():
    x = gc.scalar("x")
    y = gc.exp(gc.sin(x)) * gc.sin(x) ** 2
    for cse in (True, False):
        for simplify in (True, False):
            g = gc.grad(y, x, mode="symbolic", cse=cse, simplify=simplify)
            want = np.exp(np.sin(0.4)) * np.cos(0.4) * (np.sin(0.4) ** 2 + 2 * np.sin(0.4))
            assert gc.function([x], g)(0.4) == pytest.approx(want, rel=1e-13)


def logistic(n: int):
    """l(1) = x, l(k+1) = 4 l(k) (1 - l(k)): the example's map, returns x and l(n)."""
    spec = importlib.util.spec_from_file_location("expression_swell", ROOT / "examples" / "expression_swell.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.logistic(n)


def test_expression_swell_of_sympy_against_graphc():
    """SymPy's derivative tree (no cse) grows exponentially: 5, 44, 166, 530 nodes for n = 2..5;
    graphc's reverse-mode graph grows linearly."""
    trees, graphs = [], []
    for n in range(2, 6):
        x, y = logistic(n)
        symbol = sp.Symbol("x", real=True)
        expr = gc.to_sympy(y, {x: symbol})
        trees.append(sum(1 for _ in sp.preorder_traversal(sp.diff(expr, symbol))))
        graphs.append(len(gc.Graph(gc.grad(y, x)).nodes))
    assert trees == [5, 44, 166, 530]
    assert len({b - a for a, b in zip(graphs, graphs[1:])}) == 1  # a constant number of nodes per step


def test_clear_errors():
    x = gc.vector("x", shape=(3,))
    with pytest.raises(gc.SymbolicError, match="sum has no SymPy form"):
        gc.to_sympy(gc.sum(x))
    s = gc.scalar("s")
    with pytest.raises(gc.SymbolicError, match="stop_gradient has no SymPy form"):
        gc.grad(gc.stop_gradient(s) * s, s, mode="symbolic")
    with pytest.raises(gc.SymbolicError, match="not one of the inputs"):
        gc.from_sympy(sp.Symbol("q") + 1, [s])
    with pytest.raises(gc.SymbolicError, match="has no graphc translation"):
        gc.from_sympy(sp.gamma(sp.Symbol("s")), [s])
    with pytest.raises(gc.SymbolicError, match="inputs, not intermediate"):
        gc.grad(gc.sin(s * 2.0), s * 2.0, mode="symbolic")
