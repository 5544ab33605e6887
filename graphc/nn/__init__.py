"""``graphc.nn``: layers that build graph pieces, with their parameters as shared variables.

::

    import graphc as gc
    from graphc import nn

    model = nn.Sequential(nn.Dense(64, 128), nn.ReLU(), nn.Dense(128, 10))
    x = gc.matrix("x", shape=(None, 64), dtype="float32")
    y = gc.vector("y", dtype="int64")
    loss = nn.losses.softmax_cross_entropy(model(x), y)

See docs/layers.md.
"""

import inspect

from . import init, losses
from .attention import MultiHeadAttention, scaled_dot_product_attention
from .init import manual_seed
from .layers import (
    GELU,
    AvgPool2d,
    Conv2d,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    InnerProduct,
    LeakyReLU,
    MaxPool2d,
    PReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
)
from .losses import (
    accuracy,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    l1_penalty,
    l2_penalty,
    mse,
    softmax_cross_entropy,
)
from .module import LayerError, Module, Sequential
from .normalization import BatchNorm, LayerNorm
from .recurrent import GRU, LSTM, RNN

#: The layer classes by the type name ``config()`` writes, for :func:`from_config`.
#: ``InnerProduct`` (Caffe's name) builds a Dense layer.
LAYERS: dict[str, type[Module]] = {
    "Sequential": Sequential,
    "Dense": Dense,
    "InnerProduct": Dense,
    "Conv2d": Conv2d,
    "MaxPool2d": MaxPool2d,
    "AvgPool2d": AvgPool2d,
    "Flatten": Flatten,
    "Dropout": Dropout,
    "BatchNorm": BatchNorm,
    "LayerNorm": LayerNorm,
    "Embedding": Embedding,
    "Sigmoid": Sigmoid,
    "Tanh": Tanh,
    "ReLU": ReLU,
    "PReLU": PReLU,
    "LeakyReLU": LeakyReLU,
    "GELU": GELU,
    "Softplus": Softplus,
    "Softmax": Softmax,
    "RNN": RNN,
    "LSTM": LSTM,
    "GRU": GRU,
    "MultiHeadAttention": MultiHeadAttention,
}


def from_config(config: dict) -> Module:
    """Rebuild a model from ``model.config()`` (or that dict after a JSON round trip).

    The layers get the hyperparameters and seeds the config records, so the rebuilt model starts
    with the same initial values; load trained values with ``load_state_dict``.
    """
    if not isinstance(config, dict) or "type" not in config:
        raise LayerError(f"from_config needs a dict with a 'type' entry (from model.config()), got {config!r}")
    args = dict(config)
    kind = args.pop("type")
    if kind == "CaffeNet":  # a net from a Caffe-style file: its config holds the spec, not layers
        from ..caffe import CaffeModel  # lazy: graphc.caffe builds on graphc.nn

        return CaffeModel.from_config(config)
    if kind not in LAYERS:
        raise LayerError(f"from_config: unknown layer type {kind!r}; known: {', '.join(sorted(LAYERS))}")
    if kind == "Sequential":
        layers = args.pop("layers", [])
        return Sequential(*(from_config(c) for c in layers), **args)
    cls = LAYERS[kind]
    try:
        inspect.signature(cls).bind(**args)
    except TypeError as e:
        raise LayerError(f"from_config: cannot build {kind} from {config!r}: {e}") from None
    return cls(**args)


__all__ = [
    "LAYERS",
    "AvgPool2d",
    "BatchNorm",
    "Conv2d",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GELU",
    "GRU",
    "LSTM",
    "MultiHeadAttention",
    "RNN",
    "InnerProduct",
    "LayerError",
    "LayerNorm",
    "LeakyReLU",
    "MaxPool2d",
    "Module",
    "PReLU",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "accuracy",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "from_config",
    "init",
    "l1_penalty",
    "l2_penalty",
    "losses",
    "manual_seed",
    "mse",
    "scaled_dot_product_attention",
    "softmax_cross_entropy",
]
