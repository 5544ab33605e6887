"""A LeNet-style CNN (two conv+pool stages, two dense layers) on the digits (Adam, cosine schedule).

Run: python examples/digits_cnn.py [--epochs N] [--plot FILE]
"""

from __future__ import annotations

import sys

from digits import classifier_main

from graphc import nn


def build(seed: int = 0) -> nn.Module:
    nn.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, init="he_normal"),  # 16 x 8 x 8
        nn.ReLU(),
        nn.MaxPool2d(2),  # 16 x 4 x 4
        nn.Conv2d(16, 32, 3, padding=1, init="he_normal"),  # 32 x 4 x 4
        nn.ReLU(),
        nn.MaxPool2d(2),  # 32 x 2 x 2
        nn.Flatten(),
        nn.Dense(128, 64, init="he_normal"),
        nn.ReLU(),
        nn.Dense(64, 10),
    )


def main(argv=None) -> int:
    return classifier_main("CNN", __doc__, build, epochs=30, images=True, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
