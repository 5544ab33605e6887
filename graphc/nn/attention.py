"""Attention: ``scaled_dot_product_attention`` and the ``MultiHeadAttention`` layer.

The lecture's transformer formula, on batches of row vectors::

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V,     Q = X W^Q, K = X W^K, V = X W^V

where M is 0 where a query may look at a key and -inf where it may not ("masking is used to
condition only on past": the causal mask is -inf above the diagonal). -inf rather than a large
negative number makes a masked weight exactly 0, so a masked key cannot leak into the output
however large the scores grow. A row with every key masked would be 0/0 = NaN: the causal mask
never produces one (query i always keeps key 0), and for a user's mask such a row is set to 0,
as PyTorch does.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DTypeError, ShapeError
from ..graph import Variable, constant
from ..ops import elementwise as ew
from ..ops.base import as_variable
from ..ops.linalg import matmul
from ..ops.nn import softmax
from ..ops.reduction import max as reduce_max
from ..ops.shape import reshape, transpose
from ..types import broadcast_shapes, is_float
from . import init as initializers
from .checks import check_input, describe_type, float_dtype, label, positive_int
from .module import LayerError, Module

_SDPA = "scaled_dot_product_attention"


def _swap_last(x: Variable) -> Variable:
    order = list(range(x.ndim))
    order[-2:] = order[-1], order[-2]
    return transpose(x, order)


def _causal_keep(queries: int, keys: int) -> np.ndarray:
    """True where query i may attend to key j, j <= i (top-left aligned, as torch's is_causal)."""
    return np.tril(np.ones((queries, keys), dtype=bool))


def scaled_dot_product_attention(q, k, v, causal: bool = False, mask=None, scale: float | None = None) -> Variable:
    """softmax(q k^T * scale + mask) v over the last two axes; leading axes are batch axes and
    broadcast as in ``gc.matmul``.

    Shapes: q (..., L, d), k (..., S, d), v (..., S, d_v) -> (..., L, d_v). ``scale`` defaults to
    1 / sqrt(d), which keeps the scores' variance near 1 for unit-variance q and k so the
    softmax does not saturate as d grows. ``causal=True`` lets query i see keys j <= i (L and S
    must be static). ``mask`` broadcasts against the scores (..., L, S): a bool mask is True
    where attention is allowed (as ``torch.nn.functional.scaled_dot_product_attention``), a
    float mask is added to the scores (0 to keep, -inf to drop). A query whose keys are all
    masked gets 0 (as in PyTorch), not NaN.
    """
    q, k, v = as_variable(q), as_variable(k), as_variable(v)
    for name, x in (("q", q), ("k", k), ("v", v)):
        if x.ndim < 2:
            raise ShapeError(f"{name} must have shape (..., seq, dim), got rank {x.ndim}", op=_SDPA)
        if not is_float(x.dtype):
            raise DTypeError(f"{name} must be float32 or float64, got {x.dtype}", op=_SDPA)
    if len({q.dtype, k.dtype, v.dtype}) > 1:
        raise DTypeError(f"q, k and v must have one dtype, got {q.dtype}, {k.dtype}, {v.dtype}", op=_SDPA)
    shape_q, shape_k, shape_v = (describe_type(x, dtype=False) for x in (q, k, v))
    d, d_k = q.type.shape[-1], k.type.shape[-1]
    if d is not None and d_k is not None and d != d_k:
        raise ShapeError(f"q and k must have the same last dimension, got {shape_q} and {shape_k}", op=_SDPA)
    s_k, s_v = k.type.shape[-2], v.type.shape[-2]
    if s_k is not None and s_v is not None and s_k != s_v:
        raise ShapeError(f"k and v must have the same length (axis -2), got {shape_k} and {shape_v}", op=_SDPA)
    if scale is None:
        d = d if d is not None else d_k
        if d is None:
            raise ShapeError(
                f"the feature dimension of q and k must be static to scale by 1/sqrt(d), got {shape_q}",
                op=_SDPA,
            )
        scale = 1.0 / math.sqrt(d)

    scores = matmul(q, _swap_last(k)) * float(scale)  # a Python float is weak: float32 stays float32
    if causal:
        queries, keys = q.type.shape[-2], k.type.shape[-2]
        if queries is None or keys is None:
            raise ShapeError(
                f"causal attention needs static sequence lengths to build its mask, got q {shape_q}, k {shape_k}",
                op=_SDPA,
            )
        scores = ew.where(constant(_causal_keep(queries, keys)), scores, -math.inf)
    if mask is not None:
        mask = as_variable(mask)
        try:
            if mask.ndim > scores.ndim:
                raise ValueError("the mask has more axes than the scores")
            broadcast_shapes(mask.type.shape, scores.type.shape)
        except ValueError:
            raise ShapeError(
                f"the mask's shape {describe_type(mask, dtype=False)} does not broadcast against the scores "
                f"(..., L, S) {describe_type(scores, dtype=False)}",
                op=_SDPA,
            ) from None
        if mask.dtype == "bool":
            scores = ew.where(mask, scores, -math.inf)
        elif mask.dtype == scores.dtype:
            scores = scores + mask
        else:
            raise DTypeError(f"the mask must be bool or {scores.dtype} like the scores, got {mask.dtype}", op=_SDPA)
        # A query whose keys are all masked attends to nothing and gets 0 (PyTorch's "safe
        # softmax"), not softmax's 0/0 = NaN, which would reach the loss and every gradient even
        # when that row's output is ignored afterwards. The causal mask alone never needs this.
        seen = reduce_max(scores, axis=-1, keepdims=True) > -math.inf
        weights = ew.where(seen, softmax(ew.where(seen, scores, 0.0), axis=-1), 0.0)
        return matmul(weights, v)
    return matmul(softmax(scores, axis=-1), v)


class MultiHeadAttention(Module):
    """Multi-head attention (Vaswani et al., 2017): ``num_heads`` attentions side by side, each
    on its own head_dim = embed_dim / num_heads slice of the projected queries, keys and values::

        Q = X_q W^Q + b^Q,  K = X_k W^K + b^K,  V = X_v W^V + b^V      (embed_dim, embed_dim) each
        head_i = Attention(Q_i, K_i, V_i)                              the i-th head_dim columns
        out = [head_1 ... head_h] W^O + b^O

    ``mha(x)`` is self-attention; ``mha(query, key, value, mask=None)`` cross-attention, with
    query (batch, L, embed_dim), key and value (batch, S, embed_dim). ``mask`` broadcasts
    against the scores (batch, num_heads, L, S) with the meaning of
    :func:`scaled_dot_product_attention`'s. Weights are Xavier/Glorot uniform
    (``nn.init.xavier_uniform``, each projection from its own seed derived from ``seed``), biases
    zero; ``seed=None`` takes the next seed of ``nn.init``'s counter, as every layer does.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        causal: bool = False,
        bias: bool = True,
        dtype: str = "float32",
        seed: int | None = None,
        name: str | None = None,
    ):
        super().__init__(name)
        who = label(self)
        self.embed_dim = positive_int(who, "embed_dim", embed_dim)
        self.num_heads = positive_int(who, "num_heads", num_heads)
        if self.embed_dim % self.num_heads:
            raise LayerError(f"{who}: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.head_dim = self.embed_dim // self.num_heads
        self.causal, self.bias = bool(causal), bool(bias)
        self.dtype = float_dtype(who, dtype)
        self.seed = initializers.resolve_seed(seed, who)
        self.hparams = {
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "causal": self.causal,
            "bias": self.bias,
            "dtype": self.dtype,
            "seed": self.seed,
        }
        shape = (self.embed_dim, self.embed_dim)
        for k, p in enumerate("qkvo"):
            seed_k = initializers.derive_seed(self.seed, k)
            self.add_param(f"w_{p}", initializers.initialize("xavier_uniform", shape, "dense", seed_k, self.dtype))
            if self.bias:
                self.add_param(f"b_{p}", np.zeros(self.embed_dim, dtype=self.dtype))

    def _check(self, x, what: str) -> Variable:
        e = self.embed_dim
        return check_input(
            self, x, f"(batch, seq, {e}) {self.dtype}", ndim=3, sizes={2: e}, dtype=self.dtype, what=what
        )

    def _project(self, x: Variable, p: str) -> Variable:
        y = matmul(x, getattr(self, f"w_{p}"))
        return y + getattr(self, f"b_{p}") if self.bias else y

    def _heads(self, x: Variable) -> Variable:
        """(batch, seq, embed_dim) -> (batch, heads, seq, head_dim): head i is columns i*head_dim..."""
        batch, seq = x.shape[0], x.shape[1]
        return transpose(reshape(x, (batch, seq, self.num_heads, self.head_dim)), (0, 2, 1, 3))

    def forward(self, query, key=None, value=None, mask=None):
        query = self._check(query, "the query")
        key = query if key is None else self._check(key, "the key")
        value = key if value is None else self._check(value, "the value")
        qb, kb, vb = query.type.shape[0], key.type.shape[0], value.type.shape[0]
        if len({b for b in (qb, kb, vb) if b is not None}) > 1:
            raise LayerError(f"{label(self)}: query, key and value have different batch sizes {qb}, {kb}, {vb}")
        ks, vs = key.type.shape[1], value.type.shape[1]
        if ks is not None and vs is not None and ks != vs:
            raise LayerError(f"{label(self)}: key and value have different lengths {ks} and {vs}")
        if self.causal and (query.type.shape[1] is None or ks is None):
            raise LayerError(
                f"{label(self)}: causal attention needs static sequence lengths, got query {describe_type(query)}, "
                f"key {describe_type(key)}"
            )
        q, k, v = (self._heads(self._project(x, p)) for x, p in ((query, "q"), (key, "k"), (value, "v")))
        if mask is not None:
            mask = as_variable(mask)
            try:
                if mask.ndim > 4:
                    raise ValueError("the mask has more axes than the scores")
                broadcast_shapes(mask.type.shape, q.type.shape[:3] + (k.type.shape[2],))
            except ValueError:
                raise LayerError(
                    f"{label(self)}: the mask's shape {describe_type(mask, dtype=False)} does not broadcast against "
                    f"the scores (batch, num_heads, L, S) = {describe_type(q.type.shape[:3] + (k.type.shape[2],))}"
                ) from None
        heads = scaled_dot_product_attention(q, k, v, causal=self.causal, mask=mask)
        batch, seq = query.shape[0], query.shape[1]
        joined = reshape(transpose(heads, (0, 2, 1, 3)), (batch, seq, self.embed_dim))
        return self._project(joined, "o")
