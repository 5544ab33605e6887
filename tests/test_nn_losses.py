"""graphc.nn losses, penalties and accuracy: values against numpy formulas (and torch where it is
installed), reductions, gradients against finite differences, dtypes and shape errors."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import nn
from graphc.nn import losses

RNG = np.random.default_rng(99)


def run(inputs, outputs, values):
    return gc.function(inputs, outputs)(*values)


def pair(shape=(None, 4), dtype="float64", target_dtype=None):
    return gc.tensor("pred", shape=shape, dtype=dtype), gc.tensor("target", shape=shape, dtype=target_dtype or dtype)


REDUCE = {"mean": np.mean, "sum": np.sum, "none": lambda a: a}


# ----- values ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", list(REDUCE))
def test_mse(reduction):
    p, t = pair()
    pv, tv = RNG.normal(size=(5, 4)), RNG.normal(size=(5, 4))
    out = run([p, t], nn.mse(p, t, reduction=reduction), [pv, tv])
    np.testing.assert_allclose(out, REDUCE[reduction]((pv - tv) ** 2), rtol=1e-12)


@pytest.mark.parametrize("reduction", list(REDUCE))
def test_binary_cross_entropy(reduction):
    p, t = pair()
    pv, tv = RNG.uniform(0.01, 0.99, size=(5, 4)), RNG.integers(0, 2, size=(5, 4)).astype(float)
    expected = -(tv * np.log(pv) + (1 - tv) * np.log(1 - pv))
    out = run([p, t], nn.binary_cross_entropy(p, t, reduction=reduction), [pv, tv])
    np.testing.assert_allclose(out, REDUCE[reduction](expected), rtol=1e-12)


def test_binary_cross_entropy_clips_saturated_probabilities():
    p, t = pair(shape=(4,))
    loss = nn.binary_cross_entropy(p, t, eps=1e-7, reduction="none")
    out = run([p, t], loss, [np.array([0.0, 1.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 1.0])])
    np.testing.assert_allclose(out, [-np.log(1e-7), -np.log(1e-7), -np.log1p(-1e-7), -np.log1p(-1e-7)], rtol=1e-9)


@pytest.mark.parametrize("reduction", list(REDUCE))
def test_binary_cross_entropy_with_logits_is_stable(reduction):
    z, t = pair(shape=(6,))
    zv, tv = np.array([-800.0, -3.0, -0.5, 0.0, 2.0, 800.0]), np.array([1.0, 0.0, 1.0, 0.3, 1.0, 0.0])
    # -(t log s + (1 - t) log(1 - s)) with log s = -log1p(exp(-z)), via logaddexp to stay finite
    expected = tv * np.logaddexp(0, -zv) + (1 - tv) * np.logaddexp(0, zv)
    loss = nn.binary_cross_entropy_with_logits(z, t, reduction=reduction)
    out, grad = run([z, t], [loss, gc.grad(gc.sum(loss), z)], [zv, tv])
    np.testing.assert_allclose(out, REDUCE[reduction](expected), rtol=1e-12)
    scale = 1 / 6 if reduction == "mean" else 1
    if reduction != "none":
        np.testing.assert_allclose(grad, scale * (0.5 * (1 + np.tanh(zv / 2)) - tv), rtol=1e-12, atol=1e-300)


def numpy_softmax_ce(zv, probs):
    log_p = zv - zv.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    return -(probs * log_p).sum(-1)


@pytest.mark.parametrize("reduction", list(REDUCE))
def test_softmax_cross_entropy_with_indices_one_hot_and_soft_labels(reduction):
    z = gc.matrix("z", shape=(None, 5))
    zv = RNG.normal(0, 3, size=(4, 5))
    idx = np.array([0, 4, 2, 4])
    one_hot = np.eye(5)[idx]
    soft = RNG.dirichlet(np.ones(5), size=4)
    expected = {"idx": numpy_softmax_ce(zv, one_hot), "soft": numpy_softmax_ce(zv, soft)}
    y = gc.vector("y", dtype="int64")
    out = run([z, y], nn.softmax_cross_entropy(z, y, reduction=reduction), [zv, idx])
    np.testing.assert_allclose(out, REDUCE[reduction](expected["idx"]), rtol=1e-12)
    t = gc.matrix("t", shape=(None, 5))
    for name, tv in (("idx", one_hot), ("soft", soft)):
        out = run([z, t], nn.softmax_cross_entropy(z, t, reduction=reduction), [zv, tv])
        np.testing.assert_allclose(out, REDUCE[reduction](expected[name]), rtol=1e-12)


def test_softmax_cross_entropy_gradient_is_softmax_minus_target():
    z, y = gc.matrix("z", shape=(None, 3)), gc.vector("y", dtype="int64")
    zv, yv = np.array([[1000.0, 0.0, -1000.0], [0.1, 0.2, 0.3]]), np.array([1, 2])
    loss = nn.softmax_cross_entropy(z, y)
    value, grad = run([z, y], [loss, gc.grad(loss, z)], [zv, yv])
    probs = np.exp(zv - zv.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose(grad, (probs - np.eye(3)[yv]) / 2, atol=1e-15)
    assert np.isfinite(value) and value == pytest.approx((1000.0 + numpy_softmax_ce(zv[1:], np.eye(3)[[2]])[0]) / 2)


# ----- gradients against finite differences ----------------------------------------------------------
@pytest.mark.parametrize(
    "loss",
    [
        nn.mse,
        nn.binary_cross_entropy,
        nn.binary_cross_entropy_with_logits,
        lambda p, t: nn.softmax_cross_entropy(p, gc.softmax(t)),
    ],
    ids=["mse", "bce", "bce_logits", "softmax_ce"],
)
def test_loss_gradients_match_finite_differences(loss):
    p, t = pair(shape=(3, 4))
    pv, tv = RNG.uniform(0.1, 0.9, size=(3, 4)), RNG.uniform(0, 1, size=(3, 4))
    check = gc.check_grad(loss(p, t), [p], at={p: pv, t: tv})
    assert check.worst < 1e-7, str(check)


# ----- torch as a second opinion ------------------------------------------------------------------------
def test_losses_agree_with_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    z, t = pair(shape=(6, 3))
    zv, tv = RNG.normal(0, 2, size=(6, 3)), RNG.uniform(0, 1, size=(6, 3))
    pv = 1 / (1 + np.exp(-zv))
    y = gc.vector("y", dtype="int64")
    yv = np.array([0, 2, 1, 1, 0, 2])
    ours = run(
        [z, t, y],
        [
            nn.mse(z, t),
            nn.binary_cross_entropy(gc.sigmoid(z), t),
            nn.binary_cross_entropy_with_logits(z, t, reduction="sum"),
            nn.softmax_cross_entropy(z, y),
            nn.softmax_cross_entropy(z, t, reduction="none"),
        ],
        [zv, tv, yv],
    )
    zt, tt, yt = torch.tensor(zv), torch.tensor(tv), torch.tensor(yv)
    theirs = [
        F.mse_loss(zt, tt),
        F.binary_cross_entropy(torch.tensor(pv), tt),
        F.binary_cross_entropy_with_logits(zt, tt, reduction="sum"),
        F.cross_entropy(zt, yt),
        F.cross_entropy(zt, tt, reduction="none"),  # probabilities as targets
    ]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-10)


# ----- dtypes and errors ---------------------------------------------------------------------------------
def test_float32_predictions_stay_float32_with_other_targets():
    p = gc.matrix("p", shape=(None, 3), dtype="float32")
    for target in (gc.matrix("t64", shape=(None, 3)), gc.matrix("ti", shape=(None, 3), dtype="int64")):
        assert nn.mse(p, target).dtype == "float32"
        assert nn.binary_cross_entropy_with_logits(p, target).dtype == "float32"
    assert nn.softmax_cross_entropy(p, gc.vector("y", dtype="int64")).dtype == "float32"


def test_shape_and_argument_errors_name_the_loss():
    p = gc.matrix("p", shape=(None, 1))
    with pytest.raises(gc.ShapeError, match=r"mse: pred \(\?, 1\) and target \(\?,\) must have the same shape"):
        nn.mse(p, gc.vector("t"))
    with pytest.raises(gc.ShapeError, match=r"binary_cross_entropy: prob \(\?, 1\) and target \(\?, 2\)"):
        nn.binary_cross_entropy(p, gc.matrix("t2", shape=(None, 2)))
    with pytest.raises(gc.UsageError, match="reduction must be one of mean, sum, none, got 'avg'"):
        nn.mse(p, p, reduction="avg")
    with pytest.raises(gc.DTypeError, match="logits must be float32 or float64, got int64"):
        nn.binary_cross_entropy_with_logits(gc.vector("i", dtype="int64"), gc.vector("j"))
    z = gc.matrix("z", shape=(None, None))
    with pytest.raises(gc.ShapeError, match="number of classes in the logits' static shape"):
        nn.softmax_cross_entropy(z, gc.vector("y", dtype="int64"))
    with pytest.raises(gc.ShapeError, match=r"class indices must have one axis less than the logits \(\?, 3\)"):
        nn.softmax_cross_entropy(gc.matrix("z3", shape=(None, 3)), gc.tensor("y3", shape=(2, 3, 1), dtype="int64"))


@pytest.mark.parametrize("dtype", ["float32", "float64", "bool"])
def test_non_int64_class_labels_get_a_cast_hint(dtype):
    logits = gc.matrix("logits", shape=(None, 10), dtype="float32")
    labels = gc.vector("labels", dtype=dtype)  # labels loaded from a float array, say
    hint = (
        r"a target with one axis less than the {what} \(\?, 10\) holds class indices, which must be int64, "
        rf"got {dtype} \(\?,\); convert them with gc.cast\(y, \"int64\"\)"
    )
    with pytest.raises(gc.DTypeError, match="softmax_cross_entropy: " + hint.format(what="logits")) as info:
        nn.softmax_cross_entropy(logits, labels)
    assert "same shape" not in str(info.value).split(";")[0]  # no longer the misleading reshape advice
    with pytest.raises(gc.DTypeError, match="accuracy: " + hint.format(what="output")):
        nn.accuracy(logits, labels)
    # the hint's own fix works
    y = gc.cast(labels, "int64")
    zv, yv = np.random.default_rng(0).normal(size=(3, 10)).astype("float32"), np.array([1, 7, 0]).astype(dtype)
    got = run([logits, labels], nn.softmax_cross_entropy(logits, y), [zv, yv])
    shifted = zv.astype(np.float64) - zv.max(axis=1, keepdims=True)
    want = -np.mean(shifted[np.arange(3), yv.astype(int)] - np.log(np.exp(shifted).sum(axis=1)))
    assert got == pytest.approx(want, rel=1e-5)


def test_out_of_range_class_index_fails_when_run():
    z, y = gc.matrix("z", shape=(None, 3)), gc.vector("y", dtype="int64")
    with pytest.raises(gc.EvaluationError, match="class index 3 is out of range for 3 classes"):
        run([z, y], nn.softmax_cross_entropy(z, y), [np.zeros((2, 3)), np.array([0, 3])])


# ----- penalties ------------------------------------------------------------------------------------------
class TwoParams(nn.Module):
    def __init__(self):
        super().__init__("two")
        self.add_param("w", np.array([1.0, -2.0, 3.0]))
        self.add_param("b", np.array([4.0, -5.0]), lr_mult=2.0, decay_mult=0.0)  # Caffe's bias setting


def test_l1_and_l2_penalties():
    m = TwoParams()
    l1 = run([], losses.l1_penalty(m.params, 0.1), [])
    l2 = run([], losses.l2_penalty(m.params, 0.1), [])
    assert l1 == pytest.approx(0.1 * 15) and l2 == pytest.approx(0.5 * 0.1 * (14 + 41))
    grads = run([], gc.grad(nn.l2_penalty(m.params, 0.1), m.params), [])  # scale * w: Caffe's weight decay
    np.testing.assert_allclose(grads[0], 0.1 * m.w.get_value())
    np.testing.assert_allclose(grads[1], 0.1 * m.b.get_value())
    # a module or its param groups: decay_mult scales each group's terms (0 leaves the bias out)
    assert run([], nn.l2_penalty(m, 0.1), []) == pytest.approx(0.5 * 0.1 * 14)
    assert run([], nn.l1_penalty(m.param_groups(), 1.0), []) == pytest.approx(6.0)
    p32 = gc.shared(np.ones(3, "float32"))
    assert nn.l2_penalty([p32], 1e-4).dtype == "float32"
    with pytest.raises(gc.UsageError, match="at least one parameter"):
        nn.l2_penalty([], 0.1)


# ----- accuracy ----------------------------------------------------------------------------------------------
def test_accuracy_for_classes_one_hot_and_binary():
    z = gc.matrix("z", shape=(None, 3), dtype="float32")
    zv = np.array([[0.1, 0.7, 0.2], [3.0, 1.0, 2.0], [0.0, 0.0, 1.0], [5.0, 6.0, 7.0]], "float32")
    y = gc.vector("y", dtype="int64")
    acc = nn.accuracy(z, y)
    assert acc.dtype == "float32"
    assert run([z, y], acc, [zv, np.array([1, 0, 0, 2])]) == pytest.approx(0.75)
    t = gc.matrix("t", shape=(None, 3))
    assert run([z, t], nn.accuracy(z, t), [zv, np.eye(3)[[1, 1, 2, 2]]]) == pytest.approx(0.75)

    p, b = gc.vector("p"), gc.vector("b")
    probs, labels = np.array([0.9, 0.2, 0.6, 0.4, 0.51]), np.array([1.0, 0.0, 0.0, 0.0, 1.0])
    assert run([p, b], nn.accuracy(p, b), [probs, labels]) == pytest.approx(0.8)
    logits = np.log(probs / (1 - probs))
    assert run([p, b], nn.accuracy(p, b, threshold=0.0), [logits, labels]) == pytest.approx(0.8)
    col, colt = gc.matrix("col", shape=(None, 1)), gc.matrix("colt", shape=(None, 1), dtype="int64")
    assert run([col, colt], nn.accuracy(col, colt), [probs[:, None], labels[:, None].astype(int)]) == pytest.approx(0.8)
    with pytest.raises(gc.DTypeError, match=r"accuracy: .*must be int64, got float64 \(\?,\); convert them"):
        nn.accuracy(z, gc.vector("bad"))
    with pytest.raises(gc.ShapeError, match=r"accuracy: output \(\?, 3\) needs int64 class indices with one axis less"):
        nn.accuracy(z, gc.tensor("bad3", shape=(None, 3, 1)))
