"""Render the pictures in docs/pictures/: the lecture function's forward and reverse traces, and
an MLP training step before and after optimization (fused kernels drawn as clusters).

Run: python examples/make_pictures.py [--out docs/pictures]
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np

import graphc as gc


def lecture_traces(out: pathlib.Path) -> None:
    """The trace of the lecture notes (seeds, file 004): v7 = exp(v3) + (v3 - sin(v2)), v3 = x1 x2."""
    x1, x2 = gc.scalar("x1"), gc.scalar("x2")
    y = gc.exp(x1 * x2) + (x1 * x2 - gc.sin(x2))
    at = {x1: 2.0, x2: 5.0}
    gc.draw(gc.trace(y, at=at, mode="forward", seed={x1: 1.0}), out / "lecture_forward_trace.svg")
    gc.draw(gc.trace(y, at=at, mode="reverse"), out / "lecture_reverse_trace.svg")
    gc.draw(gc.function([x1, x2], [y, *gc.grad(y, [x1, x2])]), out / "lecture_value_and_gradient_fused.svg")


def mlp_training_step(out: pathlib.Path, sizes=(784, 256, 256, 10)) -> None:
    """One SGD-with-momentum step of a ReLU MLP with softmax cross-entropy, before and after fusion."""
    rng = np.random.default_rng(0)
    X, t = gc.matrix("X", shape=(None, sizes[0]), dtype="float32"), gc.vector("t", dtype="int64")
    params = []
    for k, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        w = (rng.normal(size=(fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32)
        params += [gc.shared(w, f"W{k + 1}"), gc.shared(np.zeros(fan_out, np.float32), f"b{k + 1}")]
    h = X
    for k in range(0, len(params), 2):
        h = h @ params[k] + params[k + 1]
        h = gc.relu(h) if k < len(params) - 2 else h
    loss = gc.mean(gc.softmax_cross_entropy(h, gc.one_hot(t, sizes[-1], dtype="float32")))
    updates = {}
    for p, g in zip(params, gc.grad(loss, params)):
        velocity = gc.shared(np.zeros(p.type.shape, np.float32), f"m_{p.name}")
        updates[velocity] = 0.9 * velocity - 0.01 * g
        updates[p] = p + 0.9 * velocity - 0.01 * g
    step = gc.function([X, t], loss, updates=updates)
    gc.draw(step, out / "mlp_training_step_before_after.svg")
    (out / "mlp_training_step_report.txt").write_text(str(step.optimization_report()) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parents[1] / "docs" / "pictures"))
    out = pathlib.Path(parser.parse_args(argv).out)
    out.mkdir(parents=True, exist_ok=True)
    lecture_traces(out)
    mlp_training_step(out)
    for path in sorted(out.iterdir()):
        print(path)


if __name__ == "__main__":
    main()
