"""Expression swell: SymPy's derivative of the iterated logistic map grows exponentially without
common-subexpression elimination, while graphc's reverse-mode derivative graph grows linearly.

l(1) = x, l(k+1) = 4 l(k) (1 - l(k)); we differentiate l(n) with respect to x for n = 1..8.
Run: python examples/expression_swell.py [--plot docs/pictures/expression_swell.png]
"""

from __future__ import annotations

import argparse

import sympy as sp

import graphc as gc


def logistic(n: int):
    x = gc.scalar("x")
    v = x
    for _ in range(n - 1):
        v = 4.0 * v * (1.0 - v)
    return x, v


def measure(n: int) -> dict:
    x, y = logistic(n)
    symbol = sp.Symbol("x", real=True)
    derivative = sp.diff(gc.to_sympy(y, {x: symbol}), symbol)
    replacements, reduced = sp.cse(derivative)
    cse_size = sum(sum(1 for _ in sp.preorder_traversal(e)) for _, e in replacements) + sum(
        sum(1 for _ in sp.preorder_traversal(e)) for e in reduced
    )
    return {
        "n": n,
        "sympy_tree": sum(1 for _ in sp.preorder_traversal(derivative)),
        "sympy_count_ops": int(sp.count_ops(derivative)),
        "sympy_cse_tree": cse_size,
        "graphc_reverse_nodes": len(gc.Graph(gc.grad(y, x)).nodes),
        "graphc_reverse_tree": gc.compare.tree_size(gc.grad(y, x)),
    }


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-n", type=int, default=8)
    parser.add_argument("--plot", help="save a plot of the sizes to this file")
    args = parser.parse_args(argv)
    rows = [measure(n) for n in range(1, args.max_n + 1)]
    header = ["n", "sympy_tree", "sympy_count_ops", "sympy_cse_tree", "graphc_reverse_nodes", "graphc_reverse_tree"]
    print("  ".join(f"{h:>20}" for h in header))
    for r in rows:
        print("  ".join(f"{r[h]:>20}" for h in header))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        ns = [r["n"] for r in rows]
        ax.semilogy(ns, [r["sympy_tree"] for r in rows], "o-", label="SymPy derivative, tree nodes (no cse)")
        ax.semilogy(ns, [r["sympy_cse_tree"] for r in rows], "^-", label="SymPy derivative with cse")
        ax.semilogy(ns, [r["graphc_reverse_nodes"] for r in rows], "s-", label="graphc reverse mode, graph nodes")
        ax.set_xlabel("n (iterations of the logistic map)")
        ax.set_ylabel("size")
        ax.set_title("expression swell")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
    return rows


if __name__ == "__main__":
    main()
