"""The training loop (graphc.training): batches, fit, early stopping, history, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import nn
from graphc.training import History, batches, fit, load_checkpoint, save_checkpoint


def regression(n=400, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + 0.01 * rng.normal(size=n)
    return X, y


def linear_model(d=5, lr=0.1):
    x, t = gc.matrix("x", shape=(None, d)), gc.vector("t")
    w = gc.shared(np.zeros(d), name="w")
    loss = gc.mean((x @ w - t) ** 2)
    step = gc.function([x, t], loss, updates={w: w - lr * gc.grad(loss, w)}, backend="numpy")
    evaluate = gc.function([x, t], loss, backend="numpy")
    return step, evaluate, w


def test_batches_cover_every_example_once_per_epoch():
    a, b = np.arange(10), np.arange(10) * 10
    rng = np.random.default_rng(0)
    got = list(batches((a, b), 3, shuffle=True, rng=rng))
    assert [len(x) for x, _ in got] == [3, 3, 3, 1]
    seen = np.concatenate([x for x, _ in got])
    assert sorted(seen) == list(range(10)) and list(seen) != list(range(10))
    assert all(np.array_equal(x * 10, y) for x, y in got)  # rows stay aligned
    assert [len(x) for x, _ in batches((a, b), 3, shuffle=False, drop_last=True)] == [3, 3, 3]


def test_fit_trains_and_records_each_epoch():
    X, y = regression()
    step, evaluate, _ = linear_model()
    history = fit(step, (X[:300], y[:300]), epochs=4, batch_size=32, evaluate=evaluate,
                  validation=(X[300:], y[300:]), progress=False)  # fmt: skip
    assert history["step"] == [10, 20, 30, 40] and history["epoch"] == [1, 2, 3, 4]
    assert len(history.per_step["loss"]) == 40
    assert history["val_loss"][0] > 10 * history["val_loss"][-1] and history["val_loss"][-1] < 1e-3
    # the recorded training value is the mean of the steps since the last evaluation
    assert history["loss"][1] == pytest.approx(np.mean(history.per_step["loss"][10:20]))
    # the validation value is the mean over all validation examples
    assert history["val_loss"][-1] == pytest.approx(float(evaluate(X[300:], y[300:])))


def test_max_steps_and_eval_every_and_eval_batches():
    X, y = regression()
    step, evaluate, _ = linear_model()
    calls = []

    def counting(*batch):
        calls.append(len(batch[0]))
        return evaluate(*batch)

    history = fit(step, (X, y), max_steps=25, eval_every=10, batch_size=16, evaluate=counting,
                  validation=(X, y), eval_batches=2, progress=False)  # fmt: skip
    assert history["step"] == [10, 20, 25]
    assert len(history.per_step["loss"]) == 25
    assert calls == [16, 16] * 3


def test_early_stopping_restores_the_best_values():
    x = gc.vector("x")
    w = gc.shared(0.0, name="w")
    drift = gc.function([x], gc.sum(x) * 0 + w, updates={w: w + 1.0}, backend="numpy")  # w grows every step
    distance = gc.function([x], (w - 3.0) ** 2 + gc.sum(x) * 0, backend="numpy")
    data = (np.zeros(8),)
    history = fit(drift, data, epochs=50, batch_size=2, evaluate=distance, validation=data,
                  names=("w",), early_stopping=2, progress=False)  # fmt: skip
    # evaluations after 4, 8, 12 steps see w = 4, 8, 12: the first is best, two worse ones stop
    assert history["step"] == [4, 8, 12] and history.stopped_early and history.best == 0
    assert float(w.get_value()) == 4.0
    assert history["val_w"] == [1.0, 25.0, 81.0]


def test_accuracy_is_maximised():
    x = gc.vector("x")
    w = gc.shared(0.0, name="w")
    step = gc.function([x], gc.sum(x) * 0 + w, updates={w: w + 1.0}, backend="numpy")
    data = (np.zeros(4),)
    history = fit(step, data, epochs=6, batch_size=2, names=("accuracy",), early_stopping=1, progress=False)
    assert not history.stopped_early and history.best == len(history["step"]) - 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "epochs or max_steps"),
        ({"epochs": 1, "evaluate": lambda *a: 0.0}, "evaluate and validation"),
        ({"epochs": 1, "monitor": "val_loss"}, "needs validation"),
        ({"epochs": 1, "monitor": "speed"}, "not one of the outputs"),
        ({"epochs": 1, "checkpoint": "x"}, "needs the model"),
        ({"epochs": 1, "names": ("loss", "accuracy")}, "returns 1 outputs"),
    ],
)
def test_fit_errors(kwargs, message):
    X, y = regression(50)
    step, _, _ = linear_model()
    with pytest.raises(gc.GraphcError, match=message):
        fit(step, (X, y), progress=False, **kwargs)


def test_misaligned_arrays_are_refused():
    step, _, _ = linear_model()
    with pytest.raises(gc.ShapeError, match="different lengths"):
        fit(step, (np.zeros((5, 5)), np.zeros(4)), epochs=1, progress=False)


class Affine(nn.Module):
    def __init__(self, d):
        super().__init__("affine")
        self.hparams = {"d": d}
        self.add_param("w", np.zeros(d))
        self.add_state("seen", np.zeros(()))

    def forward(self, x):
        return x @ self.w


def test_checkpoints_round_trip(tmp_path):
    X, y = regression()
    model = Affine(5)
    x, t = gc.matrix("x", shape=(None, 5)), gc.vector("t")
    loss = gc.mean((model(x) - t) ** 2)
    step = gc.function([x, t], loss, updates={model.w: model.w - 0.1 * gc.grad(loss, model.w)}, backend="numpy")
    evaluate = gc.function([x, t], loss, backend="numpy")
    prefix = tmp_path / "ckpt" / "best"
    fit(step, (X, y), epochs=3, evaluate=evaluate, validation=(X, y), checkpoint=prefix, model=model, progress=False)
    assert (tmp_path / "ckpt" / "best.npz").exists() and (tmp_path / "ckpt" / "best.json").exists()
    fresh = load_checkpoint(prefix, model=Affine(5))
    assert np.array_equal(fresh.w.get_value(), model.w.get_value())
    with pytest.raises(gc.GraphcError, match="missing: w"):
        np.savez(tmp_path / "bad.npz", seen=np.zeros(()))
        load_checkpoint(tmp_path / "bad", model=Affine(5))
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nothing", model=Affine(5))
    npz, description = save_checkpoint(tmp_path / "again", model)
    assert '"type": "Affine"' in description.read_text()


def test_history_pictures():
    history = History(["loss", "accuracy"])
    for k in range(3):
        history._record({"step": k, "epoch": k, "time": 0.0, "loss": 1.0 / (k + 1), "accuracy": k / 3})
    history.best = 2
    fig = history.plot()
    assert len(fig.axes) == 2
    html = history._repr_html_()
    assert html.count("<tr>") == 4 and "accuracy" in html
    assert "3 evaluations" in repr(history)


def test_the_best_values_come_back_when_the_run_ends_without_stopping():
    x = gc.vector("x")
    w = gc.shared(0.0, name="w")
    drift = gc.function([x], gc.sum(x) * 0 + w, updates={w: w + 1.0}, backend="numpy")
    distance = gc.function([x], (w - 3.0) ** 2 + gc.sum(x) * 0, backend="numpy")
    data = (np.zeros(8),)
    history = fit(drift, data, epochs=3, batch_size=2, evaluate=distance, validation=data, names=("w",),
                  early_stopping=5, progress=False)  # fmt: skip
    assert not history.stopped_early and history.best == 0 and float(w.get_value()) == 4.0


def test_checkpoints_keep_the_optimizer_and_dotted_names(tmp_path):
    from graphc import optim

    X, y = regression()
    model = Affine(5)
    x, t = gc.matrix("x", shape=(None, 5)), gc.vector("t")
    loss = gc.mean((model(x) - t) ** 2)
    opt = optim.Adam(model.params, lr=0.01)
    step = gc.function([x, t], loss, updates=opt.updates(loss), backend="numpy")
    for prefix in ("run_lr0.01", "run_lr0.05"):
        fit(step, (X, y), epochs=1, checkpoint=tmp_path / prefix, model=model, optimizer=opt, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "run_lr0.01.json", "run_lr0.01.npz", "run_lr0.05.json", "run_lr0.05.npz",
    ]  # fmt: skip
    resumed_opt = optim.Adam((resumed := Affine(5)).params, lr=0.01)
    load_checkpoint(tmp_path / "run_lr0.05", model=resumed, optimizer=resumed_opt)
    assert int(resumed_opt.iterations.get_value()) == int(opt.iterations.get_value()) > 0
    for name, value in opt.state_dict().items():
        np.testing.assert_array_equal(resumed_opt.state_dict()[name], value)


@pytest.mark.parametrize("size", [0, -2, 2.5])
def test_batch_size_must_be_a_positive_int(size):
    X, y = regression(20)
    step, _, _ = linear_model()
    with pytest.raises(gc.UsageError, match="batch_size must be a positive int"):
        fit(step, (X, y), epochs=1, batch_size=size, progress=False)
