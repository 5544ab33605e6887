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

Names: a module's parameters are shared variables named by the module's *path* in the model, so
every name is unique and says where the parameter lives: the child a Sequential holds at index 2
names its weight ``2.weight``, a child assigned as ``self.encoder`` whose own child is
``self.lstm`` names its ``encoder.lstm.w_ih``: the paths that key ``state_dict``, and, through the
variable names, an optimizer's slots (``2.weight.m``); errors name the path and the class
(``layer 2 (Dense): expects ...``). A name the user gives (``Dense(..., name="fc1")``) replaces
the path in variable names and errors (``fc1.weight``, ``fc1 (Dense)``) but not in ``state_dict``
keys, which stay positional so checkpoints do not depend on names. A module that is nobody's
child (a model's root, a layer used alone) names its own parameters by its name: ``Dense.weight``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from ..errors import GraphcError, ShapeError, UsageError
from ..graph import SharedVariable, Variable, ancestors, shared

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class LayerError(GraphcError, ValueError):
    """A layer was built or called with arguments that cannot work; the message names the layer."""


def label(layer: Module) -> str:
    """How errors name a layer: the name its user gave it (``fc1 (Dense)``), else its path in the
    model (``layer 2 (Dense)`` for the third layer of a Sequential, ``layer encoder.lstm (LSTM)``),
    else, for a model's root, its class."""
    kind = type(layer).__name__
    if layer.given_name is not None:
        return f"{layer.name} ({kind})"
    return f"layer {layer.path} ({kind})" if layer.path else kind


class Module:
    """A model piece with parameters (trained shared variables) and state (untrained ones).

    Subclasses set ``hparams`` (the constructor's arguments, JSON-able, so ``config()`` can
    describe the model and ``nn.from_config`` rebuild it), create parameters with
    ``add_param`` / ``add_state``, and implement ``forward``. Assigning a module to an attribute
    makes it a child, as in PyTorch, and gives it its path (see the module docstring).

    ``name``: a name of the user's own, which replaces the module's path in parameter names and
    errors; ``None`` (or the class name, which is what ``config()`` writes for it) for none.
    """

    def __init__(self, name: str | None = None):
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_state", {})
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "_param_options", {})
        object.__setattr__(self, "_updates", {})
        object.__setattr__(self, "_place", None)  # (parent, key) where it was first made a child
        given = None if name is None or name == type(self).__name__ else str(name)
        object.__setattr__(self, "given_name", given)
        self.name = given or type(self).__name__
        self.training = True
        self.hparams: dict = {}

    # -- building ---------------------------------------------------------------------------------

    def __setattr__(self, key, value):
        if isinstance(value, Module) and key != "_parent":
            self._children[key] = value
            self._adopt(key, value)
        object.__setattr__(self, key, value)

    def _adopt(self, key: str, child: Module) -> None:
        """Make ``child`` this module's child ``key`` for naming: its parameters (and its
        descendants') are renamed by their new path. A module that has a parent already (one
        used in two places) keeps its first path."""
        if child._place is not None or child is self or any(m is child for m in self._lineage()):
            return
        object.__setattr__(child, "_place", (self, str(key)))
        child._rename()

    def _lineage(self) -> Iterator[Module]:
        """This module's parent, the parent's parent, ...: the modules above it."""
        module = self
        while module._place is not None:
            module = module._place[0]
            yield module

    @property
    def path(self) -> str:
        """The dotted name of this module in its model: the user's name if it has one, else its
        parent's path and the key the parent holds it under, else (a root) ``""``."""
        if self.given_name is not None:
            return self.given_name
        if self._place is None:
            return ""
        parent, key = self._place
        return f"{parent.path}.{key}" if parent.path else key

    def _qualified(self, name: str) -> str:
        return f"{self.path or self.name}.{name}"

    def _rename(self) -> None:
        for name, var in (*self._params.items(), *self._state.items()):
            var.name = self._qualified(name)
        for key, child in self._children.items():
            if child._place is not None and child._place[0] is self and child._place[1] == key:
                child._rename()

    def add_param(self, name: str, value, lr_mult: float = 1.0, decay_mult: float = 1.0) -> SharedVariable:
        """A trained parameter initialised with ``value``; ``lr_mult`` and ``decay_mult`` scale its
        learning rate and weight decay (Caffe's ``param { lr_mult decay_mult }``)."""
        self._check_new(name)
        var = shared(np.asarray(value), name=self._qualified(name))
        self._params[name] = var
        self._param_options[name] = (float(lr_mult), float(decay_mult))
        object.__setattr__(self, name, var)
        return var

    def add_state(self, name: str, value) -> SharedVariable:
        """Untrained state kept across calls (BatchNorm's running mean): saved, never optimized."""
        self._check_new(name)
        var = shared(np.asarray(value), name=self._qualified(name))
        self._state[name] = var
        object.__setattr__(self, name, var)
        return var

    def _check_new(self, name: str) -> None:
        if not _NAME.fullmatch(name):
            raise UsageError(f"{self.name}: parameter names must be identifiers, got {name!r}")
        if name in self._params or name in self._state:
            raise UsageError(f"{self.name}: a parameter named {name!r} exists already")

    def record_update(self, target: SharedVariable, value: Variable) -> None:
        """Remember that the training graph being built updates ``target`` (see ``state_updates``).

        A second update of the same target while building (a layer applied twice in one training
        graph) must build on the first, through :meth:`pending`, so both take effect in call
        order; one that does not would silently drop the first, and is an error."""
        previous = self._updates.get(target)
        if previous is not None and previous is not value and not any(v is previous for v in ancestors(value)):
            raise LayerError(
                f"{label(self)}: {target.name} already has an update in the training graph being built, and this "
                "second one would replace it; build the second update on self.pending(target), or collect the "
                "first graph's updates with model.state_updates() before building another training graph"
            )
        self._updates[target] = value

    def pending(self, target: SharedVariable) -> Variable:
        """``target``'s value after the updates recorded so far for the training graph being
        built (``target`` itself when there are none): what a further update builds on."""
        return self._updates.get(target, target)

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
        so the next training graph records its own: collect them after building each training
        graph, since updates recorded by two graphs would chain into one that needs both
        graphs' inputs."""
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
        """A JSON-able description: ``{"type": class name, "name": ..., **hparams}``; the name is
        the class name for a module the user did not name (which ``from_config`` reads as none)."""
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
