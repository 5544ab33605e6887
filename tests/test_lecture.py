"""Acceptance: the lecture function of the seeds (file 004), and the logistic-regression example."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
from helpers import lecture

import graphc as gc

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_lecture_function_has_seven_variables():
    x1, x2, y = lecture()
    graph = gc.Graph(y)
    assert len(graph.inputs) == 2
    assert len(graph.nodes) == 5
    assert len(gc.ancestors(y)) == 7
    # x1*x2 is written twice but built once (hash-consing)
    assert sum(node.op.name == "mul" for node in graph.nodes) == 1


def test_lecture_function_value_float64():
    x1, x2, y = lecture()
    f = gc.function([x1, x2], y)
    value = f(2.0, 5.0)
    assert value.dtype == np.float64
    assert value == 22037.42471908138


def test_lecture_function_listing_uses_lecture_numbering():
    _, _, y = lecture()
    lines = gc.pformat(y).splitlines()
    assert lines[:3] == ["v1 = x1", "v2 = x2", "v3 = v1 * v2"]
    assert lines[-1] == "return v7"


def _load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_logistic_regression_example_fits_separable_data():
    example = _load_example("logistic_regression")
    X, y = example.make_data(seed=1)
    assert set(np.unique(y)) == {0.0, 1.0}
    assert example.train(epochs=10, seed=1, verbose=False) > 0.95
