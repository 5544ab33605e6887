"""The autodiff-mode comparison: the same derivative in forward, reverse, symbolic and numeric
mode, side by side, with what each costs.

``gc.compare_modes(y, [x1, x2], at={...})`` measures, per mode: the derivative values, their
error against a high-precision reference (SymPy evaluated with mpmath at 50 digits, or reverse
mode where SymPy cannot express the graph), the operations in the derivative graph before and
after optimization, the expression size (tree nodes, DAG nodes, and SymPy's ``count_ops``), the
number of sweeps, compile and run time, and the peak memory of the intermediates.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from .autodiff import grad, jacobian, numeric_grad, relative_error
from .errors import GraphcError, GraphError
from .graph import Constant, Graph, Input, Variable, graph_inputs, toposort
from .ops import stack
from .tables import html_table, markdown_table, text_table

MODES = ("forward", "reverse", "symbolic", "numeric")


@dataclass
class ModeResult:
    mode: str
    values: list[np.ndarray] = field(default_factory=list)
    error: float | None = None
    nodes: int | None = None  # DAG nodes of the derivative graph as built
    nodes_optimized: int | None = None  # after the "fast" pipeline (no fusion)
    kernels: int | None = None  # fused kernels after the "full" pipeline
    tree_nodes: int | None = None  # the derivative written out as a tree
    count_ops: int | None = None  # SymPy's count_ops of the derivative (symbolic mode, no cse)
    sweeps: int | None = None
    evaluations: int | None = None  # function evaluations (numeric mode)
    compile_seconds: float | None = None
    run_seconds: float | None = None
    peak_bytes: int | None = None
    note: str = ""


def tree_size(outputs) -> int:
    """Nodes of the outputs written out as expression trees (shared subgraphs counted each time)."""
    size: dict[int, int] = {}
    for node in toposort(outputs):
        total = 1 + sum(size.get(id(i), 1) for i in node.inputs)
        for o in node.outputs:
            size[id(o)] = total
    return sum(size.get(id(o), 1) for o in (outputs if isinstance(outputs, list) else [outputs]))


def peak_memory(f, values) -> int:
    """Peak bytes of intermediate arrays alive at once while ``f``'s graph runs node by node,
    each freed after its last use (what the reference backend does)."""
    from .function import function

    graph = f.graph
    nodes = graph.nodes
    variables = [o for n in nodes for o in n.outputs]
    if not variables:
        return 0
    arrays = function(f.inputs, variables, optimize="none")(*values)
    size = {id(v): np.asarray(a).nbytes for v, a in zip(variables, arrays)}
    last = {}
    for k, n in enumerate(nodes):
        for i in n.inputs:
            last[id(i)] = k
    outputs = {id(o) for o in graph.outputs}
    live, peak = 0, 0
    for k, n in enumerate(nodes):
        live += sum(size[id(o)] for o in n.outputs)
        peak = max(peak, live)
        for i in n.inputs:
            if last.get(id(i)) == k and id(i) in size and id(i) not in outputs:
                live -= size[id(i)]
    return peak


def _time_calls(f, values, repeat: int) -> float:
    f(*values)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        f(*values)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _reference(ys: list[Variable], wrt: list[Variable], inputs, at) -> tuple[list[np.ndarray] | None, str]:
    """The Jacobian at 50 digits through SymPy and mpmath, or None if SymPy cannot express it."""
    try:
        import sympy as sp

        from .symbolic import symbols_for, to_sympy

        symbols = symbols_for(inputs)
        exprs = to_sympy(ys, symbols)
        subs = {symbols[v]: sp.Float(repr(float(np.asarray(at[v]))), 50) for v in inputs}
        if any(np.asarray(at[v]).ndim for v in inputs):
            return None, "reverse mode"
        rows = [[float(sp.diff(e, symbols[x]).evalf(50, subs=subs)) for x in wrt] for e in exprs]
        return [np.array([row[k] for row in rows]) for k in range(len(wrt))], "SymPy/mpmath, 50 digits"
    except GraphcError:
        return None, "reverse mode"


def _jacobian_graphs(ys, y, wrt, mode, cse):
    if mode in ("forward", "reverse"):
        return jacobian(y, wrt, mode=mode)
    columns = [grad(yj, wrt, mode="symbolic", cse=cse) for yj in ys]
    return [stack([c[k] for c in columns]) if len(ys) > 1 else columns[0][k] for k in range(len(wrt))]


def compare_modes(output, wrt, at: dict, modes=MODES, repeat: int = 20, step: float = 1e-6, cse: bool = True):
    """Compare autodiff modes on the derivative of ``output`` (a scalar, or a list of scalars for
    a Jacobian) with respect to ``wrt`` at the input values ``at``. Returns a :class:`Comparison`."""
    from .function import function
    from .optimize import optimize

    ys = list(output) if isinstance(output, (list, tuple)) else [output]
    wrt = list(wrt) if isinstance(wrt, (list, tuple)) else [wrt]
    y = stack(ys) if len(ys) > 1 else ys[0]
    inputs = [v for v in graph_inputs(ys) if isinstance(v, Input)]
    inputs += [x for x in wrt if isinstance(x, Input) and x not in set(inputs)]
    missing = [v.name or str(v) for v in inputs if v not in at]
    if missing:
        raise GraphError(f"compare_modes needs a value for every input; missing {', '.join(missing)}")
    values = [np.asarray(at[v], dtype=v.dtype) for v in inputs]
    reference, reference_kind = _reference(ys, wrt, inputs, at)
    n_in = sum(int(np.prod(x.type.shape)) for x in wrt)
    results = []
    for mode in modes:
        r = ModeResult(mode)
        try:
            if mode == "numeric":
                start = time.perf_counter()
                f = function(inputs, y)
                r.compile_seconds = time.perf_counter() - start
                positions = [inputs.index(x) for x in wrt]

                def jac(f=f, positions=positions):
                    cols = []
                    for j in range(len(ys)):

                        def fj(*moved, j=j):
                            vals = list(values)
                            for p, m in zip(positions, moved):
                                vals[p] = m
                            return np.asarray(f(*vals)).reshape(-1)[j]

                        cols.append(numeric_grad(fj, [values[p] for p in positions], eps=step))
                    return [np.stack([c[k] for c in cols]) if len(ys) > 1 else cols[0][k] for k in range(len(wrt))]

                start = time.perf_counter()
                r.values = jac()
                r.run_seconds = time.perf_counter() - start
                r.evaluations = 2 * n_in * len(ys)
                r.nodes = len(Graph(y).nodes)
                r.note = f"central differences, step {step:g}"
                r.peak_bytes = peak_memory(f, values)
            else:
                graphs = _jacobian_graphs(ys, y, wrt, mode, cse)
                r.nodes = len(Graph(graphs).nodes)
                r.nodes_optimized = len(Graph(optimize(graphs, "fast")).nodes)
                r.tree_nodes = tree_size(graphs)
                start = time.perf_counter()
                f = function(inputs, graphs)
                r.compile_seconds = time.perf_counter() - start
                r.kernels = sum(n.op.name == "fused" for n in f.graph.nodes)
                r.values = [np.asarray(v) for v in f(*values)]
                r.run_seconds = _time_calls(f, values, repeat)
                r.peak_bytes = peak_memory(f, values)
                r.sweeps = {"forward": n_in, "reverse": len(ys) * int(np.prod(ys[0].type.shape))}.get(mode)
                if mode == "symbolic":
                    r.count_ops = _count_ops(ys, wrt, inputs)
                    r.note = "sympy.diff" + (" + cse" if cse else "")
        except GraphcError as err:
            r.note = f"not available: {err.detail}"
            results.append(r)
            continue
        results.append(r)
    if reference is None:
        rev = next((r for r in results if r.mode == "reverse" and r.values), None)
        reference = rev.values if rev else None
    for r in results:
        if r.values and reference is not None:
            r.error = max(relative_error(a, b) for a, b in zip(r.values, reference))
    return Comparison(results, reference_kind, [x.name or str(x) for x in wrt])


def _count_ops(ys, wrt, inputs) -> int:
    import sympy as sp

    from .symbolic import symbols_for, to_sympy

    symbols = symbols_for(inputs)
    return int(sum(sp.count_ops(sp.diff(e, symbols[x])) for e in to_sympy(ys, symbols) for x in wrt))


def _fmt(value, kind: str = "") -> str:
    if value is None:
        return "—"
    if kind == "s":
        return f"{value * 1e6:.1f} us" if value < 1e-3 else f"{value * 1e3:.2f} ms" if value < 1 else f"{value:.2f} s"
    if kind == "b":
        return f"{value / 1024:.1f} KiB" if value >= 1024 else f"{value} B"
    if kind == "e":
        return f"{value:.1e}"
    return str(value)


class Comparison:
    """The per-mode results of :func:`compare_modes`, as tables and plots."""

    def __init__(self, results: list[ModeResult], reference: str, names: list[str]):
        self.results, self.reference, self.names = results, reference, names

    def __getitem__(self, mode: str) -> ModeResult:
        return next(r for r in self.results if r.mode == mode)

    def table(self) -> tuple[list[str], list[list[str]]]:
        header = ["mode", "derivative", f"error vs {self.reference}", "nodes", "optimized", "kernels"]
        header += ["tree nodes", "count_ops", "sweeps", "compile", "run", "peak memory", "note"]
        rows = []
        for r in self.results:
            values = ", ".join(np.array2string(np.asarray(v), precision=12) for v in r.values) or "—"
            sweeps = r.sweeps if r.sweeps is not None else (f"{r.evaluations} f-evals" if r.evaluations else None)
            rows.append([
                r.mode, values, _fmt(r.error, "e"), _fmt(r.nodes), _fmt(r.nodes_optimized), _fmt(r.kernels),
                _fmt(r.tree_nodes), _fmt(r.count_ops), _fmt(sweeps), _fmt(r.compile_seconds, "s"),
                _fmt(r.run_seconds, "s"), _fmt(r.peak_bytes, "b"), r.note,
            ])  # fmt: skip
        return header, rows

    def __str__(self) -> str:
        return text_table(*self.table())

    def to_markdown(self) -> str:
        return markdown_table(*self.table())

    def to_html(self) -> str:
        return html_table(*self.table())

    def _repr_html_(self) -> str:
        return self.to_html()

    def plot(self, path=None):
        """Bars per mode: error, run time, derivative-graph nodes. Returns the matplotlib figure."""
        from .plots import comparison_figure

        return comparison_figure(self, path)


__all__ = ["compare_modes", "Comparison", "ModeResult", "tree_size", "peak_memory", "Constant"]
