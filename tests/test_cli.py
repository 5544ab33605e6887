"""The ``graphc`` command end to end: ``graphc.cli.main(argv)`` in-process for the bulk, and the
console script and ``python -m graphc.cli`` in a subprocess for what only a real process shows
(exit codes, bytes on stdout, tracebacks).

No test can run arbitrary code: the hostile expressions only name harmless commands (``true``), and
``os.system``/``os.popen``/``subprocess`` are replaced by recorders while they are parsed.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import sysconfig

import pytest

from graphc.cli import main

LECTURE_PY = "x1*x2 + exp(x1*x2) - sin(x2)"  # Python's association: ((x1*x2 + exp(x1*x2)) - sin(x2))
LECTURE = "exp(x1*x2) + (x1*x2 - sin(x2))"  # the lecture's association and numbering
AT = ["--at", "x1=2", "--at", "x2=5"]
V7 = "22037.42471908138"
DV7_X1 = "110137.32897403359"
DV7_X2 = "44054.64792742797"
ADJ_V1 = "110137.32897403359"
ADJ_V2 = "44054.64792742797"
SCRIPT = pathlib.Path(sys.executable).with_name("graphc")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def run_exit(capsys, *argv: str) -> tuple[int, str, str]:
    """For argparse's exits (--help, usage errors): the SystemExit code and the output."""
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def process(*argv: str, module: bool = False, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "graphc.cli"] if module else [str(SCRIPT)]
    return subprocess.run(
        command + list(argv), capture_output=True, timeout=60, env={**os.environ, **(env or {})}, cwd=cwd
    )


def rows(text: str) -> dict[str, list[str]]:
    """The rows of a text trace table, by variable: cells are separated by two or more spaces."""
    table = {}
    for line in text.splitlines():
        if re.match(r"^v\d+\s", line):
            cells = re.split(r"\s{2,}", line.strip())
            table[cells[0]] = cells
    return table


def caret_column(err: str, expression: str) -> int:
    """The column (in characters of the expression) the caret under the echoed expression points at."""
    lines = err.splitlines()
    shown = expression.strip()
    assert "  " + shown in lines, err
    caret = lines[lines.index("  " + shown) + 1]
    assert re.fullmatch(r"  *\^", caret), err
    return caret.index("^") - 2


# ----- traces -----------------------------------------------------------------------------------
def test_trace_primal_table(capsys):
    rc, out, err = run(capsys, "trace", LECTURE_PY, *AT)
    assert rc == 0 and err == ""
    assert out.splitlines()[0].split() == ["variable", "expression", "value"]
    table = rows(out)
    assert list(table) == [f"v{k}" for k in range(1, 8)]
    assert table["v7"][-1] == V7
    assert table["v1"][1:] == ["x1", "2.0"] and table["v2"][1:] == ["x2", "5.0"]
    assert table["v3"][1:] == ["v1 * v2", "10.0"]


def test_trace_forward_seeds_the_first_input_by_default(capsys):
    rc, out, _ = run(capsys, "trace", LECTURE_PY, *AT, "--mode", "forward")
    assert rc == 0
    table = rows(out)
    assert len(table) == 7
    assert table["v7"][2] == V7
    assert table["v7"][-1] == DV7_X1
    assert table["v1"][-2:] == ["v̇1 = 1.0", "1.0"] and table["v2"][-2:] == ["v̇2 = 0.0", "0.0"]


def test_trace_forward_with_a_seed(capsys):
    rc, out, _ = run(capsys, "trace", LECTURE_PY, *AT, "--mode", "forward", "--seed", "x2=1")
    assert rc == 0
    table = rows(out)
    assert table["v7"][-1] == DV7_X2
    assert table["v1"][-1] == "0.0" and table["v2"][-1] == "1.0"


def test_trace_reverse_values_in_python_association(capsys):
    rc, out, _ = run(capsys, "trace", LECTURE_PY, *AT, "--mode", "reverse")
    assert rc == 0
    table = rows(out)
    assert len(table) == 7
    assert table["v1"][-1] == ADJ_V1 and table["v2"][-1] == ADJ_V2
    assert table["v7"][-2:] == ["v̄7 = 1.0", "1.0"]
    assert "adjoint sweep" in out


def test_trace_reverse_lecture_lines(capsys):
    rc, out, _ = run(capsys, "trace", LECTURE, *AT, "--mode", "reverse")
    assert rc == 0
    table = rows(out)
    assert table["v2"][-2:] == ["v̄2 = v̄3 * v1 + v̄4 * cos(v2)", ADJ_V2]
    assert table["v1"][-2:] == ["v̄1 = v̄3 * v2", ADJ_V1]
    assert table["v3"][1] == "v1 * v2" and table["v4"][1] == "sin(v2)" and table["v7"][1] == "v5 + v6"
    sweep = out.split("adjoint sweep", 1)[1].splitlines()
    assert "  v̄2 += v̄3 * v1" in sweep
    assert sweep[1] == "  v̄7 = 1.0"


@pytest.mark.parametrize(
    ("fmt", "markers"),
    [
        ("text", ["variable  expression  value", "v̄2 = v̄3 * v1 + v̄4 * cos(v2)", "adjoint sweep"]),
        (
            "md",
            [
                "| variable | expression | value |",
                "|---|",
                f"| v2 | x2 | 5.0 | v̄2 = v̄3 * v1 + v̄4 * cos(v2) | {ADJ_V2} |",
            ],
        ),
        ("latex", [r"\begin{tabular}", r"\end{tabular}", r"\bar{v}_{2} = \bar{v}_{3} \cdot v_{1}", r"\cos(v_{2})"]),
        ("html", ["<table", "</table>", "<td>v2</td>", f"<td>{ADJ_V2}</td>"]),
    ],
)
def test_trace_formats(capsys, fmt, markers):
    rc, out, _ = run(capsys, "trace", LECTURE, *AT, "--mode", "reverse", "--format", fmt)
    assert rc == 0
    for marker in markers:
        assert marker in out, marker
    if fmt == "md":
        table = [line for line in out.splitlines() if line]
        assert len(table) == 2 + 7 and all(line.startswith("|") and line.endswith("|") for line in table)
    if fmt == "text":
        _, default, _ = run(capsys, "trace", LECTURE, *AT, "--mode", "reverse")
        assert out == default


@pytest.mark.parametrize(
    ("name", "fmt", "marker"),
    [("t.md", None, "| v7 |"), ("t.tex", None, r"\begin{tabular}"), ("t.html", None, "<table"), ("t.txt", None, "v7  ")]
    + [("t.txt", "md", "| v7 |"), ("t.out", "latex", r"\begin{tabular}")],
)
def test_trace_output_file(capsys, tmp_path, name, fmt, marker):
    argv = ["trace", LECTURE, *AT, "-o", str(tmp_path / name)] + (["--format", fmt] if fmt else [])
    rc, out, _ = run(capsys, *argv)
    assert rc == 0 and out == ""
    text = (tmp_path / name).read_text(encoding="utf-8")
    assert marker in text and V7 in text


def test_trace_output_file_without_a_suffix_is_text(capsys, tmp_path):
    rc, _, err = run(capsys, "trace", LECTURE, *AT, "-o", str(tmp_path / "table"))
    assert rc == 0, err
    assert V7 in (tmp_path / "table").read_text(encoding="utf-8")


def test_trace_output_file_with_an_unknown_suffix_is_handled(capsys, tmp_path):
    """Either written as text or refused with a message: never a KeyError traceback."""
    rc, _, err = run(capsys, "trace", LECTURE, *AT, "-o", str(tmp_path / "table.xyz"))
    if rc == 0:
        assert V7 in (tmp_path / "table.xyz").read_text(encoding="utf-8")
    else:
        assert rc == 2 and "xyz" in err


# ----- diagrams ---------------------------------------------------------------------------------
def test_trace_format_dot_prints_dot(capsys):
    rc, out, _ = run(capsys, "trace", LECTURE, *AT, "--mode", "reverse", "--format", "dot")
    assert rc == 0
    assert out.startswith("digraph trace {")
    assert f"v̄2 = {ADJ_V2}" in out and "v2 -> v4 [xlabel=" in out


def test_trace_format_svg_prints_svg(capsys):
    rc, out, _ = run(capsys, "trace", LECTURE, *AT, "--format", "svg")
    assert rc == 0 and "<svg" in out and V7 in out


@pytest.mark.parametrize(
    ("name", "fmt", "magic"),
    [("t.svg", None, b"<svg"), ("t.png", None, b"\x89PNG"), ("t.dot", None, b"digraph"), ("t.svg", "svg", b"<svg")]
    + [("t.png", "png", b"\x89PNG"), ("t.dot", "dot", b"digraph trace")],
)
def test_trace_diagram_files(capsys, tmp_path, name, fmt, magic):
    argv = ["trace", LECTURE, *AT, "--mode", "forward", "-o", str(tmp_path / name)]
    rc, out, err = run(capsys, *argv + (["--format", fmt] if fmt else []))
    assert rc == 0, err
    data = (tmp_path / name).read_bytes()
    assert magic in data[:300]
    if name.endswith(".dot"):
        assert f"v̇7 = {DV7_X1}" in data.decode("utf-8")


def test_draw_graph_svg(capsys, tmp_path):
    rc, out, err = run(capsys, "draw", "tanh(x) * w", "-o", str(tmp_path / "g.svg"))
    assert rc == 0, err
    svg = (tmp_path / "g.svg").read_text(encoding="utf-8")
    assert "<svg" in svg and "tanh" in svg


def test_draw_graph_to_stdout_is_svg(capsys):
    rc, out, _ = run(capsys, "draw", "tanh(x) * w", "--at", "x=0.5", "--at", "w=2")
    assert rc == 0 and "<svg" in out and "tanh" in out


def test_draw_graph_dot(capsys, tmp_path):
    rc, _, _ = run(capsys, "draw", "tanh(x) * w", "-o", str(tmp_path / "g.dot"))
    assert rc == 0
    dot = (tmp_path / "g.dot").read_text(encoding="utf-8")
    assert dot.startswith("digraph graphc {")
    assert 'label="tanh\\nfloat64()"' in dot and 'label="x\\nfloat64()"' in dot


def test_draw_grad_shows_before_and_after(capsys, tmp_path):
    rc, _, err = run(capsys, "draw", LECTURE_PY, "--grad", "-o", str(tmp_path / "f.dot"))
    assert rc == 0, err
    dot = (tmp_path / "f.dot").read_text(encoding="utf-8")
    assert re.search(r'label="before optimization: \d+ nodes"', dot)
    assert re.search(r'label="after optimization: \d+ nodes?"', dot)
    assert "fused kernel" in dot


def test_draw_grad_of_a_vector_expression_takes_shapes_from_at(capsys, tmp_path):
    rc, _, err = run(capsys, "draw", "sum(x*x)", "--at", "x=[1,2,3]", "--grad", "-o", str(tmp_path / "f.dot"))
    assert rc == 0, err
    assert "x\\nfloat64(3,)" in (tmp_path / "f.dot").read_text(encoding="utf-8")


def test_draw_trace_reverse(capsys, tmp_path):
    rc, _, err = run(capsys, "draw", LECTURE, *AT, "--mode", "reverse", "-o", str(tmp_path / "t.dot"))
    assert rc == 0, err
    dot = (tmp_path / "t.dot").read_text(encoding="utf-8")
    assert dot.startswith("digraph trace {")
    assert f"v̄1 = {ADJ_V1}" in dot and f"v̄2 = {ADJ_V2}" in dot and "(1) v7 = v5 + v6" in dot


def test_draw_trace_forward_with_seed(capsys, tmp_path):
    argv = ["draw", LECTURE, *AT, "--mode", "forward", "--seed", "x2=1", "-o", str(tmp_path / "t.dot")]
    rc, _, err = run(capsys, *argv)
    assert rc == 0, err
    assert f"v̇7 = {DV7_X2}" in (tmp_path / "t.dot").read_text(encoding="utf-8")


def test_draw_trace_needs_values(capsys, tmp_path):
    rc, _, err = run(capsys, "draw", LECTURE, "--at", "x1=2", "--mode", "reverse", "-o", str(tmp_path / "t.dot"))
    assert rc == 2 and "x2" in err and "--at" in err
    assert not (tmp_path / "t.dot").exists()


def test_draw_output_without_a_suffix_is_svg(capsys, tmp_path):
    rc, _, err = run(capsys, "draw", "tanh(x) * w", "-o", str(tmp_path / "g"))
    assert rc == 0, err
    written = list(tmp_path.iterdir())
    assert len(written) == 1 and written[0].name in ("g", "g.svg")
    assert "<svg" in written[0].read_text(encoding="utf-8")


def test_draw_unknown_suffix_is_an_error(capsys, tmp_path):
    rc, _, err = run(capsys, "draw", "tanh(x) * w", "-o", str(tmp_path / "g.jpg2"))
    assert rc == 2 and "jpg2" in err


# ----- vector inputs ----------------------------------------------------------------------------
def test_vector_input_primal_and_reverse(capsys):
    rc, out, err = run(capsys, "trace", "sum(x*x)", "--at", "x=[1,2,3]")
    assert rc == 0, err
    table = rows(out)
    assert table["v1"][2] == "float64(3,) [1, 2, 3]" and table[list(table)[-1]][2] == "14.0"
    rc, out, err = run(capsys, "trace", "sum(x*x)", "--at", "x=[1,2,3]", "--mode", "reverse")
    assert rc == 0, err
    assert rows(out)["v1"][-1] == "float64(3,) [2, 4, 6]"


def test_vector_input_forward_default_seed(capsys):
    rc, out, err = run(capsys, "trace", "sum(x*x)", "--at", "x=[1,2,3]", "--mode", "forward")
    assert rc == 0, err
    assert "v̇3" in out


def test_vector_input_forward_with_a_vector_seed(capsys):
    rc, out, err = run(capsys, "trace", "sum(x*x)", "--at", "x=[1,2,3]", "--mode", "forward", "--seed", "x=[1,0,0]")
    assert rc == 0, err
    table = rows(out)
    assert table[list(table)[-1]][-1] == "2.0"  # d/dx1 of x1² + x2² + x3² at x1 = 1


def test_matrix_input(capsys):
    rc, out, err = run(capsys, "trace", "sum(m @ v)", "--at", "m=[[1,2],[3,4]]", "--at", "v=[1,1]")
    assert rc == 0, err
    assert rows(out)[list(rows(out))[-1]][2] == "10.0"


# ----- help and usage ---------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["--help"], ["trace", "--help"], ["draw", "--help"], ["-h"]])
def test_help(capsys, argv):
    code, out, _ = run_exit(capsys, *argv)
    assert code == 0
    assert out.startswith("usage: graphc")
    if argv[0] in ("trace", "draw"):
        assert f"usage: graphc {argv[0]}" in out and "--at" in out and "--mode" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trace"], "required: expression"),
        (["draw"], "required: expression"),
        ([], "required"),
        (["trace", "x", "--at", "x=1", "--mode", "backward"], "invalid choice: 'backward'"),
        (["draw", "x", "--at", "x=1", "--mode", "backward"], "invalid choice: 'backward'"),
        (["trace", "x", "--at", "x=1", "--format", "jpg"], "invalid choice: 'jpg'"),
        (["plot", "x"], "invalid choice: 'plot'"),
    ],
)
def test_usage_errors(capsys, argv, message):
    code, out, err = run_exit(capsys, *argv)
    assert code == 2
    assert "usage: graphc" in err and message in err


# ----- bad expressions --------------------------------------------------------------------------
BAD_EXPRESSIONS = [
    # (expression, what the message names, the token the caret points at)
    ("sinn(x2)", "unknown function 'sinn'", "sinn"),
    ("x1 + 2 * sinn(x2)", "unknown function 'sinn'", "sinn"),
    ("   sinn(x2)", "unknown function 'sinn'", "sinn"),
    ("x1 * (x2", "never closed", "("),
    ("x1 +* x2", "invalid", "*"),
    ("x1 + x2)", "unmatched", ")"),
    ("__import__('os').system('true')", "unknown function", "__import__"),
    ("x1 + __import__('os').popen('true')", "unknown function", "__import__"),
    ("x1 + x.__class__", "Attribute", "x.__class__"),
    ("exp(x1).__class__", "Attribute", "exp"),
    ("x1 + (lambda: 1)", "Lambda", "lambda"),
    ("x1 + x2[0]", "Subscript", "x2[0]"),
    ("x1 + 'abc'", "not allowed", "'abc'"),
    ('exp("x1")', "not allowed", '"x1"'),
    ("x1 + f'{x2}'", "not allowed", "f'"),
    ("open('/dev/null')", "unknown function 'open'", "open"),
    ("exp(eval('x1'))", "unknown function 'eval'", "eval"),
    ("exec('x1 = 1')", "unknown function 'exec'", "exec"),
    ("getattr(x1, 'real')", "unknown function 'getattr'", "getattr"),
    ("exp + 1", "exp is a function", "exp"),
    ("exp(x1, out=x2)", "keyword", "out=x2"),
    ("x1 if x2 else 1", "not allowed", "x1 if"),
    ("x1 < x2", "not allowed", "x1 < x2"),
    ("[x1, x2]", "not allowed", "["),
    ("x1 + 1j", "not allowed", "1j"),
    ("x1 and x2", "not allowed", "x1 and"),
    ("exp(x1, x2)", "exp", "exp"),
]


@pytest.fixture
def no_commands(monkeypatch):
    """Replace the ways to run a command by recorders: a test fails, rather than runs one."""
    calls: list[tuple] = []

    def recorder(*args, **kwargs):
        calls.append(args)
        raise AssertionError(f"graphc tried to run {args!r}")

    for target in (os, subprocess):
        for name in ("system", "popen", "Popen", "run", "call", "check_call", "check_output"):
            if hasattr(target, name):
                monkeypatch.setattr(target, name, recorder)
    yield calls
    assert calls == []


@pytest.mark.parametrize(("expression", "message", "token"), BAD_EXPRESSIONS)
def test_bad_expression(capsys, no_commands, expression, message, token):
    rc, out, err = run(capsys, "trace", expression, *AT)
    assert rc == 2
    assert out == ""
    assert err.startswith("graphc: error: ")
    assert message in err
    assert "Traceback" not in err
    assert caret_column(err, expression) == expression.strip().index(token)


def test_bad_expression_in_draw(capsys, no_commands):
    rc, out, err = run(capsys, "draw", "tanh(x) + sinn(x)")
    assert rc == 2 and out == "" and "unknown function 'sinn'" in err
    assert caret_column(err, "tanh(x) + sinn(x)") == 10


def test_caret_counts_characters_not_bytes(capsys):
    expression = "α*2 + sinn(x)"  # α is one character but two bytes of UTF-8
    rc, _, err = run(capsys, "trace", expression, "--at", "α=1", "--at", "x=1")
    assert rc == 2 and "sinn" in err
    assert caret_column(err, expression) == expression.index("sinn")


def test_unknown_function_lists_the_known_ones(capsys):
    _, _, err = run(capsys, "trace", "sinn(x2)", *AT)
    assert "sin" in err and "exp" in err and "tanh" in err


# ----- bad values -------------------------------------------------------------------------------
def test_missing_value_names_the_input(capsys):
    rc, out, err = run(capsys, "trace", LECTURE, "--at", "x1=2")
    assert rc == 2 and out == ""
    assert "missing values for x2" in err and "--at" in err


def test_missing_values_name_every_input(capsys):
    rc, _, err = run(capsys, "trace", "x1*x2*x3")
    assert rc == 2 and "x1" in err and "x2" in err and "x3" in err


@pytest.mark.parametrize(
    ("at", "message"),
    [
        ("x1", "NAME=VALUE"),
        ("=2", "NAME=VALUE"),
        ("1x=2", "NAME=VALUE"),
        ("x1=abc", "'abc' is not a number"),
        ("x1=", "is not a number"),
        ("x1=[1,", "is not a number"),
        ("x1=[1,[2]]", "is not a number"),
        ("x1=1j", "is not a number"),
        ("x1={1: 2}", "is not a number"),
        ("x1=__import__('os').system('true')", "is not a number"),
        ("x1=None", "is not a number"),
        ("x1='2'", "is not a number"),
    ],
)
def test_malformed_at_is_rejected(capsys, no_commands, at, message):
    rc, out, err = run(capsys, "trace", LECTURE, "--at", at, "--at", "x2=5")
    assert rc == 2 and out == ""
    assert err.startswith("graphc: error: --at") and message in err


def test_malformed_seed_is_rejected(capsys):
    rc, _, err = run(capsys, "trace", LECTURE, *AT, "--mode", "forward", "--seed", "x2")
    assert rc == 2 and "NAME=VALUE" in err


def test_seed_of_an_unknown_input_is_rejected(capsys):
    """A typo in --seed must not silently give all-zero tangents."""
    rc, out, err = run(capsys, "trace", LECTURE, *AT, "--mode", "forward", "--seed", "x3=1")
    assert rc == 2 and out == ""
    assert "x3" in err


def test_forward_trace_of_a_constant_expression(capsys):
    rc, out, err = run(capsys, "trace", "2 + 3", "--mode", "forward")
    assert rc in (0, 2), err
    if rc == 0:
        assert "5.0" in out
    else:
        assert err.startswith("graphc: error: ")


def test_operand_errors_point_at_the_expression(capsys):
    rc, _, err = run(capsys, "trace", "x1 @ x2", *AT)
    assert rc == 2 and "use * for scalars" in err
    assert caret_column(err, "x1 @ x2") == 0


# ----- real processes ---------------------------------------------------------------------------
def test_console_script_trace():
    done = process("trace", LECTURE_PY, *AT)
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode("utf-8")
    assert len(rows(out)) == 7 and rows(out)["v7"][-1] == V7


def test_python_m_graphc_cli():
    done = process("trace", LECTURE, *AT, "--mode", "reverse", "--format", "md", module=True)
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode("utf-8")
    assert f"| v2 | x2 | 5.0 | v̄2 = v̄3 * v1 + v̄4 * cos(v2) | {ADJ_V2} |" in out


def test_console_script_bad_expression_exit_code():
    done = process("trace", "x1 + __import__('os').system('true')", *AT)
    assert done.returncode == 2
    assert done.stdout == b""
    err = done.stderr.decode("utf-8")
    assert err.startswith("graphc: error: unknown function") and "Traceback" not in err
    assert caret_column(err, "x1 + __import__('os').system('true')") == 5


def test_console_script_errors_carry_no_python_location(tmp_path):
    """A command-line user made no mistake in a line of Python: the message must not point at one
    (here the PDF refusal of graphviz-pure used to end with 'at File ".../graphc", line 8: sys.exit(main())')."""
    pure = pathlib.Path(sysconfig.get_path("scripts")) / "graphviz-pure"
    assert pure.exists(), "graphviz-pure is a dependency of graphc"
    done = process("draw", "tanh(x) * w", "-o", str(tmp_path / "g.pdf"), env={"GRAPHC_DOT": str(pure)})
    assert done.returncode == 2
    err = done.stderr.decode("utf-8")
    assert err.startswith("graphc: error: ") and "PDF" in err and "apt-get install graphviz" in err
    assert "sys.exit" not in err and 'File "' not in err
    assert (tmp_path / "g.dot").exists()


def test_console_script_png_to_stdout_is_binary():
    """PNG on stdout must be the PNG's bytes (or the command must ask for -o), not text-decoded garbage."""
    done = process("trace", LECTURE, *AT, "--format", "png")
    if done.returncode == 0:
        assert done.stdout.startswith(b"\x89PNG\r\n\x1a\n"), done.stdout[:16]
    else:
        assert done.returncode == 2 and b"-o" in done.stderr


def test_console_script_long_expression_is_an_error_not_a_crash():
    expression = "+".join(["x"] * 3000)
    done = process("trace", expression, "--at", "x=1")
    assert done.returncode in (0, 2)
    assert b"Traceback" not in done.stderr and b"RecursionError" not in done.stderr


def test_train_goes_to_the_caffe_solver(tmp_path, capsys):
    from graphc import cli

    assert cli.main(["train", "--solver", str(tmp_path / "missing.prototxt")]) == 2
    assert "missing.prototxt" in capsys.readouterr().err
