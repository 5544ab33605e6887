"""The Caffe layer vocabulary: one function per layer type, each building its graph piece.

A layer function takes the build context (the layer's spec, the phase, the model that owns the
parameters) and its bottom variables, and returns its top variables. Layers with parameters get
them from the model (``ctx.module``), which builds each graphc.nn module once per layer *name*:
the TRAIN and TEST nets share every parameter, as Caffe's test net shares the trained weights.

Shapes are static except the batch axis, so every mismatch is found while the graph is built and
reported with the layer's name and type. The build context and the errors are in ``base.py``;
BatchNorm and Scale in ``normalization.py``; the losses and Accuracy in ``losses.py``.
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
from .base import FLOAT, Blob, Context, NetError, NetShapeError, describe, float_input
from .losses import accuracy, euclidean_loss, sigmoid_cross_entropy_loss, softmax_with_loss
from .normalization import batch_norm, scale

__all__ = ["DATA_TYPES", "FLOAT", "LAYERS", "SUPPORTED", "Blob", "Context", "LayerType", "NetError", "NetShapeError"]

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


def relu(ctx: Context, x: Variable) -> list[Variable]:
    x = float_input(ctx, x)
    slope = float(ctx.param("relu_param").get("negative_slope", 0.0))
    if slope == 0.0:
        return [gc.relu(x)]
    return [gc.where(x > 0, x, x * slope)]  # Caffe's leaky ReLU


def sigmoid(ctx: Context, x: Variable) -> list[Variable]:
    return [gc.sigmoid(float_input(ctx, x))]


def tanh(ctx: Context, x: Variable) -> list[Variable]:
    return [gc.tanh(float_input(ctx, x))]


def absval(ctx: Context, x: Variable) -> list[Variable]:
    return [gc.abs(float_input(ctx, x))]


def power(ctx: Context, x: Variable) -> list[Variable]:
    p = ctx.param("power_param")
    a, b, c = float(p.get("power", 1.0)), float(p.get("scale", 1.0)), float(p.get("shift", 0.0))
    y = float_input(ctx, x) * b + c
    return [y if a == 1.0 else y**a]


def dropout(ctx: Context, x: Variable) -> list[Variable]:
    ratio = float(ctx.param("dropout_param").get("dropout_ratio", 0.5))
    if not 0.0 <= ratio < 1.0:
        raise ctx.error(f"dropout_ratio must lie in [0, 1), got {ratio}")
    module = ctx.module(
        ("Dropout", ratio), lambda: nn.Dropout(ratio, seed=ctx.model.layer_seed(ctx.name), name=ctx.name)
    )
    module.train(ctx.phase == "TRAIN")
    return [module(float_input(ctx, x))]


def softmax(ctx: Context, x: Variable) -> list[Variable]:
    axis = ctx.param("softmax_param").get("axis", 1)
    return [gc.softmax(float_input(ctx, x), axis=axis)]


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
