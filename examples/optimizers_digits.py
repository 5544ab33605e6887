"""SGD, momentum, RMSProp and Adam on the same MLP and the same batches: loss curves, as in the lecture.

Run: python examples/optimizers_digits.py [--epochs N] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from digits import compile_classifier, load

from graphc import nn, optim
from graphc.plots import _pyplot
from graphc.training import fit

OPTIMIZERS = {
    "SGD (lr 0.1)": lambda ps: optim.SGD(ps, lr=0.1),
    "momentum (lr 0.01, 0.9)": lambda ps: optim.Momentum(ps, lr=0.01, momentum=0.9),  # the same step size as SGD
    "RMSProp (lr 1e-3)": lambda ps: optim.RMSProp(ps, lr=1e-3),
    "Adam (lr 3e-3)": lambda ps: optim.Adam(ps, lr=3e-3),
}


def model() -> nn.Module:
    nn.manual_seed(0)  # every optimizer starts from the same weights
    return nn.Sequential(nn.Dense(64, 64), nn.Tanh(), nn.Dense(64, 10))


def smooth(values, width=20):
    kernel = np.ones(width) / width
    return np.convolve(values, kernel, mode="valid")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default="optimizers_digits.png")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    train, val, _ = load()
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    finals = {}
    for label, make in OPTIMIZERS.items():
        m = model()
        step, evaluate, _ = compile_classifier(m, make(m.params), (64,))
        history = fit(step, train, names=("loss", "accuracy"), epochs=args.epochs, batch_size=32, evaluate=evaluate,
                      validation=val, progress=False, seed=0)  # fmt: skip
        left.plot(smooth(history.per_step["loss"]), label=label, lw=1.2)
        right.plot(history["epoch"], history["val_loss"], marker="o", ms=3, label=label)
        finals[label] = (history["val_loss"][0], history["val_loss"][-1])
        if not args.quiet:
            print(f"{label:26s} validation loss after {args.epochs} epochs: {finals[label][1]:.4f}")
    left.set(xlabel="step", ylabel="training loss (mean of 20 steps)", yscale="log", title="training loss")
    right.set(xlabel="epoch", ylabel="validation loss", yscale="log", title="validation loss")
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return 0 if all(np.isfinite(last) and last < first for first, last in finals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
