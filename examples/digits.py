"""The scikit-learn digits data set (1,797 8x8 images of handwritten digits, shipped inside
scikit-learn: no download), split and scaled the same way for every digits example.

Also the small harness the examples share: compile a training step and an evaluation function
for a model, train it with ``graphc.training.fit``, report test accuracy.
"""

from __future__ import annotations

import time

import numpy as np

import graphc as gc
from graphc import nn
from graphc.training import fit


def load(images: bool = False, test_fraction: float = 0.2, validation_fraction: float = 0.1, seed: int = 0):
    """(train, validation, test) pairs of (x float32, labels int64), pixels scaled to [0, 1].

    ``images`` gives x as (N, 1, 8, 8) for convolutions, else (N, 64). The split is a fixed,
    seeded permutation: every example and every run sees the same test set."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)
    x = x[:, None] if images else x.reshape(len(x), -1)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test, n_val = int(test_fraction * len(x)), int(validation_fraction * len(x))
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return (x[train], y[train]), (x[val], y[val]), (x[test], y[test])


def compile_classifier(model: nn.Module, optimizer, x_shape, penalty: float = 0.0, backend=None):
    """(step, evaluate, predict) for a classifier: step trains on one batch and returns (loss,
    accuracy); evaluate returns them without training (dropout off, running statistics)."""
    x = gc.tensor("x", shape=(None, *x_shape), dtype="float32")
    y = gc.vector("y", dtype="int64")
    model.train()
    logits = model(x)
    loss = nn.softmax_cross_entropy(logits, y)
    objective = loss + nn.l2_penalty(model.params, penalty) if penalty else loss
    updates = {**optimizer.updates(objective), **model.state_updates()}
    step = gc.function([x, y], [loss, nn.accuracy(logits, y)], updates=updates, backend=backend)
    model.eval()
    logits = model(x)
    evaluate = gc.function([x, y], [nn.softmax_cross_entropy(logits, y), nn.accuracy(logits, y)], backend=backend)
    predict = gc.function([x], gc.argmax(logits, axis=-1), backend=backend)
    return step, evaluate, predict


def train_classifier(model, optimizer_for, images=False, epochs=30, batch_size=32, early_stopping=None,
                     penalty=0.0, progress=True, backend=None, seed=0):  # fmt: skip
    """Train ``model`` on digits with ``optimizer_for(model, total_steps)``; returns (test
    accuracy, history, seconds)."""
    start = time.perf_counter()
    train, val, test = load(images=images)
    steps = epochs * -(-len(train[0]) // batch_size)
    optimizer = optimizer_for(model, steps)
    step, evaluate, predict = compile_classifier(model, optimizer, train[0].shape[1:], penalty, backend)
    history = fit(
        step,
        train,
        names=("loss", "accuracy"),
        epochs=epochs,
        batch_size=batch_size,
        evaluate=evaluate,
        validation=val,
        early_stopping=early_stopping,
        monitor="val_loss",
        progress=progress,
        seed=seed,
    )
    accuracy = float(np.mean(predict(test[0]) == test[1]))
    return accuracy, history, time.perf_counter() - start


def classifier_main(what: str, doc: str, build, epochs: int, images: bool, argv=None) -> int:
    """The command line of the MLP and CNN examples: train ``build(seed)`` with Adam and a cosine
    schedule, print the test accuracy; exit status 0 when it reaches 97%."""
    import argparse

    from graphc import optim

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--plot", help="save the loss and accuracy curves to this file")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="initial weights, dropout masks and batch order")
    parser.add_argument("--backend", default=None, help="numba (the default) or numpy")
    args = parser.parse_args(argv)
    accuracy, history, seconds = train_classifier(
        build(args.seed), lambda m, steps: optim.Adam(m.params, lr=optim.Cosine(3e-3, steps)), images=images,
        epochs=args.epochs, progress=not args.quiet, backend=args.backend, seed=args.seed,
    )  # fmt: skip
    print(f"{what}: test accuracy {accuracy:.4f} after {len(history.per_step['loss'])} steps, {seconds:.1f} s")
    if args.plot:
        history.plot().savefig(args.plot, dpi=110)
    return 0 if accuracy >= 0.97 else 1
