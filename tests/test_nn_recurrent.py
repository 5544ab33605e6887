"""graphc.nn.recurrent: RNN, LSTM and GRU unrolled over time, against plain numpy, PyTorch and
finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import nn
from graphc.nn import init
from graphc.nn.module import LayerError
from graphc.nn.recurrent import GRU, LSTM, RNN

B, T, F, H = 2, 3, 3, 4


@pytest.fixture(autouse=True)
def _restore_seed_counter():
    saved = dict(init._seeds)
    yield
    init._seeds.update(saved)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# ----- plain-numpy references: the equations, one gate matrix at a time ----------------------------
def _blocks(layer, n):
    """The per-gate (W_i*, W_h*, b_i*, b_h*) of a layer's stacked parameters."""
    w_ih, w_hh, b_ih, b_hh = (p.get_value() for p in layer.params)
    h = layer.hidden_size
    return [
        (
            w_ih[:, k * h : (k + 1) * h],
            w_hh[:, k * h : (k + 1) * h],
            b_ih[k * h : (k + 1) * h],
            b_hh[k * h : (k + 1) * h],
        )
        for k in range(n)
    ]


def rnn_numpy(layer, x, h, act=np.tanh):
    ((wi, wh, bi, bh),) = _blocks(layer, 1)
    outs = []
    for t in range(x.shape[1]):
        h = act(x[:, t] @ wi + bi + h @ wh + bh)
        outs.append(h)
    return np.stack(outs, axis=1), h


def lstm_numpy(layer, x, h, c):
    (wii, whi, bii, bhi), (wif, whf, bif, bhf), (wig, whg, big, bhg), (wio, who, bio, bho) = _blocks(layer, 4)
    outs = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        i = _sigmoid(xt @ wii + bii + h @ whi + bhi)
        f = _sigmoid(xt @ wif + bif + h @ whf + bhf)
        g = np.tanh(xt @ wig + big + h @ whg + bhg)
        o = _sigmoid(xt @ wio + bio + h @ who + bho)
        c = f * c + i * g
        h = o * np.tanh(c)
        outs.append(h)
    return np.stack(outs, axis=1), (h, c)


def gru_numpy(layer, x, h):
    (wir, whr, bir, bhr), (wiz, whz, biz, bhz), (win, whn, bin_, bhn) = _blocks(layer, 3)
    outs = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        r = _sigmoid(xt @ wir + bir + h @ whr + bhr)
        z = _sigmoid(xt @ wiz + biz + h @ whz + bhz)
        n = np.tanh(xt @ win + bin_ + r * (h @ whn + bhn))
        h = (1 - z) * n + z * h
        outs.append(h)
    return np.stack(outs, axis=1), h


def _randomize(layer, rng):
    """Nonzero values everywhere (the biases start at zero), so every term of the equations counts."""
    for p in layer.params:
        p.set_value(rng.normal(0, 0.5, p.get_value().shape).astype(p.dtype))


def _layer(cls, dtype="float64", **kw):
    layer = cls(F, H, dtype=dtype, seed=3, **kw)
    _randomize(layer, np.random.default_rng(7))
    return layer


def _data(dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(B, T, F)).astype(dtype),
        rng.normal(size=(B, H)).astype(dtype),
        rng.normal(size=(B, H)).astype(dtype),
    )


# ----- forward against numpy ------------------------------------------------------------------
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_matches_numpy_with_and_without_initial_state(nonlinearity):
    layer = _layer(RNN, nonlinearity=nonlinearity)
    x, h0_val, _ = _data()
    xs, h0 = gc.tensor("x", shape=(None, T, F)), gc.matrix("h0")  # h0 of unknown shape: checked when run
    out, h = layer(xs, h0)
    out0, hz = layer(xs)
    got = gc.function([xs, h0], [out, h, out0, hz])(x, h0_val)
    act = np.tanh if nonlinearity == "tanh" else (lambda z: np.maximum(z, 0))
    want, want_h = rnn_numpy(layer, x, h0_val, act)
    want0, want0_h = rnn_numpy(layer, x, np.zeros((B, H)), act)
    for g, w in zip(got, [want, want_h, want0, want0_h]):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    assert out.type.shape == (None, T, H) and hz.type.shape == (None, H)


def test_lstm_matches_numpy():
    layer = _layer(LSTM)
    x, h0_val, c0_val = _data()
    xs, h0, c0 = gc.tensor("x", shape=(B, T, F)), gc.matrix("h0", shape=(B, H)), gc.matrix("c0", shape=(B, H))
    out, (h, c) = layer(xs, (h0, c0))
    out0, (h_z, c_z) = layer(xs)
    got = gc.function([xs, h0, c0], [out, h, c, out0, h_z, c_z])(x, h0_val, c0_val)
    want, (wh, wc) = lstm_numpy(layer, x, h0_val, c0_val)
    want0, (wh0, wc0) = lstm_numpy(layer, x, np.zeros((B, H)), np.zeros((B, H)))
    for g, w in zip(got, [want, wh, wc, want0, wh0, wc0]):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_gru_matches_numpy():
    layer = _layer(GRU)
    x, h0_val, _ = _data()
    xs, h0 = gc.tensor("x", shape=(None, T, F)), gc.matrix("h0", shape=(None, H))
    out, h = layer(xs, h0)
    out0, h_z = layer(xs)
    got = gc.function([xs, h0], [out, h, out0, h_z])(x, h0_val)
    want, wh = gru_numpy(layer, x, h0_val)
    want0, wh0 = gru_numpy(layer, x, np.zeros((B, H)))
    for g, w in zip(got, [want, wh, want0, wh0]):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_step_is_one_time_step_of_the_unrolled_layer(cls):
    layer = _layer(cls)
    x, h0_val, c0_val = _data()
    xs = gc.tensor("x", shape=(None, T, F))
    x0, x1 = gc.matrix("x0", shape=(None, F)), gc.matrix("x1", shape=(None, F))
    out, _ = layer(xs)
    s1 = layer.step(x0)  # zero state
    s2 = layer.step(x1, s1)
    h1, h2 = (s1[0], s2[0]) if cls is LSTM else (s1, s2)
    got = gc.function([xs, x0, x1], [out, h1, h2])(x, x[:, 0], x[:, 1])
    np.testing.assert_allclose(got[1], got[0][:, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[2], got[0][:, 1], rtol=1e-12, atol=1e-12)


def test_float32_layers_build_float32_graphs():
    layer = LSTM(F, H, seed=1)  # float32 by default
    xs = gc.tensor("x", shape=(None, T, F), dtype="float32")
    out, (h, c) = layer(xs)
    assert {out.dtype, h.dtype, c.dtype} == {"float32"}
    x = _data("float32")[0]
    got = gc.function([xs], out)(x)
    assert got.dtype == np.float32
    want, _ = lstm_numpy(layer, x.astype(np.float64), np.zeros((B, H)), np.zeros((B, H)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ----- against PyTorch ------------------------------------------------------------------------
def _torch_copy(torch_layer, layer):
    import torch

    with torch.no_grad():
        torch_layer.weight_ih_l0.copy_(torch.from_numpy(layer.w_ih.get_value().T.copy()))
        torch_layer.weight_hh_l0.copy_(torch.from_numpy(layer.w_hh.get_value().T.copy()))
        torch_layer.bias_ih_l0.copy_(torch.from_numpy(layer.b_ih.get_value()))
        torch_layer.bias_hh_l0.copy_(torch.from_numpy(layer.b_hh.get_value()))


@pytest.mark.parametrize("cls", ["RNN", "RNN-relu", "LSTM", "GRU"])
def test_matches_torch_with_copied_weights(cls):
    torch = pytest.importorskip("torch")
    kind, _, nonlin = cls.partition("-")
    kw = {"nonlinearity": nonlin} if nonlin else {}
    layer = _layer({"RNN": RNN, "LSTM": LSTM, "GRU": GRU}[kind], **kw)
    ref = getattr(torch.nn, kind)(F, H, batch_first=True, **kw).double()
    _torch_copy(ref, layer)
    x, h0_val, c0_val = _data(seed=5)
    xs, h0, c0 = gc.tensor("x", shape=(None, T, F)), gc.matrix("h0", shape=(None, H)), gc.matrix("c0", shape=(None, H))
    with torch.no_grad():
        if kind == "LSTM":
            out, (h, c) = layer(xs, (h0, c0))
            got = gc.function([xs, h0, c0], [out, h, c])(x, h0_val, c0_val)
            t_out, (t_h, t_c) = ref(
                torch.from_numpy(x), (torch.from_numpy(h0_val)[None], torch.from_numpy(c0_val)[None])
            )
            want = [t_out, t_h[0], t_c[0]]
        else:
            out, h = layer(xs, h0)
            got = gc.function([xs, h0, c0], [out, h])(x, h0_val, c0_val)
            t_out, t_h = ref(torch.from_numpy(x), torch.from_numpy(h0_val)[None])
            want = [t_out, t_h[0]]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-10, atol=1e-12)


# ----- gradients ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_gradients_of_every_parameter_and_input_match_finite_differences(cls):
    layer = _layer(cls)
    x, h0_val, c0_val = _data(seed=11)
    xs, h0, c0 = gc.tensor("x", shape=(B, T, F)), gc.matrix("h0", shape=(B, H)), gc.matrix("c0", shape=(B, H))
    state = (h0, c0) if cls is LSTM else h0
    out, last = layer(xs, state)
    last_h = last[0] if cls is LSTM else last
    rng = np.random.default_rng(2)
    w_out, w_last = gc.constant(rng.normal(size=(B, T, H))), gc.constant(rng.normal(size=(B, H)))
    loss = gc.sum(out * w_out) + gc.sum(last_h * w_last)  # weights so no direction of the gradient cancels
    if cls is LSTM:
        loss = loss + gc.sum(last[1] ** 2)
    inputs = [xs, h0, c0] if cls is LSTM else [xs, h0]
    values = [x, h0_val, c0_val] if cls is LSTM else [x, h0_val]
    f = gc.function(inputs, loss)
    analytic = gc.function(inputs, gc.grad(loss, layer.params + inputs))(*values)
    params = layer.params
    start = [p.get_value() for p in params]

    def loss_of(*vals):
        for p, v in zip(params, vals[: len(params)]):
            p.set_value(v)
        return f(*vals[len(params) :])

    numeric = gc.numeric_grad(loss_of, start + values, eps=1e-6)
    for p, s in zip(params, start):
        p.set_value(s)
    names = [p.name for p in params] + [v.name for v in inputs]
    assert len(analytic) == len(numeric) == 6 + (len(inputs) - 2)
    for name, a, n in zip(names, analytic, numeric):
        assert np.abs(n).max() > 1e-3, name  # the check is not vacuous
        np.testing.assert_allclose(a, n, rtol=1e-6, atol=1e-7, err_msg=name)


def test_gradient_through_default_zero_state_matches_check_grad():
    layer = _layer(GRU)
    xs = gc.tensor("x", shape=(B, T, F))
    out, _ = layer(xs)
    report = gc.check_grad(gc.sum(gc.sin(out)), xs, at={xs: _data(seed=4)[0]})
    assert report.worst < 1e-8


# ----- initialization -------------------------------------------------------------------------
def test_initialization_is_seeded_xavier_orthogonal_and_lstm_forget_bias_is_one():
    a, b, c = (
        LSTM(5, 3, seed=1, dtype="float64"),
        LSTM(5, 3, seed=1, dtype="float64"),
        LSTM(5, 3, seed=2, dtype="float64"),
    )
    for pa, pb in zip(a.params, b.params):
        np.testing.assert_array_equal(pa.get_value(), pb.get_value())
    assert not np.array_equal(a.w_ih.get_value(), c.w_ih.get_value())
    assert a.w_ih.get_value().shape == (5, 12) and a.w_hh.get_value().shape == (3, 12)
    assert np.abs(a.w_ih.get_value()).max() <= np.sqrt(6 / (5 + 3))
    w_ih, w_hh = a.w_ih.get_value(), a.w_hh.get_value()
    for k in range(4):
        block = w_hh[:, 3 * k : 3 * k + 3]
        np.testing.assert_allclose(block.T @ block, np.eye(3), atol=1e-12)
        for j in range(k):  # each gate block draws its own values
            assert not np.allclose(block, w_hh[:, 3 * j : 3 * j + 3])
            assert not np.allclose(w_ih[:, 3 * k : 3 * k + 3], w_ih[:, 3 * j : 3 * j + 3])
    # the blocks are nn.init's initializers, drawn from the layer's derived seeds
    rng = np.random.default_rng(init.derive_seed(1, 4 + 2))
    np.testing.assert_array_equal(w_hh[:, 6:9], init.orthogonal((3, 3), 3, 3, rng))
    rng = np.random.default_rng(init.derive_seed(1, 1))
    np.testing.assert_array_equal(w_ih[:, 3:6], init.xavier_uniform((5, 3), 5, 3, rng))
    np.testing.assert_array_equal(a.b_ih.get_value(), [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(a.b_hh.get_value(), np.zeros(12))
    assert GRU(5, 3).b_ih.get_value().tolist() == [0.0] * 9
    assert LSTM(5, 3).w_ih.dtype == "float32"


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_seed_none_takes_the_counters_next_seed(cls):
    nn.manual_seed(11)
    first, second = cls(5, 3), cls(5, 3)
    assert first.seed != second.seed  # two layers of one size no longer start equal
    for p, q in zip(first.params[:2], second.params[:2]):
        assert not np.allclose(p.get_value(), q.get_value())
    nn.manual_seed(11)
    again = cls(5, 3)
    assert again.seed == first.seed and again.config()["seed"] == first.seed
    for p, q in zip(first.params, again.params):
        np.testing.assert_array_equal(p.get_value(), q.get_value())
    rebuilt = nn.from_config(first.config())  # the config records the seed drawn
    for p, q in zip(first.params, rebuilt.params):
        np.testing.assert_array_equal(p.get_value(), q.get_value())


def test_orthogonal_initializer():
    rng = np.random.default_rng(0)
    square = init.get("orthogonal")((6, 6), 6, 6, rng)
    np.testing.assert_allclose(square @ square.T, np.eye(6), atol=1e-12)
    tall, wide = init.orthogonal((7, 3), 7, 3, rng), init.orthogonal((3, 7), 3, 7, rng)
    np.testing.assert_allclose(tall.T @ tall, np.eye(3), atol=1e-12)  # orthonormal columns
    np.testing.assert_allclose(wide @ wide.T, np.eye(3), atol=1e-12)  # orthonormal rows
    conv = init.orthogonal((4, 2, 3, 3), 18, 36, rng)
    flat = conv.reshape(4, 18)
    np.testing.assert_allclose(flat @ flat.T, np.eye(4), atol=1e-12)
    # uniform over the orthogonal group: the diagonal's entries have mean 0 (without the sign fix
    # of R's diagonal they would be biased positive)
    diagonals = np.array([np.diag(init.orthogonal((3, 3), 3, 3, rng)) for _ in range(2000)])
    assert np.abs(diagonals.mean()) < 0.03
    with pytest.raises(gc.UsageError, match="orthogonal initializer needs a matrix"):
        init.orthogonal((5,), 5, 5, rng)
    assert init.describe(init.orthogonal) == "orthogonal"


def test_config_and_names():
    layer = RNN(3, 5, nonlinearity="relu", seed=4, name="enc")
    assert layer.config() == {
        "type": "RNN",
        "name": "enc",
        "input_size": 3,
        "hidden_size": 5,
        "dtype": "float32",
        "seed": 4,
        "nonlinearity": "relu",
    }
    assert [n for n, _ in layer.named_params()] == ["w_ih", "w_hh", "b_ih", "b_hh"]
    assert layer.w_ih.name == "enc.w_ih"


def test_calling_twice_shares_parameters_across_lengths():
    layer = _layer(GRU)
    short, long_ = gc.tensor("a", shape=(None, 2, F)), gc.tensor("b", shape=(None, 5, F))
    out_s, _ = layer(short)
    out_l, _ = layer(long_)
    x = np.random.default_rng(0).normal(size=(B, 5, F))
    got_s, got_l = gc.function([short, long_], [out_s, out_l])(x[:, :2], x)
    np.testing.assert_allclose(got_s, got_l[:, :2], rtol=1e-12)  # a prefix's outputs do not see the future


# ----- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape, message",
    [
        ((None, F), r"enc \({cls}\): expects input \(batch, time, 3\) float32, got float32 \(\?, 3\): rank 2, not 3"),
        ((None, T, 7), r"enc \({cls}\): expects input .*, got float32 \(\?, 3, 7\): axis 2 has size 7, not 3"),
        ((None, None, F), r"enc \({cls}\): the time length must be static"),
        ((None, 0, F), r"enc \({cls}\): the input has no time steps"),
    ],
)
@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_bad_inputs_name_the_layer(cls, shape, message):
    layer = cls(F, H, name="enc")
    with pytest.raises(LayerError, match=message.format(cls=cls.__name__)):
        layer(gc.tensor("x", shape=shape, dtype="float32"))


def test_dtype_and_state_errors_name_the_layer():
    layer = LSTM(F, H, name="lstm1")
    x = gc.tensor("x", shape=(2, T, F), dtype="float32")
    with pytest.raises(
        LayerError,
        match=r"lstm1 \(LSTM\): expects input \(batch, time, 3\) float32, got float64 \(\?, 3, 3\): dtype float64, "
        r"the layer computes in float32; cast it with gc.cast\(x, 'float32'\) or build the layer with dtype='float64'",
    ):
        layer(gc.tensor("x64", shape=(None, T, F), dtype="float64"))
    with pytest.raises(LayerError, match=r"lstm1 \(LSTM\): the initial state must be a pair \(h0, c0\)"):
        layer(x, gc.matrix("h0", shape=(2, H), dtype="float32"))
    with pytest.raises(
        LayerError, match=r"lstm1 \(LSTM\): expects the initial state c0 \(batch, 4\) float32, got .*axis 1 has size 5"
    ):
        layer(x, (gc.matrix("h0", shape=(2, H), dtype="float32"), gc.matrix("c0", shape=(2, 5), dtype="float32")))
    with pytest.raises(LayerError, match=r"lstm1 \(LSTM\): the initial state h0 has batch 3 but the input has batch 2"):
        layer(x, (gc.matrix("h0", shape=(3, H), dtype="float32"), gc.matrix("c0", shape=(2, H), dtype="float32")))
    with pytest.raises(LayerError, match=r"lstm1 \(LSTM\): expects x_t \(batch, 3\) float32, got float32 \(2, 3, 3\)"):
        layer.step(x)
    gru = GRU(F, H, name="gru1")
    with pytest.raises(LayerError, match=r"gru1 \(GRU\): expects the initial state h0 \(batch, 4\) .*rank 3, not 2"):
        gru(x, gc.tensor("h", shape=(2, 1, H), dtype="float32"))


def test_errors_inside_a_model_name_the_path_and_the_class():
    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = LSTM(F, H, seed=1)

        def forward(self, x):
            return self.lstm(x)[0]

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = Encoder()

        def forward(self, x):
            return self.encoder(x)

    model = Model()
    assert [p.name for p in model.params] == [f"encoder.lstm.{w}" for w in ("w_ih", "w_hh", "b_ih", "b_hh")]
    assert [n for n, _ in model.named_params()] == [p.name for p in model.params]  # state_dict keys alike
    with pytest.raises(LayerError, match=r"^layer encoder.lstm \(LSTM\): expects input \(batch, time, 3\)"):
        model(gc.tensor("x", shape=(None, T, 5), dtype="float32"))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"input_size": 0}, LayerError, r"r \(RNN\): input_size must be a positive int, got 0"),
        ({"hidden_size": 2.5}, LayerError, r"r \(RNN\): hidden_size must be a positive int, got 2.5"),
        ({"dtype": "int64"}, LayerError, r"r \(RNN\): dtype must be float32 or float64, got int64"),
        ({"dtype": "half-ish"}, LayerError, r"r \(RNN\): dtype must be float32 or float64, got 'half-ish'"),
        ({"nonlinearity": "sigmoid"}, LayerError, r"r \(RNN\): nonlinearity must be 'tanh' or 'relu'"),
        ({"seed": 1.5}, gc.UsageError, r"r \(RNN\): seed must be a non-negative int or None, got 1.5"),
    ],
)
def test_bad_constructor_arguments_name_the_layer(kwargs, error, message):
    with pytest.raises(error, match=message):
        RNN(**{"input_size": 2, "hidden_size": 2, "name": "r", **kwargs})


# ----- the Numba backend ----------------------------------------------------------------------
def test_unrolled_lstm_compiles_with_numba_and_matches_numpy():
    layer = LSTM(3, 4, seed=5)  # float32, as a model would be
    xs = gc.tensor("x", shape=(None, 3, 3), dtype="float32")
    out, (h, c) = layer(xs)
    loss = gc.mean(out**2) + gc.mean(c)
    outputs = [out, h, c, *gc.grad(loss, layer.params)]
    x = np.random.default_rng(9).normal(size=(2, 3, 3)).astype(np.float32)
    want = gc.function([xs], outputs, backend="numpy")(x)
    got = gc.function([xs], outputs, backend="numba")(x)
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_docs_sequence_tagger_trains():
    import pathlib
    import re

    page = pathlib.Path(__file__).resolve().parents[1] / "docs" / "layers.md"
    (example,) = re.findall(r"```python\n(.*?)```", page.read_text().split("### Example: a sequence tagger")[1], re.S)
    namespace: dict = {}
    exec(compile(example, str(page), "exec"), namespace)
    losses = namespace["losses"]
    assert losses[-1] < 0.5 * losses[0]
