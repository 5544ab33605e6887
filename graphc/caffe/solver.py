"""Caffe's solver: a solver file as an optimizer, a schedule and a training run (``graphc train``).

    graphc train --solver examples/caffe/lenet_solver.prototxt \\
        --data examples/mnist/mnist_train_lmdb=digits:train --data examples/mnist/mnist_test_lmdb=digits:test \\
        --max-iter 500

The solver names the net (``net``, or ``train_net`` and ``test_net``), the optimizer (``type``:
SGD, Nesterov, AdaGrad, RMSProp, Adam), the learning-rate policy and how long to train, test and
snapshot. :class:`Solver` builds the TRAIN and TEST nets on one :class:`CaffeModel`, compiles one
training step (forward, backward, update) and one test function, and drives them with
``graphc.training.fit``: ``test_interval`` is its ``eval_every``, ``test_iter`` its
``eval_batches``.

SGD with momentum follows Caffe, not PyTorch: ``v <- momentum v + lr (g + weight_decay w)``,
``w <- w - v`` (the rate inside the velocity). The two agree while the rate is constant; under a
schedule (LeNet's ``inv`` changes it every step) Caffe's form applies a new rate to new gradients
only. ``graphc.optim.SGD`` keeps PyTorch's form; :class:`CaffeSGD` is Caffe's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .. import optim
from ..errors import GraphcError, UsageError
from ..ops import cast, maximum, sqrt, where
from ..ops import sum as gc_sum
from ..optim.optimizers import _fit
from .base import NetError
from .data import parse_binding
from .net import CaffeModel, Net, build
from .prototxt import load_net, load_solver, normalise

__all__ = ["CaffeSGD", "Solver", "main_train", "load_blobs", "load_snapshot", "snapshot_paths", "SOLVER_TYPES"]

SOLVER_TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "Adam")
_LEGACY_TYPES = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad", "RMSPROP": "RMSProp", "ADAM": "Adam"}
_KNOWN_FIELDS = {
    "net", "net_param", "train_net", "test_net", "train_net_param", "test_net_param", "train_state", "test_state",
    "test_iter", "test_interval", "test_compute_loss", "test_initialization", "base_lr", "display", "average_loss",
    "max_iter", "iter_size", "lr_policy", "gamma", "power", "momentum", "weight_decay", "regularization_type",
    "stepsize", "stepvalue", "clip_gradients", "snapshot", "snapshot_prefix", "snapshot_diff", "snapshot_format",
    "solver_mode", "device_id", "random_seed", "type", "solver_type", "delta", "momentum2", "rms_decay",
    "debug_info", "snapshot_after_train", "layer_wise_reduce", "weights",
}  # fmt: skip


class CaffeSGD(optim.SGD):
    """SGD in Caffe's form: ``v <- m v + lr (g + wd w)``, ``w <- w - v``; Nesterov (Caffe's
    ``NesterovSolver``): ``w <- w - ((1 + m) v_new - m v_old)``. With a constant rate these equal
    ``optim.SGD``'s updates (its velocity is this one divided by the rate)."""

    def _update(self, p, g, lr, wd, slots):
        if wd:
            g = g + wd * p
        step = _fit(lr, p.dtype) * g
        if not self.momentum:
            return {p: p - step}
        v, m = slots["v"], self.momentum
        new_v = m * v + step
        if self.nesterov:
            return {v: new_v, p: p - ((1.0 + m) * new_v - m * v)}
        return {v: new_v, p: p - new_v}


def _number(solver: dict, key: str, default=None, integer: bool = False, minimum: float | None = 0):
    value = solver.get(key, default)
    if value is None:
        raise UsageError(f"solver: {key} is required")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise UsageError(f"solver: {key} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if minimum is not None and value < minimum:
        raise UsageError(f"solver: {key} must be >= {minimum}, got {value!r}")
    return value


def _one(value, key: str):
    if isinstance(value, list):
        if len(value) != 1:
            raise UsageError(f"solver: graphc runs one test net; {key} has {len(value)} entries")
        return value[0]
    return value


class Solver:
    """A Caffe solver spec made runnable: nets, optimizer, compiled step and test functions.

    ``solver`` is a path (``.prototxt``/``.yaml``) or a dict; ``bindings`` maps a ``Data`` layer's
    ``source`` to ``digits:train``/``digits:test``/a ``.npz``; ``max_iter`` overrides the solver's
    number of iterations, not its schedule (``poly`` decays to 0 at the solver file's ``max_iter``).
    """

    def __init__(
        self,
        solver,
        *,
        bindings: dict[str, str] | None = None,
        max_iter: int | None = None,
        backend: str | None = None,
        snapshot_dir: str | Path | None = None,
        out=None,
    ):
        self.path = Path(solver) if not isinstance(solver, dict) else None
        self.spec = load_solver(solver) if self.path is not None else normalise(dict(solver), "SolverParameter")
        self.base = self.path.parent if self.path is not None else Path.cwd()
        self.out = out or (lambda text: print(text, flush=True))
        self.backend = backend
        spec = self.spec
        unknown = sorted(set(spec) - _KNOWN_FIELDS)
        if unknown:
            raise UsageError(f"solver: unknown field(s) {', '.join(unknown)}")
        self.notes: list[str] = []
        self._unsupported()
        self.kind = self._solver_type()
        self.max_iter = int(max_iter if max_iter is not None else _number(spec, "max_iter", integer=True, minimum=1))
        if self.max_iter < 1:
            raise UsageError(f"--max-iter must be >= 1, got {self.max_iter}")
        seed = int(_number(spec, "random_seed", -1, integer=True, minimum=None))
        self.seed = seed if seed >= 0 else 0  # Caffe draws a seed for -1; graphc runs are reproducible
        self.test_iter = spec.get("test_iter")
        self.test_interval = int(_number(spec, "test_interval", 0, integer=True))
        self.display = int(_number(spec, "display", 0, integer=True))
        self.snapshot_every = int(_number(spec, "snapshot", 0, integer=True))
        self.snapshot_prefix = self._prefix(snapshot_dir)
        bindings = dict(bindings or {})
        self.net_dirs: list[Path] = []
        train_spec, test_spec = self._net_specs()
        self._check_bindings(bindings, [train_spec, test_spec])
        self.model = CaffeModel(train_spec, self.seed)
        base_dirs = [*self.net_dirs, self.base]  # data files: beside the net, the solver, then the working directory
        self.train_net = build(
            train_spec,
            "TRAIN",
            model=self.model,
            bindings=bindings,
            base_dirs=base_dirs,
            monitor=("Accuracy",),
            **self._state("train_state"),
        )
        self.test_net = self._test_net(test_spec, bindings, base_dirs)
        for weights in spec.get("weights", []):  # initial values, as `caffe train --weights`
            self.model.set_caffe_params(load_blobs(self._path(weights, "weights")))
        self.optimizer = self._optimizer()
        self.names = self._names()
        self._compile()

    # -- reading the solver ------------------------------------------------------------------------

    def _unsupported(self) -> None:
        spec = self.spec
        if spec.get("iter_size", 1) != 1:
            raise UsageError("solver: iter_size (gradient accumulation) is not supported; use a larger batch_size")
        if spec.get("regularization_type", "L2") != "L2":
            raise UsageError(f"solver: regularization_type {spec['regularization_type']} is not supported (L2 is)")
        mode = str(spec.get("solver_mode", "GPU"))
        if mode == "GPU" and "solver_mode" in spec:
            self.notes.append(
                "solver_mode GPU: graphc trains on the CPU (its Numba CPU backend; the Numba CUDA backend is not "
                "ready yet), so this run uses the CPU"
            )
        elif mode not in ("CPU", "GPU"):
            raise UsageError(f"solver: solver_mode must be CPU or GPU, got {mode}")

    def _path(self, value: str, key: str) -> Path:
        """A file named in the solver: beside the solver file first, then in the working directory."""
        p = Path(str(value))
        for candidate in (p,) if p.is_absolute() else (self.base / p, Path.cwd() / p):
            if candidate.exists():
                if candidate.parent not in self.net_dirs:
                    self.net_dirs.append(candidate.parent)
                return candidate
        raise UsageError(
            f"solver: {key} {str(value)!r} does not exist (looked in {self.base} and in the working directory "
            f"{Path.cwd()}; Caffe's paths are relative to the Caffe root, graphc's to the solver file)"
        )

    def _net_specs(self) -> tuple[dict, dict | None]:
        spec = self.spec
        if "net" in spec or "net_param" in spec:
            if any(k in spec for k in ("train_net", "train_net_param")):
                raise UsageError("solver: give net, or train_net (and test_net), not both")
            net = load_net(self._path(spec["net"], "net")) if "net" in spec else spec["net_param"]
            return net, net
        if "train_net" in spec:
            train = load_net(self._path(spec["train_net"], "train_net"))
        elif "train_net_param" in spec:
            train = spec["train_net_param"]
        else:
            raise UsageError("solver: names no net (net, or train_net and test_net)")
        test = None
        if "test_net" in spec:
            test = load_net(self._path(_one(spec["test_net"], "test_net"), "test_net"))
        elif "test_net_param" in spec:
            test = _one(spec["test_net_param"], "test_net_param")
        return train, test

    def _test_net(self, test_spec, bindings, base_dirs) -> Net | None:
        if test_spec is None:
            return None
        state = _one(self.spec["test_state"], "test_state") if "test_state" in self.spec else {}
        stages = {"stages": state.get("stage", []), "level": int(state.get("level", 0))}
        net = build(test_spec, "TEST", model=self.model, bindings=bindings, base_dirs=base_dirs, **stages)
        if not net.sources:
            return None  # the net has no TEST data layer: nothing to test on
        if self.test_iter is None:
            raise UsageError("solver: the net has a TEST phase, so the solver needs test_iter (batches per test)")
        self.test_iter = int(_one(self.test_iter, "test_iter"))
        return net

    def _state(self, key: str) -> dict:
        """A NetState (``train_state { stage: "x" level: 1 }``) as build()'s stages and level."""
        state = self.spec.get(key) or {}
        return {"stages": list(state.get("stage", [])), "level": int(state.get("level", 0))}

    @staticmethod
    def _check_bindings(bindings: dict, specs) -> None:
        """A --data binding whose source no Data layer names is a typo, not something to ignore."""
        sources = {
            str((layer.get("data_param") or {}).get("source"))
            for spec in specs
            if spec is not None
            for layer in spec.get("layer", [])
            if layer.get("type") == "Data"
        }
        for source in bindings:
            if source not in sources:
                known = ", ".join(sorted(sources)) or "none"
                raise UsageError(f"--data {source}=...: no Data layer has the source {source!r} (the net's: {known})")

    def _prefix(self, snapshot_dir) -> Path:
        prefix = self.spec.get("snapshot_prefix")
        if prefix is None:  # Caffe: the solver file's name without its extension
            stem = self.path.stem if self.path is not None else "solver"
            prefix = str(self.base / stem) if snapshot_dir is None else stem
        prefix = Path(str(prefix))
        return Path(snapshot_dir) / prefix.name if snapshot_dir is not None else prefix

    def _solver_type(self) -> str:
        spec = self.spec
        kind = spec.get("type")
        if kind is None and "solver_type" in spec:
            legacy = str(spec["solver_type"])
            if legacy not in _LEGACY_TYPES:
                raise UsageError(
                    f"solver: solver_type {legacy} is not supported; graphc has {', '.join(_LEGACY_TYPES)}"
                )
            kind = _LEGACY_TYPES[legacy]
        kind = str(kind or "SGD")
        if kind not in SOLVER_TYPES:
            raise UsageError(f"solver: type {kind!r} is not supported; graphc has {', '.join(SOLVER_TYPES)}")
        return kind

    def _optimizer(self) -> optim.Optimizer:
        spec, kind = self.spec, self.kind
        if "base_lr" not in spec:
            raise UsageError("solver: base_lr is required")
        # --max-iter stops the run early (or late) as interrupting `caffe train` would: the rate
        # follows the solver file's schedule, so `poly` keeps the file's max_iter
        schedule_spec = dict(spec) if "max_iter" in spec else dict(spec, max_iter=self.max_iter)
        lr = optim.from_caffe(schedule_spec)
        if spec.get("lr_policy") == "poly" and self.max_iter > schedule_spec["max_iter"]:
            self.notes.append(
                f"lr_policy poly reaches 0 at the solver's max_iter {schedule_spec['max_iter']}: the iterations "
                f"after it, up to --max-iter {self.max_iter}, train with rate 0"
            )
        groups = self.model.param_groups()
        if not groups:
            raise NetError("the net has no trainable parameters (every param has lr_mult: 0)")
        wd = float(_number(spec, "weight_decay", 0.0))
        momentum = float(_number(spec, "momentum", 0.0))
        delta = float(_number(spec, "delta", 1e-8))
        if kind in ("AdaGrad", "RMSProp") and momentum:
            raise UsageError(f"solver: {kind} takes no momentum (Caffe's {kind} solver has none), got {momentum}")
        if kind == "SGD":
            return CaffeSGD(groups, lr, momentum=momentum, weight_decay=wd)
        if kind == "Nesterov":
            return CaffeSGD(groups, lr, momentum=momentum, nesterov=True, weight_decay=wd)
        if kind == "AdaGrad":
            return optim.AdaGrad(groups, lr, eps=delta, weight_decay=wd)
        if kind == "RMSProp":
            return optim.RMSProp(groups, lr, alpha=float(_number(spec, "rms_decay", 0.99)), eps=delta, weight_decay=wd)
        beta2 = float(_number(spec, "momentum2", 0.999))
        return optim.Adam(groups, lr, betas=(momentum, beta2), eps=delta, weight_decay=wd)

    # -- compiling -----------------------------------------------------------------------------------

    def _names(self) -> list[str]:
        """The outputs training and testing report: the objective first (the loss top, when there
        is one loss), then every other output of either net."""
        net = self.train_net
        if not net.losses:
            raise NetError("the TRAIN net has no loss layer (SoftmaxWithLoss, EuclideanLoss, ...), nothing to minimize")
        (only, (_, weight)), many = next(iter(net.losses.items())), len(net.losses) > 1
        self.objective = "loss" if many or weight != 1.0 else only
        names = [self.objective]
        for source in (net.outputs, net.monitors, self.test_net.outputs if self.test_net else {}):
            names += [n for n in source if n not in names]
        return names

    def _compile(self) -> None:
        from ..function import function
        from ..training import batches  # noqa: F401  (fails early if the training loop is missing)

        net = self.train_net
        grads = self._clipped_grads(net.loss)
        updates = {**self.optimizer.updates(net.loss, grads), **net.state_updates}
        train_vars = {**net.blobs, **net.monitors, self.objective: net.loss}
        self._train_fn = function(
            net.inputs, [train_vars[n] for n in self.names if n in train_vars], updates=updates, backend=self.backend
        )
        self._train_has = [n in train_vars for n in self.names]
        self._test_fn = None
        if self.test_net is not None:
            test = self.test_net
            test_vars = dict(test.blobs)
            if test.losses:
                test_vars[self.objective] = test.loss
            self._test_has = [n in test_vars for n in self.names]
            self._test_fn = function(  # state updates: a BatchNorm told not to use_global_stats in TEST, as Caffe
                test.inputs,
                [test_vars[n] for n in self.names if n in test_vars],
                updates=test.state_updates or None,
                backend=self.backend,
            )

    def _clipped_grads(self, loss):
        clip = float(_number(self.spec, "clip_gradients", -1.0, minimum=None))
        if clip <= 0:
            return None
        from ..autodiff import grad

        params = self.optimizer.params
        gs = grad(loss, params)
        norm = sqrt(sum((gc_sum(g * g) for g in gs[1:]), gc_sum(gs[0] * gs[0])))
        factor = where(norm > clip, clip / maximum(norm, 1e-30), 1.0)
        return [g * cast(factor, g.dtype) for g in gs]

    @staticmethod
    def _padded(fn, has):
        """``fn``'s outputs with NaN where a name has no value in that net (the TEST net's accuracy
        in a TRAIN net without one), so training and testing report the same names."""

        def call(*arrays):
            outs = fn(*arrays)
            outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
            it = iter(outs)
            return [next(it) if h else np.float32(np.nan) for h in has]

        call.shared = getattr(fn, "shared", [])
        return call

    # -- running -------------------------------------------------------------------------------------

    def test(self) -> dict[str, float]:
        """The test net's outputs averaged over ``test_iter`` batches (all of them when fewer),
        weighted by batch size: what ``fit`` reports as ``val_*``."""
        from ..training import evaluate_batches

        if self._test_fn is None:
            return {}
        test = self.test_net
        fn = self._padded(self._test_fn, self._test_has)
        scores = evaluate_batches(fn, test.arrays(), self.names, test.batch_size, limit=self.test_iter)
        return {k: float(v) for k, v in scores.items() if not np.isnan(v)}

    def solve(self, progress: bool = True):
        """Train for ``max_iter`` iterations; returns the ``History`` (``history["val_accuracy"]``)."""
        from ..training import fit

        for note in self.notes:
            self.out(f"note: {note}")
        train = self.train_net.arrays()
        batch = self.train_net.batch_size
        self.iteration = 0
        self.snapshots: list[Path] = []
        write = self._writer(progress)
        recent: list[float] = []
        step_fn = self._padded(self._train_fn, self._train_has)
        if self._test_fn is not None and self.spec.get("test_initialization", True):
            scores = ", ".join(f"{k} = {v:.4g}" for k, v in self.test().items())
            write(f"Iteration 0, Testing net: {scores}")

        def step(*arrays):
            outs = step_fn(*arrays)
            self.iteration += 1
            recent.append(float(outs[0]))
            if self.display and self.iteration % self.display == 0:
                lr = self.optimizer.lr_value()
                write(f"Iteration {self.iteration}, lr = {lr:.6g}, {self.objective} = {np.mean(recent):.6g}")
                recent.clear()
            if self.snapshot_every and self.iteration % self.snapshot_every == 0 and self.iteration < self.max_iter:
                self.snapshot()
            return outs

        step.shared = step_fn.shared

        def log(row):
            scores = ", ".join(f"{k[4:]} = {v:.4g}" for k, v in row.items() if k.startswith("val_") and not np.isnan(v))
            if scores:
                write(f"Iteration {int(row['step'])}, Testing net: {scores}")

        evaluate = validation = None
        eval_every = self.max_iter
        if self._test_fn is not None:
            evaluate = self._padded(self._test_fn, self._test_has)
            validation = self.test_net.arrays()
            eval_every = self.test_interval or self.max_iter
        history = fit(
            step,
            train,
            names=self.names,
            max_steps=self.max_iter,
            batch_size=batch,
            shuffle=all(source.shuffle for source in self.train_net.sources),
            drop_last=len(train[0]) >= batch,
            seed=self.seed,
            evaluate=evaluate,
            validation=validation,
            eval_every=eval_every,
            eval_batches=self.test_iter if evaluate is not None else None,
            eval_batch_size=self.test_net.batch_size if evaluate is not None else None,
            progress=progress,
            log=log,
        )
        if self.spec.get("snapshot_after_train", True):
            self.snapshot()
        return history

    def _writer(self, progress: bool):
        if not progress:
            return self.out
        from tqdm.auto import tqdm

        return lambda text: tqdm.write(text)

    # -- snapshots -----------------------------------------------------------------------------------

    def snapshot(self) -> Path:
        """``{prefix}_iter_{N}.npz`` (the blobs in Caffe's layout, keyed ``layer/index``),
        ``.json`` (the net, the input shapes, the solver) and ``.solverstate.npz`` (the optimizer)."""
        npz, description, state = snapshot_paths(self.snapshot_prefix, self.iteration)
        npz.parent.mkdir(parents=True, exist_ok=True)
        blobs = {
            f"{layer}/{k}": value
            for layer, values in self.model.caffe_params().items()
            for k, value in enumerate(values)
        }
        with open(npz, "wb") as handle:
            np.savez(handle, **blobs)
        with open(state, "wb") as handle:
            np.savez(handle, **self.optimizer.state_dict())
        shapes = {
            net.phase: {v.name: [list(v.type.shape), v.dtype] for v in net.inputs}
            for net in (self.train_net, self.test_net)
            if net is not None
        }
        info = {
            "format": "graphc.caffe snapshot 2",
            "iter": self.iteration,
            "layout": "Caffe's: blob 'layer/k' is pycaffe's net.params[layer][k]; InnerProduct weights (out, in)",
            "inputs": shapes,
            "model": self.model.config(),  # CaffeModel.from_config rebuilds it, with each phase's net
            "solver": self.spec,
        }
        description.write_text(json.dumps(info, indent=1, default=str) + "\n")
        self.snapshots.append(npz)
        self.out(f"Snapshotting to {npz}")
        return npz


def snapshot_paths(prefix: str | Path, iteration: int) -> tuple[Path, Path, Path]:
    base = f"{prefix}_iter_{iteration}"
    return Path(base + ".npz"), Path(base + ".json"), Path(base + ".solverstate.npz")


def load_snapshot(path: str | Path, phase: str = "TEST", model: CaffeModel | None = None) -> Net:
    """The ``phase`` net of a snapshot with its saved parameters: rebuilt from the ``.json`` beside
    ``path`` (the ``.npz``; the net spec, its input shapes, stages and level per phase), on
    ``model`` when given (a model with the same layers; then only the values are loaded)."""
    npz = Path(path)
    description = npz.with_suffix(".json")
    if not npz.exists() or not description.exists():
        raise UsageError(f"load_snapshot: needs {npz} and {description}")
    info = json.loads(description.read_text())
    if phase not in info["inputs"]:
        raise UsageError(f"load_snapshot: the snapshot has no {phase} net; it has {', '.join(info['inputs'])}")
    config = info.get("model") or {  # format 1: one spec for both phases, no stages
        "type": "CaffeNet",
        "net": info["net"],
        "seed": info.get("seed", 0),
        "builds": [{"phase": p, "inputs": shapes, "stages": [], "level": 0} for p, shapes in info["inputs"].items()],
    }
    if model is None:
        model = CaffeModel.from_config(config)
        net = model.rebuild(phase)
    else:
        entry = [e for e in config["builds"] if e["phase"] == phase][-1]
        net = model.replay({"net": config["net"], **entry})
    model.set_caffe_params(load_blobs(npz))
    return net


def load_blobs(path: str | Path) -> dict[str, list[np.ndarray]]:
    """``{layer: [blob values]}`` from an ``.npz`` keyed ``layer/k`` (a snapshot, or a
    ``.caffemodel`` converted with pycaffe: ``{f"{l}/{k}": b.data for l in net.params ...}``)."""
    values: dict[str, list] = {}
    with np.load(path) as data:
        for key in data.files:
            layer, _, k = key.rpartition("/")
            if not layer or not k.isdigit():
                raise UsageError(f"{path}: array {key!r} is not named layer/index (e.g. conv1/0)")
            values.setdefault(layer, []).append((int(k), data[key]))
    return {layer: [v for _, v in sorted(items)] for layer, items in values.items()}


# -- the command ---------------------------------------------------------------------------------------


def main_train(argv=None) -> int:
    """``graphc train --solver FILE [--data SOURCE=BINDING ...] [--max-iter N] [--backend B] [--snapshot-dir DIR]``."""
    parser = argparse.ArgumentParser(
        prog="graphc train",
        description="Train a Caffe net (prototxt or YAML) with its solver file, as `caffe train --solver`.",
    )
    parser.add_argument("--solver", required=True, help="the solver file (.prototxt or .yaml)")
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="SOURCE=BINDING",
        help="bind a Data layer's source to digits:train, digits:test or a .npz file (repeatable)",
    )
    parser.add_argument(
        "--max-iter",
        type=int,
        default=None,
        help="stop after this many iterations instead of the solver's max_iter; the learning rate still follows the "
        "solver file's schedule (lr_policy poly keeps decaying to 0 at the file's max_iter), as if `caffe train` "
        "were stopped early",
    )
    parser.add_argument("--backend", choices=("numba", "numpy"), default=None, help="graphc backend (default numba)")
    parser.add_argument("--snapshot-dir", default=None, help="write snapshots here instead of at snapshot_prefix")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        bindings = {}
        for text in args.data:
            binding = parse_binding(text)
            bindings[binding.source] = binding.target
        solver = Solver(
            args.solver, bindings=bindings, max_iter=args.max_iter, backend=args.backend, snapshot_dir=args.snapshot_dir
        )
        solver.solve(progress=not args.no_progress)
        scores = solver.test()
    except GraphcError as err:  # the detail only, as `graphc trace`: a Python source line means nothing here
        print(f"graphc train: error: {err.op + ': ' if err.op else ''}{err.detail}", file=sys.stderr)
        return 2
    if scores:
        print("Test: " + ", ".join(f"{k} = {v:.4f}" for k, v in scores.items()), flush=True)
    return 0
