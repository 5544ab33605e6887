"""Tables as text, Markdown, LaTeX and HTML, for traces and reports."""

from __future__ import annotations

import re
import unicodedata
from html import escape

_FUNCTIONS = ("exp", "log", "sin", "cos", "tan", "tanh", "sqrt")


def width(text: str) -> int:
    """Columns a string takes on screen: combining marks (the dot of v̇, the bar of v̄) take none."""
    return sum(not unicodedata.combining(ch) for ch in text)


def _pad(text: str, columns: int) -> str:
    return text + " " * (columns - width(text))


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(width(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["  ".join(_pad(h, w) for h, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(_pad(str(c), w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(c) -> str:
        return str(c).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="graphc-trace"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def latex_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [r"\begin{tabular}{" + "l" * len(header) + "}", " & ".join(header) + r" \\", r"\hline"]
    lines += [" & ".join(f"${c}$" if c else "" for c in row) + r" \\" for row in rows]
    lines.append(r"\end{tabular}")
    return "\n".join(lines)


def latex_name(name: str) -> str:
    """v3 -> v_{3}, v̇3 -> \\dot{v}_{3}, v̄3 -> \\bar{v}_{3}."""
    match = re.fullmatch(r"([a-z])(\u0307|\u0304)?(\d+)", name)
    if not match:
        return name
    letter, mark, index = match.groups()
    base = {"\u0307": rf"\dot{{{letter}}}", "\u0304": rf"\bar{{{letter}}}"}.get(mark, letter)
    return f"{base}_{{{index}}}"


def latex_expr(expr: str | None) -> str:
    """An expression of trace names in LaTeX: names, functions and products."""
    if expr is None:
        return ""
    out = re.sub(r"[a-z][\u0307\u0304]?\d+", lambda m: latex_name(m.group(0)), expr)
    for f in _FUNCTIONS:
        out = re.sub(rf"\b{f}\(", rf"\\{f}(", out)
    return out.replace(" * ", r" \cdot ").replace("∂", r"\partial ").replace("·", r"\cdot")
