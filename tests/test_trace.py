"""Evaluation traces: the lecture's three tables (seeds, file 004), tensors, and the formats."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc


def lecture_as_written_in_the_notes():
    """The lecture's trace v7 = v5 + v6 with v5 = exp(v3), v6 = v3 - v4: f = exp(x1 x2) + (x1 x2 - sin x2)."""
    x1, x2 = gc.scalar("x1"), gc.scalar("x2")
    return x1, x2, gc.exp(x1 * x2) + (x1 * x2 - gc.sin(x2))


PRIMAL = [
    ("v1", "x1", 2.0),
    ("v2", "x2", 5.0),
    ("v3", "v1 * v2", 10.0),
    ("v4", "sin(v2)", -0.9589242746631385),
    ("v5", "exp(v3)", 22026.465794806718),
    ("v6", "v3 - v4", 10.958924274663138),
    ("v7", "v5 + v6", 22037.42471908138),
]
TANGENT = {  # seeded on x1
    "v1": ("1.0", 1.0),
    "v2": ("0.0", 0.0),
    "v3": ("v̇1 * v2 + v1 * v̇2", 5.0),
    "v4": ("v̇2 * cos(v2)", 0.0),
    "v5": ("v̇3 * v5", 110132.32897403359),
    "v6": ("v̇3 - v̇4", 5.0),
    "v7": ("v̇5 + v̇6", 110137.32897403359),
}
ADJOINT = {  # the lecture's lines, its typo in the v̄2 line corrected
    "v7": ("1.0", 1.0),
    "v6": ("v̄7", 1.0),
    "v5": ("v̄7", 1.0),
    "v4": ("-v̄6", -1.0),
    "v3": ("v̄5 * v5 + v̄6", 22027.465794806718),
    "v2": ("v̄3 * v1 + v̄4 * cos(v2)", 44054.64792742797),
    "v1": ("v̄3 * v2", 110137.32897403359),
}


def test_primal_trace_has_the_lecture_rows():
    x1, x2, y = lecture_as_written_in_the_notes()
    tr = gc.trace(y, at={x1: 2.0, x2: 5.0})
    assert [(r.name, r.expr, float(r.value)) for r in tr.rows] == PRIMAL


def test_the_function_as_python_parses_it_also_has_seven_rows():
    x1, x2 = gc.scalar("x1"), gc.scalar("x2")
    y = x1 * x2 + gc.exp(x1 * x2) - gc.sin(x2)  # x1*x2 is merged: one row
    tr = gc.trace(y, at={x1: 2.0, x2: 5.0}, mode="reverse")
    assert len(tr.rows) == 7 and tr.rows[-1].value == 22037.42471908138
    assert [r.expr for r in tr.rows[:2]] == ["x1", "x2"]
    assert (float(tr.row("v1").adjoint), float(tr.row("v2").adjoint)) == (110137.32897403359, 44054.64792742797)


def test_tangent_trace_seeded_on_x1():
    x1, x2, y = lecture_as_written_in_the_notes()
    tr = gc.trace(y, at={x1: 2.0, x2: 5.0}, mode="forward", seed={x1: 1.0})
    for r in tr.rows:
        expr, value = TANGENT[r.name]
        assert (r.tangent_expr, float(r.tangent)) == (expr, value), r.name


def test_tangent_trace_seeded_on_x2_gives_the_other_partial():
    x1, x2, y = lecture_as_written_in_the_notes()
    tr = gc.trace(y, at={x1: 2.0, x2: 5.0}, mode="forward", seed={x2: 1.0})
    assert float(tr.row("v7").tangent) == pytest.approx(44054.64792742797, rel=1e-15)


def test_adjoint_trace_in_reverse_order_with_fan_out():
    x1, x2, y = lecture_as_written_in_the_notes()
    tr = gc.trace(y, at={x1: 2.0, x2: 5.0}, mode="reverse")
    assert [r.name for r in tr.adjoint_rows] == ["v7", "v6", "v5", "v4", "v3", "v2", "v1"]
    for r in tr.adjoint_rows:
        expr, value = ADJOINT[r.name]
        assert (r.adjoint_expr, float(r.adjoint)) == (expr, value), r.name
    # Baydin et al.'s incremental form: v3 fans out to v5 and v6, so its adjoint is updated twice
    assert "v̄3 = v̄6" in tr.adjoint_steps and "v̄3 += v̄5 * v5" in tr.adjoint_steps
    assert tr.adjoint_steps.index("v̄3 = v̄6") < tr.adjoint_steps.index("v̄3 += v̄5 * v5")


def test_edges_carry_local_partials():
    x1, x2, y = lecture_as_written_in_the_notes()
    tr = gc.trace(y, at={x1: 2.0, x2: 5.0}, mode="reverse")
    partial = {(e.source, e.target): e for e in tr.edges}
    assert partial["v2", "v4"].partial_expr == "cos(v2)"
    assert float(partial["v2", "v4"].partial) == pytest.approx(np.cos(5.0), rel=1e-15)
    assert partial["v3", "v5"].partial_expr == "v5" and partial["v4", "v6"].partial_expr == "-1"
    assert len(tr.edges) == 8


def test_formats():
    x1, x2, y = lecture_as_written_in_the_notes()
    tr = gc.trace(y, at={x1: 2.0, x2: 5.0}, mode="reverse")
    text = str(tr)
    assert "v̄2 = v̄3 * v1 + v̄4 * cos(v2)" in text and "22037.42471908138" in text
    lines = text.splitlines()
    assert len({len(line.split("  ")[0]) for line in lines[2:9]}) == 1  # aligned columns
    md = tr.to_markdown()
    assert md.startswith("| variable |") and md.count("\n") == 8
    latex = tr.to_latex()
    assert r"\bar{v}_{2} = \bar{v}_{3} \cdot v_{1} + \bar{v}_{4} \cdot \cos(v_{2})" in latex
    assert "<table" in tr.to_html() and tr._repr_html_() == tr.to_html()


def test_tensor_values_are_summarized():
    W = gc.matrix("W", shape=(3, 4))
    x = gc.vector("x", shape=(4,))
    y = gc.sum(gc.tanh(W @ x))
    rng = np.random.default_rng(0)
    tr = gc.trace(y, at={W: rng.normal(size=(3, 4)), x: rng.normal(size=4)}, mode="reverse")
    assert "float64(3, 4) [" in str(tr) and "…" in str(tr)
    assert tr.row("v1").adjoint.shape == (3, 4)
    assert any("∂" in e.partial_expr for e in tr.edges)  # matmul: a Jacobian, named


def test_missing_values_and_bad_modes():
    x1, x2, y = lecture_as_written_in_the_notes()
    with pytest.raises(gc.GraphError, match="missing x2"):
        gc.trace(y, at={x1: 2.0})
    with pytest.raises(gc.GraphError, match="mode must be one of"):
        gc.trace(y, at={x1: 2.0, x2: 5.0}, mode="sideways")
