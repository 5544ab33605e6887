"""Where a Caffe net's data layers get their arrays: local files, and bindings given on the command line.

Caffe's ``Data`` layer reads an LMDB or LevelDB database that graphc cannot read (and that a
lecture example rarely ships). Instead a data layer's ``source`` is *bound* to arrays::

    graphc train --solver lenet_solver.prototxt \\
        --data examples/mnist/mnist_train_lmdb=digits:train --data examples/mnist/mnist_test_lmdb=digits:test

A binding is ``digits:train`` / ``digits:test`` (scikit-learn's digits, shipped with
scikit-learn: no download) or a ``.npz`` file whose arrays are named by the layer's tops. A
``Data`` layer whose ``source`` is itself an ``.npz`` file needs no binding; ``HDF5Data`` reads its
``source`` as Caffe does: a text file listing ``.h5`` files, whose datasets are named by the tops.
``transform_param { scale mean_value }`` is applied here, once, to the whole array (Caffe's order:
subtract the mean, then scale).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .base import NetError

__all__ = ["Binding", "DataSource", "parse_binding", "digits", "load_layer_data", "DIGITS_SPLIT"]

#: how the digits are split: a fixed permutation (seed 0), the first 80% for training
DIGITS_SPLIT = {"seed": 0, "train_fraction": 0.8}


@dataclass(frozen=True)
class Binding:
    """``--data SOURCE=BINDING``: the Caffe ``source`` string and what it stands for."""

    source: str
    target: str


def parse_binding(text: str) -> Binding:
    """``"examples/mnist/mnist_train_lmdb=digits:train"`` as a :class:`Binding`."""
    source, sep, target = text.rpartition("=")
    if not sep or not source or not target:
        raise UsageError(f"--data takes SOURCE=BINDING (e.g. mnist_train_lmdb=digits:train), got {text!r}")
    if target.startswith("digits") and target not in ("digits:train", "digits:test"):
        raise UsageError(f"--data {text}: the digits binding is digits:train or digits:test, got {target!r}")
    if not target.startswith("digits:") and not target.endswith(".npz"):
        raise UsageError(f"--data {text}: a binding is digits:train, digits:test or a .npz file, got {target!r}")
    return Binding(source, target)


@dataclass
class DataSource:
    """The arrays one data layer yields, by top name, and how it batches them."""

    layer: str
    tops: list[str]
    arrays: dict[str, np.ndarray]
    batch_size: int
    origin: str  # where the arrays came from, for messages
    shuffle: bool = True

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def shape(self, top: str) -> tuple:
        """The blob shape the net sees: the batch axis unknown (``None``), the rest static."""
        return (None, *self.arrays[top].shape[1:])


# -- scikit-learn's digits as MNIST-like 28x28 images ------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits_all() -> tuple[np.ndarray, np.ndarray]:
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float64) * (255.0 / 16.0)  # 0..16 -> 0..255, MNIST's range
    # 8x8 -> 20x20 by bilinear interpolation (zoom 2.5, order 1), then a 4-pixel border: MNIST's
    # digits sit in a 20x20 box centred in 28x28, which is what LeNet's layer sizes assume.
    big = zoom(images, (1, 2.5, 2.5), order=1, grid_mode=True, mode="nearest")
    big = np.clip(big, 0.0, 255.0)
    out = np.zeros((len(images), 1, 28, 28), dtype=np.float32)
    out[:, 0, 4:24, 4:24] = big
    return out, bunch.target.astype(np.int64)


def digits(part: str) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 handwritten digits as (N, 1, 28, 28) float32 images with pixel values
    0..255, and int64 labels 0..9; ``part`` is ``"train"`` (1437 images) or ``"test"`` (360).

    The split is a fixed permutation (``DIGITS_SPLIT``), the same for both bindings, so the two
    parts never overlap."""
    if part not in ("train", "test"):
        raise UsageError(f"digits: part is 'train' or 'test', got {part!r}")
    images, labels = _digits_all()
    order = np.random.default_rng(DIGITS_SPLIT["seed"]).permutation(len(images))
    cut = int(round(DIGITS_SPLIT["train_fraction"] * len(images)))
    idx = order[:cut] if part == "train" else order[cut:]
    return images[idx], labels[idx]


# -- reading a layer's arrays ------------------------------------------------------------------


def _who(layer: dict) -> str:
    return f"layer {layer.get('name', '?')!r} ({layer.get('type', '?')})"


def _as_blob(array: np.ndarray, first: bool) -> np.ndarray:
    """The first top (the data) as float32 whatever its dtype, since Caffe's data blob is float
    (uint8 images included) and graphc nets compute in float32; later tops (labels) keep integers
    as int64, floats as float32."""
    array = np.asarray(array)
    if not first and array.dtype.kind in "iub":
        return array.astype(np.int64)
    return array.astype(np.float32)


def _npz(path: Path, tops: list[str], who: str) -> dict[str, np.ndarray]:
    if not path.exists():
        raise NetError(f"{who}: no such file {path}")
    with np.load(path) as data:
        missing = [top for top in tops if top not in data.files]
        if missing:
            raise NetError(
                f"{who}: {path} has no array named {', '.join(map(repr, missing))} (the layer's tops "
                f"{tops} name the arrays it reads); it holds {', '.join(data.files) or 'nothing'}"
            )
        return {top: _as_blob(data[top], k == 0) for k, top in enumerate(tops)}


def _resolve(path: str, base_dirs: list[Path]) -> Path:
    """A relative path looked up under each of ``base_dirs`` in turn (then as given)."""
    p = Path(path)
    if p.is_absolute():
        return p
    for base in base_dirs:
        if (base / p).exists():
            return base / p
    return p


def _hdf5(layer: dict, tops: list[str], base_dirs: list[Path]) -> tuple[dict[str, np.ndarray], str]:
    who = _who(layer)
    param = layer.get("hdf5_data_param")
    if not isinstance(param, dict) or "source" not in param:
        raise NetError(f'{who}: needs hdf5_data_param {{ source: "list.txt" batch_size: N }}')
    listing = _resolve(str(param["source"]), base_dirs)
    if not listing.exists():
        raise NetError(f"{who}: the source list {param['source']!r} does not exist (looked in {listing})")
    files = [line.strip() for line in listing.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not files:
        raise NetError(f"{who}: the source list {listing} names no .h5 file")
    import h5py

    parts: dict[str, list[np.ndarray]] = {top: [] for top in tops}
    for name in files:
        path = _resolve(name, [listing.parent, *base_dirs])
        if not path.exists():
            raise NetError(f"{who}: {listing} lists {name}, which does not exist")
        with h5py.File(path, "r") as h5:
            for top in tops:
                if top not in h5:
                    raise NetError(f"{who}: {path} has no dataset {top!r}; it holds {', '.join(h5.keys())}")
                parts[top].append(np.asarray(h5[top]))
    arrays = {top: _as_blob(np.concatenate(parts[top]), k == 0) for k, top in enumerate(tops)}
    return arrays, str(listing)


def _transform(layer: dict, arrays: dict[str, np.ndarray], tops: list[str]) -> None:
    """Caffe's ``transform_param`` on the first top (the data): ``(x - mean_value) * scale``."""
    param = layer.get("transform_param")
    if not param:
        return
    who = _who(layer)
    unsupported = [k for k in ("crop_size", "mean_file", "force_color", "force_gray") if k in param]
    if param.get("mirror"):
        unsupported.append("mirror")
    if unsupported:
        raise NetError(f"{who}: transform_param {', '.join(unsupported)} is not supported (only scale and mean_value)")
    data = arrays[tops[0]]
    if data.dtype.kind != "f":
        data = data.astype(np.float32)
    if "mean_value" in param:
        means = np.asarray(param["mean_value"], dtype=np.float32)
        channels = data.shape[1] if data.ndim >= 2 else 1
        if len(means) not in (1, channels):
            raise NetError(f"{who}: {len(means)} mean_value entries for data with {channels} channels")
        data = data - means.reshape((1, len(means)) + (1,) * (data.ndim - 2)) if data.ndim >= 2 else data - means
    if "scale" in param:
        data = data * np.float32(param["scale"])
    arrays[tops[0]] = data.astype(np.float32)


def _batch_size(layer: dict, key: str) -> int:
    who = _who(layer)
    param = layer.get(key) or {}
    size = param.get("batch_size")
    if size is None:
        raise NetError(f"{who}: {key} needs batch_size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise NetError(f"{who}: batch_size must be a positive int, got {size!r}")
    return size


def load_layer_data(layer: dict, bindings: dict[str, str] | None = None, base_dirs=()) -> DataSource:
    """The arrays of a ``Data`` or ``HDF5Data`` layer (``layer`` as parsed), read or bound."""
    who, kind = _who(layer), layer.get("type")
    tops = list(layer.get("top", []))
    if not tops:
        raise NetError(f"{who}: a data layer needs at least one top")
    base_dirs = [Path(b) for b in base_dirs] + [Path.cwd()]
    bindings = bindings or {}
    if kind == "HDF5Data":
        arrays, origin = _hdf5(layer, tops, base_dirs)
        batch_size = _batch_size(layer, "hdf5_data_param")
        shuffle = bool((layer.get("hdf5_data_param") or {}).get("shuffle", False))
    elif kind == "Data":
        param = layer.get("data_param")
        if not isinstance(param, dict) or "source" not in param:
            raise NetError(f"{who}: needs data_param {{ source: ... batch_size: N }}")
        source = str(param["source"])
        batch_size = _batch_size(layer, "data_param")
        shuffle = True  # Caffe reads its database in order; the databases are written shuffled
        target = bindings.get(source)
        if target is None and source.endswith(".npz"):
            target = str(_resolve(source, base_dirs))
        if target is None:
            raise NetError(
                f"{who}: its source {source!r} is a {param.get('backend', 'LEVELDB')} database, which graphc "
                f"does not read; bind it to arrays with --data {source}=digits:train (or digits:test, or a .npz "
                f"file whose arrays are named {', '.join(tops)})"
            )
        if target.startswith("digits:"):
            if len(tops) > 2:
                raise NetError(f"{who}: the digits give two tops (images, labels), the layer has {len(tops)}")
            images, labels = digits(target.split(":", 1)[1])
            arrays = dict(zip(tops, (images, labels)))
        else:
            arrays = _npz(_resolve(target, base_dirs), tops, who)
        origin = target
    else:
        raise NetError(f"{who}: not a data layer graphc reads (Data, HDF5Data)")
    lengths = {top: len(a) for top, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise NetError(f"{who}: its tops have different numbers of examples: {lengths}")
    _transform(layer, arrays, tops)
    return DataSource(str(layer.get("name", kind)), tops, arrays, batch_size, origin, shuffle)
