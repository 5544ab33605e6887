"""The README's example runs as written and prints what it says."""

from __future__ import annotations

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(capsys):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "v3 = v1 * v2" in printed
    assert "22037.42471908138" in printed
    assert "110137.3289" in printed and "44054.6479" in printed
    step, w = namespace["step"], namespace["w"]
    X = np.random.default_rng(0).normal(size=(50, 3))
    t = X @ np.array([1.0, -2.0, 0.5])
    losses = [float(step(X, t)) for _ in range(200)]
    assert losses[-1] < 1e-6 * losses[0]
    np.testing.assert_allclose(w.get_value(), [1.0, -2.0, 0.5], atol=1e-4)
