"""graphc.caffe's BatchNorm: Caffe's three blobs (running sums and their scale factor), its update
rule, its TEST normalization and its backward pass, each against numpy formulas."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import caffe
from graphc.caffe import NetError
from graphc.caffe.prototxt import parse

BATCHNORM = """
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 4 dim: 3 dim: 2 dim: 2 } } }
layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y" batch_norm_param { moving_average_fraction: 0.9 } }
"""


def _bn_nets(text=BATCHNORM):
    spec = parse(text, "NetParameter")
    train = caffe.build(spec, "TRAIN")
    return train, caffe.build(spec, "TEST", model=train.model)


def _normalized(x, mean, var, eps=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)


def test_caffe_batchnorm_train_normalizes_and_keeps_caffes_three_blobs():
    train, test = _bn_nets()
    assert {v.name for v in train.state_updates} == {"bn.mean", "bn.variance", "bn.scale_factor"}
    assert len(train.state_updates) == 3 and not test.state_updates and train.model.param_groups() == []
    blobs = train.model.caffe_params()["bn"]
    assert [b.shape for b in blobs] == [(3,), (3,), (1,)] and all((b == 0).all() for b in blobs)
    step = train.function(["y"], updates=train.state_updates)
    rng = np.random.default_rng(6)
    lam, s, m, v = 0.9, 0.0, np.zeros(3), np.zeros(3)
    for k, n in enumerate((4, 4, 7, 2, 5)):  # the batch size varies: n counts the values per channel
        x = (rng.normal(5.0, 2.0, (n, 3, 2, 2)) * np.array([1.0, 3.0, 0.5]).reshape(1, 3, 1, 1)).astype(np.float32)
        x64 = x.astype(np.float64)
        mean, var = x64.mean(axis=(0, 2, 3)), x64.var(axis=(0, 2, 3))
        (y,) = step(x)
        np.testing.assert_allclose(y, _normalized(x64, mean, var), rtol=1e-4, atol=1e-4)  # the batch's statistics
        np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
        np.testing.assert_allclose(y.var(axis=(0, 2, 3)), var / (var + 1e-5), rtol=1e-4)
        count = n * 4
        s, m, v = lam * s + 1, lam * m + mean, lam * v + count / (count - 1) * var  # Caffe's rule
        got_m, got_v, got_s = train.model.caffe_params()["bn"]
        np.testing.assert_allclose(got_s, [s], rtol=1e-6)
        np.testing.assert_allclose(got_m, m, rtol=1e-5)
        np.testing.assert_allclose(got_v, v, rtol=1e-5)
        if k == 0:  # one step: the sums are the batch's own mean and unbiased variance
            np.testing.assert_allclose(got_m, mean, rtol=1e-5)
            np.testing.assert_allclose(got_v, var * 16 / 15, rtol=1e-5)
    # TEST (use_global_stats): the sums divided by the scale factor
    x = rng.normal(5.0, 2.0, (3, 3, 2, 2)).astype(np.float32)
    (y,) = test.function(["y"])(x)
    np.testing.assert_allclose(y, _normalized(x.astype(np.float64), m / s, v / s), rtol=1e-4, atol=1e-4)


def test_caffe_batchnorm_running_mean_reaches_the_data_mean():
    """The reviewer's case: 100 TRAIN steps on data of mean 5 with Caffe's default fraction 0.999.
    An exponential average starting at 0 would be at 5 * (1 - 0.999^100) = 0.48; Caffe's m / s is 5."""
    train, test = _bn_nets(BATCHNORM.replace("moving_average_fraction: 0.9", ""))
    step = train.function(["y"], updates=train.state_updates)
    rng = np.random.default_rng(7)
    for _ in range(100):
        step(rng.normal(5.0, 1.0, (4, 3, 2, 2)).astype(np.float32))
    m, v, s = train.model.caffe_params()["bn"]
    np.testing.assert_allclose(s, [(1 - 0.999**100) / (1 - 0.999)], rtol=1e-5)
    np.testing.assert_allclose(m / s, 5.0, atol=0.1)
    np.testing.assert_allclose(v / s, 1.0, atol=0.15)


def test_caffe_batchnorm_on_rows_and_a_batch_of_one():
    """(N, C) input: n = N values per channel; n = 1 takes the variance uncorrected (Caffe's rule)."""
    train, _ = _bn_nets(BATCHNORM.replace("dim: 4 dim: 3 dim: 2 dim: 2", "dim: 5 dim: 3"))
    step = train.function(["y"], updates=train.state_updates)
    x = np.random.default_rng(13).normal(size=(5, 3)).astype(np.float32)
    (y,) = step(x)
    np.testing.assert_allclose(y, _normalized(x.astype(np.float64), x.mean(0), x.var(0)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(train.model.caffe_params()["bn"][1], x.astype(np.float64).var(0, ddof=1), rtol=1e-5)
    one = x[:1] + 1.0
    (y,) = step(one)
    np.testing.assert_array_equal(y, 0)  # a single value per channel normalizes to 0
    m, v, s = train.model.caffe_params()["bn"]
    np.testing.assert_allclose(s, [1.9], rtol=1e-6)
    np.testing.assert_allclose(m, 0.9 * x.mean(0) + one[0], rtol=1e-5)
    np.testing.assert_allclose(v, 0.9 * x.astype(np.float64).var(0, ddof=1), rtol=1e-5)  # + 1 * var of one value: 0


def test_caffe_batchnorm_global_stats_before_training_and_from_pycaffe_blobs():
    train, test = _bn_nets()
    f = test.function(["y"])
    x = np.random.default_rng(8).normal(size=(2, 3, 2, 2)).astype(np.float32)
    # scale factor 0 (no training yet): Caffe normalizes with mean 0 and variance 0
    np.testing.assert_allclose(f(x)[0], x / np.sqrt(np.float32(1e-5)), rtol=1e-5)
    # blobs as pycaffe's net.params["bn"][0..2] hold them: sums and their scale factor
    mean, var, s = np.array([2.0, 4.0, -6.0]), np.array([1.0, 8.0, 0.5]), 2.0
    train.model.set_caffe_params({"bn": [mean, var, [s]]})
    np.testing.assert_allclose(f(x)[0], _normalized(x.astype(np.float64), mean / s, var / s), rtol=1e-5, atol=1e-5)
    # use_global_stats: true in TRAIN (fine-tuning): no updates, the stored statistics
    frozen = caffe.build(parse(BATCHNORM.replace("{ moving", "{ use_global_stats: true moving")), "TRAIN")
    assert not frozen.state_updates


def test_caffe_batchnorm_gradient_is_caffes_backward():
    """Caffe's Backward_cpu: dx = (dy - mean(dy) - mean(dy * y) * y) / sqrt(var + eps), means per channel."""
    train, _ = _bn_nets()
    x_var, y_var = train.inputs[0], train.blobs["y"]
    r = gc.tensor("r", shape=(None, 3, 2, 2), dtype="float32")
    rng = np.random.default_rng(9)
    x = rng.normal(1.0, 2.0, (4, 3, 2, 2)).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    (dx,) = gc.function([x_var, r], gc.grad(gc.sum(y_var * r), [x_var]))(x, dy)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    var = x64.var(axis=(0, 2, 3), keepdims=True)
    y = (x64 - x64.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(var + 1e-5)
    mean = lambda a: a.mean(axis=(0, 2, 3), keepdims=True)  # noqa: E731
    np.testing.assert_allclose(dx, (dy64 - mean(dy64) - mean(dy64 * y) * y) / np.sqrt(var + 1e-5), atol=2e-4)


def test_caffe_batchnorm_numba_matches_numpy():
    runs = []
    for backend in ("numpy", "numba"):
        train, test = _bn_nets()
        step = train.function(["y"], updates=train.state_updates, backend=backend)
        rng = np.random.default_rng(10)
        ys = [step(rng.normal(2.0, 3.0, (n, 3, 2, 2)).astype(np.float32))[0] for n in (4, 3)]
        ys.append(test.function(["y"], backend=backend)(rng.normal(size=(2, 3, 2, 2)).astype(np.float32))[0])
        runs.append((ys, train.model.caffe_params()["bn"]))
    for a, b in zip(runs[0][0] + runs[0][1], runs[1][0] + runs[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_caffe_batchnorm_refuses_learned_blobs():
    with pytest.raises(NetError, match=r"layer 'bn' \(BatchNorm\): its 3 blobs are statistics, not parameters"):
        _bn_nets(BATCHNORM.replace("batch_norm_param", "param { lr_mult: 1 } batch_norm_param"))
    zero = BATCHNORM.replace(
        "batch_norm_param", "param { lr_mult: 0 } param { lr_mult: 0 } param { lr_mult: 0 } batch_norm_param"
    )
    assert _bn_nets(zero)[0].model.param_groups() == []  # Caffe's usual spelling is accepted
