"""Diagrams: ``gc.to_dot`` of graphs, compiled functions and traces, ``gc.draw`` and the notebook reprs.

The DOT text is parsed with a few regular expressions (graphc writes one statement a line), so the
tests check its structure, not its exact spelling. Rendering uses whatever ``find_dot`` finds: the
``graphviz-pure`` dependency when no system Graphviz is installed.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest

import graphc as gc
from graphc.ops.fused import Fused

# ``graphc.diagrams`` is the function re-exported by the package, which hides the submodule of the same
# name from attribute access: fetch the module itself to patch it.
draw_module = importlib.import_module("graphc.diagrams")

AT = (2.0, 5.0)
V7 = "22037.42471908138"
DV7_FORWARD = "110137.32897403359"
ADJ_V1 = "110137.32897403359"
ADJ_V2 = "44054.64792742797"
TRACE_EDGES = {
    ("v1", "v3"),
    ("v2", "v3"),
    ("v2", "v4"),
    ("v3", "v5"),
    ("v3", "v6"),
    ("v4", "v6"),
    ("v5", "v7"),
    ("v6", "v7"),
}


# ----- a small DOT reader -----------------------------------------------------------------------
_STRING = r'"(?:[^"\\]|\\.)*"'
_NODE = re.compile(rf"^\s*(\w+)\s*\[label=({_STRING})(.*)\];\s*$")
_EDGE = re.compile(r"^\s*(\w+)\s*->\s*(\w+)\s*(?:\[(.*)\])?\s*;\s*$")
_CLUSTER = re.compile(r"^\s*subgraph\s+(cluster_\w+)\s*\{\s*$")
_GRAPH_LABEL = re.compile(rf"^\s*label=({_STRING});")


def unquote(text: str) -> str:
    """A DOT double-quoted string's value, with graphviz's label escapes \\n, \\" and \\\\ undone."""
    assert text[0] == text[-1] == '"', text
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text[1:-1])


@dataclass
class Dot:
    text: str
    nodes: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (label, other attributes)
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # (source, target, attributes)
    clusters: dict[str, str] = field(default_factory=dict)  # cluster name -> its label
    members: dict[str, list[str]] = field(default_factory=dict)  # cluster name -> node ids declared inside
    parents: dict[str, list[str]] = field(default_factory=dict)  # cluster name -> enclosing clusters

    def label(self, node_id: str) -> str:
        return self.nodes[node_id][0]

    def first_line(self, node_id: str) -> str:
        return self.label(node_id).split("\n")[0]

    def edge_pairs(self) -> set[tuple[str, str]]:
        return {(s, t) for s, t, _ in self.edges}


def parse_dot(text: str) -> Dot:
    lines = text.splitlines()
    assert re.match(r"^digraph \w+ \{$", lines[0]), lines[0]
    assert lines[-1] == "}"
    dot = Dot(text)
    stack: list[str] = []
    for line in lines[1:-1]:
        if m := _CLUSTER.match(line):
            stack.append(m.group(1))
            dot.clusters[m.group(1)] = ""
            dot.members[m.group(1)] = []
            dot.parents[m.group(1)] = list(stack[:-1])
        elif line.strip() == "}":
            stack.pop()
        elif m := _NODE.match(line):
            assert m.group(1) not in dot.nodes, f"node {m.group(1)} declared twice"
            dot.nodes[m.group(1)] = (unquote(m.group(2)), m.group(3))
            for c in stack:
                dot.members[c].append(m.group(1))
        elif m := _EDGE.match(line):
            dot.edges.append((m.group(1), m.group(2), m.group(3) or ""))
        elif (m := _GRAPH_LABEL.match(line)) and stack:
            dot.clusters[stack[-1]] = unquote(m.group(1))
    assert not stack, "unbalanced braces"
    for s, t, _ in dot.edges:
        assert s in dot.nodes and t in dot.nodes, f"edge {s} -> {t} between undeclared nodes"
    return dot


def assert_edges_use_xlabel(dot: Dot):
    """Edges never carry a plain label= (it makes dot's layout several times slower)."""
    for s, t, attrs in dot.edges:
        assert not re.search(r"(?<![a-z])label\s*=", attrs), f"{s} -> {t} uses label=: {attrs}"


# ----- fixtures ---------------------------------------------------------------------------------
def lecture_python():
    """``x1*x2 + exp(x1*x2) - sin(x2)``, as Python associates it."""
    x1, x2 = gc.scalar("x1"), gc.scalar("x2")
    return x1, x2, x1 * x2 + gc.exp(x1 * x2) - gc.sin(x2)


def lecture_association():
    """``exp(x1*x2) + (x1*x2 - sin(x2))``: the lecture's numbering v1..v7."""
    x1, x2 = gc.scalar("x1"), gc.scalar("x2")
    return x1, x2, gc.exp(x1 * x2) + (x1 * x2 - gc.sin(x2))


def lecture_trace(mode: str) -> gc.Trace:
    x1, x2, y = lecture_association()
    return gc.trace(y, at={x1: AT[0], x2: AT[1]}, mode=mode)


def lecture_function():
    x1, x2, y = lecture_python()
    return gc.function([x1, x2], [y, *gc.grad(y, [x1, x2])])


@pytest.fixture
def no_renderer(monkeypatch):
    """Nothing to render DOT with: no $GRAPHC_DOT, an empty PATH, and no graphviz-pure."""
    monkeypatch.delenv("GRAPHC_DOT", raising=False)
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(draw_module, "find_dot", lambda: None)


@pytest.fixture
def graphviz_pure(monkeypatch):
    """$GRAPHC_DOT set to the graphviz-pure program (skips where a real dot would be found instead)."""
    monkeypatch.delenv("GRAPHC_DOT", raising=False)
    program = draw_module.find_dot()
    if program is None or "graphviz-pure" not in program:
        pytest.skip(
            f"find_dot() picks {program!r}, a real Graphviz dot on PATH, not graphviz-pure; "
            "this test is about graphviz-pure, which has no PDF writer"
        )
    monkeypatch.setenv("GRAPHC_DOT", program)
    return program


# ----- graphs -----------------------------------------------------------------------------------
def test_graph_dot_has_one_node_per_variable_and_the_expected_edges():
    x1, x2, y = lecture_association()
    dot = parse_dot(gc.to_dot(y))
    assert len(dot.nodes) == len(gc.Graph(y).variables()) == 7
    first = {n: dot.first_line(n) for n in dot.nodes}
    assert sorted(first.values()) == sorted(["x1", "x2", "*", "exp", "sin", "-", "+"])
    pairs = Counter((first[s], first[t]) for s, t, _ in dot.edges)
    assert pairs == Counter(
        [("x1", "*"), ("x2", "*"), ("*", "exp"), ("x2", "sin"), ("*", "-"), ("sin", "-"), ("exp", "+"), ("-", "+")]
    )
    assert_edges_use_xlabel(dot)


def test_graph_dot_of_a_variable_a_graph_and_a_list_agree():
    _, _, y = lecture_association()
    assert gc.to_dot(y) == gc.to_dot(gc.Graph(y)) == gc.to_dot([y])


def test_graph_dot_of_several_outputs_marks_each_output():
    x1, x2, y = lecture_association()
    z = gc.cos(x2)
    dot = parse_dot(gc.to_dot(gc.Graph([y, z])))
    outputs = [n for n, (_, attrs) in dot.nodes.items() if "bold" in attrs]
    assert sorted(dot.first_line(n) for n in outputs) == ["+", "cos"]


def test_graph_dot_labels_show_ops_dtypes_shapes_and_params():
    v = gc.vector("v", shape=(3,))
    m = gc.matrix("m", shape=(None, 3), dtype="float32")
    w = gc.shared(np.ones(3), name="w")
    y = gc.sum(m @ (v * w), axis=0) * 2.0
    dot = parse_dot(gc.to_dot(y))
    labels = {dot.label(n) for n in dot.nodes}
    assert "v\nfloat64(3,)" in labels
    assert "m\nfloat32(?, 3)" in labels
    assert "w\nfloat64(3,)" in labels
    assert "@\nfloat64(?,)" in labels
    assert "sum\naxis=0\nfloat64()" in labels
    assert "*\nfloat64()" in labels
    assert "2.0" in labels  # a constant shows its value
    assert len(dot.nodes) == len(gc.Graph(y).variables())


def test_graph_dot_styles_inputs_shared_constants_ops_and_outputs_differently():
    v = gc.vector("v", shape=(3,))
    w = gc.shared(np.ones(3), name="w")
    y = gc.sum(gc.tanh(v * w)) * 2.0
    dot = parse_dot(gc.to_dot(y))
    style = {dot.first_line(n): attrs for n, (_, attrs) in dot.nodes.items()}
    assert "ellipse" in style["v"] and "box" in style["tanh"]
    assert "plaintext" in style["2.0"]
    assert len({style["v"], style["w"], style["2.0"], style["tanh"], style["*"]}) == 5
    assert "bold" in style["*"] and "bold" not in style["tanh"]  # the output stands out


@pytest.mark.parametrize("name", ['say "hi"', "back\\slash", "two\nlines", 'all "\\\n" three', "trailing\\"])
def test_graph_dot_quotes_labels(name):
    x = gc.scalar(name)
    text = gc.to_dot(gc.exp(x))
    dot = parse_dot(text)  # every statement still parses: the quotes are balanced
    assert f"{name}\nfloat64()" in {dot.label(n) for n in dot.nodes}
    plain = gc.to_dot(gc.exp(gc.scalar("plain")))
    assert len(text.splitlines()) == len(plain.splitlines())  # a newline in a label is written \\n


def test_graph_dot_with_quotes_renders():
    x = gc.scalar('a"b\\c\nd')
    svg = draw_module.render(gc.to_dot(gc.exp(x)), "svg").decode()
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert "a&quot;b\\c" in texts and "d" in texts  # the quote and backslash kept, the newline a line break


def test_to_dot_of_an_unsupported_object_raises():
    with pytest.raises(gc.GraphcError, match="cannot draw int"):
        gc.to_dot(3)
    _, _, y = lecture_association()
    with pytest.raises(gc.GraphcError):
        gc.to_dot([y, 3])
    with pytest.raises(gc.GraphcError):
        gc.to_dot("y")


# ----- compiled functions -----------------------------------------------------------------------
def _cluster_count(title: str) -> int:
    m = re.search(r": (\d+) nodes?$", title)
    assert m, title
    return int(m.group(1))


def test_function_dot_has_before_and_after_clusters_with_node_counts():
    f = lecture_function()
    dot = parse_dot(gc.to_dot(f))
    top = [c for c in dot.clusters if not dot.parents[c]]
    assert len(top) == 2
    titles = {dot.clusters[c].split(":")[0]: c for c in top}
    assert set(titles) == {"before optimization", "after optimization"}
    before, after = titles["before optimization"], titles["after optimization"]
    assert _cluster_count(dot.clusters[before]) == len(f.unoptimized_graph.nodes)
    assert _cluster_count(dot.clusters[after]) == len(f.graph.nodes)
    assert len(f.graph.nodes) < len(f.unoptimized_graph.nodes)
    # one node per variable on each side (plus, after, the kernel's scalar ops)
    assert len(dot.members[before]) == len(f.unoptimized_graph.variables())
    kernels = [n for n in f.graph.nodes if isinstance(n.op, Fused)]
    program_ops = sum(len(n.op.program) for n in kernels)
    assert len(dot.members[after]) == len(f.graph.variables()) + program_ops
    assert set(dot.members[before]).isdisjoint(dot.members[after])
    assert_edges_use_xlabel(dot)


def test_function_dot_draws_the_fused_kernel_as_a_cluster_of_its_scalar_ops():
    f = lecture_function()
    dot = parse_dot(gc.to_dot(f))
    kernels = [n for n in f.graph.nodes if isinstance(n.op, Fused)]
    assert len(kernels) == 1
    program = kernels[0].op.program
    clusters = [c for c in dot.clusters if dot.parents[c]]
    assert len(clusters) == 1
    (kernel,) = clusters
    assert dot.clusters[kernel] == f"fused kernel ({len(program)} ops)"
    assert [dot.label(n) for n in dot.members[kernel]] == [row.symbol or row.name for row, _ in program]
    assert "exp" in {dot.label(n) for n in dot.members[kernel]}
    # each scalar op is fed by as many edges as it has arguments
    into = Counter(t for _, t, _ in dot.edges)
    assert [into[n] for n in dot.members[kernel]] == [len(args) for _, args in program]
    # and the kernel feeds the function's three outputs
    from_kernel = [t for s, t, _ in dot.edges if s in dot.members[kernel] and t not in dot.members[kernel]]
    assert len(from_kernel) == len(f.outputs) == 3


def test_function_dot_of_a_value_only_function():
    x1, x2, y = lecture_python()
    f = gc.function([x1, x2], y)
    dot = parse_dot(gc.to_dot(f))
    titles = sorted(dot.clusters[c] for c in dot.clusters if not dot.parents[c])
    assert titles[0].startswith("after optimization: ") and titles[1] == "before optimization: 5 nodes"


def test_function_dot_without_optimization_has_no_kernel():
    x1, x2, y = lecture_python()
    f = gc.function([x1, x2], y, optimize="none")
    dot = parse_dot(gc.to_dot(f))
    assert all(not dot.parents[c] for c in dot.clusters)
    assert len(dot.clusters) == 2


# ----- traces -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["primal", "forward", "reverse"])
def test_trace_dot_nodes_values_and_edges(mode):
    dot = parse_dot(gc.to_dot(lecture_trace(mode)))
    assert set(dot.nodes) == {f"v{k}" for k in range(1, 8)}
    assert f"v7 = {V7}" in dot.label("v7").split("\n")
    assert "v3 = 10.0" in dot.label("v3").split("\n")
    assert "v2 = x2" in dot.first_line("v2")
    assert "v3 = v1 * v2" in dot.first_line("v3")
    assert dot.edge_pairs() == TRACE_EDGES
    assert len(dot.edges) == len(TRACE_EDGES)
    assert_edges_use_xlabel(dot)
    assert "ellipse" in dot.nodes["v1"][1] and "ellipse" not in dot.nodes["v3"][1]


def test_trace_dot_edges_carry_local_partials_as_xlabels():
    dot = parse_dot(gc.to_dot(lecture_trace("reverse")))
    xlabels = {}
    for s, t, attrs in dot.edges:
        m = re.search(rf"xlabel=({_STRING})", attrs)
        assert m, f"{s} -> {t} has no xlabel"
        xlabels[s, t] = unquote(m.group(1))
    assert "cos(v2)" in xlabels["v2", "v4"]
    assert "0.2836621854632262" in xlabels["v2", "v4"]
    assert xlabels["v2", "v4"].startswith("∂v4/∂v2")
    assert "v2" in xlabels["v1", "v3"] and "5.0" in xlabels["v1", "v3"]
    assert "v1" in xlabels["v2", "v3"] and "2.0" in xlabels["v2", "v3"]
    assert xlabels["v4", "v6"].endswith("-1")
    assert xlabels["v5", "v7"].endswith("1")


def test_trace_dot_forward_shows_tangents():
    dot = parse_dot(gc.to_dot(lecture_trace("forward")))
    assert f"v̇7 = {DV7_FORWARD}" in dot.label("v7").split("\n")
    assert "v̇1 = 1.0" in dot.label("v1").split("\n")
    assert "v̇2 = 0.0" in dot.label("v2").split("\n")
    assert all("v̄" not in dot.label(n) for n in dot.nodes)


def test_trace_dot_reverse_shows_adjoints():
    dot = parse_dot(gc.to_dot(lecture_trace("reverse")))
    assert f"v̄1 = {ADJ_V1}" in dot.label("v1").split("\n")
    assert f"v̄2 = {ADJ_V2}" in dot.label("v2").split("\n")
    assert "v̄7 = 1.0" in dot.label("v7").split("\n")
    assert all("v̇" not in dot.label(n) for n in dot.nodes)


def test_trace_dot_primal_has_no_tangents_or_adjoints():
    dot = parse_dot(gc.to_dot(lecture_trace("primal")))
    for n in dot.nodes:
        assert len(dot.label(n).split("\n")) == 2
        assert "v̇" not in dot.label(n) and "v̄" not in dot.label(n)


@pytest.mark.parametrize("mode", ["primal", "forward", "reverse"])
def test_trace_dot_numbers_the_sweep_order(mode):
    dot = parse_dot(gc.to_dot(lecture_trace(mode)))
    order = {}
    for n in dot.nodes:
        m = re.match(r"^\((\d+)\) ", dot.first_line(n))
        assert m, dot.first_line(n)
        order[n] = int(m.group(1))
    assert sorted(order.values()) == list(range(1, 8))
    if mode == "reverse":
        assert order == {f"v{k}": 8 - k for k in range(1, 8)}  # v7 first
    else:
        assert order == {f"v{k}": k for k in range(1, 8)}


# ----- draw -------------------------------------------------------------------------------------
def test_draw_dot_writes_the_dot_text(tmp_path):
    _, _, y = lecture_association()
    path = gc.draw(y, tmp_path / "g.dot")
    assert path == tmp_path / "g.dot"
    assert path.read_text(encoding="utf-8") == gc.to_dot(y)


def test_draw_dot_of_a_trace_is_utf8(tmp_path):
    tr = lecture_trace("reverse")
    gc.draw(tr, tmp_path / "t.dot")
    assert (tmp_path / "t.dot").read_text(encoding="utf-8") == gc.to_dot(tr)


def test_draw_svg_and_png(tmp_path):
    _, _, y = lecture_association()
    svg = gc.draw(y, str(tmp_path / "g.svg")).read_bytes()
    assert svg.startswith(b"<?xml") or b"<svg" in svg
    assert b"</svg>" in svg
    png = gc.draw(lecture_trace("forward"), tmp_path / "t.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_draw_svg_of_a_function_and_a_trace(tmp_path):
    gc.draw(lecture_function(), tmp_path / "f.svg")
    assert "after optimization" in (tmp_path / "f.svg").read_text(encoding="utf-8")
    gc.draw(lecture_trace("reverse"), tmp_path / "t.svg")
    assert ADJ_V2 in (tmp_path / "t.svg").read_text(encoding="utf-8")


def test_draw_pdf_with_only_graphviz_pure_says_how_to_get_pdf(tmp_path, graphviz_pure):
    _, _, y = lecture_association()
    with pytest.raises(gc.RenderError) as info:
        gc.draw(y, tmp_path / "g.pdf")
    message = str(info.value)
    assert "PDF" in message and "apt-get install graphviz" in message
    assert not (tmp_path / "g.pdf").exists()
    assert (tmp_path / "g.dot").read_text(encoding="utf-8") == gc.to_dot(y)


def test_draw_without_a_renderer_says_how_to_install_one_and_keeps_the_dot(tmp_path, no_renderer):
    _, _, y = lecture_association()
    with pytest.raises(gc.RenderError) as info:
        gc.draw(y, tmp_path / "x.svg")
    message = str(info.value)
    assert "pip install graphviz-pure" in message
    assert "apt-get install graphviz" in message
    assert not (tmp_path / "x.svg").exists()
    assert (tmp_path / "x.dot").read_text(encoding="utf-8") == gc.to_dot(y)


def test_draw_dot_needs_no_renderer(tmp_path, no_renderer):
    _, _, y = lecture_association()
    gc.draw(y, tmp_path / "x.dot")
    assert (tmp_path / "x.dot").read_text(encoding="utf-8") == gc.to_dot(y)


def test_draw_unknown_suffix_raises(tmp_path):
    _, _, y = lecture_association()
    with pytest.raises(gc.RenderError, match="jpg2"):
        gc.draw(y, tmp_path / "x.jpg2")
    assert list(tmp_path.iterdir()) == []


def test_draw_with_a_missing_program_raises_render_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_DOT", str(tmp_path / "no-such-dot"))
    _, _, y = lecture_association()
    with pytest.raises(gc.RenderError, match="no-such-dot"):
        gc.draw(y, tmp_path / "x.svg")
    assert (tmp_path / "x.dot").exists()


def test_draw_with_a_failing_program_raises_render_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_DOT", "false")
    _, _, y = lecture_association()
    with pytest.raises(gc.RenderError, match="failed"):
        gc.draw(y, tmp_path / "x.png")


def test_rendering_a_50_node_graph(tmp_path):
    x1, x2 = gc.scalar("x1"), gc.scalar("x2")
    z = x1
    for k in range(50):
        z = gc.sin(z) * x2 if k % 2 else z + x1 * float(k)
    assert len(gc.Graph(z).nodes) >= 50
    svg = gc.draw(z, tmp_path / "big.svg").read_text(encoding="utf-8")
    assert "<svg" in svg and svg.count('class="node"') == len(gc.Graph(z).variables())


# ----- notebook reprs ---------------------------------------------------------------------------
def test_repr_svg_of_graph_function_and_trace():
    x1, x2, y = lecture_python()
    for obj in (gc.Graph(y), gc.function([x1, x2], y), lecture_trace("reverse")):
        svg = obj._repr_svg_()
        assert isinstance(svg, str), type(obj)
        assert "<svg" in svg and "</svg>" in svg


def test_repr_svg_without_a_renderer_is_none(no_renderer):
    _, _, y = lecture_python()
    assert gc.Graph(y)._repr_svg_() is None
    assert lecture_trace("primal")._repr_svg_() is None


def test_draw_dot_is_utf8_whatever_the_locale(tmp_path):
    """DOT files are UTF-8 (graphviz's default charset), even where the locale's encoding is ASCII
    (or cp1252 on Windows): the trace's labels hold ∂, v̇ and v̄."""
    code = (
        "import sys, graphc as gc\n"
        "x1, x2 = gc.scalar('x1'), gc.scalar('x2')\n"
        "y = gc.exp(x1 * x2) + (x1 * x2 - gc.sin(x2))\n"
        "gc.draw(gc.trace(y, at={x1: 2.0, x2: 5.0}, mode='reverse'), sys.argv[1])\n"
    )
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "t.dot")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "t.dot").read_text(encoding="utf-8") == gc.to_dot(lecture_trace("reverse"))
