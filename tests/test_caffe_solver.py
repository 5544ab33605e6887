"""graphc.caffe's solver: solver files as optimizers and training runs, snapshots, `graphc train`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc import caffe, optim
from graphc.caffe import NetError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "caffe"
LENET_SOLVER = EXAMPLES / "lenet_solver.prototxt"
DIGITS = {"examples/mnist/mnist_train_lmdb": "digits:train", "examples/mnist/mnist_test_lmdb": "digits:test"}

TINY_NET = """
name: "tiny"
layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TRAIN }
        data_param { source: "tiny_train.npz" batch_size: 16 } }
layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TEST }
        data_param { source: "tiny_test.npz" batch_size: 20 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy" include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""
TINY_SOLVER = """
net: "tiny_net.prototxt"
base_lr: 0.1  momentum: 0.9  weight_decay: 0.0001  lr_policy: "step"  gamma: 0.5  stepsize: 40
max_iter: 80  test_iter: 5  test_interval: 40  display: 20  snapshot: 40  snapshot_prefix: "out/tiny"
solver_mode: GPU  random_seed: 7
"""


def _tiny_files(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, (3, 4))
    for part, n in (("train", 240), ("test", 90)):
        y = np.arange(n) % 3
        np.savez(
            tmp_path / f"tiny_{part}.npz", data=(centers[y] + rng.normal(0, 1, (n, 4))).astype(np.float32), label=y
        )
    (tmp_path / "tiny_net.prototxt").write_text(TINY_NET)
    (tmp_path / "tiny_solver.prototxt").write_text(TINY_SOLVER)
    return tmp_path / "tiny_solver.prototxt"


def test_main_train_runs_snapshots_and_reloads(tmp_path, capsys, monkeypatch):
    solver_file = _tiny_files(tmp_path)
    monkeypatch.chdir(tmp_path.parent)  # the net is found beside the solver, not in the working directory
    snaps = tmp_path / "snaps"
    args = ["--solver", str(solver_file), "--backend", "numpy", "--snapshot-dir", str(snaps), "--no-progress"]
    assert caffe.main_train(args) == 0
    out = capsys.readouterr().out
    assert "note: solver_mode GPU: graphc trains on the CPU" in out
    assert "Iteration 20, lr = 0.1," in out and "Iteration 60, lr = 0.05," in out
    assert all(f"Iteration {n}, Testing net: " in out for n in (0, 40, 80))  # 0: Caffe's test_initialization
    accuracy = float(out.strip().splitlines()[-1].split("accuracy = ")[1].split(",")[0])
    assert out.strip().splitlines()[-1].startswith("Test: ") and accuracy > 0.9
    assert sorted(p.name for p in snaps.iterdir()) == [
        "tiny_iter_40.json", "tiny_iter_40.npz", "tiny_iter_40.solverstate.npz",
        "tiny_iter_80.json", "tiny_iter_80.npz", "tiny_iter_80.solverstate.npz",
    ]  # fmt: skip
    info = json.loads((snaps / "tiny_iter_80.json").read_text())
    assert info["iter"] == 80 and info["inputs"]["TEST"]["data"] == [[None, 4], "float32"]
    with np.load(snaps / "tiny_iter_80.npz") as blobs:
        assert sorted(blobs.files) == ["ip/0", "ip/1"] and blobs["ip/0"].shape == (3, 4)  # Caffe's (out, in)
        w, b = blobs["ip/0"], blobs["ip/1"]
    with np.load(snaps / "tiny_iter_80.solverstate.npz") as state:
        assert int(state["iterations"]) == 80
    net = caffe.load_snapshot(snaps / "tiny_iter_80.npz")
    with np.load(tmp_path / "tiny_test.npz") as test:
        x, y = test["data"], test["label"]
    acc = gc.function(net.inputs, net.accuracies["accuracy"])(x, y)
    assert np.isclose(acc, ((x @ w.T + b).argmax(axis=1) == y).mean()) and np.isclose(acc, accuracy, atol=1e-4)
    # a solver's `weights` start training from a snapshot (`caffe train --weights`)
    spec = caffe.load_solver(solver_file) | {"weights": str(snaps / "tiny_iter_80.npz")}
    resumed = caffe.Solver(spec | {"net": str(tmp_path / "tiny_net.prototxt")}, out=lambda text: None)
    np.testing.assert_array_equal(resumed.model.caffe_params()["ip"][0], w)


BN_NET = TINY_NET.replace(
    'layer { name: "ip"',
    'layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" }\n'
    'layer { name: "sc" type: "Scale" bottom: "data" top: "data" scale_param { bias_term: true } }\nlayer { name: "ip"',
)


def test_batchnorm_snapshots_and_checkpoints_reload(tmp_path):
    """A net with BatchNorm: its 3 blobs are in the snapshot as pycaffe's net.params["bn"][0..2];
    load_snapshot and CaffeModel.from_config + load_checkpoint rebuild it with the trained values."""
    from graphc import training

    _tiny_files(tmp_path)
    (tmp_path / "tiny_net.prototxt").write_text(BN_NET)
    spec = caffe.load_solver(tmp_path / "tiny_solver.prototxt") | {"max_iter": 12, "snapshot": 0, "test_interval": 0}
    spec |= {"net": str(tmp_path / "tiny_net.prototxt"), "snapshot_prefix": str(tmp_path / "bn")}
    solver = caffe.Solver(spec, backend="numpy", out=lambda text: None)
    solver.solve(progress=False)
    m, v, s = solver.model.caffe_params()["bn"]
    np.testing.assert_allclose(s, [sum(0.999**k for k in range(12))], rtol=1e-5)  # 12 TRAIN steps, none in TEST
    with np.load(tmp_path / "bn_iter_12.npz") as blobs:
        assert sorted(blobs.files) == ["bn/0", "bn/1", "bn/2", "ip/0", "ip/1", "sc/0", "sc/1"]
        np.testing.assert_array_equal(blobs["bn/2"], s)
    with np.load(tmp_path / "tiny_test.npz") as test:
        x, y = test["data"], test["label"]
    expected = solver.test_net.function(["ip"])(x, y)[0]
    net = caffe.load_snapshot(tmp_path / "bn_iter_12.npz")
    np.testing.assert_allclose(net.function(["ip"])(x, y)[0], expected, rtol=1e-6)
    # a graphc.training checkpoint of the model: its config names the nets to rebuild
    npz, description = training.save_checkpoint(tmp_path / "ckpt", solver.model, solver.optimizer)
    config = json.loads(description.read_text())
    assert config["type"] == "CaffeNet" and [b["phase"] for b in config["builds"]] == ["TRAIN", "TEST"]
    model = caffe.CaffeModel.from_config(config)
    assert sorted(model.state_dict()) == sorted(solver.model.state_dict())
    training.load_checkpoint(tmp_path / "ckpt", model=model)
    for name, value in solver.model.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[name], value)
    np.testing.assert_allclose(model.rebuild("TEST").function(["ip"])(x, y)[0], expected, rtol=1e-6)
    # without model=, load_checkpoint rebuilds the Caffe model from its JSON description alone
    reloaded = training.load_checkpoint(tmp_path / "ckpt")
    assert isinstance(reloaded, caffe.CaffeModel)
    np.testing.assert_allclose(reloaded.rebuild("TEST").function(["ip"])(x, y)[0], expected, rtol=1e-6)
    with pytest.raises(NetError, match="no TEST net was built on this model"):
        caffe.CaffeModel.from_config(config | {"builds": config["builds"][:1]}).rebuild("TEST")
    with pytest.raises(NetError, match=r"needs a CaffeModel's config\(\) \(type 'CaffeNet'\)"):
        caffe.CaffeModel.from_config({"type": "Sequential", "layers": []})


def test_max_iter_stops_early_and_keeps_the_files_schedule(tmp_path):
    spec = caffe.load_solver(_tiny_files(tmp_path)) | {"net": str(tmp_path / "tiny_net.prototxt")}
    spec |= {"lr_policy": "poly", "power": 1.0, "max_iter": 100}
    short = caffe.Solver(spec, max_iter=10, backend="numpy", out=lambda text: None)
    assert short.max_iter == 10 and isinstance(short.optimizer.lr, optim.Poly) and short.optimizer.lr.max_iter == 100
    assert short.optimizer.lr.value(9) == pytest.approx(0.1 * 0.91)  # not 0.1 * 0.1: the decay is not compressed
    assert not any("poly" in note for note in short.notes)
    long = caffe.Solver(spec, max_iter=150, backend="numpy", out=lambda text: None)
    assert long.optimizer.lr.max_iter == 100
    assert any(
        "poly reaches 0 at the solver's max_iter 100" in note and "--max-iter 150" in note for note in long.notes
    )
    without = caffe.Solver({k: v for k, v in spec.items() if k != "max_iter"}, max_iter=30, out=lambda text: None)
    assert without.optimizer.lr.max_iter == 30  # no max_iter in the file: the run's length is the schedule's


def test_solver_lowers_the_loss_and_reports_the_same_names(tmp_path):
    solver = caffe.Solver(_tiny_files(tmp_path), backend="numpy", snapshot_dir=tmp_path / "s", out=lambda text: None)
    assert solver.names == ["loss", "accuracy"] and solver.train_net.monitors.keys() == {"accuracy"}
    assert [(g.lr_mult, g.decay_mult) for g in solver.optimizer.groups] == [(1.0, 1.0)]
    before = solver.test()
    history = solver.solve(progress=False)
    losses = history.per_step["loss"]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert history["val_accuracy"][-1] > before["accuracy"] and history["step"] == [40, 80]


def test_solver_errors(tmp_path, capsys):
    solver_file = _tiny_files(tmp_path)
    with pytest.raises(gc.UsageError, match="type 'AdaDelta' is not supported; graphc has SGD, Nesterov"):
        caffe.Solver(caffe.load_solver(solver_file) | {"type": "AdaDelta", "net": str(tmp_path / "tiny_net.prototxt")})
    with pytest.raises(gc.UsageError, match="net 'nowhere.prototxt' does not exist .*relative to the Caffe root"):
        caffe.Solver({"net": "nowhere.prototxt", "base_lr": 0.1, "max_iter": 10})
    with pytest.raises(gc.UsageError, match="unknown field\\(s\\) learning_rate"):
        caffe.Solver({"net": "x", "learning_rate": 0.1})
    with pytest.raises(gc.UsageError, match="no Data layer has the source 'train.npz' .*tiny_test.npz, tiny_train.npz"):
        caffe.Solver(solver_file, bindings={"train.npz": "digits:train"})
    assert caffe.main_train(["--solver", str(tmp_path / "nope.prototxt")]) == 2
    assert capsys.readouterr().err == f"graphc train: error: {tmp_path / 'nope.prototxt'}: no such file\n"


def test_lenet_solver_on_digits_improves_accuracy(tmp_path, capsys):
    """The example itself, briefly: 40 iterations of Caffe's LeNet solver (numba backend)."""
    args = ["--solver", str(LENET_SOLVER), "--max-iter", "40", "--backend", "numba", "--no-progress"]
    args += ["--snapshot-dir", str(tmp_path)]
    for source, target in DIGITS.items():
        args += ["--data", f"{source}={target}"]
    assert caffe.main_train(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    first = next(line for line in lines if line.startswith("Iteration 0, Testing net:"))
    before, after = (float(line.split("accuracy = ")[1].split(",")[0]) for line in (first, lines[-1]))
    assert lines[-1].startswith("Test: ") and after > 0.6 and after > before + 0.4, (first, lines[-1])  # chance: 0.1
    assert (tmp_path / "lenet_iter_40.npz").exists()


@pytest.mark.parametrize(
    "fields, kind, check",
    [
        ({"type": "Nesterov"}, caffe.CaffeSGD, lambda o: o.nesterov and o.momentum == 0.9),
        ({"solver_type": "ADAGRAD", "momentum": 0, "delta": 1e-6}, optim.AdaGrad, lambda o: o.eps == 1e-6),
        ({"type": "RMSProp", "momentum": 0, "rms_decay": 0.95}, optim.RMSProp, lambda o: o.alpha == 0.95),
        ({"type": "Adam", "momentum2": 0.99}, optim.Adam, lambda o: o.betas == (0.9, 0.99) and o.eps == 1e-8),
    ],
)
def test_solver_types_map_to_optimizers(tmp_path, fields, kind, check):
    spec = caffe.load_solver(_tiny_files(tmp_path)) | {"net": str(tmp_path / "tiny_net.prototxt")} | fields
    solver = caffe.Solver(spec, backend="numpy", out=lambda text: None)
    assert type(solver.optimizer) is kind and check(solver.optimizer)
    assert solver.optimizer.weight_decay == 0.0001


def test_clip_gradients_bounds_the_global_norm(tmp_path):
    spec = caffe.load_solver(_tiny_files(tmp_path)) | {"net": str(tmp_path / "tiny_net.prototxt")}
    spec |= {"momentum": 0, "weight_decay": 0, "clip_gradients": 0.01, "lr_policy": "fixed"}
    solver = caffe.Solver(spec, backend="numpy", out=lambda text: None)
    before = [v.copy() for v in solver.model.caffe_params()["ip"]]
    x, y = solver.train_net.arrays()
    solver._train_fn(x[:16], y[:16])
    after = solver.model.caffe_params()["ip"]
    step = math.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(after, before)))
    assert np.isclose(step, 0.1 * 0.01, rtol=1e-3)  # lr x clip: the raw gradient is far larger
    with pytest.raises(gc.UsageError, match="RMSProp takes no momentum"):
        caffe.Solver(spec | {"type": "RMSProp", "momentum": 0.9}, out=lambda text: None)
