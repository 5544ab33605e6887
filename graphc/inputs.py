"""Constructors of symbolic inputs, Theano style: ``gc.scalar``, ``gc.vector``, ``gc.matrix``, ``gc.tensor``."""

from __future__ import annotations

from .errors import ShapeError
from .graph import Input, input_variable


def _fixed_rank(name, shape, ndim: int, kind: str, dtype) -> Input:
    shape = (None,) * ndim if shape is None else shape
    if len(tuple(shape)) != ndim:
        raise ShapeError(f"gc.{kind} has {ndim} dimension(s), got shape {shape!r}; use gc.tensor for others")
    return input_variable(name, shape, dtype)


def scalar(name: str | None = None, dtype="float64") -> Input:
    """A 0-d input."""
    return input_variable(name, (), dtype)


def vector(name: str | None = None, dtype="float64", shape=None) -> Input:
    """A 1-d input; its length is unknown unless ``shape=(n,)`` is given."""
    return _fixed_rank(name, shape, 1, "vector", dtype)


def matrix(name: str | None = None, dtype="float64", shape=None) -> Input:
    """A 2-d input; ``shape`` may fix either dimension, e.g. ``(None, 784)``."""
    return _fixed_rank(name, shape, 2, "matrix", dtype)


def tensor(name: str | None = None, shape=None, dtype="float64") -> Input:
    """An input of any rank: ``shape`` is a tuple of ints and ``None`` (unknown) entries."""
    if shape is None:
        raise ShapeError("gc.tensor needs a shape, e.g. shape=(None, 1, 28, 28); None marks an unknown dimension")
    return input_variable(name, shape, dtype)
