"""graphc.nn layers and initializers: forward values against numpy formulas, train/eval behaviour,
parameter gradients against finite differences, configs, input errors, and numba against numpy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import graphc as gc
from graphc import nn
from graphc.nn import init

RNG = np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _restore_seed_counter():
    saved = dict(init._seeds)
    yield
    init._seeds.update(saved)


def run(inputs, outputs, values, **kwargs):
    return gc.function(inputs, outputs, **kwargs)(*values)


def randomize(module, rng=RNG):
    """Give every parameter random values, so tests do not pass by zero biases or unit gammas."""
    for p in module.params:
        p.set_value(rng.normal(0.0, 0.5, p.get_value().shape).astype(p.dtype))


def param_grad_errors(cost, inputs, values, params):
    """Relative errors of gc.grad(cost, params) against central differences, per parameter."""
    analytic = run(inputs, gc.grad(cost, params), values)
    f = gc.function(inputs, cost)

    def f_of(*ps):
        for p, v in zip(params, ps):
            p.set_value(v)
        return f(*values)

    start = [p.get_value() for p in params]
    numeric = gc.numeric_grad(f_of, start, eps=1e-6)
    for p, v in zip(params, start):
        p.set_value(v)
    return [np.max(np.abs(a - n)) / max(np.max(np.abs(n)), 1e-12) for a, n in zip(analytic, numeric)]


def weighted_sum(y, seed=5):
    """sum(y * R) for a fixed random R: a cost whose gradient is not the same for every entry
    (BatchNorm's plain sum would not depend on its input at all)."""
    r = np.random.default_rng(seed).normal(size=[d for d in y.type.shape])
    return gc.sum(y * gc.constant(r.astype(y.dtype)))


# ----- initializers ------------------------------------------------------------------------------
def test_fans_of_dense_and_conv_weights():
    assert init.fans((64, 128), "dense") == (64, 128)
    assert init.fans((8, 3, 5, 5), "conv") == (75, 200)
    assert init.fans((10,)) == (10, 10)


@pytest.mark.parametrize(
    ("name", "uniform", "variance"),
    [
        ("xavier_uniform", True, lambda i, o: 2 / (i + o)),
        ("glorot_normal", False, lambda i, o: 2 / (i + o)),
        ("kaiming_uniform", True, lambda i, o: 2 / i),
        ("he_normal", False, lambda i, o: 2 / i),
        ("lecun_uniform", True, lambda i, o: 1 / i),
        ("lecun_normal", False, lambda i, o: 1 / i),
    ],
)
def test_initializer_statistics_match_the_formulas(name, uniform, variance):
    fan_in, fan_out = 300, 500
    w = init.get(name)((fan_in, fan_out), fan_in, fan_out, np.random.default_rng(0))
    std = math.sqrt(variance(fan_in, fan_out))
    assert w.shape == (fan_in, fan_out)
    assert abs(w.mean()) < 0.01 * std  # the mean of 150000 draws has a standard error of 0.0026 std
    assert w.std() == pytest.approx(std, rel=0.01)
    if uniform:
        bound = math.sqrt(3) * std
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.999 * bound
    else:
        assert np.mean(np.abs(w) > 2 * std) == pytest.approx(0.0455, abs=0.003)  # a normal's tails


def test_parametrized_initializers_and_specs():
    rng = np.random.default_rng(0)
    assert np.all(init.constant(0.3)((2, 3), 2, 3, rng) == 0.3)
    w = init.uniform(-2.0, 1.0)((200, 200), 200, 200, rng)
    assert w.min() >= -2 and w.max() < 1 and w.mean() == pytest.approx(-0.5, abs=0.02)
    w = init.get({"type": "normal", "mean": 1.0, "std": 0.01})((200, 200), 200, 200, rng)
    assert w.mean() == pytest.approx(1.0, abs=1e-3) and w.std() == pytest.approx(0.01, rel=0.02)
    assert init.describe(init.normal(std=0.1)) == {"type": "normal", "mean": 0.0, "std": 0.1}
    assert init.get("zeros")((2,), 2, 2, rng).tolist() == [0, 0]
    with pytest.raises(gc.UsageError, match="unknown initializer 'xavierr'.*he_normal"):
        init.get("xavierr")


def test_conv_weights_use_the_window_in_their_fans():
    layer = nn.Conv2d(16, 64, 5, init="he_normal", seed=0)
    assert layer.weight.get_value().std() == pytest.approx(math.sqrt(2 / (16 * 25)), rel=0.03)
    layer = nn.Conv2d(16, 64, 5, seed=0)  # xavier_uniform: variance 2 / (fan_in + fan_out)
    assert layer.weight.get_value().std() == pytest.approx(math.sqrt(2 / (16 * 25 + 64 * 25)), rel=0.03)
    assert layer.weight.dtype == "float32" and np.all(layer.bias.get_value() == 0)


def test_seeds_make_builds_reproducible():
    nn.manual_seed(7)
    a, b = nn.Dense(5, 4), nn.Dense(5, 4)
    nn.manual_seed(7)
    c = nn.Dense(5, 4)
    np.testing.assert_array_equal(a.weight.get_value(), c.weight.get_value())
    assert not np.allclose(a.weight.get_value(), b.weight.get_value())
    assert a.seed != b.seed and a.hparams["seed"] == a.seed
    np.testing.assert_array_equal(nn.Dense(5, 4, seed=3).weight.get_value(), nn.Dense(5, 4, seed=3).weight.get_value())
    with pytest.raises(gc.UsageError, match="seed"):
        nn.Dense(5, 4, seed=-1)


# ----- forward values ----------------------------------------------------------------------------
def test_dense_forward_any_leading_axes():
    layer = nn.Dense(4, 3, seed=0)
    randomize(layer)
    w, b = layer.weight.get_value(), layer.bias.get_value()
    assert w.shape == (4, 3)  # (in, out): y = x @ W + b
    x = gc.tensor("x", shape=(None, 2, 4), dtype="float32")
    xv = RNG.normal(size=(3, 2, 4)).astype("float32")
    np.testing.assert_allclose(run([x], layer(x), [xv]), xv @ w + b, rtol=1e-6)
    assert nn.InnerProduct is nn.Dense and [n for n, _ in nn.Dense(4, 3, bias=False).named_params()] == ["weight"]


def naive_conv(x, w, b, stride, pad):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w) + b
    return out


def test_conv2d_forward_against_loops():
    layer = nn.Conv2d(2, 3, (3, 2), stride=2, padding=1, dtype="float64", seed=0)
    randomize(layer)
    x = gc.tensor("x", shape=(None, 2, 7, 6), dtype="float64")
    xv = RNG.normal(size=(2, 2, 7, 6))
    y = layer(x)
    expected = naive_conv(xv, layer.weight.get_value(), layer.bias.get_value(), 2, 1)
    assert y.type.shape == (None, 3) + expected.shape[2:]
    np.testing.assert_allclose(run([x], y, [xv]), expected, rtol=1e-12)


def test_pooling_and_flatten():
    x = gc.tensor("x", shape=(None, 2, 4, 6), dtype="float32")
    xv = RNG.normal(size=(3, 2, 4, 6)).astype("float32")
    blocks = xv.reshape(3, 2, 2, 2, 3, 2)
    np.testing.assert_allclose(run([x], nn.MaxPool2d(2)(x), [xv]), blocks.max(axis=(3, 5)))
    np.testing.assert_allclose(run([x], nn.AvgPool2d(2)(x), [xv]), blocks.mean(axis=(3, 5)), rtol=1e-6)
    overlapping = run([x], nn.MaxPool2d(3, stride=1)(x), [xv])
    assert overlapping.shape == (3, 2, 2, 4)
    assert overlapping[1, 0, 1, 2] == xv[1, 0, 1:4, 2:5].max()
    flat = nn.Flatten()(x)
    assert flat.type.shape == (None, 48)  # the batch stays symbolic, the rest is static
    np.testing.assert_array_equal(run([x], flat, [xv]), xv.reshape(3, 48))


def test_embedding_looks_up_rows_and_adds_gradients():
    layer = nn.Embedding(6, 3, seed=0)
    table = layer.weight.get_value()
    assert table.std() == pytest.approx(1.0, abs=0.5)  # N(0, 1), as in PyTorch
    idx = gc.tensor("idx", shape=(None, 3), dtype="int64")
    iv = np.array([[0, 5, 5], [2, 0, 5]])
    out = layer(idx)
    assert out.type.shape == (None, 3, 3)
    np.testing.assert_array_equal(run([idx], out, [iv]), table[iv])
    grad = run([idx], gc.grad(gc.sum(out), layer.weight), [iv])
    np.testing.assert_array_equal(grad[:, 0], [2, 0, 1, 0, 0, 3])  # row 5 was looked up three times


ERF = np.vectorize(math.erf)
ACTIVATIONS = [
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (nn.Tanh(), np.tanh),
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    (nn.GELU(), lambda x: 0.5 * x * (1 + ERF(x / np.sqrt(2)))),
    (nn.Softplus(), lambda x: np.log1p(np.exp(x))),
    (nn.Softplus(beta=2.0), lambda x: np.log1p(np.exp(2 * x)) / 2),
    (nn.Softmax(), lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
    (nn.Softmax(axis=0), lambda x: np.exp(x) / np.exp(x).sum(0, keepdims=True)),
]


@pytest.mark.parametrize(("layer", "formula"), ACTIVATIONS, ids=[repr(a) for a, _ in ACTIVATIONS])
def test_activations(layer, formula):
    x = gc.matrix("x", shape=(None, 5), dtype="float32")
    xv = RNG.normal(0, 3, size=(4, 5)).astype("float32")
    y = layer(x)
    assert y.dtype == "float32"
    np.testing.assert_allclose(run([x], y, [xv]), formula(xv.astype(np.float64)), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize(("layer", "formula"), ACTIVATIONS, ids=[repr(a) for a, _ in ACTIVATIONS])
def test_activation_gradients_match_finite_differences(layer, formula):
    x = gc.matrix("x", shape=(3, 5))
    xv = np.random.default_rng(8).normal(0, 2, size=(3, 5))
    assert gc.check_grad(weighted_sum(layer(x)), x, at={x: xv}).worst < 1e-6


def test_prelu_shared_and_per_channel_slopes():
    x = gc.tensor("x", shape=(None, 3, 2, 2), dtype="float32")
    xv = RNG.normal(size=(2, 3, 2, 2)).astype("float32")
    np.testing.assert_allclose(run([x], nn.PReLU()(x), [xv]), np.where(xv > 0, xv, 0.25 * xv))
    layer = nn.PReLU(3)
    layer.weight.set_value(np.array([0.1, -1.0, 2.0], "float32"))
    a = layer.weight.get_value()[None, :, None, None]
    np.testing.assert_allclose(run([x], layer(x), [xv]), np.where(xv > 0, xv, a * xv), rtol=1e-6)


def test_layer_norm_over_the_last_axes():
    layer = nn.LayerNorm((2, 3), eps=1e-3)
    randomize(layer)
    x = gc.tensor("x", shape=(None, 4, 2, 3), dtype="float32")
    xv = RNG.normal(2, 3, size=(5, 4, 2, 3)).astype("float32")
    mu = xv.mean(axis=(2, 3), keepdims=True)
    var = xv.var(axis=(2, 3), keepdims=True)
    expected = (xv - mu) / np.sqrt(var + 1e-3) * layer.gamma.get_value() + layer.beta.get_value()
    np.testing.assert_allclose(run([x], layer(x), [xv]), expected, rtol=1e-4, atol=1e-5)


# ----- BatchNorm: train and eval -----------------------------------------------------------------
@pytest.mark.parametrize("shape", [(None, 3), (8, 3), (None, 3, 2, 2)], ids=["NC", "NC-static", "NCHW"])
def test_batchnorm_train_uses_batch_stats_and_updates_running_averages(shape):
    bn = nn.BatchNorm(3, momentum=0.25)
    randomize(bn)
    x = gc.tensor("x", shape=shape, dtype="float32")
    xv = RNG.normal(1.0, 2.0, size=(8,) + shape[1:]).astype("float32")
    axes = (0, 2, 3) if len(shape) == 4 else (0,)
    per_channel = (1, 3, 1, 1) if len(shape) == 4 else (1, 3)
    gamma, beta = (v.get_value().reshape(per_channel) for v in (bn.gamma, bn.beta))
    mean, var = xv.mean(axis=axes), xv.var(axis=axes)
    n = xv.size // 3

    bn.train()
    step = gc.function([x], bn(x), updates=bn.state_updates())
    assert bn.state_updates() == {}  # handed over, and cleared
    out = step(xv)
    normalized = (xv - mean.reshape(per_channel)) / np.sqrt(var.reshape(per_channel) + 1e-5)
    np.testing.assert_allclose(out, normalized * gamma + beta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.get_value(), 0.25 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.get_value(), 0.75 + 0.25 * var * n / (n - 1), rtol=1e-5)
    step(xv)  # a second step moves the averages on
    np.testing.assert_allclose(bn.running_mean.get_value(), 0.25 * mean + 0.75 * 0.25 * mean, rtol=1e-5)

    bn.eval()
    rm, rv = bn.running_mean.get_value(), bn.running_var.get_value()
    expected = (xv - rm.reshape(per_channel)) / np.sqrt(rv.reshape(per_channel) + 1e-5) * gamma + beta
    np.testing.assert_allclose(run([x], bn(x), [xv]), expected, rtol=1e-4, atol=1e-5)
    assert bn.state_updates() == {}  # evaluation graphs record nothing
    if shape[0] is None:  # each example's output does not depend on the rest of its batch
        np.testing.assert_allclose(run([x], bn(x), [xv[:1]]), expected[:1], rtol=1e-4, atol=1e-5)


def test_batchnorm_with_one_value_per_channel_leaves_the_variance_finite():
    bn = nn.BatchNorm(2)
    x = gc.matrix("x", shape=(None, 2), dtype="float32")
    gc.function([x], bn(x), updates=bn.state_updates())(np.ones((1, 2), "float32"))
    np.testing.assert_allclose(bn.running_var.get_value(), [0.9, 0.9])


def test_batchnorm_applied_twice_in_one_training_graph_updates_twice_in_order():
    bn = nn.BatchNorm(2, momentum=0.25, dtype="float64")
    a, b = gc.matrix("a", shape=(None, 2)), gc.matrix("b", shape=(None, 2))
    out = gc.sum(bn(a)) + gc.sum(bn(b)) + gc.sum(bn(a))  # two branches; the second bn(a) is the first's nodes
    av, bv = RNG.normal(1, 2, size=(6, 2)), RNG.normal(-1, 3, size=(4, 2))
    gc.function([a, b], out, updates=bn.state_updates())(av, bv)
    m = 0.25
    mean = (1 - m) * (m * av.mean(0)) + m * bv.mean(0)
    var = (1 - m) * ((1 - m) + m * av.var(0, ddof=1)) + m * bv.var(0, ddof=1)
    np.testing.assert_allclose(bn.running_mean.get_value(), mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.get_value(), var, rtol=1e-12)


def test_a_second_update_that_would_drop_the_first_is_an_error():
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.add_state("count", np.zeros((), "float64"))

        def forward(self, x, step=1.0, chain=False):
            self.record_update(self.count, (self.pending(self.count) if chain else self.count) + step)
            return x

    model = nn.Sequential(nn.Tanh(), Counter())
    x = gc.vector("x")
    model[1](x, chain=True), model[1](x, 2.0, chain=True)  # chained: both count
    (update,) = model.state_updates().values()
    assert gc.function([], update)() == 3.0
    model[1](x), model[1](x)  # the same update built twice (the same nodes) is one update
    with pytest.raises(nn.LayerError, match=r"layer 1 \(Counter\): 1.count already has an update .*pending"):
        model[1](x, 2.0)


# ----- Dropout ---------------------------------------------------------------------------------------
def test_dropout_train_masks_and_scales_eval_is_identity():
    drop = nn.Dropout(0.3, seed=11)
    x = gc.matrix("x", shape=(None, 50), dtype="float32")
    y = drop(x)
    f = gc.function([x], [y, gc.grad(gc.sum(y), x)])
    ones = np.ones((2000, 50), "float32")
    out, grad = f(ones)
    assert np.mean(out == 0) == pytest.approx(0.3, abs=0.01)
    np.testing.assert_allclose(np.unique(out), [0.0, 1 / 0.7], rtol=1e-6)
    np.testing.assert_array_equal(grad, out)  # the gradient goes through the kept entries, scaled
    again, _ = f(ones)
    assert np.mean(again != out) > 0.3  # every call draws a new mask
    np.testing.assert_array_equal(gc.function([x], y)(ones), out)  # a new function draws the same sequence
    drop.eval()
    assert drop(x) is x


def test_dropout_layers_and_calls_draw_different_masks():
    x = gc.matrix("x", shape=(None, 40), dtype="float64")
    first, second = nn.Dropout(0.5), nn.Dropout(0.5)
    assert first.seed != second.seed
    twice = nn.Dropout(0.5, seed=1)
    outs = run([x], [first(x), second(x), twice(x), twice(x)], [np.ones((50, 40))])
    assert np.mean(outs[0] != outs[1]) > 0.3 and np.mean(outs[2] != outs[3]) > 0.3
    assert np.all(run([x], nn.Dropout(1.0)(x), [np.ones((2, 40))]) == 0)
    assert nn.Dropout(0.0)(x) is x
    with pytest.raises(nn.LayerError, match=r"Dropout: the drop probability p must lie in \[0, 1\], got 1.5"):
        nn.Dropout(1.5)


def test_dropout_masks_depend_on_the_training_builds_before():
    x = gc.matrix("x", shape=(None, 40), dtype="float64")
    ones = np.ones((30, 40))
    drop = nn.Dropout(0.5, seed=4)
    first = run([x], drop(x), [ones])
    drop.eval(), drop(x), drop.train()  # evaluation graphs do not count
    second = run([x], drop(x), [ones])  # the layer's second training build: its next seed
    fresh = nn.Dropout(0.5, seed=4)
    np.testing.assert_array_equal(run([x], fresh(x), [ones]), first)
    assert np.mean(first != second) > 0.3


# ----- gradients against finite differences ----------------------------------------------------------
GRAD_CASES = {
    "Dense": (lambda: nn.Dense(4, 3, dtype="float64"), (3, 4)),
    "Conv2d": (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1, dtype="float64"), (2, 2, 5, 5)),
    "BatchNorm-NC": (lambda: nn.BatchNorm(3, dtype="float64"), (5, 3)),
    "BatchNorm-NCHW": (lambda: nn.BatchNorm(2, dtype="float64"), (3, 2, 2, 2)),
    "LayerNorm": (lambda: nn.LayerNorm(4, dtype="float64"), (3, 4)),
    "PReLU": (lambda: nn.PReLU(3, dtype="float64"), (4, 3)),
}


@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_parameter_and_input_gradients_match_finite_differences(case):
    make, shape = GRAD_CASES[case]
    layer = make()
    randomize(layer, np.random.default_rng(3))
    x = gc.tensor("x", shape=shape, dtype="float64")
    xv = np.random.default_rng(4).normal(size=shape)
    cost = weighted_sum(layer(x))
    errors = param_grad_errors(cost, [x], [xv], layer.params)
    assert max(errors) < 1e-6, dict(zip([n for n, _ in layer.named_params()], errors))
    assert gc.check_grad(cost, x, at={x: xv}).worst < 1e-6


def test_embedding_gradient_matches_finite_differences():
    layer = nn.Embedding(5, 2, dtype="float64", seed=0)
    idx = gc.vector("idx", dtype="int64", shape=(3,))
    cost = weighted_sum(gc.tanh(layer(idx)))
    assert max(param_grad_errors(cost, [idx], [np.array([1, 4, 1])], layer.params)) < 1e-6


# ----- Module API, configs ---------------------------------------------------------------------------
def small_cnn(seed=0):
    nn.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.25),
        nn.Dense(64, 10),
    )


def test_module_api_on_a_model():
    model = small_cnn()
    names = [n for n, _ in model.named_params()]
    assert names == ["0.weight", "0.bias", "1.gamma", "1.beta", "6.weight", "6.bias"]
    assert sorted(model.state_dict()) == sorted(names + ["1.running_mean", "1.running_var"])
    assert model.param_groups() == [{"params": model.params, "lr_mult": 1.0, "decay_mult": 1.0}]
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_config_round_trip_gives_the_same_outputs():
    model = small_cnn()
    randomize(model)
    x = gc.tensor("x", shape=(None, 1, 8, 8), dtype="float32")
    xv = RNG.normal(size=(3, 1, 8, 8)).astype("float32")
    gc.function([x], model(x), updates=model.state_updates())(xv)  # moves the running averages
    config = json.loads(json.dumps(model.config()))
    assert [c["type"] for c in config["layers"]][:3] == ["Conv2d", "BatchNorm", "ReLU"]

    fresh = nn.from_config(config)
    initial = small_cnn()  # the config keeps the seeds: the rebuilt model starts from the same values
    for (name, a), (_, b) in zip(fresh.named_params(), initial.named_params()):
        np.testing.assert_array_equal(a.get_value(), b.get_value(), err_msg=name)

    fresh.load_state_dict(model.state_dict())
    fresh(x)  # Dropout's k-th call draws from the k-th seed of its sequence: match the model's one call
    fresh.state_updates()
    for mode in ("train", "eval"):
        getattr(model, mode)(), getattr(fresh, mode)()
        ours = gc.function([x], model(x))(xv)
        theirs = gc.function([x], fresh(x))(xv)
        np.testing.assert_array_equal(ours, theirs)  # in training too: same dropout seeds
        model.state_updates(), fresh.state_updates()


def test_parameters_are_named_by_their_path_and_errors_name_the_position():
    from graphc import optim

    model = nn.Sequential(nn.Dense(4, 8, seed=1), nn.ReLU(), nn.Dense(16, 2, seed=2))
    names = [p.name for p in model.params]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"] == [n for n, _ in model.named_params()]
    assert nn.Dense(2, 2, seed=0).weight.name == "Dense.weight"  # a layer used alone: its own name
    slots = optim.Adam(model.params).state_dict()  # the optimizer's slot keys follow: unique, no "#k"
    assert {"0.weight.m", "2.bias.v"} <= set(slots) and not any("#" in k for k in slots)
    with pytest.raises(nn.LayerError, match=r"^layer 2 \(Dense\): expects input \(N, ..., 16\) float32, got float32 "):
        model(gc.matrix("x", shape=(None, 4), dtype="float32"))

    # user names are kept; nesting and a named root give dotted paths; a module used twice keeps its first
    shared = nn.Dense(3, 3, seed=3)
    inner = nn.Sequential(nn.Dense(3, 3, seed=4, name="fc1"), shared)
    outer = nn.Sequential(inner, nn.Tanh(), shared, nn.Sequential(nn.Dense(3, 5, seed=5)), name="mlp")
    assert [p.name for p in outer.params] == ["fc1.weight", "fc1.bias", "mlp.0.1.weight", "mlp.0.1.bias",
                                             "mlp.3.0.weight", "mlp.3.0.bias"]  # fmt: skip
    assert [n for n, _ in outer.named_params()][2:] == ["0.1.weight", "0.1.bias", "3.0.weight", "3.0.bias"]
    with pytest.raises(nn.LayerError, match=r"^fc1 \(Dense\): expects input"):
        outer(gc.matrix("x", shape=(None, 2), dtype="float32"))
    with pytest.raises(nn.LayerError, match=r"^layer mlp.3.0 \(Dense\): expects input"):
        outer[3](gc.matrix("x", shape=(None, 4), dtype="float32"))

    # config and state_dict round trips keep the names: an unnamed layer's config name is its class
    config = json.loads(json.dumps(model.config()))
    assert config["layers"][0]["name"] == "Dense"
    copy = nn.from_config(config)
    assert [p.name for p in copy.params] == names and copy[0].given_name is None
    copy.load_state_dict(model.state_dict())
    assert sorted(copy.state_dict()) == sorted(model.state_dict()) == sorted(names)


def test_from_config_knows_every_layer_and_rejects_unknown_types():
    every = [cls for cls in vars(nn).values() if isinstance(cls, type) and issubclass(cls, nn.Module)]
    assert {cls.__name__ for cls in every} - {"Module"} <= set(nn.LAYERS)
    layer = nn.from_config({"type": "InnerProduct", "in_features": 3, "out_features": 2, "seed": 1})
    assert isinstance(layer, nn.Dense) and layer.weight.get_value().shape == (3, 2)
    with pytest.raises(nn.LayerError, match="unknown layer type 'Linear'"):
        nn.from_config({"type": "Linear"})
    custom = nn.Dense(2, 2, init=lambda shape, fi, fo, rng: np.eye(2)).config()
    assert custom["init"]["type"] == "custom"
    with pytest.raises(gc.UsageError, match="load_state_dict"):
        nn.from_config(custom)


# ----- errors at graph-building time -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "var", "message"),
    [
        (lambda: nn.Dense(4, 3), gc.matrix("a", shape=(None, 5), dtype="float32"),
         r"Dense: expects input \(N, ..., 4\) float32, got float32 \(\?, 5\): axis 1 has size 5, not 4"),
        (lambda: nn.Dense(4, 3, name="fc1"), gc.vector("b", shape=(4,), dtype="float32"),
         r"fc1 \(Dense\): expects .* got float32 \(4,\): rank 1, needs at least 2"),
        (lambda: nn.Dense(4, 3), gc.matrix("c", shape=(None, 4), dtype="float64"),
         r"dtype float64, the layer computes in float32; cast it with gc.cast\(x, 'float32'\) or build the layer "
         r"with dtype='float64'"),
        (lambda: nn.Conv2d(3, 8, 3), gc.matrix("d", shape=(None, 3), dtype="float32"),
         r"Conv2d: expects input \(N, 3, H, W\) float32, got float32 \(\?, 3\): rank 2, not 4"),
        (lambda: nn.Conv2d(3, 8, 3), gc.tensor("e", shape=(None, 1, 8, 8), dtype="float32"),
         r"axis 1 has size 1, not 3"),
        (lambda: nn.Conv2d(1, 8, 5), gc.tensor("f", shape=(None, 1, 4, 4), dtype="float32"),
         r"Conv2d: the 5x5 kernel is larger than the input"),
        (lambda: nn.BatchNorm(4), gc.tensor("g", shape=(None, 3, 2, 2), dtype="float32"), r"BatchNorm: .*not 4"),
        (lambda: nn.LayerNorm(4), gc.matrix("h", shape=(None, 3), dtype="float32"), r"LayerNorm: .*not 4"),
        (lambda: nn.Embedding(5, 2), gc.vector("i", dtype="float32"), r"Embedding: .*dtype float32.*int64"),
        (lambda: nn.MaxPool2d(3), gc.tensor("j", shape=(None, 1, 2, 2), dtype="float32"), r"MaxPool2d: the window"),
        (lambda: nn.ReLU(), gc.vector("k", dtype="int64"), r"ReLU: .*dtype int64 is not a float dtype"),
        (lambda: nn.PReLU(3), gc.matrix("l", shape=(None, 2), dtype="float32"), r"PReLU: .*not 3"),
        (lambda: nn.Softmax(axis=2), gc.matrix("m", dtype="float32"), r"Softmax: axis 2 is out of range"),
    ],
)  # fmt: skip
def test_bad_inputs_raise_layer_errors_naming_the_layer(make, var, message):
    layer = make()
    with pytest.raises(nn.LayerError, match=message):
        layer(var)


def test_bad_constructor_arguments():
    with pytest.raises(nn.LayerError, match="Dense: in_features must be a positive int, got 0"):
        nn.Dense(0, 3)
    with pytest.raises(nn.LayerError, match="Conv2d: kernel_size must be an int >= 1"):
        nn.Conv2d(1, 1, (3, 0))
    with pytest.raises(nn.LayerError, match="BatchNorm: dtype must be float32 or float64, got int64"):
        nn.BatchNorm(3, dtype="int64")
    with pytest.raises(gc.UsageError, match="unknown initializer"):
        nn.Dense(2, 2, init="glorot")


# ----- numba against numpy ---------------------------------------------------------------------------
def compare_backends(model, x, xv, y, yv, penalty=0.0):
    """Loss, gradients and state updates of one training step on both backends. Kept small:
    with a cold kernel cache every fused kernel compiles (about 0.5 s each)."""
    model.train()
    loss = nn.softmax_cross_entropy(model(x), y)
    if penalty:
        loss = loss + nn.l2_penalty(model, penalty)
    outputs = [loss, *gc.grad(loss, model.params)]
    updates = model.state_updates()
    start = model.state_dict()
    results = {}
    for backend in ("numpy", "numba"):
        model.load_state_dict(start)
        results[backend] = gc.function([x, y], outputs, updates=updates, backend=backend)(xv, yv)
        results[backend + "-state"] = model.state_dict()
    for a, b in zip(results["numpy"], results["numba"]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    for k, v in results["numpy-state"].items():
        np.testing.assert_allclose(results["numba-state"][k], v, rtol=1e-5, atol=1e-7, err_msg=k)


def test_mlp_on_numba_matches_numpy():
    nn.manual_seed(1)
    model = nn.Sequential(nn.Dense(6, 8, init="he_normal"), nn.ReLU(), nn.Dropout(0.2), nn.Dense(8, 3))
    x, y = gc.matrix("x", shape=(None, 6), dtype="float32"), gc.vector("y", dtype="int64")
    xv, yv = RNG.normal(size=(5, 6)).astype("float32"), np.array([0, 2, 1, 1, 0])
    compare_backends(model, x, xv, y, yv, penalty=1e-3)


def test_cnn_on_numba_matches_numpy():
    nn.manual_seed(2)
    layers = [nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
    model = nn.Sequential(*layers, nn.Dense(64, 10))  # the lean CNN: dropout and l2 are in the MLP
    x, y = gc.tensor("x", shape=(None, 1, 8, 8), dtype="float32"), gc.vector("y", dtype="int64")
    compare_backends(model, x, RNG.normal(size=(3, 1, 8, 8)).astype("float32"), y, np.array([3, 9, 0]))


# ----- the user page ----------------------------------------------------------------------------------------
def test_docs_example_trains():
    import pathlib
    import re

    page = pathlib.Path(__file__).resolve().parents[1] / "docs" / "layers.md"
    text = page.read_text().split("## Sequence layers")[0]  # the sequence layers' example is tested beside them
    example, saving, custom = re.findall(r"```python\n(.*?)```", text, re.S)
    namespace: dict = {}
    exec(compile(example, str(page), "exec"), namespace)
    data, labels = namespace["data"], namespace["labels"]
    assert namespace["predict"](data, labels) > 0.95
    exec(compile(saving + custom, str(page), "exec"), namespace)
    copy, x = namespace["copy"], namespace["x"]
    np.testing.assert_array_equal(run([x], copy(x), [data]), run([x], namespace["model"](x), [data]))
    assert namespace["Scale"](3).params[0].get_value().tolist() == [1, 1, 1]
