"""Initializers: seeded functions ``(shape, fan_in, fan_out, rng) -> np.ndarray``.

Layers pick one by name (``Dense(..., init="he_normal")``), by a JSON-able dict
(``{"type": "normal", "std": 0.01}``, what ``config()`` stores) or as a callable. Initial values
are computed once, in numpy, when a layer is built: they are data, not graph nodes.

Seeding: every layer takes ``seed``; ``None`` draws the next seed from this module's counter,
which :func:`manual_seed` resets (to 0 at import), so a script that builds the same model builds
the same weights on every run, and two layers built one after the other get different ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..errors import UsageError

Initializer = Callable[[tuple, int, int, np.random.Generator], np.ndarray]

_seeds = {"base": 0, "count": 0}


def manual_seed(seed: int) -> None:
    """Restart the seed counter: the layers built after this call draw the same seeds again."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise UsageError(f"manual_seed needs a non-negative int, got {seed!r}")
    _seeds["base"], _seeds["count"] = int(seed), 0


def next_seed() -> int:
    """The next seed of the counter: the k-th child of ``SeedSequence(base)``, so seeds of layers
    built one after another are unrelated streams rather than neighbouring integers."""
    sequence = np.random.SeedSequence(_seeds["base"], spawn_key=(_seeds["count"],))
    _seeds["count"] += 1
    return int(sequence.generate_state(1, np.uint32)[0])


def resolve_seed(seed, who: str) -> int:
    """``seed`` itself, or the counter's next one for ``None``; what a layer keeps and saves."""
    if seed is None:
        return next_seed()
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise UsageError(f"{who}: seed must be a non-negative int or None, got {seed!r}")
    return int(seed)


def derive_seed(seed: int, k: int) -> int:
    """An unrelated seed for the k-th draw of a layer (its k-th parameter, or dropout's k-th call)."""
    if k == 0:
        return seed
    return int(np.random.SeedSequence(seed, spawn_key=(k,)).generate_state(1, np.uint32)[0])


# ----- fans ----------------------------------------------------------------------------------


def fans(shape, layout: str = "dense") -> tuple[int, int]:
    """(fan_in, fan_out) of a weight.

    ``layout="dense"``: (in_features, out_features), as graphc's Dense stores it (``x @ W``);
    ``layout="conv"``: (out_channels, in_channels, kh, kw), where each input and output unit
    connects through a kh*kw window, so fan_in = in_channels*kh*kw and fan_out = out_channels*kh*kw.
    A vector (a bias) has fan_in = fan_out = its length.
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if layout == "dense":
        if len(shape) != 2:
            raise UsageError(f"a dense weight is (in_features, out_features), got shape {shape}")
        return shape[0], shape[1]
    if layout == "conv":
        receptive = math.prod(shape[2:])
        return shape[1] * receptive, shape[0] * receptive
    raise UsageError(f"layout must be 'dense' or 'conv', got {layout!r}")


# ----- the initializers ----------------------------------------------------------------------


def zeros(shape, fan_in, fan_out, rng) -> np.ndarray:
    return np.zeros(shape)


def ones(shape, fan_in, fan_out, rng) -> np.ndarray:
    return np.ones(shape)


def xavier_uniform(shape, fan_in, fan_out, rng) -> np.ndarray:
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)): variance 2 / (fan_in + fan_out), which keeps
    both the forward activations and the backward gradients at the same scale (Glorot & Bengio)."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, shape)


def xavier_normal(shape, fan_in, fan_out, rng) -> np.ndarray:
    """N(0, std^2) with std = sqrt(2 / (fan_in + fan_out))."""
    return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), shape)


def he_uniform(shape, fan_in, fan_out, rng) -> np.ndarray:
    """U(-a, a) with a = sqrt(6 / fan_in): variance 2 / fan_in, the ReLU gain 2 making up for the
    half of the units ReLU zeroes (He et al.; PyTorch's kaiming_uniform_ in fan_in mode)."""
    bound = math.sqrt(6.0 / fan_in)
    return rng.uniform(-bound, bound, shape)


def he_normal(shape, fan_in, fan_out, rng) -> np.ndarray:
    """N(0, std^2) with std = sqrt(2 / fan_in) (not truncated, as PyTorch's kaiming_normal_)."""
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)


def lecun_uniform(shape, fan_in, fan_out, rng) -> np.ndarray:
    """U(-a, a) with a = sqrt(3 / fan_in): variance 1 / fan_in. This is Caffe's ``"xavier"``
    weight filler (its default variance_norm FAN_IN), the one in the lecture's LeNet prototxt."""
    bound = math.sqrt(3.0 / fan_in)
    return rng.uniform(-bound, bound, shape)


def lecun_normal(shape, fan_in, fan_out, rng) -> np.ndarray:
    """N(0, std^2) with std = sqrt(1 / fan_in)."""
    return rng.normal(0.0, math.sqrt(1.0 / fan_in), shape)


def orthogonal(shape, fan_in, fan_out, rng) -> np.ndarray:
    """A random matrix with orthonormal rows or columns (whichever are fewer), uniformly
    distributed (Saxe et al., 2014; PyTorch's orthogonal_ with gain 1): Q of a Gaussian's QR, with
    the signs of R's diagonal moved into Q (without that fix Q is not uniform over the orthogonal
    group). For a square matrix every singular value is 1, so multiplying a state by it step after
    step neither blows it up nor shrinks it: the recurrent weights' initializer. A weight of more
    than two axes is treated as (shape[0], product of the rest)."""
    shape = tuple(shape)
    if len(shape) < 2:
        raise UsageError(f"the orthogonal initializer needs a matrix (2 or more axes), got shape {shape}")
    rows, cols = shape[0], math.prod(shape[1:])
    q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    q = q * np.sign(np.diag(r))
    return (q if rows >= cols else q.T).reshape(shape)


class _Parametrized:
    """An initializer with arguments that can describe itself as JSON (for ``config()``)."""

    def __init__(self, kind: str, **kwargs):
        self.kind, self.kwargs = kind, {k: float(v) for k, v in kwargs.items()}

    def __call__(self, shape, fan_in, fan_out, rng) -> np.ndarray:
        k = self.kwargs
        if self.kind == "constant":
            return np.full(shape, k["value"])
        if self.kind == "uniform":
            return rng.uniform(k["low"], k["high"], shape)
        return rng.normal(k["mean"], k["std"], shape)

    def spec(self) -> dict:
        return {"type": self.kind, **self.kwargs}

    def __repr__(self) -> str:
        return f"{self.kind}({', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"


def constant(value: float) -> _Parametrized:
    """Every entry ``value``."""
    return _Parametrized("constant", value=value)


def uniform(low: float = -0.05, high: float = 0.05) -> _Parametrized:
    """U(low, high), ignoring the fans (Keras' RandomUniform defaults)."""
    if not low < high:
        raise UsageError(f"uniform initializer needs low < high, got {low}, {high}")
    return _Parametrized("uniform", low=low, high=high)


def normal(mean: float = 0.0, std: float = 1.0) -> _Parametrized:
    """N(mean, std^2), ignoring the fans (std 1 is PyTorch's default for Embedding)."""
    if std < 0:
        raise UsageError(f"normal initializer needs std >= 0, got {std}")
    return _Parametrized("normal", mean=mean, std=std)


#: The initializers by name; the aliases are the names PyTorch and Keras users know.
INITIALIZERS: dict[str, Initializer] = {
    "zeros": zeros,
    "ones": ones,
    "xavier_uniform": xavier_uniform,
    "glorot_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "glorot_normal": xavier_normal,
    "he_uniform": he_uniform,
    "kaiming_uniform": he_uniform,
    "he_normal": he_normal,
    "kaiming_normal": he_normal,
    "lecun_uniform": lecun_uniform,
    "lecun_normal": lecun_normal,
    "orthogonal": orthogonal,
}

_FACTORIES = {"constant": constant, "uniform": uniform, "normal": normal}


def get(spec) -> Initializer:
    """The initializer for a name (``"he_normal"``; ``"uniform"``/``"normal"``/``"constant"``
    with their defaults), a dict (``{"type": "normal", "std": 0.01}``) or a callable."""
    if isinstance(spec, str):
        if spec in INITIALIZERS:
            return INITIALIZERS[spec]
        if spec in _FACTORIES and spec != "constant":
            return _FACTORIES[spec]()
        raise UsageError(f"unknown initializer {spec!r}; known: {', '.join(sorted([*INITIALIZERS, *_FACTORIES]))}")
    if isinstance(spec, dict):
        args = dict(spec)
        kind = args.pop("type", None)
        if kind == "custom":
            raise UsageError(
                f"the custom initializer {args.get('name')!r} cannot be rebuilt from a config: pass it as init= "
                "again, or build with a named initializer and load the weights with load_state_dict"
            )
        if kind in INITIALIZERS and not args:
            return INITIALIZERS[kind]
        if kind not in _FACTORIES:
            raise UsageError(f"cannot build an initializer from {spec!r}; known types: {', '.join(_FACTORIES)}")
        try:
            return _FACTORIES[kind](**args)
        except TypeError as e:
            raise UsageError(f"bad arguments for the {kind} initializer in {spec!r}: {e}") from None
    if callable(spec):
        return spec
    raise UsageError(f"an initializer is a name, a dict or a callable, got {spec!r}")


def describe(spec):
    """The JSON-able form of ``spec`` that :func:`get` turns back into the same initializer.

    A user callable has none: it is described by its name, which ``from_config`` cannot
    rebuild (load the weights with ``load_state_dict`` instead)."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict):
        fn = get(spec)
        return fn.spec() if isinstance(fn, _Parametrized) else dict(spec)
    if isinstance(spec, _Parametrized):
        return spec.spec()
    for name, fn in INITIALIZERS.items():
        if spec is fn:
            return name
    return {"type": "custom", "name": getattr(spec, "__qualname__", repr(spec))}


def initialize(spec, shape, layout: str, seed: int, dtype: str) -> np.ndarray:
    """A weight of ``shape`` drawn by ``spec`` from a generator seeded with ``seed``, as ``dtype``."""
    fan_in, fan_out = fans(shape, layout)
    value = np.asarray(get(spec)(tuple(shape), fan_in, fan_out, np.random.default_rng(seed)))
    if value.shape != tuple(shape):
        raise UsageError(f"initializer {describe(spec)!r} returned shape {value.shape}, expected {tuple(shape)}")
    return value.astype(dtype)
