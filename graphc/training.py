"""The training loop: mini-batches, epochs, validation, early stopping, progress, history, checkpoints.

The loop drives *compiled* functions and knows nothing about how they were built: ``step`` is a
``gc.function`` whose updates train the model (forward, backward and the optimizer in one call)
and ``evaluate`` one with the same inputs and no updates. So the same loop serves models written
with ``graphc.nn``, graphs written by hand, and nets read from Caffe files.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from .errors import ShapeError, UsageError

__all__ = ["History", "batches", "evaluate_batches", "fit", "save_checkpoint", "load_checkpoint"]


def batches(arrays: Sequence[np.ndarray], batch_size: int, shuffle: bool = True, rng=None, drop_last: bool = False):
    """Mini-batches: tuples of aligned slices of ``arrays``, in a fresh random order when ``shuffle``."""
    n = len(arrays[0])
    order = (rng if rng is not None else np.random.default_rng()).permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            yield tuple(a[start : start + batch_size] for a in arrays)
        else:
            idx = order[start : start + batch_size]
            yield tuple(a[idx] for a in arrays)


class History:
    """What a training run measured.

    ``history["loss"]`` holds the training mean of that output between two evaluations,
    ``history["val_loss"]`` the validation value at each evaluation, ``history["step"]`` and
    ``history["epoch"]`` where each evaluation happened; ``history.per_step["loss"]`` every step's
    value (for loss curves). ``best`` is the evaluation early stopping kept.
    """

    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        self.columns: dict[str, list[float]] = {"step": [], "epoch": [], "time": []}
        self.per_step: dict[str, list[float]] = {name: [] for name in self.names}
        self.best: int | None = None
        self.stopped_early = False

    def __getitem__(self, key: str) -> list[float]:
        return self.columns[key]

    def __contains__(self, key: str) -> bool:
        return key in self.columns

    def keys(self):
        return self.columns.keys()

    def _record(self, row: dict[str, float]) -> None:
        for key in row:
            if key not in self.columns:
                self.columns[key] = [math.nan] * len(self.columns["step"])
        for key, column in self.columns.items():
            column.append(float(row.get(key, math.nan)))

    def last(self) -> dict[str, float]:
        return {key: column[-1] for key, column in self.columns.items() if column}

    def to_dict(self) -> dict:
        return {
            "columns": self.columns,
            "per_step": self.per_step,
            "best": self.best,
            "stopped_early": self.stopped_early,
        }

    def plot(self, ax=None):
        """Training and validation curves, one panel per output name; returns the figure."""
        from .plots import _pyplot as pyplot

        plt = pyplot()
        if ax is None:
            fig, axes = plt.subplots(1, len(self.names), figsize=(4.5 * len(self.names), 3.4), squeeze=False)
            axes = axes[0]
        else:
            fig, axes = ax.figure, [ax]
        for axis, name in zip(axes, self.names):
            steps = self.columns["step"]
            axis.plot(steps, self.columns.get(name, []), marker="o", ms=3, label=f"train {name}")
            if f"val_{name}" in self.columns:
                axis.plot(steps, self.columns[f"val_{name}"], marker="s", ms=3, label=f"validation {name}")
            if self.best is not None:
                axis.axvline(steps[self.best], color="0.6", ls=":", lw=1, label="kept")
            axis.set_xlabel("step")
            axis.set_title(name)
            axis.legend(fontsize=8)
        fig.tight_layout()
        return fig

    def _repr_html_(self) -> str:
        keys = list(self.columns)
        head = "".join(f"<th>{k}</th>" for k in keys)
        rows = "".join(
            "<tr>" + "".join(f"<td>{self.columns[k][i]:.4g}</td>" for k in keys) + "</tr>"
            for i in range(len(self.columns["step"]))
        )
        return f"<table><tr>{head}</tr>{rows}</table>"

    def __repr__(self) -> str:
        return f"History({len(self.columns['step'])} evaluations, last {self.last()})"


def _mode_for(monitor: str) -> str:
    return "max" if any(word in monitor for word in ("acc", "auc", "precision", "recall")) else "min"


def evaluate_batches(function, arrays, names, batch_size, limit=None) -> dict[str, float]:
    """Each output's mean over the batches of ``arrays``, weighted by batch size."""
    sums, count = np.zeros(len(names)), 0
    for k, batch in enumerate(batches(arrays, batch_size, shuffle=False)):
        if limit is not None and k >= limit:
            break
        outs = function(*batch)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        if len(outs) != len(names):
            raise UsageError(f"evaluate returns {len(outs)} outputs but names lists {len(names)}")
        sums += [float(np.mean(o)) * len(batch[0]) for o in outs]
        count += len(batch[0])
    return dict(zip(names, sums / max(count, 1)))


def _check_arrays(arrays, what: str) -> tuple[np.ndarray, ...]:
    if not isinstance(arrays, (tuple, list)) or not arrays:
        raise UsageError(f"fit: {what} must be a tuple of arrays (inputs, targets, ...), got {type(arrays).__name__}")
    arrays = tuple(np.asarray(a) for a in arrays)
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ShapeError(f"fit: the arrays of {what} have different lengths {[len(a) for a in arrays]}")
    return arrays


def fit(
    step,
    train,
    *,
    names: Sequence[str] = ("loss",),
    epochs: int | None = None,
    max_steps: int | None = None,
    batch_size: int = 32,
    shuffle: bool = True,
    drop_last: bool = False,
    seed: int = 0,
    evaluate=None,
    validation=None,
    eval_every: int | None = None,
    eval_batches: int | None = None,
    eval_batch_size: int | None = None,
    early_stopping: int | None = None,
    monitor: str | None = None,
    mode: str | None = None,
    restore_best: bool = True,
    progress: bool = True,
    checkpoint: str | Path | None = None,
    model=None,
    optimizer=None,
    log: Callable[[dict], None] | None = None,
) -> History:
    """Train by calling ``step(*batch)`` on mini-batches of ``train``; returns the ``History``.

    ``step`` returns the outputs named by ``names`` (the first is the loss the progress bar
    shows). Training runs ``epochs`` passes, or ``max_steps`` steps, whichever ends first.
    ``evaluate`` runs on ``validation`` every ``eval_every`` steps (default: at the end of each
    epoch), on at most ``eval_batches`` batches. ``early_stopping=k`` stops after ``k``
    evaluations without improvement of ``monitor`` (default ``val_<first name>``, or the training
    value without validation) and, with ``restore_best``, puts back the values of every shared
    variable ``step`` uses (parameters and optimizer state) from the best evaluation.
    ``checkpoint`` (a path prefix, with ``model``) saves the best model as ``.npz`` + ``.json``.
    """
    names = list(names)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise UsageError(f"fit: batch_size must be a positive int, got {batch_size!r}")
    if eval_batch_size is not None and (not isinstance(eval_batch_size, (int, np.integer)) or eval_batch_size < 1):
        raise UsageError(f"fit: eval_batch_size must be a positive int, got {eval_batch_size!r}")
    train = _check_arrays(train, "train")
    if epochs is None and max_steps is None:
        raise UsageError("fit: give epochs or max_steps")
    if (evaluate is None) != (validation is None):
        raise UsageError("fit: evaluate and validation go together: give both or neither")
    if validation is not None:
        validation = _check_arrays(validation, "validation")
    if checkpoint is not None and model is None:
        raise UsageError("fit: checkpoint needs the model (model=...) whose parameters and description it saves")
    monitor = monitor or (f"val_{names[0]}" if validation is not None else names[0])
    if monitor.startswith("val_") and validation is None:
        raise UsageError(f"fit: monitor {monitor!r} needs validation data")
    if monitor.removeprefix("val_") not in names:
        raise UsageError(f"fit: monitor {monitor!r} is not one of the outputs {names} (or val_ of one)")
    mode = mode or _mode_for(monitor)
    if mode not in ("min", "max"):
        raise UsageError(f"fit: mode must be 'min' or 'max', got {mode!r}")
    steps_per_epoch = (len(train[0]) // batch_size) if drop_last else math.ceil(len(train[0]) / batch_size)
    if steps_per_epoch == 0:
        raise ShapeError(f"fit: {len(train[0])} examples make no batch of {batch_size} with drop_last")
    total = min(x for x in (max_steps, epochs and epochs * steps_per_epoch) if x is not None)
    shared = list(getattr(step, "shared", []))
    history = History(names)
    rng = np.random.default_rng(seed)
    bar = _progress(total, progress)
    best_value, best_values, waited = None, None, 0
    running = {name: [] for name in names}
    done, epoch, start = 0, 0, time.perf_counter()

    def evaluation_point() -> bool:
        nonlocal best_value, best_values, waited
        row = {"step": done, "epoch": done / steps_per_epoch, "time": time.perf_counter() - start}
        row.update({name: float(np.mean(values)) for name, values in running.items() if values})
        for values in running.values():
            values.clear()
        if validation is not None:
            size = eval_batch_size or batch_size
            scores = evaluate_batches(evaluate, validation, names, size, eval_batches)
            row.update({f"val_{name}": value for name, value in scores.items()})
        history._record(row)
        bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k in names or k.startswith("val_")})
        if log is not None:
            log(row)
        value = row.get(monitor, math.nan)
        better = best_value is None or (value < best_value if mode == "min" else value > best_value)
        if better and not math.isnan(value):
            best_value, waited, history.best = value, 0, len(history["step"]) - 1
            if early_stopping is not None and restore_best:
                best_values = [v.get_value() for v in shared]
            if checkpoint is not None:
                save_checkpoint(checkpoint, model, optimizer)
            return False
        waited += 1
        return early_stopping is not None and waited >= early_stopping

    stop = False
    while not stop and done < total:
        epoch += 1
        for batch in batches(train, batch_size, shuffle, rng, drop_last):
            outs = step(*batch)
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            if len(outs) != len(names):
                raise UsageError(f"fit: step returns {len(outs)} outputs but names lists {len(names)}: {names}")
            for name, out in zip(names, outs):
                value = float(np.mean(out))
                running[name].append(value)
                history.per_step[name].append(value)
            done += 1
            bar.update(1)
            if done % 10 == 0 or done == total:
                bar.set_postfix({name: f"{np.mean(running[name][-50:]):.4g}" for name in names}, refresh=False)
            at_eval = eval_every is not None and done % eval_every == 0
            if at_eval or done == total:
                stop = evaluation_point() or done == total
            if stop:
                break
        if not stop and eval_every is None and any(running.values()):
            stop = evaluation_point()
    bar.close()
    history.stopped_early = stop and done < total
    if best_values is not None and history.best != len(history["step"]) - 1:
        for var, value in zip(shared, best_values):
            var.set_value(value)
    return history


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass


def _progress(total: int, show: bool):
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="step", dynamic_ncols=True, leave=True)


# -- checkpoints ------------------------------------------------------------------------------------


def _checkpoint_files(base: Path) -> tuple[Path, Path]:
    """``base.npz`` and ``base.json``, appended (``run_lr0.01`` must not lose its ``.01``)."""
    return base.with_name(base.name + ".npz"), base.with_name(base.name + ".json")


def save_checkpoint(path: str | Path, model, optimizer=None) -> tuple[Path, Path]:
    """``path.npz`` (parameter and state values, and the optimizer's with ``optimizer.``
    prefixes) and ``path.json`` (the model description, ``model.config()``)."""
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    arrays = dict(model.state_dict())
    if optimizer is not None:
        arrays.update({f"optimizer.{k}": v for k, v in optimizer.state_dict().items()})
    npz, description = _checkpoint_files(base)
    tmp = npz.with_name(npz.name + ".tmp")
    with open(tmp, "wb") as handle:  # np.savez would add .npz to a name without it
        np.savez(handle, **arrays)
    tmp.replace(npz)
    description.write_text(json.dumps(model.config(), indent=2) + "\n")
    return npz, description


def load_checkpoint(path: str | Path, model=None, optimizer=None):
    """The model saved at ``path``: rebuilt from its JSON description (or ``model``, when given)
    with its saved values loaded; also restores ``optimizer``'s state when given."""
    npz, description = _checkpoint_files(Path(path))
    if not npz.exists():
        raise FileNotFoundError(f"no checkpoint at {npz}")
    if model is None:
        from .nn import from_config

        model = from_config(json.loads(description.read_text()))
    with np.load(npz) as data:
        values = {k: data[k] for k in data.files}
    prefix = "optimizer."
    model.load_state_dict({k: v for k, v in values.items() if not k.startswith(prefix)})
    if optimizer is not None:
        optimizer.load_state_dict({k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)})
    return model


def iterate_forever(arrays, batch_size, seed=0) -> Iterator[tuple[np.ndarray, ...]]:
    """Endless shuffled mini-batches (Caffe's data layers cycle through their source)."""
    rng = np.random.default_rng(seed)
    while True:
        yield from batches(arrays, batch_size, True, rng)
