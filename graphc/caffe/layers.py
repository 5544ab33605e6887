"""The Caffe layer vocabulary: one function per layer type, each building its graph piece.

A layer function takes the build context (the layer's spec, the phase, the model that owns the
parameters) and its bottom variables, and returns its top variables. Layers with parameters get
them from the model (``ctx.module``), which builds each graphc.nn module once per layer *name*:
the TRAIN and TEST nets share every parameter, as Caffe's test net shares the trained weights.

Shapes are static except the batch axis, so every mismatch is found while the graph is built and
reported with the layer's name and type.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import nn
from .. import ops as gc
from ..errors import ShapeError
from ..graph import Variable, constant
from ..nn import LayerError
from ..types import is_float

FLOAT = "float32"


class NetError(LayerError):
    """A layer that cannot be built: an unknown type, a missing bottom or parameter; the message
    names the layer (its name and type)."""

    auto_location = False  # the mistake is in the net file, not in a line of Python


class NetShapeError(ShapeError):
    """Blob shapes that do not fit a layer; the message names the layer (its name and type)."""

    auto_location = False


def describe(x: Variable) -> str:
    return (
        "("
        + ", ".join("N" if k == 0 and d is None else "?" if d is None else str(d) for k, d in enumerate(x.type.shape))
        + ")"
    )


@dataclass
class Context:
    """What a layer function needs: its spec, the phase, and the model holding the parameters."""

    layer: dict
    phase: str
    model: object  # CaffeModel (net.py)
    bottom_names: list[str]

    @property
    def name(self) -> str:
        return str(self.layer["name"])

    @property
    def type(self) -> str:
        return str(self.layer["type"])

    @property
    def who(self) -> str:
        return f"layer {self.name!r} ({self.type})"

    def error(self, message: str) -> NetError:
        return NetError(f"{self.who}: {message}")

    def shape_error(self, message: str) -> NetShapeError:
        return NetShapeError(f"{self.who}: {message}")

    def param(self, key: str, required: bool = False) -> dict:
        value = self.layer.get(key)
        if value is None:
            if required:
                raise self.error(f"needs {key} {{ ... }}")
            return {}
        if not isinstance(value, dict):
            raise self.error(f"{key} must be a message {{ ... }}, got {value!r}")
        return value

    def integer(self, params: dict, key: str, default=None, minimum: int = 0, where: str = "") -> int:
        value = params.get(key, default)
        if value is None:
            raise self.error(f"needs {where or 'its parameters'}.{key}" if where else f"needs {key}")
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(f"{key} must be an int >= {minimum}, got {value!r}")
        return value

    def spatial(self, params: dict, key: str, default, minimum: int, where: str) -> tuple[int, int]:
        """Caffe's ``kernel_size`` (one value or one per axis) or ``kernel_h``/``kernel_w``."""
        h, w = params.get(key.replace("_size", "") + "_h"), params.get(key.replace("_size", "") + "_w")
        if h is not None or w is not None:
            if key in params:
                raise self.error(f"give {key} or {key.replace('_size', '')}_h/_w, not both")
            if h is None or w is None:
                raise self.error(f"{where}: give both {key.replace('_size', '')}_h and _w")
            return self.integer({"h": h}, "h", minimum=minimum), self.integer({"w": w}, "w", minimum=minimum)
        value = params.get(key, default)
        if value is None:
            raise self.error(f"needs {where}.{key}")
        values = value if isinstance(value, list) else [value]
        if len(values) not in (1, 2):
            raise self.error(f"{key} has {len(values)} values; 2-D layers take 1 or 2")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise self.error(f"{key} must be an int >= {minimum}, got {v!r}")
        return (values[0], values[-1])

    def expect(self, x: Variable, what: str, ndim=None, min_ndim=None, static_from: int = 1) -> None:
        """``x`` has the rank and static non-batch dims the layer needs."""
        if ndim is not None and x.ndim != ndim:
            raise self.shape_error(f"expects {what}, got a blob of shape {describe(x)} (from {self.bottom_names[0]!r})")
        if min_ndim is not None and x.ndim < min_ndim:
            raise self.shape_error(f"expects {what}, got a blob of shape {describe(x)} (from {self.bottom_names[0]!r})")
        if None in x.type.shape[static_from:]:
            raise self.shape_error(f"needs the static shape of its input, got {describe(x)}")

    def module(self, signature: tuple, factory: Callable[[], nn.Module], blobs=()) -> nn.Module:
        """The layer's module, built once per layer name (shared by TRAIN and TEST nets)."""
        return self.model.layer_module(self, signature, factory, blobs)


@dataclass(frozen=True)
class Blob:
    """A parameter of a layer, as Caffe knows it: attribute of the module, filler key, Caffe's shape,
    and whether graphc stores it transposed (Dense keeps (in, out), Caffe (out, in))."""

    attr: str
    filler: str | None
    shape: tuple
    transposed: bool = False
    default_filler: dict | None = None


# -- layers with parameters --------------------------------------------------------------------


def convolution(ctx: Context, x: Variable) -> list[Variable]:
    p = ctx.param("convolution_param", required=True)
    out = ctx.integer(p, "num_output", minimum=1, where="convolution_param")
    kernel = ctx.spatial(p, "kernel_size", None, 1, "convolution_param")
    stride = ctx.spatial(p, "stride", 1, 1, "convolution_param")
    pad = ctx.spatial(p, "pad", 0, 0, "convolution_param")
    if p.get("group", 1) != 1:
        raise ctx.error("grouped convolution (group > 1) is not supported")
    if any(d != 1 for d in (p.get("dilation") or [1])):
        raise ctx.error("dilated convolution is not supported")
    if p.get("axis", 1) != 1:
        raise ctx.error("only axis 1 (channels) is supported")
    bias = bool(p.get("bias_term", True))
    ctx.expect(x, "an (N, C, H, W) blob", ndim=4)
    c, h, w = x.type.shape[1:]
    if h + 2 * pad[0] < kernel[0] or w + 2 * pad[1] < kernel[1]:
        raise ctx.shape_error(
            f"the {kernel[0]}x{kernel[1]} kernel is larger than its input {describe(x)} padded by {pad}"
        )
    blobs = [Blob("weight", "weight_filler", (out, c, *kernel))]
    if bias:
        blobs.append(Blob("bias", "bias_filler", (out,)))
    module = ctx.module(
        ("Convolution", c, out, kernel, stride, pad, bias),
        lambda: nn.Conv2d(c, out, kernel, stride, pad, bias=bias, init="zeros", seed=0, name=ctx.name),
        blobs,
    )
    return [module(x)]


def inner_product(ctx: Context, x: Variable) -> list[Variable]:
    p = ctx.param("inner_product_param", required=True)
    out = ctx.integer(p, "num_output", minimum=1, where="inner_product_param")
    if p.get("axis", 1) != 1:
        raise ctx.error("only axis 1 is supported (the input is flattened from axis 1, Caffe's default)")
    bias, transpose = bool(p.get("bias_term", True)), bool(p.get("transpose", False))
    ctx.expect(x, "a blob of rank >= 2", min_ndim=2)
    features = math.prod(x.type.shape[1:])
    if x.ndim > 2:  # Caffe flattens (N, C, H, W) to (N, C*H*W)
        x = gc.reshape(x, (x.shape[0], features))
    shape = (features, out) if transpose else (out, features)
    blobs = [Blob("weight", "weight_filler", shape, transposed=not transpose)]
    if bias:
        blobs.append(Blob("bias", "bias_filler", (out,)))
    module = ctx.module(
        ("InnerProduct", features, out, bias),
        lambda: nn.Dense(features, out, bias=bias, init="zeros", seed=0, name=ctx.name),
        blobs,
    )
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


def batch_norm(ctx: Context, x: Variable) -> list[Variable]:
    p = ctx.param("batch_norm_param")
    use_global = bool(p.get("use_global_stats", ctx.phase == "TEST"))
    fraction = float(p.get("moving_average_fraction", 0.999))
    eps = float(p.get("eps", 1e-5))
    ctx.expect(x, "an (N, C), (N, C, L) or (N, C, H, W) blob", min_ndim=2)
    c = x.type.shape[1]
    module = ctx.module(
        ("BatchNorm", c, fraction, eps),
        lambda: nn.BatchNorm(c, eps=eps, momentum=1.0 - fraction, dtype=FLOAT, name=ctx.name),
        [Blob("running_mean", None, (c,)), Blob("running_var", None, (c,))],
    )
    module.train(not use_global)
    return [module(x)]


# -- pooling -----------------------------------------------------------------------------------


def _pad(x: Variable, axis: int, before: int, after: int, value: float) -> Variable:
    parts = []
    for n in (before, after):
        if n:
            shape = list(x.shape)
            shape[axis] = n
            parts.append(gc.full(tuple(shape), value, FLOAT))
        else:
            parts.append(None)
    pieces = [v for v in (parts[0], x, parts[1]) if v is not None]
    return gc.concatenate(pieces, axis=axis) if len(pieces) > 1 else x


def pooling(ctx: Context, x: Variable) -> list[Variable]:
    """Caffe's pooling sizes its output with ceil: ``ceil((H + 2 pad - k) / stride) + 1``, where
    gc.max_pool2d floors. When they differ the input is padded at the bottom and right (with the
    lowest float for MAX, so the partial window takes the max of the pixels it covers; with zeros
    for AVE, dividing each window by the pixels it covers, as Caffe does)."""
    p = ctx.param("pooling_param", required=True)
    method = str(p.get("pool", "MAX"))
    if method not in ("MAX", "AVE"):
        raise ctx.error(f"pool: {method} is not supported (MAX and AVE are)")
    ctx.expect(x, "an (N, C, H, W) blob", ndim=4)
    size = x.type.shape[2:]
    if p.get("global_pooling", False):
        kernel, stride, pad = tuple(size), (1, 1), (0, 0)
    else:
        kernel = ctx.spatial(p, "kernel_size", None, 1, "pooling_param")
        stride = ctx.spatial(p, "stride", 1, 1, "pooling_param")
        pad = ctx.spatial(p, "pad", 0, 0, "pooling_param")
    for k, q, n in zip(kernel, pad, size):
        if q >= k:
            raise ctx.error(f"pad {pad} must be smaller than the kernel {kernel}")
        if n + 2 * q < k:
            raise ctx.shape_error(f"the {kernel[0]}x{kernel[1]} window is larger than its input {describe(x)}")
    outs, extra = [], []
    for n, k, s_, q in zip(size, kernel, stride, pad):
        o = -(-(n + 2 * q - k) // s_) + 1  # ceil
        if q and (o - 1) * s_ >= n + q:  # the last window must start inside the image (Caffe's clip)
            o -= 1
        outs.append(o)
        extra.append(max((o - 1) * s_ + k - (n + 2 * q), 0))
    padded = any(pad) or any(extra)
    if method == "MAX":
        if padded:
            low = float(np.finfo(np.float32).min)
            x = _pad(_pad(x, 2, pad[0], pad[0] + extra[0], low), 3, pad[1], pad[1] + extra[1], low)
        return [gc.max_pool2d(x, kernel, stride)]
    if not padded:
        return [gc.avg_pool2d(x, kernel, stride)]
    x = _pad(_pad(x, 2, pad[0], pad[0] + extra[0], 0.0), 3, pad[1], pad[1] + extra[1], 0.0)
    counts = np.ones(outs, dtype=np.float32)
    for axis, (n, k, s_, q, o) in enumerate(zip(size, kernel, stride, pad, outs)):
        start = np.arange(o) * s_ - q
        covered = np.minimum(start + k, n + q) - start  # Caffe counts the padding, not the ceil overhang
        counts *= covered.reshape((-1, 1) if axis == 0 else (1, -1))
    total = gc.avg_pool2d(x, kernel, stride) * float(kernel[0] * kernel[1])
    return [total / constant(counts.reshape(1, 1, *outs))]


# -- activations and shape layers --------------------------------------------------------------


def _float_input(ctx: Context, x: Variable) -> Variable:
    if not is_float(x.dtype):
        raise ctx.shape_error(f"needs a float blob, got {x.dtype} {describe(x)} (from {ctx.bottom_names[0]!r})")
    return x


def relu(ctx: Context, x: Variable) -> list[Variable]:
    x = _float_input(ctx, x)
    slope = float(ctx.param("relu_param").get("negative_slope", 0.0))
    if slope == 0.0:
        return [gc.relu(x)]
    return [gc.where(x > 0, x, x * slope)]  # Caffe's leaky ReLU


def sigmoid(ctx: Context, x: Variable) -> list[Variable]:
    return [gc.sigmoid(_float_input(ctx, x))]


def tanh(ctx: Context, x: Variable) -> list[Variable]:
    return [gc.tanh(_float_input(ctx, x))]


def absval(ctx: Context, x: Variable) -> list[Variable]:
    return [gc.abs(_float_input(ctx, x))]


def power(ctx: Context, x: Variable) -> list[Variable]:
    p = ctx.param("power_param")
    a, b, c = float(p.get("power", 1.0)), float(p.get("scale", 1.0)), float(p.get("shift", 0.0))
    y = _float_input(ctx, x) * b + c
    return [y if a == 1.0 else y**a]


def dropout(ctx: Context, x: Variable) -> list[Variable]:
    ratio = float(ctx.param("dropout_param").get("dropout_ratio", 0.5))
    if not 0.0 <= ratio < 1.0:
        raise ctx.error(f"dropout_ratio must lie in [0, 1), got {ratio}")
    module = ctx.module(
        ("Dropout", ratio), lambda: nn.Dropout(ratio, seed=ctx.model.layer_seed(ctx.name), name=ctx.name)
    )
    module.train(ctx.phase == "TRAIN")
    return [module(_float_input(ctx, x))]


def softmax(ctx: Context, x: Variable) -> list[Variable]:
    axis = ctx.param("softmax_param").get("axis", 1)
    return [gc.softmax(_float_input(ctx, x), axis=axis)]


def flatten(ctx: Context, x: Variable) -> list[Variable]:
    p = ctx.param("flatten_param")
    if p.get("axis", 1) != 1 or p.get("end_axis", -1) != -1:
        raise ctx.error("only axis 1 and end_axis -1 are supported")
    ctx.expect(x, "a blob of rank >= 2", min_ndim=2)
    return [gc.reshape(x, (x.shape[0], math.prod(x.type.shape[1:])))]


def reshape(ctx: Context, x: Variable) -> list[Variable]:
    p = ctx.param("reshape_param", required=True)
    dims = (p.get("shape") or {}).get("dim")
    if not dims:
        raise ctx.error("needs reshape_param { shape { dim: ... } }")
    dims = dims if isinstance(dims, list) else [dims]
    if p.get("axis", 0) != 0 or p.get("num_axes", -1) != -1:
        raise ctx.error("only axis 0 and num_axes -1 are supported")
    shape = []
    for k, d in enumerate(dims):  # 0 copies the input's dim, -1 is inferred
        shape.append(x.shape[k] if d == 0 else d)
    try:
        return [gc.reshape(x, tuple(shape))]
    except ShapeError as exc:
        raise ctx.shape_error(f"cannot reshape {describe(x)} to {dims}: {exc.detail}") from None


def concat(ctx: Context, *xs: Variable) -> list[Variable]:
    p = ctx.param("concat_param")
    axis = p.get("axis", p.get("concat_dim", 1))
    first = xs[0]
    for name, x in zip(ctx.bottom_names, xs):
        if x.ndim != first.ndim or any(
            a != b for k, (a, b) in enumerate(zip(x.type.shape, first.type.shape)) if k not in (0, axis % x.ndim)
        ):
            raise ctx.shape_error(
                f"bottoms {ctx.bottom_names[0]!r} {describe(first)} and {name!r} {describe(x)} "
                f"differ outside axis {axis}"
            )
    return [gc.concatenate(list(xs), axis=axis)]


def eltwise(ctx: Context, *xs: Variable) -> list[Variable]:
    p = ctx.param("eltwise_param")
    op = str(p.get("operation", "SUM"))
    if op not in ("SUM", "PROD", "MAX"):
        raise ctx.error(f"operation must be SUM, PROD or MAX, got {op}")
    for name, x in zip(ctx.bottom_names, xs):
        if x.type.shape[1:] != xs[0].type.shape[1:]:
            raise ctx.shape_error(
                f"bottoms {ctx.bottom_names[0]!r} {describe(xs[0])} and {name!r} {describe(x)} differ"
            )
    coeff = p.get("coeff", [1.0] * len(xs))
    if len(coeff) != len(xs):
        raise ctx.error(f"{len(coeff)} coeff values for {len(xs)} bottoms")
    if op == "PROD":
        out = xs[0]
        for x in xs[1:]:
            out = out * x
    elif op == "MAX":
        out = xs[0]
        for x in xs[1:]:
            out = gc.maximum(out, x)
    else:
        out = xs[0] if coeff[0] == 1 else xs[0] * float(coeff[0])
        for c, x in zip(coeff[1:], xs[1:]):
            out = out + (x if c == 1 else x * float(c))
    return [out]


def split(ctx: Context, x: Variable) -> list[Variable]:
    return [x] * len(ctx.layer.get("top", []))


def silence(ctx: Context, *xs: Variable) -> list[Variable]:
    return []


# -- losses and accuracy -----------------------------------------------------------------------


def _labels(ctx: Context, scores: Variable, label: Variable) -> tuple[Variable, Variable]:
    """Scores as (M, C) rows and labels as (M,) int64: axis 1 holds the classes, every other axis
    of the scores is a position to classify (Caffe's (N, C, H, W) with (N, 1, H, W) labels)."""
    scores = _float_input(ctx, scores)
    if scores.ndim < 2 or scores.type.shape[1] is None:
        raise ctx.shape_error(f"expects scores (N, C, ...) with a known C, got {describe(scores)}")
    c = scores.type.shape[1]
    spatial = scores.type.shape[2:]
    if None in spatial:
        raise ctx.shape_error(f"needs the static shape of its scores, got {describe(scores)}")
    wanted = (scores.type.shape[0], *spatial)
    got = label.type.shape
    squeezed = tuple(d for k, d in enumerate(got) if not (k == 1 and d == 1 and len(got) == len(wanted) + 1))
    if len(squeezed) != len(wanted) or any(
        a is not None and b is not None and a != b for a, b in zip(squeezed, wanted)
    ):
        dims = "".join(f", {d}" for d in spatial)
        raise ctx.shape_error(
            f"labels {ctx.bottom_names[1]!r} {describe(label)} do not fit scores {ctx.bottom_names[0]!r} "
            f"{describe(scores)}: expected one label per position, (N{dims}) or (N, 1{dims})"
        )
    if spatial:
        scores = gc.transpose(scores, (0, *range(2, scores.ndim), 1))
    rows = scores if scores.ndim == 2 else gc.reshape(scores, (-1, c))
    labels = label if label.ndim == 1 else gc.reshape(label, (-1,))
    if labels.dtype != "int64":
        labels = gc.cast(labels, "int64")  # Caffe stores labels as floats and casts them
    return rows, labels


def _normalizer(ctx: Context, default: str, valid: Variable, count, batch) -> Variable | float:
    p = ctx.param("loss_param")
    mode = p.get("normalization")
    if mode is None:
        mode = default if "normalize" not in p else ("VALID" if p["normalize"] else "BATCH_SIZE")
    if mode == "VALID":
        return gc.maximum(valid, 1.0)
    if mode == "FULL":
        return count
    if mode == "BATCH_SIZE":
        return batch
    if mode == "NONE":
        return 1.0
    raise ctx.error(f"loss_param.normalization must be FULL, VALID, BATCH_SIZE or NONE, got {mode}")


def _count(x: Variable) -> Variable:
    return gc.cast(x.shape[0], FLOAT) * float(math.prod(x.type.shape[1:]))


def softmax_with_loss(ctx: Context, scores: Variable, label: Variable) -> list[Variable]:
    rows, labels = _labels(ctx, scores, label)
    c = rows.type.shape[1]
    ignore = ctx.param("loss_param").get("ignore_label")
    if ignore is None:
        valid = None
        safe = labels
    else:
        valid = gc.cast(gc.neq(labels, int(ignore)), FLOAT)
        safe = gc.where(gc.neq(labels, int(ignore)), labels, 0)
    per_row = gc.softmax_cross_entropy(rows, gc.one_hot(safe, c, FLOAT), axis=1)
    n_rows = gc.cast(rows.shape[0], FLOAT)
    total = gc.sum(per_row if valid is None else per_row * valid)
    n_valid = n_rows if valid is None else gc.sum(valid)
    loss = total / _normalizer(ctx, "VALID", n_valid, n_rows, gc.cast(scores.shape[0], FLOAT))
    tops = [loss]
    if len(ctx.layer.get("top", [])) > 1:
        tops.append(gc.softmax(scores, axis=1))
    return tops


def euclidean_loss(ctx: Context, a: Variable, b: Variable) -> list[Variable]:
    a, b = _float_input(ctx, a), _float_input(ctx, b)
    ca = math.prod(a.type.shape[1:]) if None not in a.type.shape[1:] else None
    cb = math.prod(b.type.shape[1:]) if None not in b.type.shape[1:] else None
    if ca is None or cb is None or ca != cb:
        raise ctx.shape_error(
            f"bottoms {ctx.bottom_names[0]!r} {describe(a)} and {ctx.bottom_names[1]!r} {describe(b)} must have the "
            "same number of values per example"
        )
    if a.type.shape[1:] != b.type.shape[1:]:
        b = gc.reshape(b, a.shape)
    diff = a - b
    return [gc.sum(diff * diff) / (gc.cast(a.shape[0], FLOAT) * 2.0)]


def sigmoid_cross_entropy_loss(ctx: Context, x: Variable, t: Variable) -> list[Variable]:
    x = _float_input(ctx, x)
    if (
        None in x.type.shape[1:]
        or None in t.type.shape[1:]
        or math.prod(x.type.shape[1:]) != math.prod(t.type.shape[1:])
    ):
        raise ctx.shape_error(
            f"bottoms {ctx.bottom_names[0]!r} {describe(x)} and {ctx.bottom_names[1]!r} {describe(t)} must have the "
            "same number of values per example"
        )
    if t.type.shape[1:] != x.type.shape[1:]:
        t = gc.reshape(t, x.shape)
    if t.dtype != FLOAT:
        t = gc.cast(t, FLOAT)
    total = gc.sum(gc.softplus(x) - t * x)  # -[t log p + (1 - t) log(1 - p)], p = sigmoid(x), computed stably
    n = gc.cast(x.shape[0], FLOAT)
    return [total / _normalizer(ctx, "BATCH_SIZE", _count(x), _count(x), n)]


def accuracy(ctx: Context, scores: Variable, label: Variable) -> list[Variable]:
    """The fraction of positions whose label is among the ``top_k`` highest scores: a label is
    missed when ``top_k`` or more classes score strictly higher (Caffe's rule for ties)."""
    p = ctx.param("accuracy_param")
    k = ctx.integer(p, "top_k", default=1, minimum=1)
    if p.get("axis", 1) != 1:
        raise ctx.error("only axis 1 is supported")
    rows, labels = _labels(ctx, scores, label)
    c = rows.type.shape[1]
    ignore = p.get("ignore_label")
    safe = labels if ignore is None else gc.where(gc.neq(labels, int(ignore)), labels, 0)
    own = gc.sum(rows * gc.one_hot(safe, c, FLOAT), axis=1, keepdims=True)
    better = gc.sum(gc.cast(rows > own, FLOAT), axis=1)
    hit = gc.cast(better < float(k), FLOAT)
    if ignore is None:
        return [gc.mean(hit)]
    valid = gc.cast(gc.neq(labels, int(ignore)), FLOAT)
    return [gc.sum(hit * valid) / gc.maximum(gc.sum(valid), 1.0)]


# -- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerType:
    """A layer type: its function, how many bottoms and tops it takes, and whether its first top
    is a loss (loss_weight 1 unless the layer says otherwise)."""

    build: Callable
    bottoms: tuple[int, int]
    tops: tuple[int, int]
    loss: bool = False
    doc: str = ""


#: Data layers (Data, HDF5Data, Input) are built by the net itself: they make the inputs.
DATA_TYPES = ("Data", "HDF5Data", "Input")

LAYERS: dict[str, LayerType] = {
    "Convolution": LayerType(convolution, (1, 1), (1, 1), doc="num_output, kernel_size, stride, pad, bias_term"),
    "Pooling": LayerType(pooling, (1, 1), (1, 1), doc="pool MAX|AVE, kernel_size, stride, pad, global_pooling"),
    "InnerProduct": LayerType(inner_product, (1, 1), (1, 1), doc="num_output, bias_term, transpose"),
    "ReLU": LayerType(relu, (1, 1), (1, 1), doc="negative_slope"),
    "Sigmoid": LayerType(sigmoid, (1, 1), (1, 1)),
    "TanH": LayerType(tanh, (1, 1), (1, 1)),
    "AbsVal": LayerType(absval, (1, 1), (1, 1)),
    "Power": LayerType(power, (1, 1), (1, 1), doc="power, scale, shift"),
    "Dropout": LayerType(dropout, (1, 1), (1, 1), doc="dropout_ratio"),
    "BatchNorm": LayerType(batch_norm, (1, 1), (1, 1), doc="use_global_stats, moving_average_fraction, eps"),
    "Scale": LayerType(scale, (1, 1), (1, 1), doc="bias_term, filler, bias_filler"),
    "Softmax": LayerType(softmax, (1, 1), (1, 1), doc="axis"),
    "Flatten": LayerType(flatten, (1, 1), (1, 1)),
    "Reshape": LayerType(reshape, (1, 1), (1, 1), doc="shape { dim } (0 copies, -1 infers)"),
    "Concat": LayerType(concat, (1, 64), (1, 1), doc="axis"),
    "Eltwise": LayerType(eltwise, (2, 64), (1, 1), doc="operation SUM|PROD|MAX, coeff"),
    "Split": LayerType(split, (1, 1), (1, 64)),
    "Silence": LayerType(silence, (1, 64), (0, 0)),
    "SoftmaxWithLoss": LayerType(
        softmax_with_loss, (2, 2), (1, 2), loss=True, doc="loss_param ignore_label, normalization"
    ),
    "EuclideanLoss": LayerType(euclidean_loss, (2, 2), (1, 1), loss=True),
    "SigmoidCrossEntropyLoss": LayerType(sigmoid_cross_entropy_loss, (2, 2), (1, 1), loss=True),
    "Accuracy": LayerType(accuracy, (2, 2), (1, 1), doc="top_k, ignore_label"),
}

SUPPORTED = (*DATA_TYPES, *LAYERS)
