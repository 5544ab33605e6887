"""The op library. Each module holds a family of ops; each op's rules live in its class or row."""

from . import random
from .base import Op, as_variable
from .elementwise import (
    ALL as ELEMENTWISE,
)
from .elementwise import (
    Elementwise,
    abs,
    add,
    cast,
    clip,
    cos,
    div,
    eq,
    erf,
    exp,
    expm1,
    ge,
    gelu,
    gt,
    le,
    log,
    log1p,
    logical_and,
    logical_not,
    logical_or,
    lt,
    maximum,
    minimum,
    mul,
    neg,
    neq,
    pow,
    relu,
    sigmoid,
    sign,
    sin,
    softplus,
    sqrt,
    square,
    stop_gradient,
    sub,
    tan,
    tanh,
    where,
)
from .indexing import GetItem, OneHot, Take, getitem, one_hot, take
from .linalg import MatMul, dot, matmul
from .nn import (
    Conv2d,
    Pool2d,
    Softmax,
    SoftmaxCrossEntropy,
    avg_pool2d,
    conv2d,
    log_softmax,
    max_pool2d,
    softmax,
    softmax_cross_entropy,
)
from .random import Random
from .reduction import Argmax, Reduce, argmax, logsumexp, max, mean, min, prod, sum
from .shape import (
    BroadcastTo,
    Concatenate,
    DimShuffle,
    Reshape,
    ShapeDim,
    Stack,
    broadcast_to,
    concatenate,
    expand_dims,
    full,
    ones,
    ones_like,
    reshape,
    shape_dim,
    squeeze,
    stack,
    transpose,
    zeros,
    zeros_like,
)

# The public names: functions and op classes, not the family modules (``gc.shape`` is no module);
# ``random`` is the one namespace users reach through (``gc.random.normal``).
__all__ = [n for n, v in dict(globals()).items() if not n.startswith("_") and not isinstance(v, type(random))]
__all__.append("random")
