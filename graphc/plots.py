"""Plots of comparisons, scaling studies and finite-difference error curves (matplotlib)."""

from __future__ import annotations


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)  # files, not windows: works without a screen
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, path):
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def comparison_figure(report, path=None):
    plt = _pyplot()
    modes = [r.mode for r in report.results]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    panels = [
        ("error (relative)", [r.error or 0 for r in report.results], True),
        ("run time (s)", [r.run_seconds or 0 for r in report.results], True),
        ("derivative graph nodes", [r.nodes or 0 for r in report.results], False),
    ]
    for ax, (title, values, log) in zip(axes, panels):
        ax.bar(modes, [max(v, 1e-18) if log else v for v in values], color=["#2563eb", "#16a34a", "#9333ea", "#ea580c"])
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
    return _finish(fig, path)


def scaling_figure(scaling, path=None):
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for mode, color in (("forward", "#2563eb"), ("reverse", "#16a34a")):
        rows = [r for r in scaling.rows if r.mode == mode]
        sizes = [r.size for r in rows]
        axes[0].loglog(sizes, [r.run_seconds for r in rows], "o-", color=color, label=mode)
        axes[1].loglog(sizes, [r.sweeps for r in rows], "o-", color=color, label=mode)
    family = scaling.rows[0].family if scaling.rows else ""
    axis = "n (inputs)" if family == "inputs" else "m (outputs)"
    for ax, title in zip(axes, ("run time (s)", "sweeps")):
        ax.set_xlabel(axis)
        ax.set_title(title)
        ax.legend()
    return _finish(fig, path)


def fd_figure(curve, path=None):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.loglog(curve.steps, curve.central, "o-", label="central differences")
    ax.loglog(curve.steps, curve.forward, "s-", label="forward differences")
    ax.axvline(curve.best_central_step, color="#9ca3af", linestyle="--")
    ax.set_xlabel("step h")
    ax.set_ylabel("relative error")
    ax.set_title("finite differences: truncation against round-off")
    ax.legend()
    return _finish(fig, path)
