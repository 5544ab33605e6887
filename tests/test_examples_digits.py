"""The digits examples run and reach their accuracies (issue 9's acceptance: MLP and CNN >= 97%)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

import digits  # noqa: E402
import digits_cnn  # noqa: E402
import digits_logistic  # noqa: E402
import digits_mlp  # noqa: E402
import digits_softmax  # noqa: E402
import optimizers_digits  # noqa: E402


def test_split_is_fixed_and_disjoint():
    (xa, ya), (xv, yv), (xt, yt) = digits.load()
    again = digits.load()[2]
    assert (xt == again[0]).all() and len(xa) + len(xv) + len(xt) == 1797
    assert xa.dtype.name == "float32" and ya.dtype.name == "int64" and xa.min() >= 0 and xa.max() <= 1
    assert digits.load(images=True)[0][0].shape[1:] == (1, 8, 8)


@pytest.mark.parametrize("example", [digits_mlp, digits_cnn], ids=["mlp", "cnn"])
def test_mlp_and_cnn_reach_97_percent_on_numba(example, capsys):
    assert example.main(["--quiet", "--backend", "numba"]) == 0
    accuracy = float(capsys.readouterr().out.split("test accuracy ")[1].split()[0])
    assert accuracy >= 0.97


def test_logistic_and_softmax_regression(capsys):
    assert digits_logistic.main(["--quiet"]) == 0
    assert digits_softmax.main(["--quiet"]) == 0
    out = capsys.readouterr().out
    assert "3 vs 8" in out and "softmax regression" in out


def test_optimizer_comparison_plot(tmp_path):
    out = tmp_path / "curves.png"
    assert optimizers_digits.main(["--quiet", "--epochs", "2", "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
