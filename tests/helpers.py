"""Shared by the tests: the lecture function of the seeds (file 004) and its SSA listing."""

from __future__ import annotations

import graphc as gc

LECTURE_LISTING = """\
v1 = x1
v2 = x2
v3 = v1 * v2
v4 = exp(v3)
v5 = v3 + v4
v6 = sin(v2)
v7 = v5 - v6
return v7"""


def lecture():
    """``x1*x2 + exp(x1*x2) - sin(x2)`` with its two inputs: returns (x1, x2, y)."""
    x1, x2 = gc.scalar("x1"), gc.scalar("x2")
    return x1, x2, x1 * x2 + gc.exp(x1 * x2) - gc.sin(x2)
