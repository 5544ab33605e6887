"""Losses, weight penalties and accuracy: functions of graph variables that return graph variables.

Every loss takes ``reduction``: ``"mean"`` (the default: the mean over examples, so the learning
rate does not depend on the batch size), ``"sum"``, or ``"none"`` (one value per example, or per
entry for the elementwise losses). Targets are cast to the prediction's dtype, so a float32 model
with float64 or int labels keeps a float32 graph; prediction and target must have the same shape
(no broadcasting: a (N, 1) prediction against a (N,) target is a classic silent bug, so it is an
error here).
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import ops as gc
from ..errors import DTypeError, ShapeError, UsageError
from ..graph import Variable, constant
from ..ops.base import as_variable
from ..types import is_float, shapes_compatible
from .checks import describe_type
from .module import Module

REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: Variable, reduction: str) -> Variable:
    if reduction == "mean":
        return gc.mean(loss)
    if reduction == "sum":
        return gc.sum(loss)
    return loss


def _prepare(who: str, pred, target, reduction: str, pred_name: str = "pred") -> tuple[Variable, Variable]:
    """Check the pair and the reduction; return them as variables, the target in pred's dtype."""
    if reduction not in REDUCTIONS:
        raise UsageError(f"{who}: reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    pred, target = as_variable(pred), as_variable(target)
    if not is_float(pred.dtype):
        raise DTypeError(f"{who}: {pred_name} must be float32 or float64, got {pred.dtype}")
    if pred.ndim != target.ndim or not shapes_compatible(pred.type.shape, target.type.shape):
        shapes = f"{describe_type(pred, dtype=False)} and target {describe_type(target, dtype=False)}"
        raise ShapeError(
            f"{who}: {pred_name} {shapes} must have the same shape"
            + ("; reshape one of them (no broadcasting in losses)" if pred.ndim != target.ndim else "")
        )
    if target.dtype != pred.dtype:
        target = gc.cast(target, pred.dtype)
    return pred, target


def mse(pred, target, reduction: str = "mean") -> Variable:
    """Mean squared error ``mean((pred - target)^2)`` over every entry (PyTorch's MSELoss). The
    lecture's ``1/(2n) sum (y - mu)^2`` is half of it: the same minimum, half the gradient."""
    pred, target = _prepare("mse", pred, target, reduction)
    diff = pred - target
    return _reduce(diff * diff, reduction)


def binary_cross_entropy(prob, target, eps: float = 1e-7, reduction: str = "mean") -> Variable:
    """``-(t log p + (1 - t) log(1 - p))`` per entry, for probabilities ``p`` (a sigmoid's output).

    ``p`` is clipped to ``[eps, 1 - eps]`` first (Keras' rule), so a saturated sigmoid gives a
    finite loss, at most ``-log(eps)`` (about 16.1 for the default 1e-7), instead of inf or nan;
    where ``p`` lies outside that interval the gradient is zero. (PyTorch's BCELoss clamps the
    logarithms at -100 instead.) If you have the logits, use
    :func:`binary_cross_entropy_with_logits`, which needs no clipping.
    """
    if not 0.0 < float(eps) < 0.5:
        raise UsageError(f"binary_cross_entropy: eps must lie in (0, 0.5), got {eps!r}")
    prob, target = _prepare("binary_cross_entropy", prob, target, reduction, "prob")
    p = gc.clip(prob, float(eps), 1.0 - float(eps))
    return _reduce(-(target * gc.log(p) + (1.0 - target) * gc.log(1.0 - p)), reduction)


def binary_cross_entropy_with_logits(logits, target, reduction: str = "mean") -> Variable:
    """The binary cross-entropy of ``sigmoid(logits)``, as ``softplus(z) - t z``: the same value
    as ``-(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z)))``, finite for any z, with gradient
    ``sigmoid(z) - t`` (the lecture's ``X^T (sigma(X w) - y)`` for logistic regression)."""
    z, target = _prepare("binary_cross_entropy_with_logits", logits, target, reduction, "logits")
    return _reduce(gc.softplus(z) - target * z, reduction)


def softmax_cross_entropy(logits, target, reduction: str = "mean") -> Variable:
    """``-sum_j t_j log softmax(z)_j`` over the last axis of ``logits`` (N, K), one value per example.

    ``target`` is either int64 class indices of shape (N,) (encoded with ``gc.one_hot``, which
    needs K in the logits' static shape) or probabilities (N, K): one-hot or soft labels. The loss
    is one ``gc.softmax_cross_entropy`` node: stable for any logits, with gradient
    ``softmax(z) - t``. Feed it logits, not a Softmax layer's output.
    """
    who = "softmax_cross_entropy"
    z, t = as_variable(logits), as_variable(target)
    if z.ndim < 1:
        raise ShapeError(f"{who}: logits must have a class axis, got a scalar")
    z_shape, t_shape = describe_type(z, dtype=False), describe_type(t, dtype=False)
    if t.dtype == "int64" and t.ndim == z.ndim - 1:
        k = z.type.shape[-1]
        if k is None:
            raise ShapeError(
                f"{who}: class indices need the number of classes in the logits' static shape, got {z_shape}"
            )
        if not shapes_compatible(z.type.shape[:-1], t.type.shape):
            want = describe_type(z.type.shape[:-1])
            raise ShapeError(f"{who}: logits {z_shape} need class indices of shape {want}, got {t_shape}")
        if not is_float(z.dtype):
            raise DTypeError(f"{who}: logits must be float32 or float64, got {z.dtype}")
        t = gc.one_hot(t, k, dtype=z.dtype)
    elif t.dtype == "int64" and t.ndim != z.ndim:
        raise ShapeError(f"{who}: class indices must have one axis less than the logits {z_shape}, got {t_shape}")
    elif t.ndim == z.ndim - 1:
        raise DTypeError(_indices_hint(who, "logits", z, t))
    z, t = _prepare(who, z, t, reduction, "logits")
    return _reduce(gc.softmax_cross_entropy(z, t, axis=-1), reduction)


def _indices_hint(who: str, what: str, z: Variable, t: Variable) -> str:
    """Why a target with one axis less than the prediction is refused: it reads as class indices
    (labels from a float array, say), and class indices are int64."""
    return (
        f"{who}: a target with one axis less than the {what} {describe_type(z, dtype=False)} holds class indices, "
        f'which must be int64, got {describe_type(t)}; convert them with gc.cast(y, "int64") (or give '
        f"one-hot or probability targets of the same shape as the {what})"
    )


# ----- penalties -------------------------------------------------------------------------------
def _groups(params) -> list[tuple[Variable, float]]:
    """(parameter, decay_mult) pairs from a module, its ``param_groups()``, or a list of variables."""
    if isinstance(params, Module):
        params = params.param_groups()
    if isinstance(params, Variable):
        params = [params]
    out = []
    for item in params if isinstance(params, Iterable) else [params]:
        if isinstance(item, dict):
            out += [(as_variable(p), float(item.get("decay_mult", 1.0))) for p in item["params"]]
        elif isinstance(item, Variable):
            out.append((item, 1.0))
        else:
            raise UsageError(f"penalties take parameters, param groups or a module, got {type(item).__name__}")
    if not out:
        raise UsageError("a penalty needs at least one parameter")
    return out


def _penalty(params, scale: float, term) -> Variable:
    pairs = _groups(params)
    total = None
    for w, mult in pairs:
        if mult == 0.0:
            continue
        value = term(w) * mult if mult != 1.0 else term(w)
        total = value if total is None else total + value
    if total is None:  # every group has decay_mult 0
        return constant(0.0, pairs[0][0].dtype)
    return total * float(scale)


def l1_penalty(params, scale: float) -> Variable:
    """``scale * sum |w|`` over the parameters (LASSO); its gradient ``scale * sign(w)``.

    ``params`` is a list of parameters, ``model.param_groups()`` (each group's ``decay_mult``
    scales its terms, as Caffe's does) or a module (its param groups)."""
    return _penalty(params, scale, lambda w: gc.sum(gc.abs(w)))


def l2_penalty(params, scale: float) -> Variable:
    """``0.5 * scale * sum w^2`` over the parameters (ridge), so its gradient is ``scale * w``:
    Caffe's ``weight_decay`` and PyTorch's SGD ``weight_decay`` add exactly that to the gradient.
    (The lecture's ``alpha * ||w||^2`` is this with scale = 2 alpha.) ``params`` as in :func:`l1_penalty`."""
    return _penalty(params, scale, lambda w: 0.5 * gc.sum(w * w))


# ----- metrics ---------------------------------------------------------------------------------
def accuracy(output, target, threshold: float = 0.5) -> Variable:
    """The fraction of correct predictions, as a scalar of the output's dtype (not differentiable).

    - classes: ``output`` (N, K) logits or probabilities with int64 ``target`` (N,): argmax
      against the index; or with a one-hot / probability ``target`` (N, K): argmax against argmax;
    - binary: ``output`` and ``target`` of the same shape with one value per example ((N,) or
      (N, 1)): ``output > threshold`` against ``target > 0.5``. The default threshold 0.5 is for
      probabilities; pass ``threshold=0.0`` for logits.
    """
    who = "accuracy"
    y, t = as_variable(output), as_variable(target)
    if not is_float(y.dtype):
        raise DTypeError(f"{who}: output must be float32 or float64, got {y.dtype}")
    y_shape, t_shape = describe_type(y, dtype=False), describe_type(t, dtype=False)
    if t.dtype == "int64" and t.ndim == y.ndim - 1 and y.ndim >= 1:
        if not shapes_compatible(y.type.shape[:-1], t.type.shape):
            raise ShapeError(f"{who}: output {y_shape} and class indices {t_shape} do not fit")
        correct = gc.eq(gc.argmax(y, axis=-1), t)
    elif y.ndim == t.ndim and shapes_compatible(y.type.shape, t.type.shape):
        if y.ndim >= 2 and y.type.shape[-1] != 1:
            if y.type.shape[-1] is None:
                raise ShapeError(f"{who}: cannot tell one-hot from binary targets with an unknown last axis {y_shape}")
            correct = gc.eq(gc.argmax(y, axis=-1), gc.argmax(t, axis=-1))
        else:
            truth = gc.gt(t, 0.5) if t.dtype != "bool" else t
            correct = gc.eq(gc.gt(y, float(threshold)), truth)
    elif t.ndim == y.ndim - 1 and t.dtype != "int64":
        raise DTypeError(_indices_hint(who, "output", y, t))
    else:
        raise ShapeError(
            f"{who}: output {y_shape} needs int64 class indices with one axis less, or a target of the "
            f"same shape, got {describe_type(t)}"
        )
    return gc.mean(gc.cast(correct, y.dtype))
