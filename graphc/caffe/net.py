"""A Caffe net spec as graphc graphs: ``build(spec, "TRAIN")`` and ``build(spec, "TEST", model=...)``.

Caffe describes one net for both phases; each layer says with ``include { phase: TRAIN }`` or
``exclude`` where it belongs. ``build`` walks the layers in order, keeps those of the phase, and
turns each into graph nodes: blobs are graphc variables by name, an in-place layer (``top`` equal
to ``bottom``, as LeNet's ReLU) rebinds its blob's name to the new variable, data layers become the
net's inputs, and loss tops (with their ``loss_weight``) sum to the objective.

Parameters live in a :class:`CaffeModel` (a ``graphc.nn.Module``): each layer with parameters is a
graphc.nn module built once per layer *name*, so the TRAIN and TEST nets built from one model share
every parameter, as Caffe's test net shares the weights of the training net.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import nn
from ..errors import GraphcError, ShapeError
from ..graph import SharedVariable, Variable
from ..inputs import tensor
from . import data as caffe_data
from .fillers import fill, filler_rng
from .layers import DATA_TYPES, FLOAT, LAYERS, SUPPORTED, Blob, Context, NetError, NetShapeError
from .prototxt import load_net, normalise

__all__ = ["CaffeModel", "Net", "build", "included", "NetError", "NetShapeError"]

PHASES = ("TRAIN", "TEST")


class CaffeModel(nn.Module):
    """The parameters of a Caffe net: one child module per layer with parameters, by layer name.

    ``param_groups()`` groups the parameters by their ``param { lr_mult decay_mult }`` (the first
    ``param`` block is the weight's, the second the bias's); parameters with ``lr_mult: 0`` are
    frozen and left out. ``caffe_params()`` gives the values in Caffe's layout (InnerProduct
    weights (out, in)), as pycaffe's ``net.params[layer][i].data``.

    The model's layers exist once a net has been built on it, so ``config()`` records each build
    (phase, input shapes, stages, level, and the net spec when it is not the model's own: a
    solver's separate ``test_net``), and :meth:`from_config` replays them: the rebuilt model has
    the same modules, ready for ``load_state_dict`` (``graphc.training.load_checkpoint``).
    """

    def __init__(self, spec: dict, seed: int = 0, name: str | None = None):
        super().__init__(name or str(spec.get("name", "CaffeNet")))
        self.spec, self.seed = spec, int(seed)
        self.signatures: dict[str, tuple] = {}
        self.blobs: dict[str, list[tuple[SharedVariable, Blob]]] = {}
        self.options: dict[SharedVariable, tuple[float, float]] = {}
        self.param_names: dict[str, str] = {}  # param { name } -> the layer that declared it
        self.builds: list[dict] = []  # how each net on this model was built, for config()
        self.hparams = {"seed": self.seed}

    def record_build(self, spec: dict, net: Net, stages, level: int) -> None:
        """Remember how ``net`` was built (``build`` calls this), so ``from_config`` can replay it."""
        entry = {
            "phase": net.phase,
            "inputs": {v.name: [list(v.type.shape), v.dtype] for v in net.inputs},
            "stages": list(stages),
            "level": int(level),
        }
        if spec != self.spec:
            entry["net"] = spec
        if entry not in self.builds:
            self.builds.append(entry)

    def rebuild(self, phase: str) -> Net:
        """The ``phase`` net as it was last built on this model (from the recorded input shapes,
        without data): what ``load_snapshot`` uses."""
        entries = [e for e in self.builds if e["phase"] == phase]
        if not entries:
            built = ", ".join(sorted({e["phase"] for e in self.builds})) or "none"
            raise NetError(f"{self.name}: no {phase} net was built on this model (built: {built})")
        return self.replay(entries[-1])

    def replay(self, entry: dict) -> Net:
        """Build a net on this model as one of ``config()["builds"]`` describes it."""
        shapes = {name: (tuple(shape), dtype) for name, (shape, dtype) in entry["inputs"].items()}
        spec = entry.get("net", self.spec)
        return build(spec, entry["phase"], model=self, shapes=shapes, stages=entry["stages"], level=entry["level"])

    @classmethod
    def from_config(cls, config: dict) -> CaffeModel:
        """The model ``config()`` describes, with every layer module its nets had (values: the
        fillers'; load saved ones with ``load_state_dict`` or ``set_caffe_params``)."""
        if not isinstance(config, dict) or config.get("type") != "CaffeNet" or "net" not in config:
            raise NetError(f"CaffeModel.from_config needs a CaffeModel's config() (type 'CaffeNet'), got {config!r}")
        model = cls(config["net"], config.get("seed", 0), name=config.get("name"))
        for entry in config.get("builds", []):
            model.replay(entry)
        return model

    def layer_seed(self, layer: str) -> int:
        return int(np.random.SeedSequence(self.seed, spawn_key=(zlib.crc32(layer.encode()),)).generate_state(1)[0])

    def layer_module(self, ctx: Context, signature: tuple, factory, blobs) -> nn.Module:
        name = ctx.name
        if name in self.signatures:
            if self.signatures[name] != signature:
                raise NetShapeError(
                    f"{ctx.who}: built as {_sig(self.signatures[name])} in one phase and as {_sig(signature)} in "
                    f"this one ({ctx.phase}); a layer name shared by both phases shares its parameters, so their "
                    "shapes must agree"
                )
            return self._children[name]
        specs = ctx.layer.get("param", [])
        for spec in specs:
            shared_name = spec.get("name") if isinstance(spec, dict) else None
            if shared_name is not None and self.param_names.setdefault(shared_name, name) != name:
                raise NetError(
                    f"{ctx.who}: param name {shared_name!r} is also used by layer {self.param_names[shared_name]!r}; "
                    "sharing parameters between layers by name is not supported"
                )
        module = factory()
        trained = [b for b in blobs if b.filler is not None]
        if len(specs) > max(len(trained), 1) and ctx.type not in ("BatchNorm",):
            raise NetError(f"{ctx.who}: {len(specs)} param blocks for {len(trained)} parameter blob(s)")
        entries = []
        for k, blob in enumerate(blobs):
            var = getattr(module, blob.attr)
            if blob.filler is not None:
                spec = ctx.layer.get(_filler_owner(ctx.type), {}).get(blob.filler, blob.default_filler)
                value = fill(spec, blob.shape, filler_rng(self.seed, name, k), f"{ctx.who} {blob.filler}")
                var.set_value((value.T if blob.transposed else value).astype(var.dtype))
                opts = specs[k] if k < len(specs) else {}
                self.options[var] = (float(opts.get("lr_mult", 1.0)), float(opts.get("decay_mult", 1.0)))
            entries.append((var, blob))
        for var in module.params:  # parameters Caffe's layer does not have (BatchNorm's gamma, beta)
            self.options.setdefault(var, (0.0, 0.0))
        self._children[name] = module  # by name, not setattr: a layer may be called "train" or "params"
        self.signatures[name] = signature
        if entries:
            self.blobs[name] = entries
        return module

    def param_groups(self) -> list[dict]:
        groups: dict[tuple[float, float], list[SharedVariable]] = {}
        for var in self.params:
            lr, decay = self.options.get(var, (1.0, 1.0))
            if lr != 0.0:
                groups.setdefault((lr, decay), []).append(var)
        return [{"params": ps, "lr_mult": lr, "decay_mult": decay} for (lr, decay), ps in groups.items()]

    def caffe_params(self) -> dict[str, list[np.ndarray]]:
        """``{layer: [blob values]}`` in Caffe's order and layout (copies)."""
        out = {}
        for layer, entries in self.blobs.items():
            out[layer] = [var.get_value().T if blob.transposed else var.get_value() for var, blob in entries]
        return out

    def set_caffe_params(self, values: dict[str, list]) -> None:
        """Set blobs from ``{layer: [values]}`` in Caffe's layout (a converted ``.caffemodel``)."""
        for layer, arrays in values.items():
            if layer not in self.blobs:
                raise NetError(f"no layer {layer!r} with parameters in this net; it has {', '.join(self.blobs)}")
            entries = self.blobs[layer]
            if len(arrays) > len(entries):
                raise NetError(f"layer {layer!r}: {len(arrays)} values for {len(entries)} blobs")
            for k, ((var, blob), value) in enumerate(zip(entries, arrays)):
                value = np.asarray(value)
                if value.shape != tuple(blob.shape):
                    raise NetShapeError(
                        f"layer {layer!r}: blob {k} has shape {tuple(blob.shape)}, the value {value.shape}"
                    )
                var.set_value((value.T if blob.transposed else value).astype(var.dtype))

    def config(self) -> dict:
        """``{"type": "CaffeNet", "name", "seed", "net": the spec, "builds": [...]}``: rebuilt by
        :meth:`from_config` (``graphc.nn.from_config`` knows no Caffe layers)."""
        return {"type": "CaffeNet", "name": self.name, "seed": self.seed, "net": self.spec, "builds": self.builds}


def _sig(signature: tuple) -> str:
    return f"{signature[0]}{signature[1:]}"


def _filler_owner(kind: str) -> str:
    return {"Convolution": "convolution_param", "InnerProduct": "inner_product_param", "Scale": "scale_param"}.get(
        kind, ""
    )


@dataclass
class Net:
    """One phase of a Caffe net as graphc variables."""

    phase: str
    model: CaffeModel
    inputs: list[Variable] = field(default_factory=list)  # the data tops, in layer order
    sources: list = field(default_factory=list)  # DataSource per data layer that read arrays
    blobs: dict[str, Variable] = field(default_factory=dict)  # each blob's final variable
    layers: list[str] = field(default_factory=list)  # the layers of this phase, in order
    losses: dict[str, tuple[Variable, float]] = field(default_factory=dict)  # top -> (value, loss_weight)
    accuracies: dict[str, Variable] = field(default_factory=dict)
    outputs: dict[str, Variable] = field(default_factory=dict)  # tops no later layer reads
    monitors: dict[str, Variable] = field(default_factory=dict)  # other phases' Accuracy, see build()
    state_updates: dict = field(default_factory=dict)  # BatchNorm running averages (TRAIN)

    @property
    def input_names(self) -> list[str]:
        return [v.name for v in self.inputs]

    @property
    def loss(self) -> Variable | None:
        """The objective: the sum of each loss top times its loss_weight (None without losses)."""
        total = None
        for value, weight in self.losses.values():
            term = value if weight == 1.0 else value * weight
            total = term if total is None else total + term
        return total

    @property
    def params(self) -> list[SharedVariable]:
        return self.model.params

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The data layers' arrays, aligned with ``inputs``."""
        by_top = {top: src.arrays[top] for src in self.sources for top in src.tops}
        missing = [name for name in self.input_names if name not in by_top]
        if missing:
            raise NetError(
                f"{self.phase} net: no arrays for the input(s) {', '.join(missing)} (an Input layer has none)"
            )
        return tuple(by_top[name] for name in self.input_names)

    @property
    def batch_size(self) -> int | None:
        return self.sources[0].batch_size if self.sources else None

    def function(self, outputs=None, backend: str | None = None, updates=None):
        """A compiled function of the inputs: ``outputs`` names blobs (default: the net's outputs)."""
        from ..function import function

        names = list(self.outputs) if outputs is None else list(outputs)
        missing = [n for n in names if n not in self.blobs]
        if missing:
            raise NetError(
                f"{self.phase} net has no blob {', '.join(map(repr, missing))}; it has {', '.join(self.blobs)}"
            )
        return function(self.inputs, [self.blobs[n] for n in names], updates=updates, backend=backend)


def included(layer: dict, phase: str, stages=(), level: int = 0) -> bool:
    """Caffe's NetStateRule: ``include`` rules (any may match) or ``exclude`` rules (none may)."""
    include, exclude = layer.get("include", []), layer.get("exclude", [])
    if include and exclude:
        raise NetError(f"layer {layer.get('name')!r} ({layer.get('type')}): give include or exclude rules, not both")

    def matches(rule: dict) -> bool:
        if "phase" in rule and rule["phase"] != phase:
            return False
        if "min_level" in rule and level < rule["min_level"]:
            return False
        if "max_level" in rule and level > rule["max_level"]:
            return False
        if any(s not in stages for s in rule.get("stage", [])):
            return False
        return not any(s in stages for s in rule.get("not_stage", []))

    for rule in include + exclude:
        if rule.get("phase", "TRAIN") not in PHASES:
            raise NetError(f"layer {layer.get('name')!r}: phase must be TRAIN or TEST, got {rule.get('phase')!r}")
    if include:
        return any(matches(rule) for rule in include)
    return not any(matches(rule) for rule in exclude)


def _as_spec(spec) -> dict:
    if isinstance(spec, (str, os.PathLike)):
        spec = load_net(spec)
    if not isinstance(spec, dict):
        raise NetError(f"a net spec is a dict (from load_net) or a file path, got {type(spec).__name__}")
    if "layers" in spec:
        raise NetError(
            "this net uses Caffe's old V1 'layers' format (enum types like CONVOLUTION); write 'layer' instead"
        )
    return normalise(spec, "NetParameter")  # a dict written by hand may give a repeated field once


def _input_var(name: str, shape, dtype: str) -> Variable:
    return tensor(name, shape=tuple(shape), dtype=dtype)


def build(
    spec,
    phase: str = "TRAIN",
    *,
    model: CaffeModel | None = None,
    bindings: dict[str, str] | None = None,
    shapes: dict | None = None,
    base_dirs=(),
    stages=(),
    level: int = 0,
    seed: int = 0,
    monitor=(),
) -> Net:
    """The ``phase`` net of ``spec`` (a dict from :func:`load_net`, or a path).

    ``model`` holds the parameters (a new :class:`CaffeModel` seeded with ``seed`` if None; pass the
    TRAIN net's ``model`` to build the TEST net on the same parameters). Data layers read their
    arrays (``bindings`` maps a ``Data`` layer's ``source`` to ``digits:train``/``digits:test``/a
    ``.npz``; relative paths are looked up under ``base_dirs``, then the working directory), or
    take ``shapes`` = ``{top: shape}`` / ``{top: (shape, dtype)}`` with the batch axis ``None``
    instead. ``monitor`` names layer types (``"Accuracy"``) that are built even where the phase rules
    leave them out, when their bottoms exist, into ``net.monitors`` (the solver shows the
    training batches' accuracy with them); they never enter the objective.
    """
    spec = _as_spec(spec)
    if phase not in PHASES:
        raise NetError(f"phase must be TRAIN or TEST, got {phase!r}")
    model = model if model is not None else CaffeModel(spec, seed)
    layers = spec.get("layer", [])
    if not isinstance(layers, list) or not all(isinstance(x, dict) for x in layers):
        raise NetError("the net's 'layer' entries must be messages { name: ... type: ... }")
    net = Net(phase, model)
    producer: dict[str, str] = {}  # blob -> the layer that made it
    elsewhere: dict[str, str] = {}  # blob -> a layer of the other phase that makes it
    consumed: set[str] = set()
    _top_level_inputs(spec, net, producer)
    for index, layer in enumerate(layers):
        name, kind = layer.get("name"), layer.get("type")
        if name is None or kind is None:
            raise NetError(f"layer #{index + 1} needs a name and a type, got name={name!r}, type={kind!r}")
        ctx = Context(layer, phase, model, list(layer.get("bottom", [])))
        if not included(layer, phase, stages, level):
            if kind in monitor and all(b in net.blobs for b in ctx.bottom_names):
                tops = _run_layer(ctx, [net.blobs[b] for b in ctx.bottom_names])
                net.monitors.update(zip(layer.get("top", []), tops))
            for top in layer.get("top", []):
                elsewhere.setdefault(top, name)
            continue
        if kind in DATA_TYPES:
            _data_layer(ctx, net, producer, bindings, shapes, base_dirs)
            net.layers.append(name)
            continue
        if kind not in LAYERS:
            raise NetError(f"{ctx.who}: unknown layer type {kind!r}; graphc supports {', '.join(SUPPORTED)}")
        bottoms = []
        for bottom in ctx.bottom_names:
            if bottom not in net.blobs:
                hint = (
                    f" (layer {elsewhere[bottom]!r} makes it, but not in the {phase} phase)"
                    if bottom in elsewhere
                    else ""
                )
                known = ", ".join(net.blobs) or "none"
                raise NetError(
                    f"{ctx.who}: bottom {bottom!r} is not produced by any earlier layer{hint}; blobs so far: {known}"
                )
            bottoms.append(net.blobs[bottom])
            consumed.add(bottom)
        tops = list(layer.get("top", []))
        for top in tops:
            if top in producer and top not in ctx.bottom_names:
                raise NetError(
                    f"{ctx.who}: top {top!r} is already produced by layer {producer[top]!r} "
                    "(only in-place layers reuse a blob)"
                )
        values = _run_layer(ctx, bottoms)
        weights = _loss_weights(ctx, len(tops))
        for top, value, weight in zip(tops, values, weights):
            net.blobs[top] = value
            producer[top] = name
            consumed.discard(top)  # an in-place top is a new blob, not yet read
            if weight:
                net.losses[top] = (value if value.ndim == 0 else _sum(value), weight)
            if kind == "Accuracy":
                net.accuracies[top] = value
        net.layers.append(name)
    inputs = set(net.inputs)  # by variable: an in-place layer on a data blob makes an output of that name
    net.outputs = {top: var for top, var in net.blobs.items() if top not in consumed and var not in inputs}
    net.state_updates = model.state_updates(clear=True)
    model.record_build(spec, net, stages, level)
    return net


def _sum(x):
    from ..ops import sum as gc_sum

    return gc_sum(x)


def _run_layer(ctx: Context, bottoms: list[Variable]) -> list[Variable]:
    kind = LAYERS.get(ctx.type)
    if kind is None:
        raise NetError(f"{ctx.who}: unknown layer type {ctx.type!r}; graphc supports {', '.join(SUPPORTED)}")
    tops = ctx.layer.get("top", [])
    (lo, hi), (tlo, thi) = kind.bottoms, kind.tops
    if not lo <= len(bottoms) <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}"
        raise NetError(f"{ctx.who}: takes {want} bottom(s), got {len(bottoms)}: {ctx.bottom_names}")
    if not tlo <= len(tops) <= thi:
        want = str(tlo) if tlo == thi else f"{tlo} to {thi}"
        raise NetError(f"{ctx.who}: makes {want} top(s), got {len(tops)}: {tops}")
    try:
        values = kind.build(ctx, *bottoms)
    except (NetError, NetShapeError):
        raise
    except ShapeError as exc:
        raise NetShapeError(f"{ctx.who}: {exc.detail}") from exc
    except GraphcError as exc:
        raise NetError(f"{ctx.who}: {exc.detail}") from exc
    return values[: len(tops)]


def _loss_weights(ctx: Context, n_tops: int) -> list[float]:
    given = ctx.layer.get("loss_weight")
    if given is not None:
        if len(given) > n_tops:
            raise NetError(f"{ctx.who}: {len(given)} loss_weight values for {n_tops} top(s)")
        return [float(w) for w in given] + [0.0] * (n_tops - len(given))
    is_loss = LAYERS[ctx.type].loss if ctx.type in LAYERS else False
    return [1.0 if (is_loss and k == 0) else 0.0 for k in range(n_tops)]


def _data_layer(ctx: Context, net: Net, producer, bindings, shapes, base_dirs) -> None:
    tops = list(ctx.layer.get("top", []))
    if ctx.layer.get("bottom"):
        raise NetError(f"{ctx.who}: a data layer takes no bottom, got {ctx.layer['bottom']}")
    if not tops:
        raise NetError(f"{ctx.who}: a data layer needs at least one top")
    for top in tops:
        if top in producer:
            raise NetError(f"{ctx.who}: top {top!r} is already produced by layer {producer[top]!r}")
    shapes = shapes or {}
    if ctx.type == "Input":
        dims = _input_shapes(ctx, len(tops))
        declared = [(tuple(d), FLOAT) for d in dims]
    elif all(top in shapes for top in tops):
        declared = [_declared(shapes[top], k) for k, top in enumerate(tops)]
    else:
        source = caffe_data.load_layer_data(ctx.layer, bindings, base_dirs)
        net.sources.append(source)
        declared = [(source.shape(top), str(source.arrays[top].dtype)) for top in tops]
    for top, (shape, dtype) in zip(tops, declared):
        var = _input_var(top, (None, *shape[1:]) if shape else shape, dtype)
        net.inputs.append(var)
        net.blobs[top] = var
        producer[top] = ctx.name


def _declared(value, k: int):
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str):
        return tuple(value[0]), value[1]
    return tuple(value), FLOAT if k == 0 else "int64"


def _input_shapes(ctx: Context, n: int) -> list[list[int]]:
    p = ctx.param("input_param", required=True)
    shapes = p.get("shape", [])
    if len(shapes) == 1 and n > 1:
        shapes = shapes * n
    if len(shapes) != n:
        raise NetError(f"{ctx.who}: {len(shapes)} input_param shapes for {n} tops")
    out = []
    for shape in shapes:
        dims = shape.get("dim", []) if isinstance(shape, dict) else []
        if not dims or not all(isinstance(d, int) and d > 0 for d in dims):
            raise NetError(f"{ctx.who}: input_param shape {{ dim: ... }} needs positive dims, got {shape!r}")
        out.append(dims)
    return out


def _top_level_inputs(spec: dict, net: Net, producer) -> None:
    """The old way to declare inputs: ``input: "data"`` with ``input_shape { dim }`` or ``input_dim``."""
    names = spec.get("input", [])
    if not names:
        return
    if "input_shape" in spec:
        shapes = [s.get("dim", []) for s in spec["input_shape"]]
    else:
        dims = spec.get("input_dim", [])
        shapes = [dims[k : k + 4] for k in range(0, len(dims), 4)]
    if len(shapes) != len(names):
        raise NetError(f"the net declares {len(names)} input(s) but {len(shapes)} input shape(s)")
    for name, dims in zip(names, shapes):
        var = _input_var(name, (None, *dims[1:]), FLOAT)
        net.inputs.append(var)
        net.blobs[name] = var
        producer[name] = "__input__"


def load_and_build(path, phase: str = "TRAIN", **kwargs) -> Net:
    """``build(load_net(path), phase)`` with paths in data layers looked up beside the file first."""
    kwargs.setdefault("base_dirs", (Path(path).parent,))
    return build(load_net(path), phase, **kwargs)
