"""Logistic regression trained with a compiled graphc step (gradient written by hand).

The model and its update live in one graph: ``gc.shared`` holds the parameters, and the
compiled ``step`` computes the loss and applies the gradient-descent update in the same call.

Run: python examples/logistic_regression.py
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import graphc as gc


def make_data(n: int = 2000, d: int = 10, margin: float = 0.2, seed: int = 0):
    """Points labelled by the side of a random hyperplane they fall on, none closer to it than
    ``margin``: a linearly separable data set."""
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=d)
    normal /= np.linalg.norm(normal)
    X = rng.normal(size=(4 * n, d))
    score = X @ normal + 0.5
    keep = np.abs(score) > margin
    X, score = X[keep][:n], score[keep][:n]
    return X, (score > 0).astype(np.float64)


def build(d: int, lr: float):
    X = gc.matrix("X", shape=(None, d))
    y = gc.vector("y")
    w = gc.shared(np.zeros(d), name="w")
    b = gc.shared(0.0, name="b")

    z = X @ w + b  # logits
    p = gc.sigmoid(z)
    loss = gc.mean(gc.softplus(z) - y * z)  # binary cross-entropy on logits, computed stably
    n = X.shape[0].astype("float64")
    grad_w = X.T @ (p - y) / n  # d loss / d w, by hand for now
    grad_b = gc.mean(p - y)
    accuracy = gc.mean(gc.eq(z > 0, y > 0.5))

    step = gc.function([X, y], [loss, accuracy], updates={w: w - lr * grad_w, b: b - lr * grad_b})
    predict = gc.function([X], p)
    return step, predict


def train(epochs: int = 30, batch: int = 100, lr: float = 0.5, seed: int = 0, verbose: bool = True):
    X, y = make_data(seed=seed)
    split = int(0.8 * len(X))
    X_train, y_train, X_test, y_test = X[:split], y[:split], X[split:], y[split:]
    step, predict = build(X.shape[1], lr)
    rng = np.random.default_rng(seed)
    for epoch in range(1, epochs + 1):
        order = rng.permutation(split)
        losses, accs = [], []
        for start in range(0, split, batch):
            idx = order[start : start + batch]
            loss, acc = step(X_train[idx], y_train[idx])
            losses.append(float(loss))
            accs.append(float(acc))
        if verbose:
            bar = "#" * (20 * epoch // epochs)
            print(f"\repoch {epoch:3d}/{epochs} [{bar:<20}] loss {np.mean(losses):.4f} acc {np.mean(accs):.3f}", end="")
    test_acc = float(np.mean((predict(X_test) > 0.5) == (y_test > 0.5)))
    if verbose:
        print(f"\ntest accuracy {test_acc:.3f}")
    return test_acc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)
    acc = train(epochs=args.epochs)
    return 0 if acc > 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
