"""Shared by the tests: the lecture function of the seeds (file 004) and its SSA listing."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import graphc as gc
import graphc.ops
from graphc.ops.base import Op
from graphc.ops.reduction import KINDS

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


def _variants(cls) -> list[str]:
    """The op names a parametrized op class stands for; a plain op is its class name."""
    name = cls.__name__
    if cls is graphc.ops.Elementwise:
        return [f"{name}:{row.name}" for row in gc.ELEMENTWISE]
    if cls is graphc.ops.Reduce:
        return [f"{name}:{kind.name}" for kind in KINDS]
    if cls is graphc.ops.Softmax:
        return [f"{name}:{cls(0, log=log).name}" for log in (False, True)]
    if cls is graphc.ops.Pool2d:
        return [f"{name}:{cls(kind, (1, 1), (1, 1)).name}" for kind in ("max", "avg")]
    if cls is graphc.ops.Random:
        distributions = [
            n
            for n, f in inspect.getmembers(graphc.ops.random, inspect.isfunction)
            if f.__module__ == graphc.ops.random.__name__ and not n.startswith("_")
        ]
        return [f"{name}:{d}" for d in distributions]
    return [name]


def discovered_ops() -> set[str]:
    """Every op graphc.ops defines: Op subclasses of every submodule, expanded into their variants.

    Tables that must cover every op (numpy references, derivative rules) compare against this, so
    a new op without an entry fails the suite.
    """
    found = set()
    for info in pkgutil.iter_modules(graphc.ops.__path__):
        module = importlib.import_module(f"graphc.ops.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Op) and cls is not Op and cls.__module__ == module.__name__:
                found.update(_variants(cls))
    return found
