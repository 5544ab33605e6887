"""graphc.caffe: the prototxt/YAML reader, nets built from Caffe specs, layers, data layers (BatchNorm:
test_caffe_batchnorm.py; the solver: test_caffe_solver.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc import caffe, optim
from graphc.caffe import NetError, NetShapeError, PrototxtError
from graphc.caffe.prototxt import parse, parse_yaml

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "caffe"
LENET = EXAMPLES / "lenet_train_test.prototxt"
LENET_SOLVER = EXAMPLES / "lenet_solver.prototxt"
LENET_SHAPES = {"data": (None, 1, 28, 28), "label": (None,)}


# -- the text format ---------------------------------------------------------------------------------


def test_parser_fields_nesting_repetition_and_comments():
    text = """
    name: "Le Net"  # a comment after a value
    # a comment line
    layer {
      name: 'conv1' type: "Convolution"
      bottom: "data" top: "conv1"
      param { lr_mult: 1 } param: { lr_mult: 2 decay_mult: 0 }
      convolution_param < num_output: 20 kernel_size: 5 weight_filler { type: "xavier" } >
      include { phase: TRAIN }
    }
    layer { name: "relu" type: "ReLU" bottom: "conv1" top: "conv1"; }
    """
    spec = parse(text, "NetParameter")
    assert spec["name"] == "Le Net"
    conv, relu = spec["layer"]
    assert conv["param"] == [{"lr_mult": 1}, {"lr_mult": 2, "decay_mult": 0}]
    assert conv["convolution_param"] == {"num_output": 20, "kernel_size": [5], "weight_filler": {"type": "xavier"}}
    assert conv["include"] == [{"phase": "TRAIN"}]  # an enum is its name; a repeated field a list
    assert relu["bottom"] == ["conv1"] and relu["top"] == ["conv1"]


def test_parser_scalars_strings_and_numbers():
    spec = parse(
        r"""a: 1e-4 b: -2 c: 0.5 d: .25 e: 3f f: 0x1F g: -inf h: true i: false j: MAX
        s1: "with spaces and \"quotes\"" s2: 'tab\there' s3: "multi" ' part' s4: "\101\x42\n"
        stepvalue: [100, 200] k: []"""
    )
    assert spec["a"] == 1e-4 and isinstance(spec["b"], int) and spec["b"] == -2
    assert (spec["c"], spec["d"], spec["e"], spec["f"]) == (0.5, 0.25, 3.0, 31)
    assert spec["g"] == -math.inf and spec["h"] is True and spec["i"] is False and spec["j"] == "MAX"
    assert spec["s1"] == 'with spaces and "quotes"' and spec["s2"] == "tab\there"
    assert spec["s3"] == "multi part" and spec["s4"] == "AB\n"
    assert spec["stepvalue"] == [100, 200] and spec["k"] == []
    # a field written twice becomes a list even where the schema does not know it
    assert parse("x: 1 x: 2 y: 3")["x"] == [1, 2]
    # known repeated fields are lists when written once
    assert parse("stepvalue: 5", "SolverParameter")["stepvalue"] == [5]


@pytest.mark.parametrize(
    "text, where, words",
    [
        ('layer {\n  name: "x"\n  type: }', "3:9", "expected a value"),
        ('layer {\n  name: "x"\n', "3:1", "opened at line 1, column 7"),
        ("a: 1\nb 2", "2:3", "expected ':' or '{'"),
        ("a: 1\n  c: $", "2:6", "unexpected character '$'"),
        ('a: "bad \\q escape"', "1:4", "bad string"),
        ("a: [1, 2\n", "2:1", "expected ',' or ']'"),
        ("}", "1:1", "expected a field name"),
    ],
)
def test_parser_errors_name_file_line_and_column(text, where, words):
    with pytest.raises(PrototxtError) as info:
        parse(text, "NetParameter", "net.prototxt")
    message = str(info.value)
    assert message.startswith(f"net.prototxt:{where}:"), message
    assert words in message


def test_yaml_gives_the_same_dicts_as_prototxt():
    assert caffe.load_net(LENET) == caffe.load_net(EXAMPLES / "lenet.yaml")
    a, b = caffe.load_solver(LENET_SOLVER), caffe.load_solver(EXAMPLES / "lenet_solver.yaml")
    assert {k: v for k, v in a.items() if k != "net"} == {k: v for k, v in b.items() if k != "net"}
    assert parse_yaml("gamma: 1e-4\nstepvalue: 3", "SolverParameter") == {"gamma": 1e-4, "stepvalue": [3]}
    with pytest.raises(PrototxtError, match=r"^n.yaml:3:1: expected .,. or .\]."):
        parse_yaml("a: 1\nb: [1, 2\n", filename="n.yaml")
    with pytest.raises(PrototxtError, match="top level must be a mapping"):
        parse_yaml("- 1\n- 2\n", filename="n.yaml")


def test_lenet_files_load():
    spec = caffe.load_net(LENET)
    names = [layer["name"] for layer in spec["layer"]]
    assert names == ["mnist", "mnist", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "accuracy", "loss"]
    assert spec["layer"][0]["transform_param"] == {"scale": 0.00390625}
    solver = caffe.load_solver(LENET_SOLVER)
    assert (solver["base_lr"], solver["momentum"], solver["weight_decay"]) == (0.01, 0.9, 0.0005)
    assert (solver["lr_policy"], solver["gamma"], solver["power"]) == ("inv", 0.0001, 0.75)
    assert (solver["test_iter"], solver["test_interval"], solver["max_iter"], solver["snapshot"]) == (
        [100],
        500,
        10000,
        5000,
    )


# -- nets --------------------------------------------------------------------------------------------


def test_train_and_test_graphs_share_parameters():
    train = caffe.build(caffe.load_net(LENET), "TRAIN", shapes=LENET_SHAPES)
    test = caffe.build(caffe.load_net(LENET), "TEST", shapes=LENET_SHAPES, model=train.model)
    assert "accuracy" not in train.layers and "accuracy" in test.layers
    assert set(train.outputs) == {"loss"} and set(test.outputs) == {"accuracy", "loss"}
    assert train.input_names == test.input_names == ["data", "label"]
    assert test.blobs["pool2"].type.shape == (None, 50, 4, 4)
    # the test graph reads the very shared variables the training graph updates
    used = {v for v in gc.graph_inputs([test.loss]) if isinstance(v, gc.SharedVariable)}
    assert used == set(train.model.params) and len(used) == 8
    assert train.model.caffe_params()["ip1"][0].shape == (500, 800)  # Caffe's (out, in)


def test_in_place_relu_rebinds_the_blob():
    net = caffe.build(caffe.load_net(LENET), "TEST", shapes=LENET_SHAPES)
    ip1 = net.blobs["ip1"]
    assert ip1.owner is not None and ip1.owner.op.name == "relu"
    f = net.function(["ip1", "ip2"])
    x = np.random.default_rng(0).uniform(0, 1, (3, 1, 28, 28)).astype(np.float32)
    h, out = f(x, np.zeros(3, np.int64))
    assert h.min() >= 0 and (h == 0).any()
    params = net.model.caffe_params()
    np.testing.assert_allclose(out, h @ params["ip2"][0].T + params["ip2"][1], rtol=1e-4, atol=1e-5)


TINY = """
name: "tiny"
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 2 dim: 5 dim: 5 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 pad: 1 } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip" inner_product_param { num_output: 4 } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" relu_param { negative_slope: 0.1 } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


def _caffe_pool(x, k, s, pad, method):
    """Caffe's pooling loops (pooling_layer.cpp), written out: ceil-sized output, windows clipped."""
    n, c, h, w = x.shape
    oh = int(math.ceil((h + 2 * pad - k) / s)) + 1
    ow = int(math.ceil((w + 2 * pad - k) / s)) + 1
    if pad and (oh - 1) * s >= h + pad:
        oh -= 1
    if pad and (ow - 1) * s >= w + pad:
        ow -= 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * s - pad, j * s - pad
            he, we = min(hs + k, h + pad), min(ws + k, w + pad)
            size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            window = x[:, :, hs:he, ws:we]
            out[:, :, i, j] = window.max(axis=(2, 3)) if method == "MAX" else window.sum(axis=(2, 3)) / size
    return out


def _conv(x, w, b, pad):
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    oh, ow = xp.shape[2] - k + 1, xp.shape[3] - k + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = np.einsum("nchw,ochw->no", xp[:, :, i : i + k, j : j + k], w)
    return out + b.reshape(1, -1, 1, 1)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_forward_matches_numpy_with_caffe_weight_layout(backend):
    net = caffe.build(parse(TINY, "NetParameter"), "TEST")
    rng = np.random.default_rng(1)
    w_conv, b_conv = rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3)
    w_ip, b_ip = rng.normal(size=(4, 27)) * 0.3, rng.normal(size=4)  # (out, in), in = 3*3*3 after ceil pooling
    net.model.set_caffe_params({"conv": [w_conv, b_conv], "ip": [w_ip, b_ip]})
    x = rng.normal(size=(2, 2, 5, 5)).astype(np.float32)
    ip, prob = net.function(["ip", "prob"], backend=backend)(x)

    pooled = _caffe_pool(_conv(x.astype(np.float64), w_conv, b_conv, 1), 2, 2, 0, "MAX")
    assert pooled.shape == (2, 3, 3, 3)  # Caffe's ceil: (5 - 2) / 2 -> 2 windows + 1
    z = pooled.reshape(2, -1) @ w_ip.T + b_ip
    z = np.where(z > 0, z, 0.1 * z)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(ip, z, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(prob, e / e.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("k, s, pad, size", [(2, 2, 0, 5), (3, 2, 1, 6), (3, 3, 0, 7), (3, 2, 1, 7), (2, 1, 0, 4)])
def test_pooling_sizes_and_values_follow_caffe(method, k, s, pad, size):
    text = f"""
    layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ dim: 2 dim: 2 dim: {size} dim: {size} }} }} }}
    layer {{ name: "pool" type: "Pooling" bottom: "x" top: "y"
            pooling_param {{ pool: {method} kernel_size: {k} stride: {s} pad: {pad} }} }}
    """
    net = caffe.build(parse(text, "NetParameter"), "TEST")
    x = np.random.default_rng(2).normal(size=(2, 2, size, size)).astype(np.float32)
    expected = _caffe_pool(x.astype(np.float64), k, s, pad, method)
    assert net.blobs["y"].type.shape[1:] == expected.shape[1:]
    np.testing.assert_allclose(net.function(["y"])(x)[0], expected, rtol=1e-5, atol=1e-6)


def test_pooling_gradient_through_the_ceil_padding():
    text = """
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 5 dim: 5 } } }
    layer { name: "pool" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
    """
    net = caffe.build(parse(text, "NetParameter"), "TEST")
    x, y = net.inputs[0], net.blobs["y"]
    g = gc.function([x], gc.grad(gc.sum(y * y), x))(np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5))
    assert g.shape == (1, 1, 5, 5) and g[0, 0, 4, 4] != 0  # the bottom-right pixel is its own window


def _var_near(target, rel=0.05):
    return lambda v: abs(v.var() - target) < rel * target


@pytest.mark.parametrize(
    "spec, shape, check",
    [
        ({"type": "xavier"}, (200, 50, 3, 3), lambda v: abs(v).max() <= math.sqrt(3 / 450)),  # fan_in 50*3*3
        ({"type": "xavier"}, (200, 50, 3, 3), _var_near(1 / 450)),  # U(-a, a) has variance a^2 / 3 = 1 / n
        ({"type": "xavier", "variance_norm": "FAN_OUT"}, (40, 300), _var_near(1 / 40)),
        ({"type": "xavier", "variance_norm": "AVERAGE"}, (100, 300), _var_near(1 / 200)),
        ({"type": "msra"}, (300, 200), _var_near(2 / 200)),
        ({"type": "gaussian", "std": 0.01}, (300, 300), lambda v: abs(v.std() - 0.01) < 3e-4 and abs(v.mean()) < 1e-4),
        ({"type": "gaussian"}, (300, 300), lambda v: abs(v.std() - 1.0) < 0.02),  # Caffe's default std is 1
        ({"type": "uniform", "min": -2, "max": 3}, (300, 300), lambda v: v.min() >= -2 and v.max() <= 3),
        ({"type": "uniform", "min": -2, "max": 3}, (300, 300), lambda v: abs(v.mean() - 0.5) < 0.02),
        ({"type": "constant", "value": 0.2}, (5, 7), lambda v: (v == np.float32(0.2)).all()),
        (None, (5, 7), lambda v: (v == 0).all()),  # no filler: Caffe's constant 0
        ({"type": "positive_unitball"}, (20, 30), lambda v: np.allclose(v.sum(axis=1), 1) and (v >= 0).all()),
    ],
)
def test_filler_statistics(spec, shape, check):
    values = caffe.fill(spec, shape, np.random.default_rng(3), "test")
    assert values.shape == shape and values.dtype == np.float32
    assert check(values.astype(np.float64))


def test_fillers_reach_the_layers_in_caffe_layout():
    net = caffe.build(caffe.load_net(LENET), "TRAIN", shapes=LENET_SHAPES)
    w, b = net.model.caffe_params()["ip1"]
    assert abs(w).max() <= math.sqrt(3 / 800) and abs(w).max() > 0.9 * math.sqrt(3 / 800)  # xavier, fan_in 800
    assert (b == 0).all()
    conv = net.model.caffe_params()["conv2"][0]
    assert abs(conv).max() <= math.sqrt(3 / (20 * 25))
    with pytest.raises(NetError, match=r"layer 'ip' \(InnerProduct\) weight_filler: unknown filler type 'he'"):
        caffe.build(parse(TINY.replace("num_output: 4", 'num_output: 4 weight_filler { type: "he" }')), "TEST")


MULTS = """
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 } } }
layer { name: "a" type: "InnerProduct" bottom: "x" top: "a"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "b" type: "InnerProduct" bottom: "a" top: "b"
        param { lr_mult: 0 } param { lr_mult: 0 } inner_product_param { num_output: 2 } }
"""


def test_lr_mult_and_decay_mult_reach_the_optimizer_groups():
    net = caffe.build(parse(MULTS, "NetParameter"), "TEST")
    groups = net.model.param_groups()
    by_mults = {(g["lr_mult"], g["decay_mult"]): [p.name for p in g["params"]] for g in groups}
    assert by_mults == {(1.0, 1.0): ["a.weight"], (2.0, 0.0): ["a.bias"]}  # lr_mult 0: frozen, left out
    # and they act: CaffeSGD, no momentum, weight decay 0.1, lr 0.5
    opt = caffe.CaffeSGD(groups, 0.5, weight_decay=0.1)
    x = net.inputs[0]
    loss = gc.sum(net.blobs["b"])
    frozen_before = net.model.caffe_params()["b"]
    w0, b0 = (v.copy() for v in net.model.caffe_params()["a"])
    gw, gb = gc.function([x], gc.grad(loss, [net.model._children["a"].weight, net.model._children["a"].bias]))(
        np.ones((1, 3), np.float32)
    )
    gc.function([x], loss, updates=opt.updates(loss))(np.ones((1, 3), np.float32))
    w1, b1 = net.model.caffe_params()["a"]
    np.testing.assert_allclose(w1, w0 - 0.5 * (gw.T + 0.1 * w0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(b1, b0 - 2 * 0.5 * gb, rtol=1e-5, atol=1e-7)  # lr x 2, no decay
    for before, after in zip(frozen_before, net.model.caffe_params()["b"]):
        np.testing.assert_array_equal(before, after)


def test_caffe_sgd_puts_the_rate_inside_the_velocity():
    w = gc.shared(np.array([1.0]), name="w")
    loss = gc.sum(w * w)  # g = 2 w
    schedule = optim.Step(1.0, 0.5, 1)  # lr 1, 0.5, 0.25, ...
    opt = caffe.CaffeSGD([w], schedule, momentum=0.9)
    step = gc.function([], loss, updates=opt.updates(loss))
    ww, v = 1.0, 0.0
    for t in range(3):
        v = 0.9 * v + schedule.value(t) * 2 * ww
        ww -= v
        step()
        np.testing.assert_allclose(w.get_value(), [ww], rtol=1e-12)
    # at a constant rate it equals optim.SGD (PyTorch's form) step for step
    a, b = gc.shared(np.array([1.0, -2.0])), gc.shared(np.array([1.0, -2.0]))
    fa = gc.function([], [], updates=caffe.CaffeSGD([a], 0.1, momentum=0.9, weight_decay=0.01).updates(gc.sum(a**4)))
    fb = gc.function([], [], updates=optim.SGD([b], 0.1, momentum=0.9, weight_decay=0.01).updates(gc.sum(b**4)))
    for _ in range(5):
        fa(), fb()
    np.testing.assert_allclose(a.get_value(), b.get_value(), rtol=1e-12)


LOSSES = """
layer { name: "in" type: "Input" top: "z" top: "t" input_param { shape { dim: 4 dim: 3 } } }
layer { name: "lab" type: "Input" top: "label" input_param { shape { dim: 4 } } }
layer { name: "ce" type: "SoftmaxWithLoss" bottom: "z" bottom: "label" top: "ce" loss_param { ignore_label: 2 } }
layer { name: "l2" type: "EuclideanLoss" bottom: "z" bottom: "t" top: "l2" loss_weight: 0.5 }
layer { name: "bce" type: "SigmoidCrossEntropyLoss" bottom: "z" bottom: "t" top: "bce" }
layer { name: "acc" type: "Accuracy" bottom: "z" bottom: "label" top: "acc" accuracy_param { top_k: 2 } }
layer { name: "acc1" type: "Accuracy" bottom: "z" bottom: "label" top: "acc1" }
"""


def test_loss_and_accuracy_layers_against_numpy():
    net = caffe.build(parse(LOSSES, "NetParameter"), "TEST")
    assert {k: w for k, (_, w) in net.losses.items()} == {"ce": 1.0, "l2": 0.5, "bce": 1.0}
    z = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 1.0, 5.0], [0.5, 0.2, 0.1]], np.float32)
    t = np.random.default_rng(4).uniform(0, 1, (4, 3)).astype(np.float32)
    label = np.array([0, 2, 2, 1], np.float32)  # label 2 is ignored by the softmax loss
    blobs = [net.blobs[k] for k in ("ce", "l2", "bce", "acc", "acc1")]
    ce, l2, bce, acc, acc1, total = gc.function(net.inputs, [*blobs, net.loss])(z, t, label)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    keep = label != 2
    assert np.isclose(ce, -logp[keep, label[keep].astype(int)].mean(), rtol=1e-5)
    assert np.isclose(l2, ((z - t) ** 2).sum() / (2 * 4), rtol=1e-5)
    p = 1 / (1 + np.exp(-z))
    assert np.isclose(bce, -(t * np.log(p) + (1 - t) * np.log(1 - p)).sum() / 4, rtol=1e-5)
    better = (z > z[np.arange(4), label.astype(int)][:, None]).sum(axis=1)
    assert np.isclose(acc, (better < 2).mean()) and acc == 1.0  # each label is among the 2 best
    assert np.isclose(acc1, (z.argmax(axis=1) == label).mean()) and acc1 == 0.5
    assert np.isclose(total, ce + 0.5 * l2 + bce, rtol=1e-5)


def test_dropout_differs_between_phases():
    text = """
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 8 dim: 3 } } }
    layer { name: "drop" type: "Dropout" bottom: "x" top: "y" dropout_param { dropout_ratio: 0.5 } }
    """
    spec = parse(text, "NetParameter")
    train = caffe.build(spec, "TRAIN")
    test = caffe.build(spec, "TEST", model=train.model)
    x = np.random.default_rng(5).normal(3.0, 2.0, (8, 3)).astype(np.float32)
    (y_test,) = test.function(["y"])(x)
    np.testing.assert_array_equal(y_test, x)  # TEST: the identity
    (y_train,) = train.function(["y"])(x)
    dropped = y_train == 0
    np.testing.assert_allclose(y_train[~dropped], 2 * x[~dropped], rtol=1e-6)  # kept values scaled by 1 / (1 - 0.5)
    assert 0.2 < dropped.mean() < 0.8


def test_in_place_layer_on_an_input_blob_is_an_output():
    text = """
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "relu" type: "ReLU" bottom: "x" top: "x" }
    """
    net = caffe.build(parse(text, "NetParameter"), "TEST")
    assert list(net.outputs) == ["x"] and net.outputs["x"] is not net.inputs[0]
    x = np.array([[-1.0, 0.5, 2.0], [3.0, -4.0, 0.0]], np.float32)
    (y,) = net.function()(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    # an input no layer touches is not an output
    assert caffe.build(parse(text.split('layer { name: "relu"')[0], "NetParameter"), "TEST").outputs == {}


# -- errors ----------------------------------------------------------------------------------------


def _net(body: str) -> dict:
    return parse(
        'layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 1 dim: 6 dim: 6 } } }\n' + body
    )


CONV7 = "convolution_param { num_output: 2 kernel_size: 7 }"


@pytest.mark.parametrize(
    "body, error, words",
    [
        ('layer { name: "c" type: "Convolve" bottom: "data" top: "c" }', NetError,
         r"layer 'c' \(Convolve\): unknown layer type 'Convolve'; graphc supports .*Convolution"),
        ('layer { name: "ip" type: "InnerProduct" bottom: "pool9" top: "ip" }', NetError,
         r"layer 'ip' \(InnerProduct\): bottom 'pool9' is not produced by any earlier layer; blobs so far: data"),
        (f'layer {{ name: "c" type: "Convolution" bottom: "data" top: "c" {CONV7} }}', NetShapeError,
         r"layer 'c' \(Convolution\): the 7x7 kernel is larger than its input \(N, 1, 6, 6\)"),
        ('layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { kernel_size: 3 } }',
         NetError, r"layer 'c' \(Convolution\): needs convolution_param.num_output"),
        ('layer { name: "p" type: "Pooling" bottom: "data" top: "p" }', NetError,
         r"layer 'p' \(Pooling\): needs pooling_param"),
        ('layer { name: "e" type: "EuclideanLoss" bottom: "data" bottom: "data2" top: "e" }', NetError,
         r"layer 'e' \(EuclideanLoss\): bottom 'data2' is not produced"),
        ('layer { name: "f" type: "Flatten" bottom: "data" top: "f" }\n'
         'layer { name: "e" type: "EuclideanLoss" bottom: "f" bottom: "data" top: "e" }\n'
         'layer { name: "g" type: "InnerProduct" bottom: "f" top: "g" inner_product_param { num_output: 3 } }\n'
         'layer { name: "h" type: "EuclideanLoss" bottom: "g" bottom: "f" top: "h" }', NetShapeError,
         r"layer 'h' \(EuclideanLoss\): bottoms 'g' \(N, 3\) and 'f' \(N, 36\) must have the same number"),
        ('layer { name: "r" type: "ReLU" bottom: "data" bottom: "data" top: "r" }', NetError,
         r"layer 'r' \(ReLU\): takes 1 bottom\(s\), got 2"),
        ('layer { name: "s" type: "Sigmoid" bottom: "data" top: "data" }\n'
         'layer { name: "t" type: "TanH" bottom: "data" top: "data" }\n'
         'layer { name: "u" type: "TanH" bottom: "s" top: "data" }', NetError, r"layer 'u' \(TanH\): bottom 's'"),
        ('layer { name: "ip" type: "InnerProduct" bottom: "data" top: "data" }', NetError,
         r"layer 'ip' \(InnerProduct\): needs inner_product_param"),
    ],
)  # fmt: skip
def test_errors_name_the_layer(body, error, words):
    with pytest.raises(error, match=words):
        caffe.build(_net(body), "TEST")


def test_missing_bottom_points_at_the_other_phase_and_shapes_must_agree_across_phases():
    spec = caffe.load_net(LENET)
    acc = next(layer for layer in spec["layer"] if layer["name"] == "accuracy")
    acc["include"] = [{"phase": "TRAIN"}]
    loss = next(layer for layer in spec["layer"] if layer["name"] == "loss")
    loss["bottom"] = ["ip2", "accuracy"]
    with pytest.raises(
        NetError,
        match=r"layer 'loss' \(SoftmaxWithLoss\): bottom 'accuracy' .*layer 'accuracy' makes it, but not in the TEST",
    ):
        caffe.build(spec, "TEST", shapes=LENET_SHAPES)
    train = caffe.build(caffe.load_net(LENET), "TRAIN", shapes=LENET_SHAPES)
    with pytest.raises(
        NetShapeError,
        match=r"layer 'conv1' \(Convolution\): built as Convolution\(1, .* in one phase and as Convolution\(3,",
    ):
        caffe.build(
            caffe.load_net(LENET), "TEST", shapes={"data": (None, 3, 28, 28), "label": (None,)}, model=train.model
        )
    with pytest.raises(
        NetShapeError, match=r"layer 'ip1' \(InnerProduct\): built as InnerProduct\(800, .* InnerProduct\(1250,"
    ):
        caffe.build(
            caffe.load_net(LENET), "TEST", shapes={"data": (None, 1, 32, 32), "label": (None,)}, model=train.model
        )
    with pytest.raises(NetShapeError, match=r"layer 'ip1': blob 0 has shape \(500, 800\), the value \(800, 500\)"):
        train.model.set_caffe_params({"ip1": [np.zeros((800, 500))]})
    with pytest.raises(NetError, match="old V1 'layers' format"):
        caffe.build({"layers": [{"name": "x", "type": "CONVOLUTION"}]}, "TRAIN")


# -- data ------------------------------------------------------------------------------------------


def test_digits_split_and_scale():
    train_x, train_y = caffe.digits("train")
    test_x, test_y = caffe.digits("test")
    assert train_x.shape == (1438, 1, 28, 28) and test_x.shape == (359, 1, 28, 28)
    assert train_x.max() == 255 and train_x.min() == 0 and set(np.unique(test_y)) == set(range(10))
    assert (train_x[:, :, :4] == 0).all() and (train_x[:, :, 24:] == 0).all()  # MNIST's 4-pixel border
    flat_train = {row.tobytes() for row in train_x.reshape(len(train_x), -1)}
    assert not any(row.tobytes() in flat_train for row in test_x.reshape(len(test_x), -1))
    layer = caffe.load_net(LENET)["layer"][1]
    source = caffe.load_layer_data(layer, {"examples/mnist/mnist_test_lmdb": "digits:test"})
    assert source.batch_size == 100 and source.arrays["data"].max() == np.float32(255 * 0.00390625)
    with pytest.raises(
        NetError, match=r"layer 'mnist' \(Data\): its source 'examples/mnist/mnist_test_lmdb' is a LMDB database"
    ):
        caffe.load_layer_data(layer, {})
    with pytest.raises(gc.UsageError, match="digits:train or digits:test"):
        caffe.parse_binding("src=digits:validation")


#: an HDF5Data layer reading the files listed in list.txt
HDF5_LAYER = {
    "name": "h",
    "type": "HDF5Data",
    "top": ["data", "label"],
    "hdf5_data_param": {"source": "list.txt", "batch_size": 2},
}


def test_npz_and_hdf5_sources_with_transform(tmp_path):
    x = np.arange(24, dtype=np.float64).reshape(4, 2, 3, 1)
    np.savez(tmp_path / "d.npz", data=x, label=np.array([0, 1, 0, 1]))
    layer = {
        "name": "d", "type": "Data", "top": ["data", "label"],
        "transform_param": {"scale": 0.5, "mean_value": [1.0, 2.0]},
        "data_param": {"source": "d.npz", "batch_size": 2},
    }  # fmt: skip
    src = caffe.load_layer_data(layer, base_dirs=[tmp_path])
    np.testing.assert_allclose(src.arrays["data"], (x - np.array([1.0, 2.0]).reshape(1, 2, 1, 1)) * 0.5)
    assert src.arrays["data"].dtype == np.float32 and src.arrays["label"].dtype == np.int64
    with pytest.raises(NetError, match="has no array named 'target'"):
        caffe.load_layer_data(dict(layer, top=["data", "target"]), base_dirs=[tmp_path])
    h5py = pytest.importorskip("h5py")
    for k in range(2):
        with h5py.File(tmp_path / f"part{k}.h5", "w") as f:
            f["data"] = x[2 * k : 2 * k + 2]
            f["label"] = np.array([[0.0], [1.0]])
    (tmp_path / "list.txt").write_text("part0.h5\npart1.h5\n")
    h5 = dict(HDF5_LAYER)
    src = caffe.load_layer_data(h5, base_dirs=[tmp_path])
    np.testing.assert_array_equal(src.arrays["data"], x.astype(np.float32))
    assert src.arrays["label"].shape == (4, 1)
    # (N, 1) float labels feed SoftmaxWithLoss as Caffe casts them
    spec = {"layer": [h5, {"name": "ip", "type": "InnerProduct", "bottom": ["data"], "top": ["ip"],
            "inner_product_param": {"num_output": 2}},
            {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["ip", "label"], "top": ["loss"]}]}  # fmt: skip
    net = caffe.build(caffe.prototxt.normalise(spec, "NetParameter"), "TRAIN", base_dirs=[tmp_path])
    assert np.isclose(gc.function(net.inputs, net.loss)(*net.arrays()), math.log(2), rtol=1e-5)


def test_integer_images_become_float32_data_blobs(tmp_path):
    """Caffe's data blob is float: uint8 images without transform_param feed a convolution."""
    images = np.random.default_rng(11).integers(0, 256, (6, 1, 5, 5)).astype(np.uint8)
    np.savez(tmp_path / "u8.npz", data=images, label=np.arange(6) % 2)
    spec = parse(
        """
        layer { name: "d" type: "Data" top: "data" top: "label" data_param { source: "u8.npz" batch_size: 3 } }
        layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
                convolution_param { num_output: 2 kernel_size: 3 } }
        layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" inner_product_param { num_output: 2 } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
        """,
        "NetParameter",
    )
    net = caffe.build(spec, "TRAIN", base_dirs=[tmp_path])
    assert [v.dtype for v in net.inputs] == ["float32", "int64"]
    data, label = net.arrays()
    assert data.dtype == np.float32 and label.dtype == np.int64
    np.testing.assert_array_equal(data, images.astype(np.float32))  # the values unchanged, 0..255
    w, b = (np.random.default_rng(12).normal(size=s) for s in ((2, 1, 3, 3), (2,)))
    net.model.set_caffe_params({"conv": [w, b]})
    (conv,) = net.function(["conv"])(data, label)
    np.testing.assert_allclose(conv, _conv(images.astype(np.float64), w, b, 0), rtol=1e-4, atol=1e-3)
    # HDF5 int data too; the later tops keep their integers
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "u8.h5", "w") as f:
        f["data"], f["label"] = images, np.arange(6) % 2
    (tmp_path / "list.txt").write_text("u8.h5\n")
    h5 = dict(HDF5_LAYER)
    src = caffe.load_layer_data(h5, base_dirs=[tmp_path])
    assert src.arrays["data"].dtype == np.float32 and src.arrays["label"].dtype == np.int64


def test_param_sharing_by_name_is_refused():
    shared = 'param { name: "w" } inner_product_param { num_output: 2 }'
    body = f'layer {{ name: "a" type: "InnerProduct" bottom: "data" top: "a" {shared} }}\n'
    body += f'layer {{ name: "b" type: "InnerProduct" bottom: "data" top: "b" {shared} }}'
    with pytest.raises(NetError, match=r"layer 'b' \(InnerProduct\): param name 'w' is also used by layer 'a'"):
        caffe.build(_net(body), "TEST")
