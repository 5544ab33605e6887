"""The ``graphc`` command: traces and diagrams of an expression typed on the command line.

    graphc trace "x1*x2 + exp(x1*x2) - sin(x2)" --at x1=2 --at x2=5 --mode reverse --format md
    graphc draw "tanh(x) * w" --at x=0.5 --at w=2 -o graph.svg

Expressions are parsed safely: Python's ``ast`` with a whitelist of numbers, names, arithmetic
and graphc's elementwise functions; never ``eval``. A bad expression gets a message that points
at the offending token.
"""

from __future__ import annotations

import argparse
import ast
import os
import pathlib
import sys

import numpy as np

from . import ops
from .errors import GraphcError

_FUNCTION_NAMES = [
    "exp",
    "log",
    "log1p",
    "expm1",
    "sin",
    "cos",
    "tan",
    "tanh",
    "sqrt",
    "abs",
    "sign",
    "square",
    "sigmoid",
    "relu",
    "softplus",
    "erf",
    "gelu",
    "maximum",
    "minimum",
    "where",
    "clip",
    "pow",
    "sum",
    "mean",
    "prod",
    "max",
    "min",
    "logsumexp",
    "softmax",
    "log_softmax",
]
FUNCTIONS = {name: getattr(ops, name) for name in _FUNCTION_NAMES}
BINARY = {ast.Add: "__add__", ast.Sub: "__sub__", ast.Mult: "__mul__", ast.Div: "__truediv__", ast.Pow: "__pow__"}
BINARY[ast.MatMult] = "__matmul__"
UNARY = {ast.USub: "__neg__", ast.UAdd: "__pos__"}


class ExpressionError(GraphcError, ValueError):
    """An expression the command line cannot turn into a graph."""

    auto_location = False  # the mistake is in the command line, not in a line of Python


def _point(text: str, node: ast.AST, message: str) -> ExpressionError:
    lines = text.splitlines() or [""]
    line = lines[min(getattr(node, "lineno", 1), len(lines)) - 1]
    col = len(line.encode()[: getattr(node, "col_offset", 0)].decode(errors="ignore"))  # ast counts bytes
    return ExpressionError(f"{message}\n  {line}\n  {' ' * col}^")


def parse(text: str, values: dict[str, np.ndarray]):
    """``text`` as a graph over inputs named by its free names; returns (output, inputs by name).

    An input takes the shape and dtype of its value in ``values`` (a scalar by default).
    """
    from .inputs import tensor

    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (RecursionError, MemoryError):
        raise ExpressionError("the expression is too deeply nested") from None
    except SyntaxError as err:
        caret = " " * max((err.offset or 1) - 1, 0)
        raise ExpressionError(f"invalid expression: {err.msg}\n  {text.strip()}\n  {caret}^") from None
    text = text.strip()
    inputs: dict[str, object] = {}

    def build(node):
        if isinstance(node, ast.Expression):
            return build(node.body)
        if isinstance(node, ast.Constant):
            if type(node.value) in (int, float):
                try:
                    return float(node.value)
                except OverflowError:
                    raise _point(text, node, "this number is too large for a float64") from None
            raise _point(text, node, f"{node.value!r} is not allowed: constants must be numbers")
        if isinstance(node, ast.Name):
            if node.id in FUNCTIONS:
                raise _point(text, node, f"{node.id} is a function: call it, e.g. {node.id}(x)")
            if node.id not in inputs:
                value = np.asarray(values.get(node.id, 0.0), dtype=np.float64)
                inputs[node.id] = tensor(node.id, shape=value.shape)
            return inputs[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
            left, right = build(node.left), build(node.right)
            left = ops.as_variable(left) if isinstance(left, float) else left
            try:
                return getattr(left, BINARY[type(node.op)])(right)
            except GraphcError as err:
                raise _point(text, node, err.detail) from None
        if isinstance(node, ast.UnaryOp) and type(node.op) in UNARY:
            operand = build(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
                known = ", ".join(sorted(FUNCTIONS))
                raise _point(text, node.func, f"unknown function {name!r}; known: {known}")
            if node.keywords:
                raise _point(text, node.keywords[0], "keyword arguments are not supported")
            # an int literal argument stays an int: it is an axis, as in sum(x, 0)
            args = [a.value if isinstance(a, ast.Constant) and type(a.value) is int else build(a) for a in node.args]
            try:
                return FUNCTIONS[node.func.id](*args)
            except GraphcError as err:
                raise _point(text, node, f"{node.func.id}: {err.detail}") from None
        raise _point(text, node, f"{type(node).__name__} is not allowed in an expression")

    try:
        output = build(tree)
    except RecursionError:
        raise ExpressionError("the expression is too deeply nested") from None
    if isinstance(output, float):
        output = ops.as_variable(output)
    return output, inputs


def _assignment(text: str) -> tuple[str, np.ndarray]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip().isidentifier():
        raise ExpressionError(f"--at expects NAME=VALUE (e.g. x1=2 or x=[1,2,3]), got {text!r}")
    message = f"--at {name.strip()}: {value.strip()!r} is not a number or a list of numbers"
    try:
        parsed = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError, TypeError, RecursionError):
        raise ExpressionError(message) from None
    try:
        if not _numeric(parsed):
            raise ValueError(parsed)
        return name.strip(), np.asarray(parsed, dtype=np.float64)
    except (ValueError, OverflowError):  # not numbers, ragged lists, or too large
        raise ExpressionError(message) from None


def _numeric(value) -> bool:
    if isinstance(value, (list, tuple)):
        return len(value) > 0 and all(_numeric(v) for v in value)
    return type(value) in (int, float)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphc", description="Traces and diagrams of expressions; training of Caffe-style nets."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", add_help=False, help="train a Caffe-style net with its solver file (--solver FILE)")
    tr = sub.add_parser("trace", help="the evaluation trace (primal, tangent or adjoint table)")
    dr = sub.add_parser("draw", help="a diagram of the graph, or of its trace with --mode")
    cp = sub.add_parser("compare", help="forward, reverse, symbolic and numeric derivatives side by side")
    for p in (tr, dr, cp):
        p.add_argument("expression", help='e.g. "x1*x2 + exp(x1*x2) - sin(x2)"')
        p.add_argument("--at", action="append", default=[], metavar="NAME=VALUE", help="an input value (repeat)")
        p.add_argument("--seed", action="append", default=[], metavar="NAME=VALUE", help="forward-mode tangent seed")
        p.add_argument("-o", "--output", help="write to FILE (its suffix picks the format when --format is absent)")
    tr.add_argument("--mode", choices=("primal", "forward", "reverse"), default="primal")
    tr.add_argument("--format", choices=("text", "md", "latex", "html", "svg", "png", "pdf", "dot"), default=None)
    dr.add_argument("--mode", choices=("graph", "primal", "forward", "reverse"), default="graph")
    cp.add_argument("--format", choices=("text", "md", "html"), default=None)
    cp.add_argument("--plot", metavar="FILE", help="also save bar charts of error, time and graph size (.png, .svg)")
    dr.add_argument(
        "--grad", action="store_true", help="draw the function with its gradient, before and after optimization"
    )
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "train":  # its own argument parser, as caffe train has
        from .caffe.solver import main_train

        return main_train(argv[1:])
    from .diagrams import draw, render, to_dot
    from .trace import trace

    args = _parser().parse_args(argv)
    try:
        values = dict(_assignment(a) for a in args.at)
        seeds = dict(_assignment(a) for a in args.seed)
        output, inputs = parse(args.expression, values)
        missing = [n for n in inputs if n not in values]
        mode = getattr(args, "mode", "compare")
        if missing and (args.command in ("trace", "compare") or mode != "graph"):
            raise ExpressionError(f"missing values for {', '.join(missing)}: add --at NAME=VALUE")
        if args.command == "compare":
            from .compare import compare_modes

            variables = list(inputs.values())
            report = compare_modes(output, variables, at={inputs[n]: values[n] for n in inputs})
            if args.plot:
                report.plot(args.plot)
            fmt = args.format or {"md": "md", "html": "html"}.get(pathlib.Path(args.output or "").suffix[1:], "text")
            text = {"text": str, "md": lambda r: r.to_markdown(), "html": lambda r: r.to_html()}[fmt](report)
            if args.output:
                pathlib.Path(args.output).write_text(text + "\n", encoding="utf-8")
            else:
                print(text)
            return 0
        if args.command == "draw" and mode == "graph":
            from .autodiff import grad
            from .function import function

            variables = list(inputs.values())
            obj = function(variables, [output, *grad(output, variables)]) if args.grad else output
        else:
            at = {inputs[n]: values[n] for n in inputs}
            unknown = [n for n in seeds if n not in inputs]
            if unknown:
                raise ExpressionError(f"--seed names {', '.join(unknown)}, which the expression does not use")
            seed = {inputs[n]: v for n, v in seeds.items()} or None
            obj = trace(output, at=at, mode=mode, seed=seed)
        suffix = pathlib.Path(args.output).suffix.lstrip(".").lower() if args.output else ""
        suffix = {"markdown": "md", "tex": "latex", "txt": "text", "htm": "html"}.get(suffix, suffix)
        fmt = getattr(args, "format", None) or suffix
        diagram = ("svg", "png", "pdf", "dot")
        if args.command == "draw" or fmt in diagram:
            if args.command == "draw" and suffix and fmt not in diagram:
                raise ExpressionError(f"unknown diagram format '.{suffix}'; use .svg, .png, .pdf or .dot")
            fmt = fmt if fmt in diagram else "svg"
            if args.output:
                draw(obj, args.output if suffix == fmt else f"{args.output}.{fmt}")
            elif fmt in ("svg", "dot"):
                sys.stdout.write(to_dot(obj) if fmt == "dot" else render(to_dot(obj), fmt).decode())
            else:
                sys.stdout.buffer.write(render(to_dot(obj), fmt))  # binary: never decoded
            return 0
        fmt = fmt if fmt in ("text", "md", "latex", "html") else "text"
        text = {
            "text": str,
            "md": lambda t: t.to_markdown(),
            "latex": lambda t: t.to_latex(),
            "html": lambda t: t.to_html(),
        }[fmt](obj)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as out:
                out.write(text + "\n")
        else:
            print(text)
        return 0
    except BrokenPipeError:  # the reader went away (graphc ... | head): not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (keeps Python from failing at exit)
        return 0
    except GraphcError as err:  # the detail only: a Python source line means nothing on a command line
        print(f"graphc: error: {err.op + ': ' if err.op else ''}{err.detail}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
