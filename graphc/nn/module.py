"""``Module``: the base of every layer, and ``Sequential``.

A module is called on symbolic variables and returns symbolic variables: calling it *builds*
graph pieces, it computes nothing. Its parameters are shared variables created once, in the
constructor, so every graph the module builds (a training graph, an evaluation graph) reads and
updates the same values.

Train and evaluation behaviour (dropout, batch statistics) is chosen when a graph is built,
because the graph is static: ``model.train(); loss = ...`` builds the training graph and
``model.eval(); logits = model(x)`` the evaluation one. A layer whose training graph must also
update state (BatchNorm's running averages) records those updates while building;
``model.state_updates()`` hands them over for the ``updates`` of the training function.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from ..errors import GraphcError, ShapeError, UsageError
from ..graph import SharedVariable, Variable, shared

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class LayerError(GraphcError, ValueError):
    """A layer was built or called with arguments that cannot work; the message names the layer."""


class Module:
    """A model piece with parameters (trained shared variables) and state (untrained ones).

    Subclasses set ``hparams`` (the constructor's arguments, JSON-able, so ``config()`` can
    describe the model and ``nn.from_config`` rebuild it), create parameters with
    ``add_param`` / ``add_state``, and implement ``forward``. Assigning a module to an attribute
    makes it a child, as in PyTorch.
    """

    def __init__(self, name: str | None = None):
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_state", {})
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "_param_options", {})
        object.__setattr__(self, "_updates", {})
        self.name = name or type(self).__name__
        self.training = True
        self.hparams: dict = {}

    # -- building ---------------------------------------------------------------------------------

    def __setattr__(self, key, value):
        if isinstance(value, Module) and key != "_parent":
            self._children[key] = value
        object.__setattr__(self, key, value)

    def add_param(self, name: str, value, lr_mult: float = 1.0, decay_mult: float = 1.0) -> SharedVariable:
        """A trained parameter initialised with ``value``; ``lr_mult`` and ``decay_mult`` scale its
        learning rate and weight decay (Caffe's ``param { lr_mult decay_mult }``)."""
        self._check_new(name)
        var = shared(np.asarray(value), name=f"{self.name}.{name}")
        self._params[name] = var
        self._param_options[name] = (float(lr_mult), float(decay_mult))
        object.__setattr__(self, name, var)
        return var

    def add_state(self, name: str, value) -> SharedVariable:
        """Untrained state kept across calls (BatchNorm's running mean): saved, never optimized."""
        self._check_new(name)
        var = shared(np.asarray(value), name=f"{self.name}.{name}")
        self._state[name] = var
        object.__setattr__(self, name, var)
        return var

    def _check_new(self, name: str) -> None:
        if not _NAME.fullmatch(name):
            raise UsageError(f"{self.name}: parameter names must be identifiers, got {name!r}")
        if name in self._params or name in self._state:
            raise UsageError(f"{self.name}: a parameter named {name!r} exists already")

    def record_update(self, target: SharedVariable, value: Variable) -> None:
        """Remember that the training graph being built updates ``target`` (see ``state_updates``)."""
        self._updates[target] = value

    # -- calling ----------------------------------------------------------------------------------

    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def train(self, mode: bool = True) -> Module:
        """Build training graphs from now on (dropout active, batch statistics); returns self."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Build evaluation graphs from now on (no dropout, running statistics); returns self."""
        return self.train(False)

    # -- what it holds ----------------------------------------------------------------------------

    def modules(self) -> Iterator[Module]:
        """This module and all its descendants, parents first."""
        yield self
        for child in self._children.values():
            yield from child.modules()

    def named_params(self, prefix: str = "") -> list[tuple[str, SharedVariable]]:
        """(dotted name, parameter) pairs, this module's first, then each child's in order."""
        return self._named("_params", prefix)

    def named_state(self, prefix: str = "") -> list[tuple[str, SharedVariable]]:
        return self._named("_state", prefix)

    def _named(self, kind: str, prefix: str) -> list[tuple[str, SharedVariable]]:
        out = [(prefix + name, var) for name, var in getattr(self, kind).items()]
        for key, child in self._children.items():
            out += child._named(kind, f"{prefix}{key}.")
        seen, unique = set(), []
        for name, var in out:  # a module used twice shares its parameters: list them once
            if var not in seen:
                seen.add(var)
                unique.append((name, var))
        return unique

    @property
    def params(self) -> list[SharedVariable]:
        """The trained parameters, in construction order (what an optimizer updates)."""
        return [var for _, var in self.named_params()]

    def param_groups(self) -> list[dict]:
        """Parameters grouped by their (lr_mult, decay_mult), in the form optimizers accept."""
        groups: dict[tuple[float, float], list[SharedVariable]] = {}
        seen = set()
        for module in self.modules():
            for name, var in module._params.items():
                if var not in seen:
                    seen.add(var)
                    groups.setdefault(module._param_options[name], []).append(var)
        return [{"params": ps, "lr_mult": lr, "decay_mult": decay} for (lr, decay), ps in groups.items()]

    def state_updates(self, clear: bool = True) -> dict[SharedVariable, Variable]:
        """The state updates recorded while building training graphs (BatchNorm's running
        averages); pass them in the ``updates`` of the training function. ``clear`` forgets them,
        so the next training graph records its own."""
        updates = {}
        for module in self.modules():
            updates.update(module._updates)
            if clear:
                module._updates.clear()
        return updates

    # -- saving -----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameter and state values by dotted name (copies): what a checkpoint stores."""
        return {name: var.get_value() for name, var in self.named_params() + self.named_state()}

    def load_state_dict(self, values: dict[str, np.ndarray]) -> None:
        """Set every parameter and state value; names and shapes must match exactly."""
        load_values(dict(self.named_params() + self.named_state()), values, self.name, "the model")

    def config(self) -> dict:
        """A JSON-able description: ``{"type": class name, "name": ..., **hparams}``."""
        return {"type": type(self).__name__, "name": self.name, **self.hparams}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
        return f"{type(self).__name__}({args})"


def load_values(own: dict[str, SharedVariable], values, who: str, what: str) -> None:
    """Set the shared variables ``own`` from ``values`` by name (a checkpoint of a model or of
    an optimizer): the names must match exactly and each shape must be the variable's."""
    missing, extra = sorted(set(own) - set(values)), sorted(set(values) - set(own))
    if missing or extra:
        raise UsageError(
            f"{who}: the saved values do not match {what}"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unexpected: {', '.join(extra)}" if extra else "")
        )
    for name, var in own.items():
        value = np.asarray(values[name])
        if value.shape != var.get_value(borrow=True).shape:
            shape = var.get_value(borrow=True).shape
            raise ShapeError(f"{who}: {name} has shape {shape}, the saved value {value.shape}")
        var.set_value(value.astype(var.dtype, copy=False))


class Sequential(Module):
    """Modules applied one after the other: ``Sequential(Dense(64, 128), ReLU(), Dense(128, 10))``."""

    def __init__(self, *layers: Module, name: str | None = None):
        super().__init__(name)
        for k, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise UsageError(f"Sequential: item {k} is {type(layer).__name__}, not a layer (nn.Module)")
            setattr(self, str(k), layer)
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, k):
        return self.layers[k]

    def __len__(self) -> int:
        return len(self.layers)

    def config(self) -> dict:
        return {"type": "Sequential", "name": self.name, "layers": [layer.config() for layer in self.layers]}

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({k}): {layer!r}" for k, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"
