"""The autodiff-mode comparison, scaling studies, the finite-difference curve, and their examples."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest
from helpers import lecture

import graphc as gc
from graphc.cli import main as cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPECTED = [110137.32897403359, 44054.64792742797]


def example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_four_modes_on_the_lecture_function(tmp_path):
    x1, x2, y = lecture()
    report = gc.compare_modes(y, [x1, x2], at={x1: 2.0, x2: 5.0}, repeat=3)
    assert report.reference.startswith("SymPy")
    for mode in ("forward", "reverse", "symbolic"):
        r = report[mode]
        np.testing.assert_allclose(np.ravel(r.values), EXPECTED, rtol=1e-14)
        assert r.error < 1e-14 and r.nodes > 0 and r.tree_nodes >= r.nodes and r.kernels == 1
        assert r.compile_seconds > 0 and r.run_seconds > 0 and r.peak_bytes > 0
    assert 1e-13 < report["numeric"].error < 1e-8  # central differences: accurate, not exact
    assert (report["forward"].sweeps, report["reverse"].sweeps, report["numeric"].evaluations) == (2, 1, 4)
    assert report["symbolic"].count_ops > 0
    text = str(report)
    assert all(mode in text for mode in ("forward", "reverse", "symbolic", "numeric"))
    assert report.to_markdown().startswith("| mode |") and "<table" in report.to_html()
    report.plot(tmp_path / "compare.png")
    assert (tmp_path / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_graphs_sympy_cannot_express_use_reverse_mode_as_reference():
    x = gc.vector("x", shape=(3,))
    report = gc.compare_modes(gc.sum(gc.sin(x) * x), x, at={x: np.array([0.1, 0.2, 0.3])}, repeat=2)
    assert report.reference == "reverse mode"
    assert "not available" in report["symbolic"].note and not report["symbolic"].values
    assert report["forward"].sweeps == 3 and report["reverse"].sweeps == 1


def test_jacobian_of_several_outputs():
    t = gc.scalar("t")
    ys = [gc.sin(k * t) * t for k in (1.0, 2.0, 3.0)]
    report = gc.compare_modes(ys, t, at={t: 0.3}, repeat=2)
    want = [np.sin(k * 0.3) + k * 0.3 * np.cos(k * 0.3) for k in (1.0, 2.0, 3.0)]
    for mode in ("forward", "reverse", "symbolic"):
        np.testing.assert_allclose(np.ravel(report[mode].values), want, rtol=1e-13)
    assert (report["forward"].sweeps, report["reverse"].sweeps) == (1, 3)


def test_peak_memory_counts_live_intermediates():
    x = gc.vector("x", shape=(1000,))
    f = gc.function([x], gc.sum(gc.exp(x) * 2.0), optimize="none")
    # exp(x) and exp(x) * 2 are alive together (2 arrays of 8000 bytes); exp(x) is freed before the sum
    assert gc.compare.peak_memory(f, [np.zeros(1000)]) == 16000


def test_scaling_sweeps_follow_inputs_and_outputs(tmp_path):
    inputs = gc.scaling("inputs", sizes=(1, 4, 16), repeat=1)
    assert [(r.size, r.mode, r.sweeps) for r in inputs.rows] == [
        (1, "forward", 1), (1, "reverse", 1), (4, "forward", 4),
        (4, "reverse", 1), (16, "forward", 16), (16, "reverse", 1),
    ]  # fmt: skip
    forward_nodes = [r.nodes for r in inputs.rows if r.mode == "forward"]
    reverse_nodes = [r.nodes for r in inputs.rows if r.mode == "reverse"]
    assert forward_nodes[0] < forward_nodes[1] < forward_nodes[2] and reverse_nodes[1] == reverse_nodes[2]
    outputs = gc.scaling("outputs", sizes=(1, 4), repeat=1)
    assert [r.sweeps for r in outputs.rows] == [1, 1, 1, 4]
    assert "forward" in str(inputs)
    inputs.plot(tmp_path / "scaling.png")
    assert (tmp_path / "scaling.png").exists()
    with pytest.raises(gc.GraphcError, match="family must be"):
        gc.scaling("sideways", sizes=(1,))


def test_finite_difference_error_curve_has_its_best_step_near_1e_6(tmp_path):
    x1, x2, y = lecture()
    curve = gc.fd_error_curve(y, [x1, x2], at={x1: 2.0, x2: 5.0})
    assert 1e-7 <= curve.best_central_step <= 1e-5
    assert curve.best_forward_step < curve.best_central_step  # forward differences want a smaller step
    assert curve.central[0] > 1e3 * curve.central.min() < curve.central[-1] / 1e3  # a V: both sides rise
    assert "best step" in str(curve)
    curve.plot(tmp_path / "fd.png")


def test_expression_swell_example_reproduces_sympy_sizes():
    rows = example("expression_swell").main(["--max-n", "5"])
    assert [r["sympy_tree"] for r in rows[1:]] == [5, 44, 166, 530]
    nodes = [r["graphc_reverse_nodes"] for r in rows[1:]]
    assert len({b - a for a, b in zip(nodes, nodes[1:])}) == 1


def test_scaling_example_runs(capsys):
    results = example("autodiff_scaling").main(["--sizes", "1,8"])
    assert set(results) == {"inputs", "outputs"} and "ratio" in capsys.readouterr().out


def test_compare_command(capsys, tmp_path):
    rc = cli(["compare", "x1*x2 + exp(x1*x2) - sin(x2)", "--at", "x1=2", "--at", "x2=5", "--format", "md"])
    out = capsys.readouterr().out
    assert rc == 0 and "| symbolic |" in out and "110137.32897403359" in out
    rc = cli(["compare", "x*x", "--at", "x=3", "-o", str(tmp_path / "c.md"), "--plot", str(tmp_path / "c.png")])
    assert rc == 0 and "| reverse |" in (tmp_path / "c.md").read_text() and (tmp_path / "c.png").exists()
    assert cli(["compare", "x*y", "--at", "x=3"]) == 2
    assert "missing values for y" in capsys.readouterr().err
