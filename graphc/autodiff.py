"""Automatic differentiation: derivatives are graphs, built from each op's own rules.

In the lecture's notation, every variable v_i of the evaluation trace gets a tangent v̇_i
(forward mode, :func:`jvp`) or an adjoint v̄_i (reverse mode, :func:`vjp`):

- forward:  v̇_j = Σ_i (∂v_j/∂v_i) v̇_i, swept in evaluation order, one sweep per seed;
- reverse:  v̄_i = Σ_j v̄_j (∂v_j/∂v_i), swept in reverse order, adjoints accumulating over
  fan-out, one sweep per output.

Both sweeps only call ``op.jvp`` / ``op.vjp`` (see ``graphc/ops``), so the results are ordinary
graphs: they can be optimized, compiled by any backend, printed, and differentiated again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import DTypeError, GraphcError, GraphError, ShapeError
from .graph import Constant, Variable, constant, toposort
from .ops import cast, reshape, stack, zeros, zeros_like
from .ops.base import as_variable
from .types import is_float, shapes_compatible

MODES = ("forward", "reverse")
GRAD_MODES = ("forward", "reverse", "symbolic")


def _listify(value) -> tuple[list, bool]:
    if isinstance(value, (list, tuple)):
        return list(value), False
    return [value], True


def _check_wrt(wrt: list[Variable], what: str) -> None:
    for x in wrt:
        if not isinstance(x, Variable):
            raise GraphcError(f"{what} must be graphc variables, got {x!r}")
        if not is_float(x.dtype):
            raise DTypeError(f"cannot differentiate with respect to {x.name or x} of dtype {x.dtype}")


def _fit(g: Variable, x: Variable, op, what: str) -> Variable:
    """A rule's result in ``x``'s dtype, after checking its shape: a rule returning a wrong shape
    is a bug in that rule, reported with the op's name."""
    g = as_variable(g, x.dtype)
    if not shapes_compatible(x.type.shape, g.type.shape):
        raise ShapeError(f"the {what} rule gave {g.type} for an input of type {x.type}", op=op.name)
    return cast(g, x.dtype)


def _seeds(values, targets: list[Variable], what: str) -> list[Variable | None]:
    seeds, _ = _listify(values)
    if len(seeds) != len(targets):
        raise GraphcError(f"got {len(seeds)} {what} for {len(targets)} variables")
    out = []
    for s, v in zip(seeds, targets):
        if s is None:
            out.append(None)
            continue
        s = as_variable(s, v.dtype) if not isinstance(s, Variable) else s
        if isinstance(s, Constant) and not np.any(s.value):
            out.append(None)  # a zero seed: nothing to propagate
            continue
        if not shapes_compatible(v.type.shape, s.type.shape):
            raise ShapeError(f"a {what[:-1]} of type {s.type} does not fit {v.name or v} of type {v.type}")
        out.append(cast(s, v.dtype))
    return out


def _zero_or_raise(x: Variable, disconnected: str) -> Variable:
    if disconnected == "raise":
        raise GraphError(f"the output does not depend on {x.name or x}")
    if disconnected != "zero":
        raise GraphcError(f"disconnected must be 'zero' or 'raise', got {disconnected!r}")
    return zeros_like(x)


# ----- reverse mode --------------------------------------------------------------------------
def vjp(outputs, wrt, cotangents, disconnected: str = "zero"):
    """Vector-Jacobian product: Σ_k cotangent_k · ∂output_k/∂x for each x in ``wrt``.

    One reverse sweep. Returns one variable per ``wrt`` entry (a single one if ``wrt`` is a
    single variable). Inputs the outputs do not depend on get zeros, or a GraphError with
    ``disconnected="raise"``.
    """
    outs, _ = _listify(outputs)
    xs, single = _listify(wrt)
    _check_wrt(xs, "wrt")
    outs = _stable(outs, xs)
    adjoints: dict[int, Variable] = {}
    for o, c in zip(outs, _seeds(cotangents, outs, "cotangents")):
        if c is not None:
            adjoints[id(o)] = adjoints[id(o)] + c if id(o) in adjoints else c
    nodes = toposort(outs)
    depends = _dependents(nodes, xs)
    for node in reversed(nodes):
        cots = [adjoints.get(id(o)) for o in node.outputs]
        if all(c is None for c in cots) or not any(id(i) in depends for i in node.inputs):
            continue
        grads = node.op.vjp(node.inputs, node.outputs, cots)
        for inp, g in zip(node.inputs, grads):
            if g is None or id(inp) not in depends:
                continue
            g = _fit(g, inp, node.op, "VJP")
            adjoints[id(inp)] = adjoints[id(inp)] + g if id(inp) in adjoints else g
    result = [adjoints[id(x)] if id(x) in adjoints else _zero_or_raise(x, disconnected) for x in xs]
    return result[0] if single else result


def _stable(outs: list[Variable], xs: list[Variable]) -> list[Variable]:
    """The outputs with unstable patterns rewritten (log(sigmoid x) -> -softplus(-x), ...), so
    derivatives are taken of the stable form: d/dx log(sigmoid x) at x = -800 is 1, not NaN.
    Skipped when differentiating with respect to an intermediate the rewrite could remove."""
    if any(x.owner is not None for x in xs):
        return outs
    from collections import Counter

    from .optimize import stabilize

    return stabilize(outs, Counter())


def _dependents(nodes, xs) -> set[int]:
    """Ids of the float variables that depend on any of ``xs`` (the only ones adjoints reach)."""
    depends = {id(x) for x in xs}
    for node in nodes:
        if any(id(i) in depends for i in node.inputs):
            depends.update(id(o) for o in node.outputs if is_float(o.dtype))
    return depends


# ----- forward mode --------------------------------------------------------------------------
def jvp(outputs, wrt, tangents):
    """Jacobian-vector product: Σ_i ∂output/∂x_i · tangent_i for each output.

    One forward sweep built from each op's tangent rule (not from two reverse sweeps). Returns
    one variable per output (a single one if ``outputs`` is a single variable).
    """
    outs, single = _listify(outputs)
    xs, _ = _listify(wrt)
    _check_wrt(xs, "wrt")
    outs = _stable(outs, xs)
    tangent: dict[int, Variable] = {id(x): t for x, t in zip(xs, _seeds(tangents, xs, "tangents")) if t is not None}
    for node in toposort(outs):
        ts = [tangent.get(id(i)) for i in node.inputs]
        if all(t is None for t in ts):
            continue
        for out, t in zip(node.outputs, node.op.jvp(node.inputs, node.outputs, ts)):
            if t is not None and is_float(out.dtype):
                tangent[id(out)] = _fit(t, out, node.op, "JVP")
    result = [tangent[id(o)] if id(o) in tangent else zeros_like(o) for o in outs]
    return result[0] if single else result


# ----- gradients, Jacobians, Hessians ---------------------------------------------------------
def _size(x: Variable, what: str) -> int:
    if None in x.type.shape:
        raise ShapeError(f"{what} needs the static shape of {x.name or x}, which is {x.type}")
    return int(np.prod(x.type.shape, dtype=np.int64))


def _unit(x: Variable, i: int) -> Variable:
    """The i-th unit vector in ``x``'s shape and dtype: one seed of a sweep."""
    e = np.zeros(x.type.shape, dtype=x.dtype)
    e.flat[i] = 1
    return constant(e)


def _forward_columns(y: Variable, x: Variable, what: str) -> Variable:
    """∂y/∂x with one forward sweep per element of x: shape y.shape + x.shape."""
    n = _size(x, what)
    if n == 0 or 0 in y.type.shape:
        return zeros((*y.shape, *x.shape), x.dtype)
    if x.ndim == 0:
        return jvp(y, [x], [constant(np.ones((), x.dtype))])
    columns = [jvp(y, [x], [_unit(x, i)]) for i in range(n)]
    return reshape(stack(columns, axis=-1), (*y.shape, *x.shape))


def grad(cost, wrt, mode: str = "reverse", disconnected: str = "zero", cse: bool = True, simplify: bool = False):
    """The gradient of a scalar ``cost`` with respect to ``wrt`` (one variable or a list).

    ``mode="reverse"`` (the default) runs one reverse sweep for all of ``wrt``;
    ``mode="forward"`` seeds one unit tangent per input element and runs one forward sweep
    each, so its graph (and its cost) grows with the number of inputs. ``mode="symbolic"``
    differentiates through SymPy (scalar and elementwise graphs); ``cse`` and ``simplify`` turn
    its common-subexpression sharing and simplification on or off.
    """
    cost = as_variable(cost)
    if cost.ndim != 0:
        raise ShapeError(f"gc.grad needs a scalar cost, got {cost.type}; use gc.vjp or gc.jacobian")
    xs, single = _listify(wrt)
    _check_wrt(xs, "wrt")
    if mode == "reverse":
        result = vjp(cost, xs, [constant(np.ones((), cost.dtype))], disconnected=disconnected)
    elif mode == "forward":
        nodes = toposort(cost)
        result = [
            _forward_columns(cost, x, "forward-mode grad")
            if cost is x or id(cost) in _dependents(nodes, [x])
            else _zero_or_raise(x, disconnected)
            for x in xs
        ]
    elif mode == "symbolic":
        from .symbolic import grad as symbolic_grad

        result = symbolic_grad(cost, xs, cse=cse, simplify=simplify)
    else:
        raise GraphcError(f"mode must be one of {', '.join(GRAD_MODES)}, got {mode!r}")
    return result[0] if single else result


def jacobian(y, x, mode: str = "reverse"):
    """∂y/∂x with shape y.shape + x.shape; ``x`` may be a list (a list of Jacobians comes back).

    Reverse mode runs one reverse sweep per element of y; forward mode one forward sweep per
    element of x: pick the mode with the fewer sweeps.
    """
    y = as_variable(y)
    xs, single = _listify(x)
    _check_wrt(xs, "x")
    if mode == "forward":
        result = [_forward_columns(y, xi, "forward-mode jacobian") for xi in xs]
    elif mode == "reverse":
        m = _size(y, "reverse-mode jacobian")
        if m == 0 or any(0 in xi.type.shape for xi in xs):
            result = [zeros((*y.shape, *xi.shape), xi.dtype) for xi in xs]
        elif y.ndim == 0:
            result = vjp(y, xs, [constant(np.ones((), y.dtype))])
        else:
            rows = [vjp(y, xs, [_unit(y, i)]) for i in range(m)]
            result = [reshape(stack([r[k] for r in rows]), (*y.shape, *xi.shape)) for k, xi in enumerate(xs)]
    else:
        raise GraphcError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return result[0] if single else result


def hessian(cost, x):
    """Second derivatives of a scalar ``cost``, forward over reverse: the forward-mode Jacobian
    of the reverse-mode gradient. For a list ``x`` returns blocks ``H[i][j]`` of shape
    x_i.shape + x_j.shape."""
    xs, single = _listify(x)
    grads = grad(cost, xs)
    blocks = [[jacobian(g, xj, mode="forward") for xj in xs] for g in grads]
    return blocks[0][0] if single else blocks


def hvp(cost, x, v):
    """Hessian-vector product H·v without forming H: one forward sweep over the gradient."""
    xs, single = _listify(x)
    vs, _ = _listify(v)
    result = jvp(grad(cost, xs), xs, vs)
    return result[0] if single else result


# ----- numerical gradients and gradient checking ----------------------------------------------
def numeric_grad(f, inputs: Sequence, eps: float = 1e-6) -> list[np.ndarray]:
    """Central differences (f(x + h) - f(x - h)) / 2h of a scalar function, per element, in float64.

    ``f`` takes one array per entry of ``inputs`` (a compiled function works) and returns a scalar.
    """
    values = [np.array(v, dtype=np.float64) for v in inputs]
    grads = []
    for v in values:
        g = np.zeros_like(v)
        for i in range(v.size):
            old = v.flat[i]
            h = eps * max(1.0, abs(old))
            v.flat[i] = old + h
            up = float(f(*values))
            v.flat[i] = old - h
            down = float(f(*values))
            v.flat[i] = old
            g.flat[i] = (up - down) / (2 * h)
        grads.append(g)
    return grads


def relative_error(a, b) -> float:
    """‖a - b‖∞ / max(‖a‖∞, ‖b‖∞): 0 for equal arrays, about 1 for unrelated ones."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(a - b), initial=0.0) / scale)


class GradCheck:
    """The result of :func:`check_grad`: per input, the relative error at each step size."""

    def __init__(self, names: list[str], steps: list[float], errors: list[list[float]]):
        self.names, self.steps, self.table = names, steps, errors  # table[step][input]

    @property
    def errors(self) -> dict[str, float]:
        """Per input, the error at its best step: the worst an honest check can say."""
        return {n: min(row[k] for row in self.table) for k, n in enumerate(self.names)}

    @property
    def best_steps(self) -> dict[str, float]:
        return {n: self.steps[int(np.argmin([row[k] for row in self.table]))] for k, n in enumerate(self.names)}

    @property
    def worst(self) -> float:
        return max(self.errors.values(), default=0.0)

    def __str__(self) -> str:
        width = max([8, *(len(n) for n in self.names)])
        lines = ["step      " + "".join(f"{n:>{width + 2}}" for n in self.names)]
        for h, row in zip(self.steps, self.table):
            lines.append(f"{h:<10.0e}" + "".join(f"{e:>{width + 2}.2e}" for e in row))
        lines.append("best      " + "".join(f"{e:>{width + 2}.2e}" for e in self.errors.values()))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<GradCheck worst relative error {self.worst:.2e}>"


def check_grad(cost, wrt, at: dict, mode: str = "reverse", steps=tuple(10.0**-k for k in range(2, 11))):
    """Compare ``gc.grad(cost, wrt, mode)`` with central differences over a sweep of step sizes.

    ``at`` maps every input of ``cost`` to a value. Returns a :class:`GradCheck`: its
    ``errors`` hold, per input of ``wrt``, the relative error at the best step (truncation
    error falls with the step, round-off error grows as it shrinks).
    """
    from .function import function
    from .graph import Input, graph_inputs

    xs, _ = _listify(wrt)
    inputs = [v for v in graph_inputs(cost) if isinstance(v, Input)]
    missing = [v.name or str(v) for v in inputs if v not in at]
    if missing:
        raise GraphError(f"check_grad needs values for every input; missing {', '.join(missing)}")
    order = inputs + [x for x in xs if x not in set(inputs)]
    f = function(order, cost)
    g = function(order, grad(cost, xs, mode=mode))
    values = [np.asarray(at[v], dtype=v.dtype) if v in at else None for v in order]
    analytic = g(*values)
    positions = [order.index(x) for x in xs]

    def f_of(*wrt_values):
        vals = list(values)
        for p, val in zip(positions, wrt_values):
            vals[p] = val.astype(order[p].dtype)
        return f(*vals)

    table = []
    for h in steps:
        numeric = numeric_grad(f_of, [values[p] for p in positions], eps=h)
        table.append([relative_error(a, n) for a, n in zip(analytic, numeric)])
    return GradCheck([x.name or f"x{k}" for k, x in enumerate(xs)], list(steps), table)
