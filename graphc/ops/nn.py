"""Neural-network primitives: softmax, log-softmax, 2-D convolution and pooling (NCHW layout)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import DTypeError, ShapeError
from ..graph import Variable, apply1
from ..types import TensorType, float_result, is_float, shapes_compatible
from .base import (
    Op,
    as_variable,
    check_shape_inputs,
    fill_shape,
    format_shape_argument,
    normalize_axis,
    operands,
    shape_argument,
)


@dataclass(frozen=True)
class Softmax(Op):
    """``exp(x) / sum(exp(x))`` along ``axis``, shifted by the max so it never overflows."""

    axis: int
    log: bool = False

    @property
    def name(self) -> str:
        return "log_softmax" if self.log else "softmax"

    def infer(self, x: TensorType) -> list[TensorType]:
        if not 0 <= self.axis < x.ndim:
            raise ShapeError(f"axis {self.axis} is out of range")
        return [TensorType(float_result(x.dtype), x.shape)]

    def perform(self, x):
        x = x.astype(float_result(x.dtype.name), copy=False)
        shifted = x - np.max(x, axis=self.axis, keepdims=True)
        if self.log:
            return (shifted - np.log(np.sum(np.exp(shifted), axis=self.axis, keepdims=True)),)
        e = np.exp(shifted)
        return (e / np.sum(e, axis=self.axis, keepdims=True),)

    def format_params(self) -> list[str]:
        return [f"axis={self.axis}"]

    def vjp(self, inputs, outputs, cotangents):
        from .elementwise import exp
        from .reduction import sum

        (y,), (g,) = outputs, cotangents
        if self.log:
            return [g - exp(y) * sum(g, axis=self.axis, keepdims=True)]
        return [y * (g - sum(g * y, axis=self.axis, keepdims=True))]

    def jvp(self, inputs, outputs, tangents):
        from .elementwise import exp
        from .reduction import sum

        (y,), (t,) = outputs, tangents
        if self.log:
            return [t - sum(exp(y) * t, axis=self.axis, keepdims=True)]
        return [y * (t - sum(t * y, axis=self.axis, keepdims=True))]


def softmax(x, axis: int = -1) -> Variable:
    """Softmax along ``axis`` (the last by default)."""
    x = as_variable(x)
    return apply1(Softmax(normalize_axis(axis, x, "softmax")), x)


def log_softmax(x, axis: int = -1) -> Variable:
    """``log(softmax(x))`` along ``axis``, computed stably."""
    x = as_variable(x)
    return apply1(Softmax(normalize_axis(axis, x, "log_softmax"), log=True), x)


@dataclass(frozen=True)
class SoftmaxCrossEntropy(Op):
    """``-sum(targets * log_softmax(logits), axis)`` as one stable node.

    ``targets`` are probabilities along ``axis`` (one-hot or soft labels). Its gradient with
    respect to the logits is ``softmax(logits) * sum(targets) - targets``, finite for any logits.
    """

    axis: int
    name = "softmax_cross_entropy"
    nin = 2

    def infer(self, z: TensorType, t: TensorType) -> list[TensorType]:
        if not 0 <= self.axis < z.ndim:
            raise ShapeError(f"axis {self.axis} is out of range")
        if not shapes_compatible(z.shape, t.shape):
            raise ShapeError(f"logits {z.shape} and targets {t.shape} must have the same shape")
        shape = tuple(d if d is not None else e for d, e in zip(z.shape, t.shape))
        return [TensorType(float_result(z.dtype, t.dtype), shape[: self.axis] + shape[self.axis + 1 :])]

    def perform(self, z, t):
        dtype = float_result(z.dtype.name, t.dtype.name)
        (log_p,) = Softmax(self.axis, log=True).perform(z.astype(dtype, copy=False))
        return (np.asarray(-np.sum(t * log_p, axis=self.axis), dtype=dtype),)

    def format_params(self) -> list[str]:
        return [f"axis={self.axis}"]

    def vjp(self, inputs, outputs, cotangents):
        from .reduction import sum
        from .shape import expand_dims

        (z, t), g = inputs, expand_dims(cotangents[0], self.axis)
        gz = g * (softmax(z, self.axis) * sum(t, axis=self.axis, keepdims=True) - t)
        return [gz, -g * log_softmax(z, self.axis)]

    def jvp(self, inputs, outputs, tangents):
        from .reduction import sum

        (z, t), (tz, tt) = inputs, tangents
        terms = []
        if tz is not None:
            dz = softmax(z, self.axis) * sum(t, axis=self.axis, keepdims=True) - t
            terms.append(sum(dz * tz, axis=self.axis))
        if tt is not None:
            terms.append(sum(-log_softmax(z, self.axis) * tt, axis=self.axis))
        return [terms[0] if len(terms) == 1 else terms[0] + terms[1]]


def softmax_cross_entropy(logits, targets, axis: int = -1) -> Variable:
    """Cross-entropy of ``softmax(logits)`` against target probabilities, reduced over ``axis``."""
    z, t = operands(logits, targets)
    return apply1(SoftmaxCrossEntropy(normalize_axis(axis, z, "softmax_cross_entropy")), z, t)


def _pair(value, what: str, op: str, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v >= minimum for v in pair):
        raise ShapeError(f"{what} must be an int >= {minimum} or a pair of them, got {value!r}", op=op)
    return int(pair[0]), int(pair[1])


def _window_out(size, k, stride, pad):
    if size is None:
        return None
    return (size + 2 * pad - k) // stride + 1


@dataclass(frozen=True)
class Conv2d(Op):
    """Cross-correlation of ``x`` (N, C, H, W) with ``w`` (O, C, kh, kw), as in PyTorch and Caffe."""

    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    name = "conv2d"
    nin = 2

    def infer(self, x: TensorType, w: TensorType) -> list[TensorType]:
        if x.ndim != 4 or w.ndim != 4:
            raise ShapeError(f"needs x as (N, C, H, W) and w as (O, C, kh, kw), got {x.ndim}-d x and {w.ndim}-d w")
        if not (is_float(x.dtype) and is_float(w.dtype)):
            raise DTypeError(f"needs float inputs, got {x.dtype} and {w.dtype}")
        if None not in (x.shape[1], w.shape[1]) and x.shape[1] != w.shape[1]:
            raise ShapeError(f"x has {x.shape[1]} channels but w expects {w.shape[1]}")
        out = []
        for size, k, s, p in zip(x.shape[2:], w.shape[2:], self.stride, self.padding):
            if size is not None and k is not None and size + 2 * p < k:
                raise ShapeError(f"kernel {w.shape[2:]} is larger than the padded input {x.shape[2:]}")
            out.append(None if k is None else _window_out(size, k, s, p))
        return [TensorType(float_result(x.dtype, w.dtype), (x.shape[0], w.shape[0], *out))]

    def perform(self, x, w):
        dtype = np.result_type(x, w)
        windows = _windows(x, w.shape[2:], self.stride, self.padding)
        out = np.tensordot(windows, w, axes=([1, 4, 5], [1, 2, 3]))  # (N, Ho, Wo, O)
        return (np.ascontiguousarray(out.transpose(0, 3, 1, 2), dtype=dtype),)

    def format_params(self) -> list[str]:
        return [f"stride={self.stride}", f"padding={self.padding}"]

    def composite(self, x, w):
        """The same convolution from simpler ops: im2col patches times the flattened filters."""
        from .linalg import matmul
        from .shape import reshape, transpose

        patches = apply1(Patches(w.type.shape[2:], self.stride, self.padding), x)  # (N, C, Ho, Wo, kh, kw)
        rows = transpose(patches, (0, 2, 3, 1, 4, 5))
        n, ho, wo = rows.shape[:3]
        cols = reshape(rows, (n, ho, wo, -1))
        filters = reshape(w, (w.shape[0], -1))
        return transpose(matmul(cols, transpose(filters)), (0, 3, 1, 2))

    def vjp(self, inputs, outputs, cotangents):
        from ..autodiff import vjp

        if None in inputs[1].type.shape[2:]:
            raise ShapeError("differentiating conv2d needs the kernel size in w's static shape")
        return vjp(self.composite(*inputs), list(inputs), cotangents[0])

    def jvp(self, inputs, outputs, tangents):
        (x, w), (tx, tw) = inputs, tangents
        terms = [conv2d(tx, w, self.stride, self.padding) if tx is not None else None]
        terms.append(conv2d(x, tw, self.stride, self.padding) if tw is not None else None)
        terms = [t for t in terms if t is not None]
        return [terms[0] if len(terms) == 1 else terms[0] + terms[1]]


def conv2d(x, w, stride=1, padding=0) -> Variable:
    """2-D cross-correlation: ``x`` (N, C, H, W), ``w`` (out_channels, in_channels, kh, kw)."""
    x, w = operands(x, w)
    op = Conv2d(_pair(stride, "stride", "conv2d", 1), _pair(padding, "padding", "conv2d", 0))
    return apply1(op, x, w)


@dataclass(frozen=True)
class Pool2d(Op):
    """Max or average over (kh, kw) windows of the last two axes, without padding."""

    kind: str  # "max" | "avg"
    kernel: tuple[int, int]
    stride: tuple[int, int]

    @property
    def name(self) -> str:
        return f"{self.kind}_pool2d"

    def infer(self, x: TensorType) -> list[TensorType]:
        if x.ndim != 4:
            raise ShapeError(f"needs x as (N, C, H, W), got a {x.ndim}-d input")
        if self.kind == "avg" and not is_float(x.dtype):
            raise DTypeError(f"average pooling needs a float input, got {x.dtype}")
        for size, k in zip(x.shape[2:], self.kernel):
            if size is not None and size < k:
                raise ShapeError(f"window {self.kernel} is larger than the input {x.shape[2:]}")
        out = [_window_out(size, k, s, 0) for size, k, s in zip(x.shape[2:], self.kernel, self.stride)]
        return [TensorType(x.dtype, (*x.shape[:2], *out))]

    def perform(self, x):
        windows = _windows(x, self.kernel, self.stride, (0, 0))
        reduce = np.max if self.kind == "max" else np.mean
        return (np.ascontiguousarray(reduce(windows, axis=(4, 5)), dtype=x.dtype),)

    def format_params(self) -> list[str]:
        return [f"kernel={self.kernel}", f"stride={self.stride}"]

    def composite(self, x):
        """The same pooling from simpler ops: a max or mean over each window's patch, so ties of
        max pooling split the gradient evenly, as ``max`` does."""
        from .reduction import max, mean

        patches = apply1(Patches(self.kernel, self.stride, (0, 0)), x)
        return (max if self.kind == "max" else mean)(patches, axis=(4, 5))

    def vjp(self, inputs, outputs, cotangents):
        from ..autodiff import vjp

        return vjp(self.composite(*inputs), list(inputs), cotangents[0])

    def jvp(self, inputs, outputs, tangents):
        from ..autodiff import jvp

        return [jvp(self.composite(*inputs), list(inputs), tangents[0])]


def _windows(x: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """A strided view of the (kh, kw) windows of NCHW ``x``: shape (N, C, Ho, Wo, kh, kw)."""
    (ph, pw), (sh, sw) = padding, stride
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    return sliding_window_view(x, tuple(kernel), axis=(2, 3))[:, :, ::sh, ::sw]


@dataclass(frozen=True)
class Patches(Op):
    """The (kh, kw) windows of NCHW ``x`` after zero padding, as (N, C, Ho, Wo, kh, kw) (im2col).

    Convolution and pooling are differentiated through it: it is linear, its adjoint
    (:class:`PatchesAdjoint`) adds the windows back, and each is the other's VJP.
    """

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    name = "patches"

    def infer(self, x: TensorType) -> list[TensorType]:
        if x.ndim != 4:
            raise ShapeError(f"needs x as (N, C, H, W), got a {x.ndim}-d input")
        out = [_window_out(n, k, s, p) for n, k, s, p in zip(x.shape[2:], self.kernel, self.stride, self.padding)]
        return [TensorType(x.dtype, (*x.shape[:2], *out, *self.kernel))]

    def perform(self, x):
        return (np.ascontiguousarray(_windows(x, self.kernel, self.stride, self.padding)),)

    def format_params(self) -> list[str]:
        return [f"kernel={self.kernel}", f"stride={self.stride}", f"padding={self.padding}"]

    def vjp(self, inputs, outputs, cotangents):
        (x,) = inputs
        static, dynamic = shape_argument(x.shape[2:], "patches")
        return [apply1(PatchesAdjoint(self.kernel, self.stride, self.padding, static), cotangents[0], *dynamic)]

    def jvp(self, inputs, outputs, tangents):
        return [apply1(self, tangents[0])]


@dataclass(frozen=True)
class PatchesAdjoint(Op):
    """Windows (N, C, Ho, Wo, kh, kw) added back into an (N, C, H, W) image (col2im); ``size`` is
    (H, W), with ``None`` entries taken from int64 scalar inputs."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    size: tuple[int | None, int | None]
    name = "patches_adjoint"

    @property
    def nin(self) -> int:
        return 1 + self.size.count(None)

    def infer(self, g: TensorType, *dims: TensorType) -> list[TensorType]:
        check_shape_inputs(dims, self.name)
        if g.ndim != 6:
            raise ShapeError(f"needs windows as (N, C, Ho, Wo, kh, kw), got a {g.ndim}-d input")
        return [TensorType(g.dtype, (*g.shape[:2], *self.size))]

    def perform(self, g, *dims):
        (h, w), (ph, pw), (sh, sw) = fill_shape(self.size, dims), self.padding, self.stride
        ho, wo = g.shape[2:4]
        out = np.zeros((*g.shape[:2], h + 2 * ph, w + 2 * pw), dtype=g.dtype)
        for i in range(self.kernel[0]):
            for j in range(self.kernel[1]):
                out[:, :, i : i + sh * ho : sh, j : j + sw * wo : sw] += g[:, :, :, :, i, j]
        return (np.ascontiguousarray(out[:, :, ph : ph + h, pw : pw + w]),)

    def format_call(self, args: list[str]) -> str:
        size = format_shape_argument(self.size, args[1:])
        return f"patches_adjoint({args[0]}, kernel={self.kernel}, stride={self.stride}, size={size})"

    def vjp(self, inputs, outputs, cotangents):
        patches = Patches(self.kernel, self.stride, self.padding)
        return [apply1(patches, cotangents[0])] + [None] * (len(inputs) - 1)

    def jvp(self, inputs, outputs, tangents):
        return [apply1(self, tangents[0], *inputs[1:])]


def _pool(kind: str, x, kernel, stride) -> Variable:
    op = f"{kind}_pool2d"
    kernel = _pair(kernel, "kernel", op, 1)
    stride = kernel if stride is None else _pair(stride, "stride", op, 1)
    return apply1(Pool2d(kind, kernel, stride), as_variable(x))


def max_pool2d(x, kernel, stride=None) -> Variable:
    """Max pooling over ``kernel`` windows of (N, C, H, W); ``stride`` defaults to ``kernel``."""
    return _pool("max", x, kernel, stride)


def avg_pool2d(x, kernel, stride=None) -> Variable:
    """Average pooling over ``kernel`` windows of (N, C, H, W); ``stride`` defaults to ``kernel``."""
    return _pool("avg", x, kernel, stride)
