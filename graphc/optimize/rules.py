"""Local rewrite rules. Each is a small named function ``rule(var) -> replacement | None``; the
name is what the optimization report counts.

Rules never change results users rely on: where an identity fails for inf or NaN (``x * 0``,
``x - x`` on floats) it is applied only to ints and bools, and ``exp(log x)`` keeps the NaN of a
negative x. Tests compare optimized and unoptimized evaluation on hypothesis-generated graphs.
"""

from __future__ import annotations

import math

import numpy as np

from ..graph import Constant, Variable, apply1, constant
from ..ops import elementwise as E
from ..ops.nn import Softmax, SoftmaxCrossEntropy
from ..ops.reduction import LOGSUMEXP, SUM, Reduce
from ..ops.shape import BroadcastTo, DimShuffle, Reshape, ShapeDim, broadcast_to
from ..types import is_float
from .engine import rules_table

# Folding evaluates a node with its numpy reference; it never builds a constant larger than this
# many elements, unless the result is no larger than the constants it replaces.
FOLD_LIMIT = 1 << 16


# ----- helpers --------------------------------------------------------------------------------
def _value_is(v: Variable, value: float) -> bool:
    return isinstance(v, Constant) and v.value.size > 0 and bool(np.all(v.value == value))


def _as_type_of(v: Variable, out: Variable) -> Variable | None:
    """``v`` standing in for ``out``: cast to its dtype and broadcast to its shape if needed.

    An unknown dimension of ``out`` is read from an input of ``out``'s node that has it unknown
    too (unknown dimensions never broadcast, so they are equal), never from ``out`` itself: a
    replacement that still needed ``out`` would keep it alive and be rewritten forever.
    """
    if v.ndim > out.ndim:
        return None
    v = E.cast(v, out.dtype)
    if v.type.shape != out.type.shape:
        shape = _shape_without(out)
        if shape is None:
            return None
        v = broadcast_to(v, shape)
    return v


def _shape_without(out: Variable):
    """``out``'s shape, with unknown dimensions taken from the inputs of the node that made it."""
    from ..ops.shape import shape_dim

    shape = []
    for axis, dim in enumerate(out.type.shape):
        if dim is not None:
            shape.append(dim)
            continue
        source = None
        for i in out.owner.inputs:
            k = axis - (out.ndim - i.ndim)
            if k >= 0 and i.type.shape[k] is None:
                source = shape_dim(i, k)
                break
        if source is None:
            return None
        shape.append(source)
    return tuple(shape)


def _args(v: Variable):
    return v.owner.inputs


def _is(v: Variable, op) -> bool:
    return v.owner is not None and v.owner.op is op


# ----- constant folding ------------------------------------------------------------------------
def fold_constants(v: Variable) -> Variable | None:
    node = v.owner
    if not node.inputs or not all(isinstance(i, Constant) for i in node.inputs):
        return None
    if getattr(node.op, "needs_rng", False) or None in v.type.shape:
        return None
    size = math.prod(v.type.shape)
    if size > max(FOLD_LIMIT, sum(i.value.size for i in node.inputs)):
        return None
    (value,) = node.op.perform(*[i.value for i in node.inputs])
    return constant(np.asarray(value, dtype=v.dtype))


# ----- common subexpressions ------------------------------------------------------------------
COMMUTATIVE = (E.add, E.mul, E.maximum, E.minimum, E.eq, E.neq, E.logical_and, E.logical_or)


def canonical_operand_order(order: dict[int, int]):
    """A rule putting the operands of commutative ops in graph order, so that ``a*b`` and ``b*a``
    become one node (hash-consing merges structurally equal nodes)."""

    def commute(v: Variable) -> Variable | None:
        a, b = _args(v)
        if order.get(id(a), 1 << 60) > order.get(id(b), 1 << 60):
            return v.owner.op(b, a)
        return None

    return commute


# ----- algebraic simplification ----------------------------------------------------------------
def _without_identity(v, identity):
    """The other operand of a commutative op whose one operand is its identity (x*1, 0+x)."""
    a, b = _args(v)
    if _value_is(b, identity):
        return _as_type_of(a, v)
    if _value_is(a, identity):
        return _as_type_of(b, v)
    return None


def mul_by_one(v):
    return _without_identity(v, 1)


def mul_by_minus_one(v):
    a, b = _args(v)
    if _value_is(b, -1) and a.dtype != "bool":
        return _as_type_of(-a, v)
    if _value_is(a, -1) and b.dtype != "bool":
        return _as_type_of(-b, v)
    return None


def mul_by_zero(v):
    """x * 0 = 0 only where x cannot be inf or NaN: integer and bool x."""
    a, b = _args(v)
    for x, zero in ((a, b), (b, a)):
        if _value_is(zero, 0) and not is_float(x.dtype):
            return _as_type_of(E.cast(zero, v.dtype), v)
    return None


def add_zero(v):
    return _without_identity(v, 0)


def sub_zero(v):
    a, b = _args(v)
    if _value_is(b, 0):
        return _as_type_of(a, v)
    if _value_is(a, 0):
        return _as_type_of(-b, v)
    return None


def sub_self(v):
    """x - x = 0 only where x cannot be inf or NaN: integer x."""
    a, b = _args(v)
    if a is b and not is_float(a.dtype):
        return _as_type_of(E.cast(constant(0), v.dtype), v)
    return None


def div_by_one(v):
    a, b = _args(v)
    return _as_type_of(a, v) if _value_is(b, 1) else None


def double_neg(v):
    (a,) = _args(v)
    return _args(a)[0] if _is(a, E.neg) else None


def exp_of_log(v):
    """exp(log x) = x for x >= 0; a negative x still gives NaN, as before."""
    (a,) = _args(v)
    if _is(a, E.log):
        x = _args(a)[0]
        return _as_type_of(E.where(x < 0, np.nan, x), v)
    return None


def log_of_exp(v):
    (a,) = _args(v)
    return _as_type_of(_args(a)[0], v) if _is(a, E.exp) else None


def integer_power(v):
    """x ** 1, 2, 3, 4 into multiplications; x ** -1 into 1 / x; x ** 0.5 into sqrt(x)."""
    x, p = _args(v)
    if not isinstance(p, Constant) or p.value.size != 1 or p.ndim > x.ndim or x.dtype != v.dtype:
        return None  # x * x in x's own dtype is x ** p only when that is the result's dtype
    if not is_float(v.dtype):
        return None
    k = float(p.value.reshape(()))
    if k == 1:
        result = x
    elif k == 2:
        result = x * x
    elif k == 3:
        result = x * x * x
    elif k == 4:
        square = x * x
        result = square * square
    elif k == -1:
        result = 1 / x
    elif k == 0.5:
        result = E.sqrt(x)
    else:
        return None
    return _as_type_of(result, v)


def drop_stop_gradient(v):
    """After differentiation, stop_gradient is the identity."""
    return _args(v)[0]


def where_same_branches(v):
    _, a, b = _args(v)
    return _as_type_of(a, v) if a is b else None


def dimshuffle_chain(v):
    """Two shuffles in a row are one (a double transpose is none)."""
    (a,) = _args(v)
    if not isinstance(getattr(a.owner, "op", None), DimShuffle):
        return None
    inner, outer = a.owner.op.order, v.owner.op.order
    x = _args(a)[0]
    order = tuple("x" if o == "x" else inner[o] for o in outer)
    return x if order == tuple(range(x.ndim)) else apply1(DimShuffle(order), x)


def reshape_chain(v):
    """reshape(reshape(x, a), b) = reshape(x, b); a reshape to x's own static shape is x."""
    x = _args(v)[0]
    if isinstance(getattr(x.owner, "op", None), Reshape):
        return apply1(v.owner.op, _args(x)[0], *_args(v)[1:])
    if None not in x.type.shape and x.type.shape == v.type.shape:
        return x
    return None


def shape_of_elementwise(v):
    """The length of an unknown axis of an elementwise result is that of an input with that axis
    unknown (unknown lengths never broadcast): read it there, so computing the shape does not
    need the result (a gradient seed ``broadcast_to(1, shape(f))`` otherwise keeps f alive)."""
    x = _args(v)[0]
    if x.owner is None or not isinstance(x.owner.op, E.Elementwise) or x.type.shape[v.owner.op.axis] is not None:
        return None
    shape = _shape_without(x)
    return None if shape is None else shape[v.owner.op.axis]


def sum_of_broadcast(v):
    """sum(broadcast_to(x, shape)) over all axes = sum(x) times the number of copies."""
    op = v.owner.op
    b = _args(v)[0]
    if op.kind is not SUM or not isinstance(getattr(b.owner, "op", None), BroadcastTo):
        return None
    if len(op.axes) != b.ndim or op.keepdims or not is_float(v.dtype):
        return None
    x = _args(b)[0]
    lead = b.ndim - x.ndim
    copies = 1
    for axis, d in enumerate(b.shape):
        if axis < lead or (x.type.shape[axis - lead] == 1 and d != 1):  # an axis x lacks or broadcasts
            if not isinstance(d, int):
                return None  # a length known only at run time may be 0: sum(x) * 0 is NaN for inf x
            copies *= d
    if copies == 0:
        return None  # an empty sum is 0 even of inf or NaN
    return _as_type_of(Reduce(SUM, tuple(range(x.ndim)), False, x.ndim)(x) * copies, v)


# ----- numerical stabilization -----------------------------------------------------------------
def log_sigmoid(v):
    """log(sigmoid x) = -softplus(-x): -800 stays -800 instead of log(0) = -inf."""
    (a,) = _args(v)
    return -E.softplus(-E.cast(_args(a)[0], v.dtype)) if _is(a, E.sigmoid) else None


def log_one_minus_sigmoid(v):
    """log(1 - sigmoid x) = -softplus(x)."""
    (a,) = _args(v)
    if _is(a, E.sub) and _value_is(_args(a)[0], 1) and _is(_args(a)[1], E.sigmoid):
        return _as_type_of(-E.softplus(E.cast(_args(_args(a)[1])[0], v.dtype)), v)
    return None


def log_of_softmax(v):
    (a,) = _args(v)
    op = getattr(a.owner, "op", None)
    if isinstance(op, Softmax) and not op.log:
        return apply1(Softmax(op.axis, log=True), _args(a)[0])
    return None


def log_sum_exp(v):
    """log(sum(exp x)) = logsumexp x, which shifts by the max."""
    (a,) = _args(v)
    op = getattr(a.owner, "op", None)
    if isinstance(op, Reduce) and op.kind is SUM and _is(_args(a)[0], E.exp):
        return apply1(Reduce(LOGSUMEXP, op.axes, op.keepdims, op.ndim_in), _args(_args(a)[0])[0])
    return None


def exp_over_sum_exp(v):
    """exp(x) / sum(exp x, axis, keepdims=True) = softmax(x, axis)."""
    num, den = _args(v)
    op = getattr(den.owner, "op", None)
    is_sum = isinstance(op, Reduce) and op.kind is SUM and op.keepdims and len(op.axes) == 1
    if _is(num, E.exp) and is_sum and _args(den)[0] is num:
        return _as_type_of(apply1(Softmax(op.axes[0]), _args(num)[0]), v)
    return None


def softmax_cross_entropy(v):
    """sum(t * log_softmax(z), axis) = -softmax_cross_entropy(z, t): one stable node whose
    gradient is softmax(z) - t."""
    op = v.owner.op
    prod = _args(v)[0]
    if op.kind is not SUM or op.keepdims or len(op.axes) != 1 or not _is(prod, E.mul):
        return None
    for t, ls in (_args(prod), reversed(_args(prod))):
        ls_op = getattr(ls.owner, "op", None)
        if isinstance(ls_op, Softmax) and ls_op.log and ls_op.axis == op.axes[0]:
            z = _args(ls)[0]
            if t.type.shape == z.type.shape:
                return _as_type_of(-apply1(SoftmaxCrossEntropy(op.axes[0]), z, t), v)
    return None


CONSTANT_FOLDING = fold_constants
SIMPLIFY = rules_table(
    (E.mul, mul_by_one),
    (E.mul, mul_by_minus_one),
    (E.mul, mul_by_zero),
    (E.add, add_zero),
    (E.sub, sub_zero),
    (E.sub, sub_self),
    (E.div, div_by_one),
    (E.neg, double_neg),
    (E.exp, exp_of_log),
    (E.log, log_of_exp),
    (E.pow, integer_power),
    (E.stop_gradient, drop_stop_gradient),
    (E.where, where_same_branches),
    (DimShuffle, dimshuffle_chain),
    (Reshape, reshape_chain),
    (Reduce, sum_of_broadcast),
    (ShapeDim, shape_of_elementwise),
)
STABILIZE = rules_table(
    (E.log, log_sigmoid),
    (E.log, log_one_minus_sigmoid),
    (E.log, log_of_softmax),
    (E.log, log_sum_exp),
    (E.div, exp_over_sum_exp),
    (Reduce, softmax_cross_entropy),
)
