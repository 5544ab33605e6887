"""Evaluation traces: the primal, tangent and adjoint tables of the lecture notes.

``gc.trace(y, at={x1: 2.0, x2: 5.0}, mode="reverse")`` numbers the variables the way the lecture
(and Baydin et al.) do: inputs first (v1 = x1, v2 = x2), then each operation once (common
subexpressions are one node), level by level. Tangent and adjoint expressions come from each
op's own local partials (``Elementwise.d``), so they are the rules graphc differentiates with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import GraphError
from .graph import Constant, Input, SharedVariable, Variable, graph_inputs, toposort
from .ops import elementwise as E
from .ops.elementwise import Elementwise
from .printing import expression_and_precedence, format_node, label_of
from .types import is_float

DOT, BAR = "\u0307", "\u0304"  # combining dot and bar: v̇3, v̄3
MODES = ("primal", "forward", "reverse")


@dataclass
class Row:
    """One primal variable of the trace, with its tangent or adjoint where the mode has them."""

    name: str  # "v3"
    expr: str  # "v1 * v2"; an input reads "x1"
    value: np.ndarray
    variable: Variable = field(repr=False)
    tangent_expr: str | None = None  # "v̇1 * v2 + v1 * v̇2"
    tangent: np.ndarray | None = None
    adjoint_expr: str | None = None  # "v̄5 * v5 + v̄6"
    adjoint: np.ndarray | None = None


@dataclass
class Edge:
    """An edge v_i -> v_j of the trace with its local partial derivative ∂v_j/∂v_i."""

    source: str
    target: str
    partial_expr: str
    partial: np.ndarray | None


def dotted(name: str) -> str:
    return name[0] + DOT + name[1:]


def barred(name: str) -> str:
    return name[0] + BAR + name[1:]


def summarize(value, width: int = 4) -> str:
    """A value as text: full precision for scalars, shape and the first entries for arrays."""
    if value is None:
        return ""
    a = np.asarray(value)
    if a.ndim == 0:
        return repr(a.item())
    head = ", ".join(f"{x:.6g}" if isinstance(x, float) else repr(x) for x in a.ravel()[:width].tolist())
    more = ", …" if a.size > width else ""
    return f"{a.dtype}{a.shape} [{head}{more}]"


class Trace:
    """An evaluation trace. ``rows`` are in evaluation order; ``adjoint_rows`` in the reverse
    order adjoints are computed; ``adjoint_steps`` show fan-out accumulation one update at a time."""

    def __init__(self, output: Variable, rows: list[Row], edges: list[Edge], mode: str, steps: list[str]):
        self.output, self.rows, self.edges, self.mode, self.adjoint_steps = output, rows, edges, mode, steps

    @property
    def adjoint_rows(self) -> list[Row]:
        return list(reversed(self.rows))

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)

    # ----- tables -----------------------------------------------------------------------------
    def columns(self, latex: bool = False) -> tuple[list[str], list[list[str]]]:
        """Header and cells of the trace table(s) in the lecture's layout."""
        from .tables import latex_expr, latex_name

        conv = latex_expr if latex else str
        name = latex_name if latex else str
        header = ["variable", "expression", "value"]
        cells = [[name(r.name), conv(r.expr), summarize(r.value)] for r in self.rows]
        if self.mode == "forward":
            header += ["tangent", "tangent value"]
            for r, c in zip(self.rows, cells):
                c += [f"{name(dotted(r.name))} = {conv(r.tangent_expr)}", summarize(r.tangent)]
        if self.mode == "reverse":
            header += ["adjoint", "adjoint value"]
            for r, c in zip(self.rows, cells):
                c += [f"{name(barred(r.name))} = {conv(r.adjoint_expr)}", summarize(r.adjoint)]
        return header, cells

    def __str__(self) -> str:
        from .tables import text_table

        text = text_table(*self.columns())
        if self.mode == "reverse":
            text += "\n\nadjoint sweep (reverse order, accumulating over fan-out):\n"
            text += "\n".join(f"  {step}" for step in self.adjoint_steps)
        return text

    def to_markdown(self) -> str:
        from .tables import markdown_table

        return markdown_table(*self.columns())

    def to_latex(self) -> str:
        from .tables import latex_table

        return latex_table(*self.columns(latex=True))

    def to_html(self) -> str:
        from .tables import html_table

        return html_table(*self.columns())

    def _repr_html_(self) -> str:
        return self.to_html()

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_svg_(self):
        from .diagrams import svg

        return svg(self)

    def __repr__(self) -> str:
        return f"<Trace mode={self.mode}, {len(self.rows)} rows>"


def _order(output: Variable, inputs: list[Variable]):
    """Inputs first, then nodes level by level (level = longest path from the inputs), each level
    in order of first appearance: the lecture's numbering."""
    nodes = toposort(output)
    level: dict[int, int] = {}
    for node in nodes:
        level[id(node)] = 1 + max((level.get(id(i.owner), 0) for i in node.inputs if i.owner), default=0)
    position = {id(n): k for k, n in enumerate(nodes)}
    return sorted(nodes, key=lambda n: (level[id(n)], position[id(n)]))


def _join(terms: list[str]) -> str:
    if not terms:
        return "0"
    text = terms[0]
    for t in terms[1:]:
        text += f" - {t[1:]}" if t.startswith("-") else f" + {t}"
    return text


def _term(seed: str, partial, names) -> tuple[str | None, Variable | None]:
    """``seed * partial`` as text (None for a zero partial), and the partial as a graph."""
    if partial is None:
        return None, None
    if isinstance(partial, int):
        return (seed if partial == 1 else f"-{seed}"), None
    text, prec = expression_and_precedence(partial, names=names)
    return format_node(E.mul, [(seed, 11), (text, prec)])[0], partial


def _edges(nodes, names) -> tuple[list[Edge], list[tuple[Edge, Variable]]]:
    """The trace's edges with their local partials; the partials that are graphs come back too,
    so that their values can be computed in one evaluation."""
    edges, graphs = [], []
    for node in nodes:
        local = node.op.partials(node.inputs, node.out) if isinstance(node.op, Elementwise) else None
        for k, i in enumerate(node.inputs):
            if i not in names or not is_float(i.dtype):
                continue
            for out in node.outputs:
                p = None if local is None else local[k]
                if local is not None and p is None:
                    continue  # a zero partial: no derivative flows along this edge
                if local is None:
                    edges.append(Edge(names[i], names[out], f"∂{names[out]}/∂{names[i]}", None))
                elif isinstance(p, int):
                    edges.append(Edge(names[i], names[out], str(p), np.asarray(float(p))))
                else:
                    edges.append(Edge(names[i], names[out], expression_and_precedence(p, names=names)[0], None))
                    graphs.append((edges[-1], p))
    return edges, graphs


def trace(output: Variable, at: dict, mode: str = "primal", seed: dict | None = None) -> Trace:
    """The evaluation trace of ``output`` at the values ``at`` (one per input).

    ``mode="forward"`` adds tangents, seeded with ``seed`` (default: 1 on the first input, 0 on
    the others); ``mode="reverse"`` adds adjoints, seeded with 1 (or ``seed[output]``).
    """
    from .autodiff import jvp, vjp
    from .function import function

    if mode not in MODES:
        raise GraphError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    leaves = [v for v in graph_inputs(output) if isinstance(v, (Input, SharedVariable))]
    inputs = [v for v in leaves if isinstance(v, Input)]
    missing = [v.name or str(v) for v in inputs if v not in at]
    if missing:
        raise GraphError(f"trace needs a value for every input; missing {', '.join(missing)}")
    nodes = _order(output, inputs)
    variables = leaves + [o for n in nodes for o in n.outputs]
    names = {v: f"v{k + 1}" for k, v in enumerate(variables)}
    values = [np.asarray(at[v], dtype=v.dtype) for v in inputs]
    evaluate = lambda outs: function(inputs, outs, optimize="none")(*values)  # noqa: E731

    rows = [Row(names[v], v.name or label_of(v), None, v) for v in leaves]
    for node in nodes:
        args = [(names[i], 11) if i in names else (label_of(i), 11) for i in node.inputs]
        for out in node.outputs:
            rows.append(Row(names[out], format_node(node.op, args)[0], None, out))
    for r, value in zip(rows, evaluate([r.variable for r in rows])):
        r.value = value

    floats = [r.variable for r in rows if is_float(r.variable.dtype)]
    edges, graphs = _edges(nodes, names)
    for edge, value in zip([e for e, g in graphs], evaluate([g for _, g in graphs]) if graphs else []):
        edge.partial = value

    steps: list[str] = []
    if mode == "forward":
        if seed is None:  # by default, the direction of the first input (all ones for a tensor)
            seed = {inputs[0]: np.ones(inputs[0].type.shape)} if inputs else {}
        seeds = {v: np.broadcast_to(np.asarray(seed.get(v, 0.0)), v.type.shape) for v in leaves if is_float(v.dtype)}
        tangents = jvp([r.variable for r in rows if is_float(r.variable.dtype)], list(seeds), list(seeds.values()))
        for r, t in zip([r for r in rows if is_float(r.variable.dtype)], evaluate(tangents)):
            r.tangent = t
        for r in rows:
            if r.variable.owner is None:
                r.tangent_expr = summarize(np.asarray(seeds.get(r.variable, 0.0)))
        for node in nodes:
            (out,) = node.outputs[:1]
            r = next(x for x in rows if x.variable is out)
            local = node.op.partials(node.inputs, out) if isinstance(node.op, Elementwise) else None
            terms = []
            for k, i in enumerate(node.inputs):
                if i not in names or not is_float(i.dtype):
                    continue
                if node.op is E.mul:  # keep the operand order: v̇1 * v2 + v1 * v̇2
                    other = names.get(node.inputs[1 - k], label_of(node.inputs[1 - k]))
                    terms.append(f"{dotted(names[i])} * {other}" if k == 0 else f"{other} * {dotted(names[i])}")
                elif local is None:
                    terms.append(f"∂{names[out]}/∂{names[i]} · {dotted(names[i])}")
                else:
                    text, _ = _term(dotted(names[i]), local[k], names)
                    if text is not None:
                        terms.append(text)
            r.tangent_expr = _join(terms)
    elif mode == "reverse":
        cot = (seed or {}).get(output, 1.0)
        adjoints = vjp(output, floats, cot)
        for r, a in zip([r for r in rows if is_float(r.variable.dtype)], evaluate(adjoints)):
            r.adjoint = a
        contributions: dict[Variable, list[str]] = {v: [] for v in variables}
        for node in reversed(nodes):
            out = node.out
            local = node.op.partials(node.inputs, out) if isinstance(node.op, Elementwise) else None
            for k, i in enumerate(node.inputs):
                if i not in names or not is_float(i.dtype):
                    continue
                if local is None:
                    text = f"{barred(names[out])} · ∂{names[out]}/∂{names[i]}"
                else:
                    text, _ = _term(barred(names[out]), local[k], names)
                if text is None:
                    continue
                first = not contributions[i]
                contributions[i].append(text)
                steps.append(f"{barred(names[i])} {'=' if first else '+='} {text}")
        for r in rows:
            if r.variable is output:
                r.adjoint_expr = summarize(np.asarray(cot))
                steps.insert(0, f"{barred(r.name)} = {r.adjoint_expr}")
            else:
                # contributions were collected in reverse order; show them in evaluation order
                r.adjoint_expr = _join(list(reversed(contributions[r.variable])))
    return Trace(output, rows, edges, mode, steps)


__all__ = ["trace", "Trace", "Row", "Edge", "summarize", "Constant"]
