"""Layers: Dense, Conv2d, pooling, Flatten, Dropout, Embedding and the activations as modules.

Each layer checks its input when it is called, i.e. when the graph is built: a wrong rank, a
wrong feature or channel count (where the static shape knows it) or a dtype that does not match
the layer's parameters raises :class:`LayerError` naming the layer, before any op sees it.

Dtype rule: a layer with parameters computes in its own ``dtype`` and takes inputs of exactly that
dtype. A float64 input into a float32 layer is an error rather than a silent promotion, because
the promoted graph would run in float64 and its gradients would no longer fit the float32
parameters they update; cast the input (``gc.cast(x, "float32")``) or build the layer with
``dtype="float64"``. Layers without parameters (activations, pooling, Dropout) take any float input
and keep its dtype.
"""

from __future__ import annotations

import math

import numpy as np

from .. import ops as gc
from . import init as initializers
from .checks import check_input, describe_type, float_dtype, jsonable_pair, label, pair, positive_int
from .module import LayerError, Module


# ----- layers with weights -----------------------------------------------------------------------
class Dense(Module):
    """A fully connected layer ``y = x @ W + b`` on the last axis (Caffe's InnerProduct, PyTorch's
    Linear, Keras' Dense). ``W`` is stored (in_features, out_features), as in the lecture's
    ``H = g(X W + b)``, so no transpose is needed.

    The default init is Xavier/Glorot uniform with zero bias (Keras' default, and the lecture's
    and Caffe's "xavier"): it keeps activations and gradients at the same scale through layers
    whose activation is roughly linear near zero (tanh, sigmoid, none). For ReLU networks,
    ``init="he_normal"`` compensates for the half of the units ReLU switches off.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init="xavier_uniform",
        dtype="float32",
        seed: int | None = None,
        name: str | None = None,
    ):
        super().__init__(name)
        who = label(self)
        self.in_features = positive_int(who, "in_features", in_features)
        self.out_features = positive_int(who, "out_features", out_features)
        self.dtype = float_dtype(who, dtype)
        self.seed = initializers.resolve_seed(seed, who)
        shape = (self.in_features, self.out_features)
        self.add_param("weight", initializers.initialize(init, shape, "dense", self.seed, self.dtype))
        self.has_bias = bool(bias)
        if self.has_bias:
            self.add_param("bias", np.zeros(self.out_features, self.dtype))
        self.hparams = dict(
            in_features=self.in_features,
            out_features=self.out_features,
            bias=self.has_bias,
            init=initializers.describe(init),
            dtype=self.dtype,
            seed=self.seed,
        )

    def forward(self, x):
        expected = f"(N, ..., {self.in_features}) {self.dtype}"
        x = check_input(self, x, expected, min_ndim=2, sizes={-1: self.in_features}, dtype=self.dtype)
        y = gc.matmul(x, self.weight)
        return y + self.bias if self.has_bias else y


InnerProduct = Dense  # Caffe's name for the same layer


class Conv2d(Module):
    """2-D convolution (cross-correlation, as in PyTorch and Caffe) on NCHW inputs.

    The weight is (out_channels, in_channels, kh, kw), the layout ``gc.conv2d`` takes; its fans
    count the window: fan_in = in_channels*kh*kw. Output size per spatial axis:
    ``(size + 2*padding - kernel) // stride + 1``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        bias: bool = True,
        init="xavier_uniform",
        dtype="float32",
        seed: int | None = None,
        name: str | None = None,
    ):
        super().__init__(name)
        who = label(self)
        self.in_channels = positive_int(who, "in_channels", in_channels)
        self.out_channels = positive_int(who, "out_channels", out_channels)
        self.kernel_size = pair(who, "kernel_size", kernel_size, 1)
        self.stride = pair(who, "stride", stride, 1)
        self.padding = pair(who, "padding", padding, 0)
        self.dtype = float_dtype(who, dtype)
        self.seed = initializers.resolve_seed(seed, who)
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self.add_param("weight", initializers.initialize(init, shape, "conv", self.seed, self.dtype))
        self.has_bias = bool(bias)
        if self.has_bias:
            self.add_param("bias", np.zeros(self.out_channels, self.dtype))
        self.hparams = dict(
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            kernel_size=jsonable_pair(self.kernel_size),
            stride=jsonable_pair(self.stride),
            padding=jsonable_pair(self.padding),
            bias=self.has_bias,
            init=initializers.describe(init),
            dtype=self.dtype,
            seed=self.seed,
        )

    def forward(self, x):
        expected = f"(N, {self.in_channels}, H, W) {self.dtype}"
        x = check_input(self, x, expected, ndim=4, sizes={1: self.in_channels}, dtype=self.dtype)
        for size, k, p in zip(x.type.shape[2:], self.kernel_size, self.padding):
            if size is not None and size + 2 * p < k:
                raise LayerError(
                    f"{label(self)}: the {self.kernel_size[0]}x{self.kernel_size[1]} kernel is larger than the "
                    f"input {describe_type(x)} padded by {self.padding}"
                )
        y = gc.conv2d(x, self.weight, stride=self.stride, padding=self.padding)
        return y + gc.reshape(self.bias, (1, self.out_channels, 1, 1)) if self.has_bias else y


class Embedding(Module):
    """A table look-up: int64 indices of any shape to rows of a (num_embeddings, embedding_dim)
    table (``gc.take``); the gradient adds into the rows that were looked up. Initialised
    N(0, 1), as in PyTorch."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        init=None,
        dtype="float32",
        seed: int | None = None,
        name: str | None = None,
    ):
        super().__init__(name)
        who = label(self)
        self.num_embeddings = positive_int(who, "num_embeddings", num_embeddings)
        self.embedding_dim = positive_int(who, "embedding_dim", embedding_dim)
        self.dtype = float_dtype(who, dtype)
        self.seed = initializers.resolve_seed(seed, who)
        init = {"type": "normal", "mean": 0.0, "std": 1.0} if init is None else init
        shape = (self.num_embeddings, self.embedding_dim)
        self.add_param("weight", initializers.initialize(init, shape, "dense", self.seed, self.dtype))
        self.hparams = dict(
            num_embeddings=self.num_embeddings,
            embedding_dim=self.embedding_dim,
            init=initializers.describe(init),
            dtype=self.dtype,
            seed=self.seed,
        )

    def forward(self, indices):
        indices = check_input(self, indices, "int64 indices of any shape", dtype="int64")
        return gc.take(self.weight, indices, axis=0)


# ----- layers without weights ----------------------------------------------------------------------
class _Pool2d(Module):
    kind = ""

    def __init__(self, kernel_size, stride=None, name: str | None = None):
        super().__init__(name)
        who = label(self)
        self.kernel_size = pair(who, "kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else pair(who, "stride", stride, 1)
        self.hparams = dict(kernel_size=jsonable_pair(self.kernel_size), stride=jsonable_pair(self.stride))

    def forward(self, x):
        x = check_input(self, x, "(N, C, H, W) float", ndim=4, dtype="float")
        for size, k in zip(x.type.shape[2:], self.kernel_size):
            if size is not None and size < k:
                raise LayerError(
                    f"{label(self)}: the window {self.kernel_size} is larger than the input {describe_type(x)}"
                )
        pool = gc.max_pool2d if self.kind == "max" else gc.avg_pool2d
        return pool(x, self.kernel_size, self.stride)


class MaxPool2d(_Pool2d):
    """The max over each (kh, kw) window of an NCHW input, without padding; ``stride`` defaults to
    the window (non-overlapping). Ties split the gradient evenly."""

    kind = "max"


class AvgPool2d(_Pool2d):
    """The mean over each (kh, kw) window of an NCHW input, without padding."""

    kind = "avg"


class Flatten(Module):
    """(N, d1, d2, ...) to (N, d1*d2*...): keeps the batch axis, which may be symbolic. The flat
    size is static when d1, d2, ... are, so the Dense layer after it can check it."""

    def __init__(self, name: str | None = None):
        super().__init__(name)

    def forward(self, x):
        x = check_input(self, x, "(N, ...) of rank >= 2", min_ndim=2)
        if x.ndim == 2:
            return x
        rest = x.type.shape[1:]
        flat = -1 if None in rest else math.prod(rest)
        return gc.reshape(x, (x.shape[0], flat))


class Dropout(Module):
    """Inverted dropout: in training, each entry is kept with probability 1 - p and scaled by
    1 / (1 - p), so the expected output equals the input and evaluation needs no rescaling; in
    evaluation it is the identity.

    The mask is a seeded ``gc.random.bernoulli`` node over the input's (symbolic) shape: a compiled
    function draws a new mask on every call, reproducibly from the layer's seed.

    Each call of the layer in training mode (each time a training graph is *built* through it)
    takes the next seed of the layer's own sequence (``nn.init.derive_seed(seed, k)`` for the
    k-th call), so a layer applied twice in one graph draws two independent masks, and two Dropout
    layers never share one. The price is a hidden counter: the masks of a compiled function depend
    on how many training graphs were built through the layer before it. A model rebuilt from its
    config (or built again after ``nn.manual_seed``) draws the same masks as the original only
    after the same number of training builds; evaluation graphs do not count.
    """

    def __init__(self, p: float = 0.5, seed: int | None = None, name: str | None = None):
        super().__init__(name)
        who = label(self)
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) or not 0.0 <= p <= 1.0:
            raise LayerError(f"{who}: the drop probability p must lie in [0, 1], got {p!r}")
        self.p = float(p)
        self.seed = initializers.resolve_seed(seed, who)
        self._calls = 0
        self.hparams = dict(p=self.p, seed=self.seed)

    def forward(self, x):
        x = check_input(self, x, "a float tensor", dtype="float")
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        seed = initializers.derive_seed(self.seed, self._calls)
        self._calls += 1
        keep = gc.random.bernoulli(x.shape, p=1.0 - self.p, seed=seed, dtype=x.dtype)
        return x * keep * (1.0 / (1.0 - self.p))


# ----- activations -------------------------------------------------------------------------------
class _Activation(Module):
    """An elementwise function of a float input of any shape."""

    def __init__(self, name: str | None = None):
        super().__init__(name)

    def forward(self, x):
        return self.apply(check_input(self, x, "a float tensor", dtype="float"))

    def apply(self, x):
        raise NotImplementedError


class Sigmoid(_Activation):
    """1 / (1 + exp(-x))."""

    def apply(self, x):
        return gc.sigmoid(x)


class Tanh(_Activation):
    def apply(self, x):
        return gc.tanh(x)


class ReLU(_Activation):
    """max(x, 0)."""

    def apply(self, x):
        return gc.relu(x)


class GELU(_Activation):
    """x * Phi(x) with the exact Gaussian CDF Phi (erf form, PyTorch's default)."""

    def apply(self, x):
        return gc.gelu(x)


class LeakyReLU(_Activation):
    """max(x, 0) + negative_slope * min(x, 0): a fixed slope, where PReLU learns it."""

    def __init__(self, negative_slope: float = 0.01, name: str | None = None):
        super().__init__(name)
        self.negative_slope = float(negative_slope)
        self.hparams = dict(negative_slope=self.negative_slope)

    def apply(self, x):
        return gc.relu(x) + self.negative_slope * gc.minimum(x, 0.0)


class Softplus(_Activation):
    """log(1 + exp(beta * x)) / beta, computed without overflow: a smooth ReLU."""

    def __init__(self, beta: float = 1.0, name: str | None = None):
        super().__init__(name)
        if not float(beta) > 0:
            raise LayerError(f"{label(self)}: beta must be > 0, got {beta!r}")
        self.beta = float(beta)
        self.hparams = dict(beta=self.beta)

    def apply(self, x):
        if self.beta == 1.0:
            return gc.softplus(x)
        return gc.softplus(x * self.beta) * (1.0 / self.beta)


class Softmax(_Activation):
    """exp(x) / sum(exp(x)) along ``axis``. For training, feed the logits (not this layer's output)
    to ``losses.softmax_cross_entropy``, which is the stable form of log(softmax)."""

    def __init__(self, axis: int = -1, name: str | None = None):
        super().__init__(name)
        self.axis = int(axis)
        self.hparams = dict(axis=self.axis)

    def apply(self, x):
        if not -x.ndim <= self.axis < x.ndim:
            raise LayerError(f"{label(self)}: axis {self.axis} is out of range for input {describe_type(x)}")
        return gc.softmax(x, axis=self.axis)


class PReLU(Module):
    """max(x, 0) + a * min(x, 0) with a learned slope ``a`` (He et al. 2015), initialised to
    ``init``. With ``num_parameters=1`` one slope is shared by every entry; otherwise there is one
    per channel, on axis 1 (as in PyTorch: features of (N, C), channels of (N, C, H, W))."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, dtype="float32", name: str | None = None):
        super().__init__(name)
        who = label(self)
        self.num_parameters = positive_int(who, "num_parameters", num_parameters)
        self.dtype = float_dtype(who, dtype)
        self.add_param("weight", np.full(self.num_parameters, float(init), self.dtype))
        self.hparams = dict(num_parameters=self.num_parameters, init=float(init), dtype=self.dtype)

    def forward(self, x):
        if self.num_parameters == 1:
            x = check_input(self, x, f"a {self.dtype} tensor", dtype=self.dtype)
            slope = gc.reshape(self.weight, ())
        else:
            expected = f"(N, {self.num_parameters}, ...) {self.dtype}"
            x = check_input(self, x, expected, min_ndim=2, sizes={1: self.num_parameters}, dtype=self.dtype)
            slope = gc.reshape(self.weight, (1, self.num_parameters) + (1,) * (x.ndim - 2))
        return gc.relu(x) + slope * gc.minimum(x, 0.0)
