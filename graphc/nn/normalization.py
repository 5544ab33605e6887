"""Normalization layers: BatchNorm (statistics over the batch) and LayerNorm (over the features).

Both compute ``x_hat = (x - mu) / sqrt(sigma^2 + eps)`` with the biased variance (divided by the
count, as in the lecture notes and the Ioffe-Szegedy algorithm) and return ``gamma * x_hat + beta``
with learned ``gamma`` (initially 1) and ``beta`` (initially 0).
"""

from __future__ import annotations

import numpy as np

from .. import ops as gc
from ..graph import ancestors
from .checks import check_input, float_dtype, label, positive_int
from .module import LayerError, Module


class BatchNorm(Module):
    """Batch normalization over axis 1 of (N, C), (N, C, L) or (N, C, H, W) inputs.

    Training graphs normalize with the batch's mean and biased variance per channel (over every
    axis but 1) and record updates of the running averages, which ``model.state_updates()`` hands
    to the training function::

        running_mean <- (1 - momentum) * running_mean + momentum * batch_mean
        running_var  <- (1 - momentum) * running_var  + momentum * batch_var * n / (n - 1)

    where n counts the values per channel: as in PyTorch, the running variance estimates the
    population variance, so it takes the unbiased batch variance (for n = 1, where that is
    undefined, it takes 0). Evaluation graphs normalize with the running averages instead, so
    they give each example's output independently of the rest of its batch.

    A layer applied to two inputs in one training graph (a siamese network's two branches) moves
    the averages twice, in call order, as two forward calls in PyTorch do: the second update
    builds on the first. Applying it twice to the same input builds the same nodes (graphc
    shares equal subgraphs), so that is one application and one update.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        dtype="float32",
        name: str | None = None,
    ):
        super().__init__(name)
        who = label(self)
        self.num_features = positive_int(who, "num_features", num_features)
        if not float(eps) > 0:
            raise LayerError(f"{who}: eps must be > 0, got {eps!r}")
        if not 0.0 <= float(momentum) <= 1.0:
            raise LayerError(f"{who}: momentum must lie in [0, 1], got {momentum!r}")
        self.eps, self.momentum = float(eps), float(momentum)
        self.dtype = float_dtype(who, dtype)
        c = self.num_features
        self.add_param("gamma", np.ones(c, self.dtype))
        self.add_param("beta", np.zeros(c, self.dtype))
        self.add_state("running_mean", np.zeros(c, self.dtype))
        self.add_state("running_var", np.ones(c, self.dtype))
        self.hparams = dict(num_features=c, eps=self.eps, momentum=self.momentum, dtype=self.dtype)

    def forward(self, x):
        c = self.num_features
        expected = f"(N, {c}), (N, {c}, L) or (N, {c}, H, W) {self.dtype}"
        x = check_input(self, x, expected, ndim=(2, 3, 4), sizes={1: c}, dtype=self.dtype)
        axes = (0, *range(2, x.ndim))
        per_channel = (1, c) + (1,) * (x.ndim - 2)  # broadcasts against x along axis 1
        if self.training:
            mean = gc.mean(x, axis=axes, keepdims=True)
            centered = x - mean
            var = gc.mean(centered * centered, axis=axes, keepdims=True)
            x_hat = centered / gc.sqrt(var + self.eps)
            self._record_running(x, axes, gc.reshape(mean, (c,)), gc.reshape(var, (c,)))
        else:
            mean = gc.reshape(self.running_mean, per_channel)
            var = gc.reshape(self.running_var, per_channel)
            x_hat = (x - mean) / gc.sqrt(var + self.eps)
        return x_hat * gc.reshape(self.gamma, per_channel) + gc.reshape(self.beta, per_channel)

    def _record_running(self, x, axes, mean, var) -> None:
        static = [x.type.shape[a] for a in axes]
        if None not in static:
            n = int(np.prod(static))
            correction = n / max(n - 1, 1) if n > 1 else 0.0
        else:  # the batch size is known only when the function runs
            n = None
            for a in axes:
                dim = x.type.shape[a] if x.type.shape[a] is not None else gc.cast(x.shape[a], self.dtype)
                n = dim if n is None else n * dim
            correction = gc.where(gc.gt(n, 1.0), n / gc.maximum(n - 1.0, 1.0), 0.0)
        previous_mean, previous_var = self.pending(self.running_mean), self.pending(self.running_var)
        if previous_mean is not self.running_mean and any(v is mean for v in ancestors(previous_mean)):
            return  # this very application (same input, same nodes) was built and recorded already
        m = self.momentum
        self.record_update(self.running_mean, previous_mean * (1.0 - m) + mean * m)
        self.record_update(self.running_var, previous_var * (1.0 - m) + var * correction * m)


class LayerNorm(Module):
    """Layer normalization over the last axes, which must have ``normalized_shape`` (an int for
    the last axis alone): each example is normalized by its own mean and biased variance, with
    learned ``gamma`` and ``beta`` of ``normalized_shape``. It behaves the same in training and
    evaluation, and needs no running statistics."""

    def __init__(self, normalized_shape, eps: float = 1e-5, dtype="float32", name: str | None = None):
        super().__init__(name)
        who = label(self)
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        if not shape:
            raise LayerError(f"{who}: normalized_shape must name at least one axis, got {normalized_shape!r}")
        self.normalized_shape = tuple(positive_int(who, "normalized_shape entries", d) for d in shape)
        if not float(eps) > 0:
            raise LayerError(f"{who}: eps must be > 0, got {eps!r}")
        self.eps = float(eps)
        self.dtype = float_dtype(who, dtype)
        self.add_param("gamma", np.ones(self.normalized_shape, self.dtype))
        self.add_param("beta", np.zeros(self.normalized_shape, self.dtype))
        self.hparams = dict(normalized_shape=list(self.normalized_shape), eps=self.eps, dtype=self.dtype)

    def forward(self, x):
        k = len(self.normalized_shape)
        dims = ", ".join(map(str, self.normalized_shape))
        sizes = {-k + i: d for i, d in enumerate(self.normalized_shape)}
        x = check_input(self, x, f"(..., {dims}) {self.dtype}", min_ndim=k, sizes=sizes, dtype=self.dtype)
        axes = tuple(range(x.ndim - k, x.ndim))
        mean = gc.mean(x, axis=axes, keepdims=True)
        centered = x - mean
        var = gc.mean(centered * centered, axis=axes, keepdims=True)
        return centered / gc.sqrt(var + self.eps) * self.gamma + self.beta

    def __repr__(self) -> str:
        return f"LayerNorm({list(self.normalized_shape)}, eps={self.eps}, dtype={self.dtype!r})"
