"""A 64-128-64-10 ReLU MLP with dropout on the scikit-learn digits (Adam, cosine learning-rate schedule).

Run: python examples/digits_mlp.py [--epochs N] [--plot FILE]
"""

from __future__ import annotations

import sys

from digits import classifier_main

from graphc import nn


def build(seed: int = 0) -> nn.Module:
    nn.manual_seed(seed)
    return nn.Sequential(
        nn.Dense(64, 128, init="he_normal"),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Dense(128, 64, init="he_normal"),
        nn.ReLU(),
        nn.Dense(64, 10),
    )


def main(argv=None) -> int:
    return classifier_main("MLP", __doc__, build, epochs=60, images=False, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
