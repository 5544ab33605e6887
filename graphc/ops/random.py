"""Random draws with explicit seeds (for dropout and initializers).

A random node holds its seed; each compiled function gives each random node its own generator
seeded with it, so a function's sequence of draws is reproducible, every call draws anew, and
two nodes built with the same arguments and seed are the same node and draw the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DTypeError, ShapeError
from ..graph import Variable, apply1
from ..types import TensorType, as_dtype, is_float
from .base import Op, check_shape_inputs, fill_shape, format_shape_argument, no_jvp, no_vjp, shape_argument


@dataclass(frozen=True)
class Random(Op):
    """Draws of ``shape`` from ``distribution`` with parameters ``a`` and ``b``.

    normal: mean a, standard deviation b; uniform: on [a, b); bernoulli: 1 with probability a.
    """

    distribution: str
    shape: tuple[int | None, ...]
    a: float
    b: float
    seed: int
    dtype: str
    needs_rng = True  # backends give each node a generator of its own
    vjp = no_vjp  # a draw does not depend on its shape inputs
    jvp = no_jvp

    @property
    def name(self) -> str:
        return self.distribution

    @property
    def nin(self) -> int:
        return self.shape.count(None)

    def infer(self, *dims: TensorType) -> list[TensorType]:
        check_shape_inputs(dims, self.name)
        return [TensorType(self.dtype, self.shape)]

    def perform(self, *dims, rng: np.random.Generator):
        shape = fill_shape(self.shape, dims)
        if self.distribution == "normal":
            out = rng.normal(self.a, self.b, shape)
        elif self.distribution == "uniform":
            out = rng.uniform(self.a, self.b, shape)
        else:
            out = rng.random(shape) < self.a
        return (np.asarray(out, dtype=self.dtype),)

    def format_call(self, args: list[str]) -> str:
        params = {"normal": ("mean", "std"), "uniform": ("low", "high"), "bernoulli": ("p",)}[self.distribution]
        values = ", ".join(f"{k}={v}" for k, v in zip(params, (self.a, self.b)))
        shape = format_shape_argument(self.shape, args)
        return f"{self.distribution}({shape}, {values}, seed={self.seed}, dtype={self.dtype})"


def _random(distribution, shape, a, b, seed, dtype, float_only=True) -> Variable:
    dtype = as_dtype(dtype)
    if float_only and not is_float(dtype):
        raise DTypeError(f"draws must be float32 or float64, got {dtype}", op=distribution)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ShapeError(f"seed must be a non-negative int, got {seed!r}", op=distribution)
    static, dynamic = shape_argument(shape, distribution)
    if -1 in static:
        raise ShapeError(f"shape cannot contain -1, got {shape!r}", op=distribution)
    return apply1(Random(distribution, static, float(a), float(b), int(seed), dtype), *dynamic)


def normal(shape, mean=0.0, std=1.0, seed: int = 0, dtype="float64") -> Variable:
    """Normal draws; ``shape`` entries are ints or symbolic sizes such as ``x.shape[0]``."""
    if std < 0:
        raise ShapeError(f"std must be >= 0, got {std}", op="normal")
    return _random("normal", shape, mean, std, seed, dtype)


def uniform(shape, low=0.0, high=1.0, seed: int = 0, dtype="float64") -> Variable:
    """Uniform draws on [low, high)."""
    return _random("uniform", shape, low, high, seed, dtype)


def bernoulli(shape, p=0.5, seed: int = 0, dtype="float64") -> Variable:
    """1 with probability ``p``, else 0 (as ``dtype``, which may be bool)."""
    if not 0.0 <= p <= 1.0:
        raise ShapeError(f"p must lie in [0, 1], got {p}", op="bernoulli")
    return _random("bernoulli", shape, p, 0.0, seed, dtype, float_only=False)
