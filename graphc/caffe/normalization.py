"""Caffe's BatchNorm and Scale layers: Caffe splits batch normalization in two.

``BatchNorm`` only normalizes and learns nothing; its three blobs are statistics that its forward
pass updates (pycaffe's ``net.params["bn"][0..2]``):

- ``[0]`` the running *sum* of batch means, ``[1]`` the running sum of unbiased batch variances,
  ``[2]`` the scale factor, a running sum of ones: each TRAIN forward pass does
  ``s <- lambda s + 1``, ``m <- lambda m + mean_B``, ``v <- lambda v + n/(n-1) var_B`` with
  ``lambda = moving_average_fraction`` and ``n`` the values per channel in the batch;
- with ``use_global_stats`` (TEST by default) it normalizes with ``m / s`` and ``v / s`` (0 and 0
  while ``s`` is 0, before any training step, as Caffe does).

All three start at 0, so ``m / s`` is the bias-corrected exponential average: after one step it
is that batch's mean exactly, not ``(1 - lambda)`` times it. ``Scale`` (``bias_term: true``) adds
the learned per-channel ``gamma`` and ``beta``.
"""

from __future__ import annotations

import math

import numpy as np

from .. import nn
from .. import ops as gc
from ..graph import Variable
from .base import FLOAT, Blob, Context, describe


class CaffeBatchNorm(nn.Module):
    """Caffe's BatchNorm over axis 1 with its three blobs as state: ``mean`` and ``variance``
    (running sums) and ``scale_factor`` (their normalizer). Training graphs (``train()``)
    normalize with the batch's mean and biased variance and record the blob updates; evaluation
    graphs (``eval()``, Caffe's ``use_global_stats``) normalize with ``mean / scale_factor`` and
    ``variance / scale_factor``."""

    def __init__(self, channels: int, moving_average_fraction: float = 0.999, eps: float = 1e-5, name=None):
        super().__init__(name)
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise nn.LayerError(f"{self.name} (BatchNorm): channels must be a positive int, got {channels!r}")
        if not 0.0 <= float(moving_average_fraction) <= 1.0:
            raise nn.LayerError(
                f"{self.name} (BatchNorm): moving_average_fraction must lie in [0, 1], got {moving_average_fraction!r}"
            )
        if not float(eps) > 0:
            raise nn.LayerError(f"{self.name} (BatchNorm): eps must be > 0, got {eps!r}")
        self.channels, self.fraction, self.eps = channels, float(moving_average_fraction), float(eps)
        self.add_state("mean", np.zeros(channels, FLOAT))
        self.add_state("variance", np.zeros(channels, FLOAT))
        self.add_state("scale_factor", np.zeros(1, FLOAT))
        self.hparams = dict(channels=channels, moving_average_fraction=self.fraction, eps=self.eps)

    def forward(self, x: Variable) -> Variable:
        c = self.channels
        if x.ndim < 2 or x.type.shape[1] != c or x.dtype != FLOAT:
            raise nn.LayerError(
                f"{self.name} (BatchNorm): expects a float32 (N, {c}, ...) blob, got {x.dtype} {describe(x)}"
            )
        axes = (0, *range(2, x.ndim))
        per_channel = (1, c) + (1,) * (x.ndim - 2)
        if self.training:
            mean = gc.mean(x, axis=axes)
            centered = x - gc.reshape(mean, per_channel)
            var = gc.mean(centered * centered, axis=axes)  # biased, as Caffe normalizes
            self._record(x, mean, var)
        else:
            s = self.scale_factor
            empty = gc.eq(s, 0.0)
            factor = gc.where(empty, 0.0, 1.0 / gc.where(empty, 1.0, s))  # Caffe: 0 while s is 0
            mean, var = self.mean * factor, self.variance * factor
            centered = x - gc.reshape(mean, per_channel)
        return centered / gc.reshape(gc.sqrt(var + self.eps), per_channel)

    def _record(self, x: Variable, mean: Variable, var: Variable) -> None:
        lam = self.fraction
        spatial = math.prod(x.type.shape[2:])
        n = gc.cast(x.shape[0], FLOAT)  # values per channel in this batch: N * H * W
        n = n * float(spatial) if spatial != 1 else n
        correction = n / gc.maximum(n - 1.0, 1.0)  # Caffe: n / (n - 1), or 1 when n is 1
        self.record_update(self.scale_factor, self.scale_factor * lam + 1.0)
        self.record_update(self.mean, self.mean * lam + mean)
        self.record_update(self.variance, self.variance * lam + var * correction)


def batch_norm(ctx: Context, x: Variable) -> list[Variable]:
    p = ctx.param("batch_norm_param")
    use_global = bool(p.get("use_global_stats", ctx.phase == "TEST"))
    fraction = float(p.get("moving_average_fraction", 0.999))
    eps = float(p.get("eps", 1e-5))
    for k, spec in enumerate(ctx.layer.get("param", [])):
        if k >= 3 or float((spec or {}).get("lr_mult", 0.0)) != 0.0:
            raise ctx.error(
                "its 3 blobs are statistics, not parameters: a param { } block may only set lr_mult: 0 "
                "(Caffe refuses it too); learn a scale and shift with a Scale layer"
            )
    ctx.expect(x, "an (N, C), (N, C, L) or (N, C, H, W) blob", min_ndim=2)
    if x.dtype != FLOAT:
        raise ctx.shape_error(f"needs a float32 blob, got {x.dtype} {describe(x)} (from {ctx.bottom_names[0]!r})")
    c = x.type.shape[1]
    module = ctx.module(
        ("BatchNorm", c, fraction, eps),
        lambda: CaffeBatchNorm(c, fraction, eps, name=ctx.name),
        [Blob("mean", None, (c,)), Blob("variance", None, (c,)), Blob("scale_factor", None, (1,))],
    )
    module.train(not use_global)  # Caffe updates the blobs in any phase that normalizes by the batch
    return [module(x)]


class _Scale(nn.Module):
    """Caffe's Scale layer on axis 1: ``x * gamma + beta`` per channel (BatchNorm's affine half)."""

    def __init__(self, channels: int, bias: bool, name: str):
        super().__init__(name)
        self.channels, self.has_bias = channels, bias
        self.add_param("weight", np.ones(channels, FLOAT))
        if bias:
            self.add_param("bias", np.zeros(channels, FLOAT))
        self.hparams = dict(channels=channels, bias=bias)

    def forward(self, x):
        shape = (1, self.channels) + (1,) * (x.ndim - 2)
        y = x * gc.reshape(self.weight, shape)
        return y + gc.reshape(self.bias, shape) if self.has_bias else y


def scale(ctx: Context, x: Variable) -> list[Variable]:
    p = ctx.param("scale_param")
    if p.get("axis", 1) != 1 or p.get("num_axes", 1) != 1:
        raise ctx.error("only a per-channel scale (axis 1, num_axes 1) is supported")
    ctx.expect(x, "a blob of rank >= 2", min_ndim=2)
    c, bias = x.type.shape[1], bool(p.get("bias_term", False))
    blobs = [Blob("weight", "filler", (c,), default_filler={"type": "constant", "value": 1.0})]
    if bias:
        blobs.append(Blob("bias", "bias_filler", (c,)))
    return [ctx.module(("Scale", c, bias), lambda: _Scale(c, bias, ctx.name), blobs)(x)]
