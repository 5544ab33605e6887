"""Readable text for graphs: one-line expressions and numbered SSA listings.

The listing numbers variables ``v1, v2, ...`` with the inputs first, the notation of the lecture
notes' evaluation traces (``v1 = x1``, ``v2 = x2``, ``v3 = v1 * v2``).
"""

from __future__ import annotations

import sys

import numpy as np

from .graph import Constant, Input, SharedVariable, Variable, _as_list, graph_inputs, toposort

_ATOM = 11  # Python's precedence levels: comparisons 4, | 5, & 6, + - 7, * / @ 8, unary 9, ** 10
_UNARY = 9
_COMPARISON = 4


def literal(value: np.ndarray) -> str | None:
    """A constant as source text when it is short enough to read inline, else None."""
    if value.ndim == 0:
        return _scalar_text(value)
    if value.size <= 4 and value.ndim == 1:
        return "[" + ", ".join(_scalar_text(v) for v in value) + "]"
    return None


def _scalar_text(value) -> str:
    """The shortest text that reads back as this value in its own dtype: a float32 0.9 is "0.9"."""
    value = np.asarray(value)
    if value.dtype == np.float32:
        return np.format_float_positional(value[()], unique=True, trim="0")
    return repr(value.item())


def label_of(v: Variable) -> str:
    """A short name for a variable on its own: its name, its value, or its op."""
    if isinstance(v, Constant):
        return literal(v.value) or f"constant {v.type}"
    if v.owner is not None:
        return v.name or v.owner.op.name
    return v.name or ("shared" if isinstance(v, SharedVariable) else "input")


def format_node(op, args: list[tuple[str, int]]) -> tuple[str, int]:
    """Text for ``op`` applied to arguments given as (text, precedence); returns (text, precedence)."""
    prec = op.precedence
    if op.symbol and len(args) == 2:
        (left, lp), (right, rp) = args
        # ** groups to the right and comparisons chain, so those need parentheses on the left at
        # equal precedence; everything else groups to the left and needs them on the right.
        if lp < prec or (lp == prec and prec in (10, _COMPARISON)):
            left = f"({left})"
        if rp < prec or (rp == prec and prec != 10):
            right = f"({right})"
        return f"{left} {op.symbol} {right}", prec
    if op.symbol and len(args) == 1:
        (arg, ap) = args[0]
        return f"{op.symbol}{arg}" if ap >= prec else f"{op.symbol}({arg})", prec
    return op.format_call([a for a, _ in args]), _ATOM


def leaf_text(v: Variable) -> tuple[str, int]:
    """A leaf's text and precedence: a negative literal binds like a unary minus."""
    label = label_of(v)
    return label, _UNARY if label.startswith("-") else _ATOM


def expression(v: Variable, budget: int = 200, names: dict | None = None) -> str:
    """``v`` as one expression; shared subexpressions are repeated, so the text is cut at ``budget`` nodes."""
    return expression_and_precedence(v, budget, names)[0]


def expression_and_precedence(v: Variable, budget: int = 200, names: dict | None = None) -> tuple[str, int]:
    """:func:`expression` and its binding strength; variables in ``names`` print as those names."""
    remaining = [budget]
    names = names or {}

    def text(var: Variable) -> tuple[str, int]:
        if var in names:
            return names[var], _ATOM
        if var.owner is None:
            return leaf_text(var)
        if remaining[0] <= 0:
            return "…", _ATOM
        remaining[0] -= 1
        return format_node(var.owner.op, [text(i) for i in var.owner.inputs])

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * budget + 100))
    try:
        return text(v)
    finally:
        sys.setrecursionlimit(limit)


def pformat(outputs, inputs=None, types: bool = False) -> str:
    """The graph of ``outputs`` as numbered SSA lines, inputs first, ending with the outputs."""
    outs = _as_list(outputs)
    leaves = list(inputs or []) + [v for v in graph_inputs(outs) if v not in set(inputs or [])]
    names: dict[Variable, str] = {}
    lines: list[str] = []

    def emit(v: Variable, rhs: str) -> None:
        names[v] = f"v{len(names) + 1}"
        lines.append(f"{names[v]} = {rhs}" + (f"    # {v.type}" if types else ""))

    unnamed = 0
    for leaf in leaves:
        if isinstance(leaf, Constant) and leaf.ndim == 0:
            continue  # scalars read best inline
        if isinstance(leaf, Constant):
            emit(leaf, label_of(leaf))
        elif leaf.name:
            emit(leaf, leaf.name)
        else:
            unnamed += 1
            emit(leaf, f"{'shared' if isinstance(leaf, SharedVariable) else 'x'}_{unnamed}")

    def ref(v: Variable) -> tuple[str, int]:
        return (names[v], _ATOM) if v in names else leaf_text(v)

    for node in toposort(outs):
        args = [ref(i) for i in node.inputs]
        rhs, _ = format_node(node.op, args)
        if len(node.outputs) == 1:
            emit(node.out, rhs)
        else:
            for out in node.outputs:
                names[out] = f"v{len(names) + 1}"
            types_note = f"    # {', '.join(str(o.type) for o in node.outputs)}" if types else ""
            lines.append(f"{', '.join(names[o] for o in node.outputs)} = {rhs}{types_note}")
        body = getattr(node.op, "body_lines", None)
        if body is not None:
            lines.extend("    " + line for line in body([a for a, _ in args], [names[o] for o in node.outputs]))
    lines.append("return " + ", ".join(ref(v)[0] for v in outs))
    return "\n".join(lines)


def pprint(outputs, inputs=None, types: bool = False, file=None) -> None:
    """Print :func:`pformat` of ``outputs``."""
    print(pformat(outputs, inputs=inputs, types=types), file=file)


__all__ = ["expression", "pformat", "pprint", "label_of", "Input"]
