"""Logistic regression on the digits: tell 3s from 8s with one Dense unit and a sigmoid.

The lecture's model p = sigmoid(x w + b), trained on the binary cross-entropy (computed from
the logit, which is stable for any weights) by plain gradient descent on mini-batches.

Run: python examples/digits_logistic.py [--epochs N]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from digits import load

import graphc as gc
from graphc import nn, optim
from graphc.training import fit


def pairs(split, a=3, b=8):
    x, y = split
    keep = (y == a) | (y == b)
    return x[keep], (y[keep] == b).astype(np.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    train, val, test = (pairs(s) for s in load())
    nn.manual_seed(0)
    model = nn.Dense(64, 1, init="zeros")
    x, t = gc.matrix("x", shape=(None, 64), dtype="float32"), gc.vector("t", dtype="float32")
    z = gc.reshape(model(x), (-1,))  # the logit of "it is an 8"
    loss = nn.binary_cross_entropy_with_logits(z, t)
    accuracy = nn.accuracy(z, t, threshold=0.0)
    step = gc.function([x, t], [loss, accuracy], updates=optim.SGD(model.params, lr=0.5).updates(loss))
    evaluate = gc.function([x, t], [loss, accuracy])
    history = fit(step, train, names=("loss", "accuracy"), epochs=args.epochs, batch_size=16, evaluate=evaluate,
                  validation=val, progress=not args.quiet)  # fmt: skip
    test_loss, test_accuracy = evaluate(*test)
    print(f"logistic regression, 3 vs 8: test accuracy {float(test_accuracy):.4f} ({len(test[0])} images), "
          f"validation loss {history['val_loss'][-1]:.4f}")  # fmt: skip
    return 0 if test_accuracy >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
