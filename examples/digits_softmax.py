"""Softmax regression on the digits: ten classes, one linear layer, softmax cross-entropy.

Run: python examples/digits_softmax.py [--epochs N]
"""

from __future__ import annotations

import argparse
import sys

from digits import train_classifier

from graphc import nn, optim


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    nn.manual_seed(0)
    model = nn.Dense(64, 10, init="zeros")  # logits z = x W + b; softmax(z) are the class probabilities
    accuracy, history, seconds = train_classifier(
        model, lambda m, steps: optim.Momentum(m.params, lr=0.1, momentum=0.9), epochs=args.epochs,
        penalty=1e-4, progress=not args.quiet,
    )  # fmt: skip
    print(f"softmax regression: test accuracy {accuracy:.4f}, {seconds:.1f} s")
    return 0 if accuracy >= 0.93 else 1


if __name__ == "__main__":
    sys.exit(main())
