"""Elementwise ops: one table row per op, and the row is the user-facing function.

``exp = Elementwise("exp", 1, np.exp, out="float")`` defines the op, its dtype rule, its numpy
reference and how it prints; ``gc.exp(x)`` calls the row. Broadcasting and dtype promotion are
shared by all rows. The derivative rules, SymPy translation and scalar kernel code of each op
belong in its row too: ``d`` (local partials), ``sympy`` and ``kernel`` (scalar code).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import DTypeError, ShapeError
from ..graph import Variable, apply1
from ..types import DTYPES, TensorType, broadcast_shapes, float_result, is_float, promote
from .base import Op, operands

_KIND_OF = {"bool": "bool", "int64": "int", "float32": "float", "float64": "float"}


@dataclass(frozen=True, eq=False)
class Elementwise(Op):
    """A scalar function applied elementwise with NumPy broadcasting.

    ``out`` is the dtype rule: ``"promote"`` (NumPy promotion of the inputs), ``"float"``
    (promotion, then ints and bools compute in float64), ``"bool"`` (a predicate), or a dtype
    name (a cast). ``accepts`` lists the dtype kinds the inputs may have, per input if a tuple.
    Rows compare by identity: each is a module-level singleton.
    """

    name: str = field()  # field(): do not inherit Op's class-level defaults
    nin: int = field()
    impl: Callable = field()
    out: str = "promote"
    accepts: str | tuple[str, ...] = "bool int float"
    symbol: str | None = None
    precedence: int = 11
    doc: str = ""
    d: tuple[Callable | None, ...] | None = None  # local partials, one per input: f(*inputs, out)
    sympy: Callable | None = None  # the same function on SymPy expressions (None: no SymPy form)
    # The scalar code compiled backends emit: a template over argument names {0}, {1}, ... and
    # {T}, the constructor of the output dtype (write literals as {T}(0.5): a bare float literal
    # would turn a float32 loop into a float64 one). Arguments are always plain names.
    kernel: str | None = None
    broadcasts = True  # inputs broadcast against each other (see types.unknown_broadcast_checks)

    def __call__(self, *args) -> Variable:
        if len(args) != self.nin:
            from ..errors import ArityError

            raise ArityError(f"takes {self.nin} arguments, got {len(args)}", op=self.name)
        return apply1(self, *operands(*args))

    def __repr__(self) -> str:
        return f"<elementwise op {self.name}>"

    def out_dtype(self, dtypes: list[str]) -> str:
        if self.out == "promote":
            return promote(*dtypes)
        if self.out == "float":
            return float_result(*dtypes)
        if self.out == "bool":
            return "bool"
        if self.out == "where":  # the condition does not take part in promotion
            return promote(*dtypes[1:])
        return self.out

    def infer(self, *types: TensorType) -> list[TensorType]:
        accepts = self.accepts if isinstance(self.accepts, tuple) else (self.accepts,) * self.nin
        for position, (t, allowed) in enumerate(zip(types, accepts)):
            if _KIND_OF[t.dtype] not in allowed.split():
                which = f"input {position + 1}" if self.nin > 1 else "its input"
                raise DTypeError(f"{which} must be {' or '.join(allowed.split())}, got {t.dtype}")
        try:
            shape = broadcast_shapes(*(t.shape for t in types))
        except ValueError:
            raise ShapeError(f"shapes {' and '.join(str(t.shape) for t in types)} do not broadcast") from None
        return [TensorType(self.out_dtype([t.dtype for t in types]), shape)]

    def perform(self, *arrays: np.ndarray) -> tuple[np.ndarray]:
        dtype = self.out_dtype([a.dtype.name for a in arrays])
        if self.out == "float":
            arrays = tuple(a.astype(dtype, copy=False) for a in arrays)
        result = np.asarray(self.impl(*arrays))
        if result.dtype.name != dtype:
            result = result.astype(dtype)
        return (result,)

    # ----- derivatives: both modes come from the row's local partials ------------------------
    def partials(self, inputs, out) -> list:
        """The local partial derivatives d out / d input_i as graphs (None: zero, +-1: itself).

        They are what forward and reverse mode multiply by, and what a trace writes on an edge.
        """
        if self.d is None or not is_float(out.dtype):
            return [None] * self.nin
        return [None if f is None or not is_float(x.dtype) else f(*inputs, out) for f, x in zip(self.d, inputs)]

    def vjp(self, inputs, outputs, cotangents) -> list:
        from .calculus import sum_to, times

        (g,), (out,) = cotangents, outputs
        grads = [times(g, p) for p in self.partials(inputs, out)]
        return [None if gi is None else sum_to(gi, x) for gi, x in zip(grads, inputs)]

    def jvp(self, inputs, outputs, tangents) -> list:
        from .calculus import fit_tangent, times

        (out,) = outputs
        terms = [times(t, p) for t, p in zip(tangents, self.partials(inputs, out))]
        terms = [t for t in terms if t is not None]
        if not terms:
            return [None]
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return [fit_tangent(total, out)]


@functools.cache
def _special():
    """scipy.special, imported on first use: it is 0.15 s of ``import graphc`` otherwise, and
    only the reference code of erf, gelu and sigmoid needs it."""
    from scipy import special

    return special


def _erf(x):
    return _special().erf(x)


def _expit(x):
    return _special().expit(x)


def _gelu(x):
    return 0.5 * x * (1 + _erf(x * np.asarray(1 / np.sqrt(2), x.dtype)))


def _softplus(x):
    return np.logaddexp(np.zeros((), x.dtype), x)


def _relu(x):
    return np.maximum(x, np.zeros((), x.dtype))


def _clip(x, lo, hi):
    return np.minimum(np.maximum(x, lo), hi)


_NUM = "int float"
_ANY = "bool int float"


@functools.cache
def _sp():
    """SymPy, imported on first use: it takes a while to import and most programs never need it."""
    import sympy

    return sympy


def _indicator(condition, like):
    return cast(condition, like.dtype)


_SQRT_2_OVER_PI = 2 / np.sqrt(np.pi)
_INV_SQRT_2 = 1 / np.sqrt(2)
_INV_SQRT_2PI = 1 / np.sqrt(2 * np.pi)

# Each row's ``d`` holds one function per input giving d out / d input from (*inputs, out).
# Conventions at kinks are PyTorch's and JAX's: relu'(0) = 0, abs'(0) = 0, ties of maximum and
# minimum split the derivative evenly, sqrt'(0) = inf, clip passes the gradient at its bounds.

# NumPy's maximum and minimum propagate a NaN from either side.
_MAX_CODE = "({0} if ({0} >= {1} or {0} != {0}) else {1})"
_MIN_CODE = "({0} if ({0} <= {1} or {0} != {0}) else {1})"

# ----- arithmetic ------------------------------------------------------------------------------
add = Elementwise(
    "add",
    2,
    np.add,
    accepts=_ANY,
    symbol="+",
    precedence=7,
    doc="x + y",
    d=(lambda x, y, o: 1, lambda x, y, o: 1),
    sympy=lambda a, b: a + b,
    kernel="{0} + {1}",
)
sub = Elementwise(
    "sub",
    2,
    np.subtract,
    accepts=_NUM,
    symbol="-",
    precedence=7,
    doc="x - y",
    d=(lambda x, y, o: 1, lambda x, y, o: -1),
    sympy=lambda a, b: a - b,
    kernel="{0} - {1}",
)
mul = Elementwise(
    "mul",
    2,
    np.multiply,
    accepts=_ANY,
    symbol="*",
    precedence=8,
    doc="x * y",
    d=(lambda x, y, o: y, lambda x, y, o: x),
    sympy=lambda a, b: a * b,
    kernel="{0} * {1}",
)
div = Elementwise(
    "div",
    2,
    np.true_divide,
    out="float",
    accepts=_NUM,
    symbol="/",
    precedence=8,
    doc="x / y",
    d=(lambda x, y, o: 1 / y, lambda x, y, o: -o / y),
    sympy=lambda a, b: a / b,
    kernel="{0} / {1}",
)
pow = Elementwise(
    "pow",
    2,
    np.power,
    accepts=_NUM,
    symbol="**",
    precedence=10,
    doc="x ** y",
    d=(lambda x, y, o: y * x ** (y - 1), lambda x, y, o: where(eq(x, 0), 0, o * log(x))),
    sympy=lambda a, b: a**b,
    kernel="{0} ** {1}",
)
neg = Elementwise(
    "neg",
    1,
    np.negative,
    accepts=_NUM,
    symbol="-",
    precedence=9,
    doc="-x",
    d=(lambda x, o: -1,),
    sympy=lambda a: -a,
    kernel="-{0}",
)
maximum = Elementwise(
    "maximum",
    2,
    np.maximum,
    doc="elementwise larger of x and y (NaN propagates)",
    d=(lambda x, y, o: 0.5 * (1 + sign(x - y)), lambda x, y, o: 0.5 * (1 - sign(x - y))),
    sympy=lambda a, b: _sp().Max(a, b),
    kernel=_MAX_CODE,
)
minimum = Elementwise(
    "minimum",
    2,
    np.minimum,
    doc="elementwise smaller of x and y (NaN propagates)",
    d=(lambda x, y, o: 0.5 * (1 - sign(x - y)), lambda x, y, o: 0.5 * (1 + sign(x - y))),
    sympy=lambda a, b: _sp().Min(a, b),
    kernel=_MIN_CODE,
)
abs = Elementwise(
    "abs",
    1,
    np.abs,
    accepts=_NUM,
    doc="|x|",
    d=(lambda x, o: sign(x),),
    sympy=lambda a: _sp().Abs(a),
    kernel="abs({0})",
)
sign = Elementwise(
    "sign",
    1,
    np.sign,
    accepts=_NUM,
    doc="-1, 0 or 1",
    sympy=lambda a: _sp().sign(a),
    kernel="({T}(1) if {0} > 0 else ({T}(-1) if {0} < 0 else {0}))",
)
square = Elementwise(
    "square", 1, np.square, accepts=_NUM, doc="x * x", d=(lambda x, o: 2 * x,), sympy=lambda a: a**2, kernel="{0} * {0}"
)
clip = Elementwise(
    "clip",
    3,
    _clip,
    accepts=_NUM,
    doc="x limited to [lo, hi]",
    d=(
        lambda x, lo, hi, o: _indicator((x >= lo) & (x <= hi), o),
        lambda x, lo, hi, o: _indicator((x < lo) & (lo <= hi), o),
        lambda x, lo, hi, o: _indicator(maximum(x, lo) > hi, o),
    ),
    sympy=lambda x, lo, hi: _sp().Min(_sp().Max(x, lo), hi),
    kernel=_MIN_CODE.format(_MAX_CODE, "{2}"),
)
where = Elementwise(
    "where",
    3,
    np.where,
    out="where",
    accepts=("bool", _ANY, _ANY),
    doc="a where cond else b",
    d=(None, lambda c, a, b, o: _indicator(c, o), lambda c, a, b, o: _indicator(~c, o)),
    sympy=lambda c, a, b: _sp().Piecewise((a, c), (b, True)),
    kernel="({1} if {0} else {2})",
)

# ----- floating-point functions ----------------------------------------------------------------
exp = Elementwise(
    "exp",
    1,
    np.exp,
    out="float",
    doc="e ** x",
    d=(lambda x, o: o,),
    sympy=lambda x: _sp().exp(x),
    kernel="math.exp({0})",
)
log = Elementwise(
    "log",
    1,
    np.log,
    out="float",
    doc="natural logarithm",
    d=(lambda x, o: 1 / x,),
    sympy=lambda x: _sp().log(x),
    kernel="math.log({0})",
)
log1p = Elementwise(
    "log1p",
    1,
    np.log1p,
    out="float",
    doc="log(1 + x), accurate for small x",
    d=(lambda x, o: 1 / (1 + x),),
    sympy=lambda x: _sp().log(1 + x),
    kernel="math.log1p({0})",
)
expm1 = Elementwise(
    "expm1",
    1,
    np.expm1,
    out="float",
    doc="exp(x) - 1, accurate for small x",
    d=(lambda x, o: o + 1,),
    sympy=lambda x: _sp().exp(x) - 1,
    kernel="math.expm1({0})",
)
sin = Elementwise(
    "sin",
    1,
    np.sin,
    out="float",
    doc="sine",
    d=(lambda x, o: cos(x),),
    sympy=lambda x: _sp().sin(x),
    kernel="math.sin({0})",
)
cos = Elementwise(
    "cos",
    1,
    np.cos,
    out="float",
    doc="cosine",
    d=(lambda x, o: -sin(x),),
    sympy=lambda x: _sp().cos(x),
    kernel="math.cos({0})",
)
tan = Elementwise(
    "tan",
    1,
    np.tan,
    out="float",
    doc="tangent",
    d=(lambda x, o: 1 + o * o,),
    sympy=lambda x: _sp().tan(x),
    kernel="math.tan({0})",
)
tanh = Elementwise(
    "tanh",
    1,
    np.tanh,
    out="float",
    doc="hyperbolic tangent",
    d=(lambda x, o: 1 - o * o,),
    sympy=lambda x: _sp().tanh(x),
    kernel="math.tanh({0})",
)
sqrt = Elementwise(
    "sqrt",
    1,
    np.sqrt,
    out="float",
    doc="square root",
    d=(lambda x, o: 0.5 / o,),
    sympy=lambda x: _sp().sqrt(x),
    kernel="math.sqrt({0})",
)
erf = Elementwise(
    "erf",
    1,
    _erf,
    out="float",
    doc="the error function",
    d=(lambda x, o: _SQRT_2_OVER_PI * exp(-x * x),),
    sympy=lambda x: _sp().erf(x),
    kernel="math.erf({0})",
)

# ----- activations -----------------------------------------------------------------------------
sigmoid = Elementwise(
    "sigmoid",
    1,
    _expit,
    out="float",
    doc="1 / (1 + exp(-x)), computed stably",
    d=(lambda x, o: o * (1 - o),),
    sympy=lambda x: 1 / (1 + _sp().exp(-x)),
    kernel="{T}(1) / ({T}(1) + math.exp(-{0}))",
)
relu = Elementwise(
    "relu",
    1,
    _relu,
    accepts=_NUM,
    doc="max(x, 0)",
    # From the output (o > 0 exactly where x > 0, NaN included), as PyTorch's threshold_backward
    # does: a network's backward pass then reads the activations it keeps anyway, and the
    # forward pass writes no separate mask.
    d=(lambda x, o: _indicator(o > 0, o),),
    sympy=lambda x: _sp().Max(x, 0),
    kernel="({0} if ({0} > 0 or {0} != {0}) else {T}(0))",
)
softplus = Elementwise(
    "softplus",
    1,
    _softplus,
    out="float",
    doc="log(1 + exp(x)), computed stably",
    d=(lambda x, o: sigmoid(x),),
    sympy=lambda x: _sp().log(1 + _sp().exp(x)),
    kernel="(({0} if {0} > 0 else {T}(0)) + math.log1p(math.exp(-abs({0}))))",
)
gelu = Elementwise(
    "gelu",
    1,
    _gelu,
    out="float",
    doc="x * Phi(x), the exact (erf) form",
    d=(lambda x, o: 0.5 * (1 + erf(x * _INV_SQRT_2)) + x * exp(-0.5 * x * x) * _INV_SQRT_2PI,),
    sympy=lambda x: x * (1 + _sp().erf(x / _sp().sqrt(2))) / 2,
    kernel="{T}(0.5) * {0} * ({T}(1) + math.erf({0} * {T}(0.7071067811865476)))",
)
stop_gradient = Elementwise("stop_gradient", 1, lambda x: x, doc="x, through which no derivative flows", kernel="{0}")

# ----- comparisons and logic (piecewise constant: no derivative) ---------------------------
lt = Elementwise(
    "lt",
    2,
    np.less,
    out="bool",
    symbol="<",
    precedence=4,
    doc="x < y",
    sympy=lambda a, b: _sp().Lt(a, b),
    kernel="{0} < {1}",
)
le = Elementwise(
    "le",
    2,
    np.less_equal,
    out="bool",
    symbol="<=",
    precedence=4,
    doc="x <= y",
    sympy=lambda a, b: _sp().Le(a, b),
    kernel="{0} <= {1}",
)
gt = Elementwise(
    "gt",
    2,
    np.greater,
    out="bool",
    symbol=">",
    precedence=4,
    doc="x > y",
    sympy=lambda a, b: _sp().Gt(a, b),
    kernel="{0} > {1}",
)
ge = Elementwise(
    "ge",
    2,
    np.greater_equal,
    out="bool",
    symbol=">=",
    precedence=4,
    doc="x >= y",
    sympy=lambda a, b: _sp().Ge(a, b),
    kernel="{0} >= {1}",
)
eq = Elementwise(
    "eq",
    2,
    np.equal,
    out="bool",
    symbol="==",
    precedence=4,
    doc="x == y, elementwise",
    sympy=lambda a, b: _sp().Eq(a, b),
    kernel="{0} == {1}",
)
neq = Elementwise(
    "neq",
    2,
    np.not_equal,
    out="bool",
    symbol="!=",
    precedence=4,
    doc="x != y, elementwise",
    sympy=lambda a, b: _sp().Ne(a, b),
    kernel="{0} != {1}",
)
logical_and = Elementwise(
    "logical_and",
    2,
    np.logical_and,
    out="bool",
    accepts="bool",
    symbol="&",
    precedence=6,
    sympy=lambda a, b: _sp().And(a, b),
    kernel="{0} & {1}",
)
logical_or = Elementwise(
    "logical_or",
    2,
    np.logical_or,
    out="bool",
    accepts="bool",
    symbol="|",
    precedence=5,
    sympy=lambda a, b: _sp().Or(a, b),
    kernel="{0} | {1}",
)
logical_not = Elementwise(
    "logical_not",
    1,
    np.logical_not,
    out="bool",
    accepts="bool",
    symbol="~",
    precedence=9,
    sympy=lambda a: _sp().Not(a),
    kernel="not {0}",
)


# ----- casts: one row per target dtype; float to float passes the derivative ----------------
def _caster(dtype: str):
    return functools.partial(np.asarray, dtype=dtype)


CASTS = {
    d: Elementwise(
        f"cast_{d}",
        1,
        _caster(d),
        out=d,
        doc=f"to {d}",
        d=(lambda x, o: 1,),
        sympy=(lambda x: x) if "float" in d else None,
        kernel="{0} != 0" if d == "bool" else "{0}",  # kernels cast every result to its dtype
    )
    for d in DTYPES
}

#: Every elementwise op, for tables that must cover them all (tests, derivative rules, kernels).
ALL = (
    add, sub, mul, div, pow, neg, maximum, minimum, abs, sign, square, clip, where,
    exp, log, log1p, expm1, sin, cos, tan, tanh, sqrt, erf,
    sigmoid, relu, softplus, gelu, stop_gradient,
    lt, le, gt, ge, eq, neq, logical_and, logical_or, logical_not,
    *CASTS.values(),
)  # fmt: skip


def cast(x, dtype) -> Variable:
    """``x`` converted to ``dtype`` (a no-op when it already has it)."""
    from ..types import as_dtype

    x = operands(x)[0]
    target = as_dtype(dtype)
    return x if x.dtype == target else CASTS[target](x)
