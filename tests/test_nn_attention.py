"""graphc.nn.attention: scaled dot-product attention and MultiHeadAttention, against plain numpy,
PyTorch and finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import nn
from graphc.nn import init
from graphc.nn.attention import MultiHeadAttention, scaled_dot_product_attention
from graphc.nn.module import LayerError


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def attention_numpy(q, k, v, keep=None, add=None):
    """softmax(q k^T / sqrt(d) + M) v, one batch entry and one query at a time."""
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    q, k, v = (np.broadcast_to(a, lead + a.shape[-2:]).reshape((-1,) + a.shape[-2:]) for a in (q, k, v))
    out = np.zeros(q.shape[:-1] + (v.shape[-1],))
    for b in range(q.shape[0]):
        for i in range(q.shape[1]):
            s = np.array([q[b, i] @ k[b, j] for j in range(k.shape[1])]) / np.sqrt(q.shape[-1])
            if add is not None:
                s = s + add[i]
            if keep is not None:
                s = np.where(keep[i], s, -np.inf)
            if np.all(np.isneginf(s)):
                continue  # attends to nothing: 0
            out[b, i] = _softmax(s) @ v[b]
    return out.reshape(lead + out.shape[-2:])


def _qkv(shape_q, shape_k, dv, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=shape_q).astype(dtype),
        rng.normal(size=shape_k).astype(dtype),
        rng.normal(size=shape_k[:-1] + (dv,)).astype(dtype),
    )


# ----- scaled dot-product attention -------------------------------------------------------------
@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_matches_numpy_with_batch_axes_and_unequal_lengths(causal):
    qv, kv, vv = _qkv((2, 3, 4, 5), (2, 3, 6, 5), 3)
    q, k, v = (
        gc.tensor("q", shape=(None, 3, 4, 5)),
        gc.tensor("k", shape=(None, 3, 6, 5)),
        gc.tensor("v", shape=(None, 3, 6, 3)),
    )
    out = scaled_dot_product_attention(q, k, v, causal=causal)
    assert out.type.shape == (None, 3, 4, 3)
    keep = np.tril(np.ones((4, 6), bool)) if causal else None
    np.testing.assert_allclose(gc.function([q, k, v], out)(qv, kv, vv), attention_numpy(qv, kv, vv, keep), rtol=1e-12)


def test_sdpa_broadcasts_batch_axes_like_matmul():
    qv, kv, vv = _qkv((2, 4, 5), (1, 4, 5), 5)
    q, k, v = gc.tensor("q", shape=(2, 4, 5)), gc.tensor("k", shape=(1, 4, 5)), gc.tensor("v", shape=(1, 4, 5))
    got = gc.function([q, k, v], scaled_dot_product_attention(q, k, v))(qv, kv, vv)
    np.testing.assert_allclose(got, attention_numpy(qv, kv, vv), rtol=1e-12)


@pytest.mark.parametrize("case", ["plain", "causal", "causal-long-query", "bool-mask", "float-mask", "scale"])
def test_sdpa_matches_torch(case):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as tf

    lq = 6 if case == "causal-long-query" else 4
    qv, kv, vv = _qkv((2, 3, lq, 5), (2, 3, 4, 5), 3, seed=1)
    q, k, v = gc.tensor("q", shape=qv.shape), gc.tensor("k", shape=kv.shape), gc.tensor("v", shape=vv.shape)
    rng = np.random.default_rng(3)
    keep = rng.random((lq, 4)) < 0.6
    keep[1] = False  # one query sees no key: PyTorch gives 0 there, and so does graphc
    additive = np.where(keep, rng.normal(size=(lq, 4)), -np.inf)
    kwargs, torch_kwargs, feed = {}, {}, []
    if case.startswith("causal"):
        kwargs, torch_kwargs = {"causal": True}, {"is_causal": True}
    elif case == "bool-mask":
        m = gc.tensor("m", shape=keep.shape, dtype="bool")
        kwargs, torch_kwargs, feed = {"mask": m}, {"attn_mask": torch.from_numpy(keep)}, [(m, keep)]
    elif case == "float-mask":
        m = gc.tensor("m", shape=additive.shape)
        kwargs, torch_kwargs, feed = {"mask": m}, {"attn_mask": torch.from_numpy(additive)}, [(m, additive)]
    elif case == "scale":
        kwargs, torch_kwargs = {"scale": 0.3}, {"scale": 0.3}
    out = scaled_dot_product_attention(q, k, v, **kwargs)
    got = gc.function([q, k, v] + [m for m, _ in feed], out)(qv, kv, vv, *[val for _, val in feed])
    want = tf.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (qv, kv, vv)), **torch_kwargs).numpy()
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_a_query_with_every_key_masked_gets_zero_and_finite_gradients():
    qv, kv, vv = _qkv((3, 2), (4, 2), 2, seed=2)
    keep = np.array([[True, False, True, False], [False] * 4, [True] * 4])
    q, k, v = gc.matrix("q", shape=(3, 2)), gc.matrix("k", shape=(4, 2)), gc.matrix("v", shape=(4, 2))
    out = scaled_dot_product_attention(q, k, v, mask=gc.constant(keep))
    grads = gc.grad(gc.sum(out**2), [q, k, v])
    got, *g = gc.function([q, k, v], [out, *grads])(qv, kv, vv)
    np.testing.assert_array_equal(got[1], 0.0)
    np.testing.assert_allclose(got, attention_numpy(qv, kv, vv, keep), rtol=1e-12)
    assert all(np.isfinite(a).all() for a in g)
    np.testing.assert_array_equal(g[0][1], 0.0)


def test_causal_output_at_t_does_not_depend_on_later_positions():
    rng = np.random.default_rng(4)
    x = gc.tensor("x", shape=(2, 5, 4))
    f = gc.function([x], scaled_dot_product_attention(x, x * 2.0, gc.tanh(x), causal=True))
    base = rng.normal(size=(2, 5, 4))
    out = f(base)
    for t in range(5):
        changed = base.copy()
        changed[:, t + 1 :] = rng.normal(size=changed[:, t + 1 :].shape) * 10
        new = f(changed)
        np.testing.assert_array_equal(new[:, : t + 1], out[:, : t + 1])
        if t < 4:
            assert not np.allclose(new[:, t + 1 :], out[:, t + 1 :])  # later outputs do see the change


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_gradients_match_finite_differences(causal):
    qv, kv, vv = _qkv((2, 3, 4), (2, 3, 4), 2, seed=5)
    q, k, v = gc.tensor("q", shape=qv.shape), gc.tensor("k", shape=kv.shape), gc.tensor("v", shape=vv.shape)
    weights = gc.constant(np.random.default_rng(6).normal(size=(2, 3, 2)))
    cost = gc.sum(scaled_dot_product_attention(q, k, v, causal=causal) * weights)
    report = gc.check_grad(cost, [q, k, v], at={q: qv, k: kv, v: vv})
    assert report.worst < 1e-8


def test_sdpa_keeps_float32():
    q = gc.tensor("q", shape=(2, 3, 4), dtype="float32")
    out = scaled_dot_product_attention(q, q, q, causal=True)
    assert out.dtype == "float32"
    qv = _qkv((2, 3, 4), (2, 3, 4), 4, dtype="float32")[0]
    got = gc.function([q], out)(qv)
    assert got.dtype == np.float32
    np.testing.assert_allclose(
        got, attention_numpy(*(qv.astype(np.float64),) * 3, np.tril(np.ones((3, 3), bool))), rtol=1e-5
    )


@pytest.mark.parametrize(
    "shapes, kwargs, error, message",
    [
        (
            ((4,), (3, 4), (3, 4)),
            {},
            gc.ShapeError,
            r"scaled_dot_product_attention: q must have shape \(\.\.\., seq, dim\)",
        ),
        (((3, 4), (3, 5), (3, 4)), {}, gc.ShapeError, r"q and k must have the same last dimension"),
        (((3, 4), (3, 4), (2, 4)), {}, gc.ShapeError, r"k and v must have the same length"),
        (
            ((None, 4), (3, 4), (3, 4)),
            {"causal": True},
            gc.ShapeError,
            r"causal attention needs static sequence lengths",
        ),
        (((3, None), (3, None), (3, 4)), {}, gc.ShapeError, r"must be static to scale by 1/sqrt\(d\)"),
        (
            ((3, 4), (3, 4), (3, 4)),
            {"mask": "wrong-shape"},
            gc.ShapeError,
            r"the mask's shape \(2, 3\) does not broadcast",
        ),
        (((3, 4), (3, 4), (3, 4)), {"mask": "int"}, gc.DTypeError, r"the mask must be bool or float64"),
    ],
)
def test_sdpa_errors(shapes, kwargs, error, message):
    q, k, v = (gc.tensor(n, shape=s) for n, s in zip("qkv", shapes))
    if kwargs.get("mask") == "wrong-shape":
        kwargs = {"mask": gc.tensor("m", shape=(2, 3), dtype="bool")}
    elif kwargs.get("mask") == "int":
        kwargs = {"mask": gc.tensor("m", shape=(3, 3), dtype="int64")}
    with pytest.raises(error, match=message):
        scaled_dot_product_attention(q, k, v, **kwargs)


def test_sdpa_rejects_mixed_and_integer_dtypes():
    a, b = gc.matrix("a", shape=(3, 4)), gc.matrix("b", shape=(3, 4), dtype="float32")
    with pytest.raises(gc.DTypeError, match=r"q, k and v must have one dtype, got float64, float32, float64"):
        scaled_dot_product_attention(a, b, a)
    with pytest.raises(gc.DTypeError, match=r"v must be float32 or float64, got int64"):
        scaled_dot_product_attention(a, a, gc.matrix("i", shape=(3, 4), dtype="int64"))


# ----- MultiHeadAttention ---------------------------------------------------------------------
E, NH, L = 6, 2, 4


def _mha(causal=False, dtype="float64", **kw):
    layer = MultiHeadAttention(E, NH, causal=causal, dtype=dtype, seed=1, **kw)
    rng = np.random.default_rng(8)
    for p in layer.params:  # nonzero biases too
        p.set_value(rng.normal(0, 0.5, p.get_value().shape).astype(dtype))
    return layer


def mha_numpy(layer, xq, xk, xv, keep=None):
    w = {n: p.get_value() for n, p in layer.named_params()}
    q, k, v = xq @ w["w_q"] + w["b_q"], xk @ w["w_k"] + w["b_k"], xv @ w["w_v"] + w["b_v"]
    dh = E // NH
    heads = [
        attention_numpy(
            q[..., i * dh : (i + 1) * dh], k[..., i * dh : (i + 1) * dh], v[..., i * dh : (i + 1) * dh], keep
        )
        for i in range(NH)
    ]
    return np.concatenate(heads, axis=-1) @ w["w_o"] + w["b_o"]


@pytest.mark.parametrize("causal", [False, True])
def test_mha_self_attention_matches_numpy(causal):
    layer = _mha(causal)
    x = gc.tensor("x", shape=(None, L, E))
    xv = np.random.default_rng(0).normal(size=(3, L, E))
    got = gc.function([x], layer(x))(xv)
    keep = np.tril(np.ones((L, L), bool)) if causal else None
    np.testing.assert_allclose(got, mha_numpy(layer, xv, xv, xv, keep), rtol=1e-12, atol=1e-12)


def test_mha_cross_attention_with_unknown_lengths_and_a_padding_mask():
    layer = _mha()
    xq, xk, xv = (gc.tensor(n, shape=(None, None, E)) for n in ("q", "k", "v"))
    m = gc.tensor("m", shape=(None, 1, 1, None), dtype="bool")  # key padding: (batch, 1, 1, S)
    rng = np.random.default_rng(1)
    vq, vk, vv = rng.normal(size=(2, 3, E)), rng.normal(size=(2, 5, E)), rng.normal(size=(2, 5, E))
    pad = np.ones((2, 1, 1, 5), bool)
    pad[1, ..., 3:] = False
    got = gc.function([xq, xk, xv, m], layer(xq, xk, xv, mask=m))(vq, vk, vv, pad)
    want = np.stack([mha_numpy(layer, vq[b], vk[b], vv[b], np.broadcast_to(pad[b, 0], (3, 5))) for b in range(2)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_mha_matches_torch_with_copied_weights(causal):
    torch = pytest.importorskip("torch")
    layer = _mha(causal)
    ref = torch.nn.MultiheadAttention(E, NH, batch_first=True).double()
    w = {n: torch.from_numpy(p.get_value()) for n, p in layer.named_params()}
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([w["w_q"].T, w["w_k"].T, w["w_v"].T]))
        ref.in_proj_bias.copy_(torch.cat([w["b_q"], w["b_k"], w["b_v"]]))
        ref.out_proj.weight.copy_(w["w_o"].T)
        ref.out_proj.bias.copy_(w["b_o"])
    x = gc.tensor("x", shape=(None, L, E))
    xv = np.random.default_rng(2).normal(size=(3, L, E))
    got = gc.function([x], layer(x))(xv)
    # torch's MultiheadAttention takes a bool mask as True = *not* allowed; an additive one avoids the confusion
    mask = torch.triu(torch.full((L, L), float("-inf"), dtype=torch.float64), 1) if causal else None
    with torch.no_grad():
        want = ref(*(torch.from_numpy(xv),) * 3, attn_mask=mask, need_weights=False)[0].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_mha_causal_output_at_t_does_not_depend_on_later_positions():
    layer = _mha(causal=True)
    x = gc.tensor("x", shape=(2, L, E))
    f = gc.function([x], layer(x))
    rng = np.random.default_rng(3)
    base = rng.normal(size=(2, L, E))
    out = f(base)
    for t in range(L - 1):
        changed = base.copy()
        changed[:, t + 1 :] += rng.normal(size=changed[:, t + 1 :].shape)
        np.testing.assert_array_equal(f(changed)[:, : t + 1], out[:, : t + 1])


def test_mha_gradients_of_every_parameter_match_finite_differences():
    layer = _mha(causal=True)
    x = gc.tensor("x", shape=(2, 3, E))
    xv = np.random.default_rng(4).normal(size=(2, 3, E))
    weights = gc.constant(np.random.default_rng(5).normal(size=(2, 3, E)))
    loss = gc.sum(layer(x) * weights)
    f = gc.function([x], loss)
    params = layer.params
    analytic = gc.function([x], gc.grad(loss, params + [x]))(xv)
    start = [p.get_value() for p in params]

    def loss_of(*vals):
        for p, val in zip(params, vals[:-1]):
            p.set_value(val)
        return f(vals[-1])

    numeric = gc.numeric_grad(loss_of, start + [xv])
    for p, s in zip(params, start):
        p.set_value(s)
    assert [p.name for p in params] == [f"MultiHeadAttention.{w}_{p}" for p in "qkvo" for w in "wb"]
    for name, a, n in zip([p.name for p in params] + ["x"], analytic, numeric):
        if name.endswith("b_k"):  # q . b_k is the same for every key, and softmax ignores a shift
            np.testing.assert_allclose(a, 0.0, atol=1e-12)
        else:
            assert np.abs(n).max() > 1e-3, name
        np.testing.assert_allclose(a, n, rtol=1e-6, atol=1e-7, err_msg=name)


def test_mha_initialization_config_and_float32():
    layer = MultiHeadAttention(8, 4, causal=True, bias=False, seed=3)
    assert [n for n, _ in layer.named_params()] == ["w_q", "w_k", "w_v", "w_o"]
    a = np.sqrt(6 / 16)
    values = [p.get_value() for p in layer.params]
    assert all(v.dtype == np.float32 and v.shape == (8, 8) and np.abs(v).max() <= a for v in values)
    assert not np.array_equal(values[0], values[1])  # each projection draws its own values
    rng = np.random.default_rng(init.derive_seed(3, 1))  # w_k: nn.init's xavier_uniform, the seed's child 1
    np.testing.assert_array_equal(values[1], init.xavier_uniform((8, 8), 8, 8, rng).astype("float32"))
    assert layer.config() == {
        "type": "MultiHeadAttention",
        "name": "MultiHeadAttention",
        "embed_dim": 8,
        "num_heads": 4,
        "causal": True,
        "bias": False,
        "dtype": "float32",
        "seed": 3,
    }
    x = gc.tensor("x", shape=(None, 5, 8), dtype="float32")
    out = layer(x)
    assert out.dtype == "float32" and out.type.shape == (None, 5, 8)


def test_mha_seed_none_takes_the_counters_next_seed():
    saved = dict(init._seeds)
    try:
        nn.manual_seed(4)
        first, second = MultiHeadAttention(8, 2), MultiHeadAttention(8, 2)
        nn.manual_seed(4)
        again = MultiHeadAttention(8, 2)
    finally:
        init._seeds.update(saved)
    assert first.seed != second.seed and not np.allclose(first.w_q.get_value(), second.w_q.get_value())
    assert again.config() == first.config()
    for p, q in zip(first.params, again.params):
        np.testing.assert_array_equal(p.get_value(), q.get_value())


ATT = r"att \(MultiHeadAttention\)"


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda m: m(gc.tensor("x", shape=(2, L))),
            rf"{ATT}: expects the query \(batch, seq, 6\) float64, got float64 \(2, 4\): rank 2, not 3",
        ),
        (lambda m: m(gc.tensor("x", shape=(2, L, 5))), rf"{ATT}: expects the query .*axis 2 has size 5, not 6"),
        (
            lambda m: m(gc.tensor("x", shape=(2, L, E), dtype="float32")),
            rf"{ATT}: expects the query .* got float32 \(2, 4, 6\): dtype float32, the layer computes in float64",
        ),
        (
            lambda m: m(gc.tensor("x", shape=(2, L, E)), gc.tensor("k", shape=(2, L, E), dtype="float32")),
            rf"{ATT}: expects the key \(batch, seq, 6\) float64, got float32",
        ),
        (
            lambda m: m(gc.tensor("x", shape=(2, L, E)), gc.tensor("k", shape=(3, L, E))),
            rf"{ATT}: query, key and value have different batch sizes 2, 3, 3",
        ),
        (
            lambda m: m(
                gc.tensor("x", shape=(2, L, E)), gc.tensor("k", shape=(2, 3, E)), gc.tensor("v", shape=(2, 5, E))
            ),
            rf"{ATT}: key and value have different lengths 3 and 5",
        ),
        (
            lambda m: m(gc.tensor("x", shape=(2, L, E)), mask=gc.tensor("m", shape=(3, L), dtype="bool")),
            rf"{ATT}: the mask's shape \(3, 4\) does not broadcast against the scores "
            r"\(batch, num_heads, L, S\) = \(2, 2, 4, 4\)",
        ),
    ],
)
def test_mha_call_errors_name_the_layer(call, message):
    with pytest.raises(LayerError, match=message):
        call(MultiHeadAttention(E, NH, dtype="float64", name="att"))


def test_mha_causal_needs_static_lengths_and_constructor_errors():
    with pytest.raises(LayerError, match=rf"{ATT}: causal attention needs static sequence lengths, got query float64 "):
        MultiHeadAttention(E, NH, causal=True, dtype="float64", name="att")(gc.tensor("x", shape=(2, None, E)))
    with pytest.raises(LayerError, match=rf"{ATT}: embed_dim 6 is not divisible by num_heads 4"):
        MultiHeadAttention(6, 4, name="att")
    with pytest.raises(LayerError, match=rf"{ATT}: num_heads must be a positive int, got 0"):
        MultiHeadAttention(6, 0, name="att")
    with pytest.raises(LayerError, match=rf"{ATT}: dtype must be float32 or float64, got int64"):
        MultiHeadAttention(6, 2, dtype="int64", name="att")
    with pytest.raises(gc.UsageError, match=rf"{ATT}: seed must be a non-negative int or None, got -1"):
        MultiHeadAttention(6, 2, seed=-1, name="att")


def test_causal_mha_compiles_with_numba_and_matches_numpy():
    layer = MultiHeadAttention(4, 2, causal=True, seed=2)
    x = gc.tensor("x", shape=(None, 3, 4), dtype="float32")
    out = layer(x)
    outputs = [out, *gc.grad(gc.mean(out**2), layer.params)]
    xv = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
    want = gc.function([x], outputs, backend="numpy")(xv)
    got = gc.function([x], outputs, backend="numba")(xv)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
