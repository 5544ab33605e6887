"""Symbolic differentiation through SymPy: graphs to SymPy expressions and back.

``to_sympy`` reads each elementwise op's SymPy form from its row (``Elementwise.sympy``), so
scalar and elementwise graphs translate; other ops (reductions, matmul...) have no scalar
SymPy form and raise a clear error. ``grad(..., mode="symbolic")`` differentiates with
``sympy.diff``, optionally shares common subexpressions with ``sympy.cse``, and translates the
result back into a graph that compiles like any other.
"""

from __future__ import annotations

import functools

from .errors import GraphcError
from .graph import Constant, Variable, graph_inputs, toposort
from .ops import elementwise as E
from .ops.base import as_variable
from .ops.elementwise import Elementwise


class SymbolicError(GraphcError, TypeError):
    """A graph (or a SymPy expression) with no translation to the other side."""


@functools.cache
def _sp():
    import sympy

    return sympy


def symbols_for(variables) -> dict[Variable, object]:
    """A real SymPy symbol per leaf, named after it (made unique where names repeat)."""
    sp = _sp()
    out, used = {}, set()
    for k, v in enumerate(variables):
        name = v.name or f"x{k + 1}"
        base, n = name, 1
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        out[v] = sp.Symbol(name, real=True)
    return out


def to_sympy(outputs, symbols: dict | None = None):
    """SymPy expressions for scalar or elementwise graphs (one per output; one if given one).

    Leaves become real symbols named after the inputs (or those in ``symbols``); constants must
    be scalars. Ops without a SymPy form raise :class:`SymbolicError` naming the op.
    """
    sp = _sp()
    single = isinstance(outputs, Variable)
    outs = [outputs] if single else list(outputs)
    leaves = [v for v in graph_inputs(outs) if not isinstance(v, Constant)]
    symbols = dict(symbols or {})
    symbols.update({v: s for v, s in symbols_for(leaves).items() if v not in symbols})
    expr: dict[Variable, object] = dict(symbols)
    for v in graph_inputs(outs):
        if isinstance(v, Constant):
            if v.value.size != 1:
                raise SymbolicError(f"a constant of shape {v.value.shape} has no scalar SymPy form")
            value = v.value.reshape(()).item()
            expr[v] = sp.Integer(value) if isinstance(value, (bool, int)) else sp.Float(value, 17)
    for node in toposort(outs):
        op = node.op
        if not isinstance(op, Elementwise) or op.sympy is None:
            raise SymbolicError(
                f"{op.name} has no SymPy form: symbolic mode handles scalar and elementwise graphs",
                op=op.name,
                location=node.location,
            )
        expr[node.out] = op.sympy(*[expr[i] for i in node.inputs])
    result = [expr[o] for o in outs]
    return result[0] if single else result


def from_sympy(exprs, inputs, like: Variable | None = None):
    """Graphs for SymPy expressions over ``inputs`` (graphc variables matched to symbols by name).

    Subexpressions are translated once, so a SymPy DAG becomes a graph DAG.
    """
    single = not isinstance(exprs, (list, tuple))
    items = [exprs] if single else list(exprs)
    by_name = {str(s): v for v, s in symbols_for(inputs).items()}
    memo: dict = {}
    result = [_translate(e, by_name, memo) for e in items]
    if like is not None:
        result = [_fit(r, like) for r in result]
    return result[0] if single else result


def _fit(v, like: Variable) -> Variable:
    from .ops.shape import broadcast_to

    v = E.cast(as_variable(v, like.dtype), like.dtype)
    return v if v.type.shape == like.type.shape else broadcast_to(v, like.shape)


def _translate(e, by_name: dict, memo: dict):
    """One SymPy expression as a graph (or a Python float for numbers: weakly typed constants)."""
    if e in memo:
        return memo[e]
    sp = _sp()
    t = functools.partial(_translate, by_name=by_name, memo=memo)
    if isinstance(e, sp.Symbol):
        if e.name not in by_name:
            raise SymbolicError(f"symbol {e.name} is not one of the inputs ({', '.join(by_name)})")
        out = by_name[e.name]
    elif e.is_Number or isinstance(e, sp.NumberSymbol):
        out = float(e)
    elif isinstance(e, sp.Add):
        terms = [t(a) for a in e.args]
        out = terms[0]
        for term in terms[1:]:
            out = out + term
    elif isinstance(e, sp.Mul):
        numerator = [a for a in e.args if not (isinstance(a, sp.Pow) and a.exp.is_Number and a.exp < 0)]
        denominator = [a.base ** (-a.exp) for a in e.args if a not in numerator]
        out = _product([t(a) for a in numerator]) if numerator else 1.0
        if denominator:
            out = out / _product([t(a) for a in denominator])
    elif isinstance(e, sp.Pow):
        base, exp = e.args
        if base == sp.E:
            out = E.exp(t(exp))
        elif exp == sp.Rational(1, 2):
            out = E.sqrt(t(base))
        elif exp == -1:
            out = 1.0 / t(base)
        else:
            out = E.pow(t(base), t(exp))
    elif isinstance(e, (sp.Max, sp.Min)):
        row = E.maximum if isinstance(e, sp.Max) else E.minimum
        args = [t(a) for a in e.args]
        out = args[0]
        for a in args[1:]:
            out = row(out, a)
    elif isinstance(e, sp.Piecewise):
        out = t(e.args[-1][0]) if e.args[-1][1] == sp.true else None
        if out is None:
            raise SymbolicError(f"{e} has no otherwise branch")
        for value, condition in reversed(e.args[:-1]):
            out = E.where(_condition(t(condition)), t(value), out)
    elif isinstance(e, sp.Heaviside):
        x = t(e.args[0])
        at_zero = float(e.args[1]) if len(e.args) > 1 else 0.5
        out = E.where(E.gt(x, 0.0), 1.0, E.where(E.eq(x, 0.0), at_zero, 0.0))
    elif isinstance(e, sp.DiracDelta):
        out = 0.0 * t(e.args[0])  # zero away from the origin, where graphc's rules are checked
    elif type(e) in _tables()[0]:
        out = _tables()[0][type(e)](*[t(a) for a in e.args])
    elif type(e) in _tables()[1]:
        out = _tables()[1][type(e)](*[t(a) for a in e.args])
    else:
        raise SymbolicError(f"SymPy {type(e).__name__} ({e}) has no graphc translation")
    memo[e] = out
    return out


def _condition(c):
    return c if isinstance(c, Variable) else as_variable(bool(c))


def _product(factors):
    out = factors[0]
    for f in factors[1:]:
        out = out * f
    return out


@functools.cache
def _tables():
    """SymPy function and relation classes to graphc rows (built on first use: SymPy is lazy)."""
    sp = _sp()
    functions = {
        sp.exp: E.exp, sp.log: E.log, sp.sin: E.sin, sp.cos: E.cos, sp.tan: E.tan, sp.tanh: E.tanh,
        sp.erf: E.erf, sp.Abs: E.abs, sp.sign: E.sign,
    }  # fmt: skip
    relations = {
        sp.StrictLessThan: E.lt, sp.LessThan: E.le, sp.StrictGreaterThan: E.gt, sp.GreaterThan: E.ge,
        sp.Equality: E.eq, sp.Unequality: E.neq, sp.And: E.logical_and, sp.Or: E.logical_or,
        sp.Not: E.logical_not,
    }  # fmt: skip
    return functions, relations


def grad(cost: Variable, wrt: list[Variable], cse: bool = True, simplify: bool = False) -> list[Variable]:
    """The gradient by symbolic differentiation: to SymPy, ``sympy.diff``, optionally
    ``sympy.simplify`` and ``sympy.cse``, then back to a graph."""
    sp = _sp()
    for x in wrt:
        if x.owner is not None:
            raise SymbolicError("symbolic mode differentiates with respect to inputs, not intermediate results")
    leaves = [v for v in graph_inputs(cost) if not isinstance(v, Constant)]
    leaves += [x for x in wrt if x not in set(leaves)]
    symbols = symbols_for(leaves)
    expression = to_sympy(cost, symbols)
    derivatives = [sp.diff(expression, symbols[x]) for x in wrt]
    if simplify:
        derivatives = [sp.simplify(d) for d in derivatives]
    by_name = {str(s): v for v, s in symbols.items()}
    memo: dict = {}
    if cse:
        replacements, derivatives = sp.cse(derivatives)
        for symbol, value in replacements:
            memo[symbol] = _translate(value, by_name, memo)
    return [_fit(_translate(d, by_name, memo), x) for d, x in zip(derivatives, wrt)]
