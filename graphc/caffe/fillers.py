"""Caffe's fillers: the initial values of a layer's blobs, in Caffe's layout and with its defaults.

A filler is ``weight_filler { type: "xavier" }``. Caffe's defaults are kept on purpose, including
the surprising one: a layer without ``weight_filler`` starts from the constant 0, as in Caffe
(every LeNet layer names its filler for that reason). The fans are Caffe's: for a blob of shape
(out, in, kh, kw) or (out, in), ``fan_in = count / shape[0]`` and ``fan_out = count / shape[1]``.

| type | values | parameters (Caffe's defaults) |
|---|---|---|
| constant | ``value`` | value 0 |
| uniform | U(min, max) | min 0, max 1 |
| gaussian | N(mean, std^2) | mean 0, std 1 |
| xavier | U(-a, a), a = sqrt(3 / n) | variance_norm FAN_IN: n = fan_in (FAN_OUT, AVERAGE) |
| msra | N(0, 2 / n) | variance_norm FAN_IN |
| positive_unitball | rows of U(0, 1) scaled to sum 1 | |
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from .base import NetError

__all__ = ["FILLERS", "fill", "filler_rng"]

FILLERS = ("constant", "uniform", "gaussian", "xavier", "msra", "positive_unitball")
_NORMS = ("FAN_IN", "FAN_OUT", "AVERAGE")
_KEYS = {"type", "value", "min", "max", "mean", "std", "sparse", "variance_norm"}


def filler_rng(seed: int, layer: str, blob: int) -> np.random.Generator:
    """The generator for blob ``blob`` of ``layer``: seeded by the solver's ``random_seed`` and the
    layer's name, so a layer's initial values do not change when other layers are added."""
    key = (zlib.crc32(layer.encode()), blob)
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=key))


def _n(shape: tuple, norm: str) -> float:
    count = math.prod(shape)
    fan_in = count / shape[0] if len(shape) > 0 else 1
    fan_out = count / shape[1] if len(shape) > 1 else count
    return {"FAN_IN": fan_in, "FAN_OUT": fan_out, "AVERAGE": (fan_in + fan_out) / 2}[norm]


def fill(spec: dict | None, shape: tuple, rng: np.random.Generator, who: str) -> np.ndarray:
    """Values of ``shape`` (Caffe's layout) drawn as ``spec`` (a ``*_filler`` message) says; ``who``
    names the layer and the filler in errors."""
    spec = dict(spec or {})
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise NetError(f"{who}: unknown filler field {', '.join(unknown)} (fillers know {', '.join(sorted(_KEYS))})")
    kind = str(spec.get("type", "constant"))
    if kind not in FILLERS:
        raise NetError(f"{who}: unknown filler type {kind!r}; graphc knows {', '.join(FILLERS)}")
    if spec.get("sparse", -1) not in (-1, None):
        raise NetError(f"{who}: sparse gaussian fillers are not supported")
    norm = str(spec.get("variance_norm", "FAN_IN"))
    if norm not in _NORMS:
        raise NetError(f"{who}: variance_norm must be one of {', '.join(_NORMS)}, got {norm!r}")
    if kind == "constant":
        return np.full(shape, float(spec.get("value", 0.0)), dtype=np.float32)
    if kind == "uniform":
        low, high = float(spec.get("min", 0.0)), float(spec.get("max", 1.0))
        if not low <= high:
            raise NetError(f"{who}: uniform filler needs min <= max, got {low}, {high}")
        return rng.uniform(low, high, shape).astype(np.float32)
    if kind == "gaussian":
        std = float(spec.get("std", 1.0))
        if std < 0:
            raise NetError(f"{who}: gaussian filler needs std >= 0, got {std}")
        return rng.normal(float(spec.get("mean", 0.0)), std, shape).astype(np.float32)
    if kind == "xavier":
        scale = math.sqrt(3.0 / _n(shape, norm))
        return rng.uniform(-scale, scale, shape).astype(np.float32)
    if kind == "msra":
        return rng.normal(0.0, math.sqrt(2.0 / _n(shape, norm)), shape).astype(np.float32)
    values = rng.uniform(0.0, 1.0, shape)  # positive_unitball: each output's weights sum to 1
    values /= values.reshape(shape[0], -1).sum(axis=1).reshape((shape[0],) + (1,) * (len(shape) - 1))
    return values.astype(np.float32)
