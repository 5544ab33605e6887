"""Caffe's loss layers (SoftmaxWithLoss, EuclideanLoss, SigmoidCrossEntropyLoss) and Accuracy.

Scores may be (N, C) or spatial (N, C, H, W): axis 1 holds the classes and every other position is
classified, with labels (N, H, W) or (N, 1, H, W), as Caffe's dense-prediction nets use them.
"""

from __future__ import annotations

import math

from .. import ops as gc
from ..graph import Variable
from .base import FLOAT, Context, describe, float_input


def _labels(ctx: Context, scores: Variable, label: Variable) -> tuple[Variable, Variable]:
    """Scores as (M, C) rows and labels as (M,) int64: axis 1 holds the classes, every other axis
    of the scores is a position to classify (Caffe's (N, C, H, W) with (N, 1, H, W) labels)."""
    scores = float_input(ctx, scores)
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
    a, b = float_input(ctx, a), float_input(ctx, b)
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
    x = float_input(ctx, x)
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
