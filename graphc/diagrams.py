"""Diagrams: DOT text for graphs, compiled functions and traces, and rendering it.

``gc.to_dot(obj)`` builds DOT as plain text, so it always works; ``gc.draw(obj, "out.svg")``
renders it with a ``dot`` program: ``$GRAPHC_DOT`` if set, else ``dot`` on the PATH (Debian's
graphviz), else the ``graphviz-pure`` command from PyPI (a dependency of graphc, so a plain pip
install can render SVG and PNG; it does not write PDF). Edge annotations use ``xlabel``: plain
``label`` on edges makes ``dot``'s layout several times slower.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sysconfig

from .errors import GraphcError
from .graph import Constant, Graph, Input, SharedVariable, Variable
from .ops.fused import Fused
from .printing import label_of
from .trace import Trace, barred, dotted, summarize

FORMATS = ("svg", "png", "pdf", "dot")
_STYLE = {
    "input": 'shape=ellipse, style=filled, fillcolor="#dbeafe"',
    "shared": 'shape=ellipse, style=filled, fillcolor="#fef3c7"',
    "constant": "shape=plaintext",
    "op": 'shape=box, style="rounded,filled", fillcolor="#f3f4f6"',
    "output": 'shape=box, style="rounded,filled,bold", fillcolor="#dcfce7"',
}


class RenderError(GraphcError, RuntimeError):
    """No program to render DOT with, or the program failed."""


def quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# ----- graphs -------------------------------------------------------------------------------
def _kind(v: Variable, outputs) -> str:
    if isinstance(v, Input):
        return "input"
    if isinstance(v, SharedVariable):
        return "shared"
    if isinstance(v, Constant):
        return "constant"
    return "output" if any(v is o for o in outputs) else "op"


def _graph_body(graph: Graph, prefix: str = "") -> list[str]:
    """DOT statements for a graph: one node per variable, fused kernels as clusters of their ops."""
    ids: dict[int, str] = {}
    lines: list[str] = []

    def node_id(v: Variable) -> str:
        if id(v) not in ids:
            ids[id(v)] = f"{prefix}n{len(ids)}"
            kind = _kind(v, graph.outputs)
            if v.owner is None:
                label = f"{label_of(v)}\n{v.type}" if kind != "constant" else label_of(v)
            else:
                op = v.owner.op
                suffix = f"[{v.index}]" if len(v.owner.outputs) > 1 else ""
                params = ", ".join(op.format_params())
                name = op.symbol or op.name
                label = f"{'fused' if isinstance(op, Fused) else name}{suffix}" + (f"\n{params}" if params else "")
                label = f"{label}\n{v.type}"
            lines.append(f"  {ids[id(v)]} [label={quote(label)}, {_STYLE[kind]}];")
        return ids[id(v)]

    for k, node in enumerate(graph.nodes):
        if isinstance(node.op, Fused):
            lines.extend(_kernel_cluster(node, f"{prefix}k{k}", node_id))
            continue
        outs = [node_id(o) for o in node.outputs]
        for i in node.inputs:
            src = node_id(i)
            for o in outs:
                lines.append(f"  {src} -> {o};")
    for o in graph.outputs:
        node_id(o)
    return lines


def _kernel_cluster(node, name: str, node_id) -> list[str]:
    """A fused kernel: a cluster holding its scalar program, fed by its inputs, feeding its results."""
    op: Fused = node.op
    lines = [f"  subgraph cluster_{name} {{", f"    label={quote(f'fused kernel ({len(op.program)} ops)')};"]
    lines.append('    style="rounded,dashed"; color="#6b7280";')
    refs = [node_id(i) for i in node.inputs]
    for k, (row, args) in enumerate(op.program):
        tid = f"{name}_t{k}"
        lines.append(f"    {tid} [label={quote(row.symbol or row.name)}, shape=circle, fontsize=10];")
        for a in args:
            lines.append(f"    {refs[a]} -> {tid};")
        refs.append(tid)
    lines.append("  }")
    for out, (ref, reduce) in zip(node.outputs, op.results):
        target = node_id(out)
        label = f", xlabel={quote(reduce.format_call(['']))}" if reduce is not None else ""
        lines.append(f"  {refs[ref]} -> {target}[style=bold{label}];")
    return lines


def graph_dot(graph: Graph, title: str | None = None) -> str:
    lines = ["digraph graphc {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=11];']
    if title:
        lines.append(f"  label={quote(title)}; labelloc=t;")
    return "\n".join(lines + _graph_body(graph) + ["}"])


def function_dot(f) -> str:
    """A compiled function before and after optimization, side by side."""
    lines = ["digraph graphc {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=11];', "  newrank=true;"]
    for key, graph, title in (("a_", f.unoptimized_graph, "before"), ("b_", f.graph, "after")):
        count = f"{len(graph.nodes)} node{'s' if len(graph.nodes) != 1 else ''}"
        lines += [f"  subgraph cluster_{key}side {{", f"  label={quote(f'{title} optimization: {count}')};"]
        lines += ["  " + line for line in _graph_body(graph, key)]
        lines.append("  }")
    return "\n".join(lines + ["}"])


# ----- traces -------------------------------------------------------------------------------
def trace_dot(tr: Trace) -> str:
    """The trace as a computation graph: values on the nodes, tangents or adjoints beside them,
    each edge labelled with its local partial ∂v_j/∂v_i, and the sweep order numbered."""
    lines = ["digraph trace {", "  rankdir=BT; ranksep=0.9; nodesep=1.4; forcelabels=true;"]
    lines.append('  node [fontname="Helvetica", fontsize=11]; edge [fontname="Helvetica", fontcolor="#1d4ed8"];')
    order = {r.name: k + 1 for k, r in enumerate(tr.rows if tr.mode != "reverse" else tr.adjoint_rows)}
    for r in tr.rows:
        label = [f"({order[r.name]}) {r.name} = {r.expr}", f"{r.name} = {summarize(r.value)}"]
        if tr.mode == "forward":
            label.append(f"{dotted(r.name)} = {summarize(r.tangent)}")
        if tr.mode == "reverse":
            label.append(f"{barred(r.name)} = {summarize(r.adjoint)}")
        kind = "input" if r.variable.owner is None else ("output" if r.variable is tr.output else "op")
        lines.append(f"  {r.name} [label={quote(chr(10).join(label))}, {_STYLE[kind]}];")
    for e in tr.edges:
        text = f"∂{e.target}/∂{e.source} = {e.partial_expr}"
        if e.partial is not None and not e.partial_expr.lstrip("-").isdigit():
            text += f" = {summarize(e.partial)}"
        direction = ", dir=back" if tr.mode == "reverse" else ""
        lines.append(f"  {e.source} -> {e.target} [xlabel={quote(text)}, fontsize=9{direction}];")
    return "\n".join(lines + ["}"])


def to_dot(obj) -> str:
    """DOT text for a Trace, a compiled Function, a Graph, or a variable or list of them."""
    from .function import Function

    if isinstance(obj, Trace):
        return trace_dot(obj)
    if isinstance(obj, Function):
        return function_dot(obj)
    if isinstance(obj, Graph):
        return graph_dot(obj)
    if isinstance(obj, Variable) or (isinstance(obj, (list, tuple)) and all(isinstance(v, Variable) for v in obj)):
        return graph_dot(Graph(obj))
    raise GraphcError(f"cannot draw {type(obj).__name__}; draw a variable, a Graph, a Function or a Trace")


# ----- rendering ------------------------------------------------------------------------------
def find_dot() -> str | None:
    """The program that renders DOT: $GRAPHC_DOT, then `dot`, then `graphviz-pure`."""
    if os.environ.get("GRAPHC_DOT"):
        return os.environ["GRAPHC_DOT"]
    scripts = pathlib.Path(sysconfig.get_path("scripts")) / "graphviz-pure"
    return shutil.which("dot") or shutil.which("graphviz-pure") or (str(scripts) if scripts.exists() else None)


def render(dot_text: str, fmt: str = "svg") -> bytes:
    """Render DOT text to ``fmt`` (svg, png, pdf) bytes."""
    program = find_dot()
    if program is None:
        raise RenderError(
            "no program to render DOT with: pip install graphviz-pure (SVG and PNG), or apt-get install "
            "graphviz (also PDF), or set GRAPHC_DOT to a dot executable"
        )
    if fmt == "pdf" and "graphviz-pure" in os.path.basename(program):
        raise RenderError("graphviz-pure cannot write PDF; install Debian's graphviz (apt-get install graphviz)")
    try:
        done = subprocess.run([program, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, timeout=120)
    except OSError as err:
        raise RenderError(f"could not run {program}: {err}") from err
    if done.returncode != 0:
        raise RenderError(f"{program} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def draw(obj, path) -> pathlib.Path:
    """Write ``obj`` as a diagram to ``path``; its suffix picks the format (.svg, .png, .pdf, .dot).

    Without a renderer the DOT text is still written (beside ``path``, as .dot) before the error.
    """
    path = pathlib.Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise RenderError(f"unknown diagram format {path.suffix!r}; use one of {', '.join('.' + f for f in FORMATS)}")
    text = to_dot(obj)
    if fmt == "dot":
        path.write_text(text, encoding="utf-8")
        return path
    try:
        path.write_bytes(render(text, fmt))
    except RenderError:
        path.with_suffix(".dot").write_text(text, encoding="utf-8")
        raise
    return path


def svg(obj) -> str | None:
    """SVG text for notebooks, or None when nothing can render it."""
    try:
        return render(to_dot(obj), "svg").decode()
    except RenderError:
        return None
