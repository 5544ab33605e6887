"""What every Caffe layer function shares: the build context, the parameter blobs, the errors.

Kept apart from the layer table (``layers.py``) so the layer families in their own modules
(``normalization.py``, ``losses.py``) can import it without importing the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import nn
from ..errors import ShapeError
from ..graph import Variable
from ..nn import LayerError
from ..types import is_float

FLOAT = "float32"


class NetError(LayerError):
    """A layer that cannot be built: an unknown type, a missing bottom or parameter; the message
    names the layer (its name and type)."""

    auto_location = False  # the mistake is in the net file, not in a line of Python


class NetShapeError(ShapeError):
    """Blob shapes that do not fit a layer; the message names the layer (its name and type)."""

    auto_location = False


def describe(x: Variable) -> str:
    return (
        "("
        + ", ".join("N" if k == 0 and d is None else "?" if d is None else str(d) for k, d in enumerate(x.type.shape))
        + ")"
    )


@dataclass
class Context:
    """What a layer function needs: its spec, the phase, and the model holding the parameters."""

    layer: dict
    phase: str
    model: object  # CaffeModel (net.py)
    bottom_names: list[str]

    @property
    def name(self) -> str:
        return str(self.layer["name"])

    @property
    def type(self) -> str:
        return str(self.layer["type"])

    @property
    def who(self) -> str:
        return f"layer {self.name!r} ({self.type})"

    def error(self, message: str) -> NetError:
        return NetError(f"{self.who}: {message}")

    def shape_error(self, message: str) -> NetShapeError:
        return NetShapeError(f"{self.who}: {message}")

    def param(self, key: str, required: bool = False) -> dict:
        value = self.layer.get(key)
        if value is None:
            if required:
                raise self.error(f"needs {key} {{ ... }}")
            return {}
        if not isinstance(value, dict):
            raise self.error(f"{key} must be a message {{ ... }}, got {value!r}")
        return value

    def integer(self, params: dict, key: str, default=None, minimum: int = 0, where: str = "") -> int:
        value = params.get(key, default)
        if value is None:
            raise self.error(f"needs {where or 'its parameters'}.{key}" if where else f"needs {key}")
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(f"{key} must be an int >= {minimum}, got {value!r}")
        return value

    def spatial(self, params: dict, key: str, default, minimum: int, where: str) -> tuple[int, int]:
        """Caffe's ``kernel_size`` (one value or one per axis) or ``kernel_h``/``kernel_w``."""
        h, w = params.get(key.replace("_size", "") + "_h"), params.get(key.replace("_size", "") + "_w")
        if h is not None or w is not None:
            if key in params:
                raise self.error(f"give {key} or {key.replace('_size', '')}_h/_w, not both")
            if h is None or w is None:
                raise self.error(f"{where}: give both {key.replace('_size', '')}_h and _w")
            return self.integer({"h": h}, "h", minimum=minimum), self.integer({"w": w}, "w", minimum=minimum)
        value = params.get(key, default)
        if value is None:
            raise self.error(f"needs {where}.{key}")
        values = value if isinstance(value, list) else [value]
        if len(values) not in (1, 2):
            raise self.error(f"{key} has {len(values)} values; 2-D layers take 1 or 2")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise self.error(f"{key} must be an int >= {minimum}, got {v!r}")
        return (values[0], values[-1])

    def expect(self, x: Variable, what: str, ndim=None, min_ndim=None, static_from: int = 1) -> None:
        """``x`` has the rank and static non-batch dims the layer needs."""
        if ndim is not None and x.ndim != ndim:
            raise self.shape_error(f"expects {what}, got a blob of shape {describe(x)} (from {self.bottom_names[0]!r})")
        if min_ndim is not None and x.ndim < min_ndim:
            raise self.shape_error(f"expects {what}, got a blob of shape {describe(x)} (from {self.bottom_names[0]!r})")
        if None in x.type.shape[static_from:]:
            raise self.shape_error(f"needs the static shape of its input, got {describe(x)}")

    def module(self, signature: tuple, factory: Callable[[], nn.Module], blobs=()) -> nn.Module:
        """The layer's module, built once per layer name (shared by TRAIN and TEST nets)."""
        return self.model.layer_module(self, signature, factory, blobs)


@dataclass(frozen=True)
class Blob:
    """A parameter of a layer, as Caffe knows it: attribute of the module, filler key, Caffe's shape,
    and whether graphc stores it transposed (Dense keeps (in, out), Caffe (out, in))."""

    attr: str
    filler: str | None
    shape: tuple
    transposed: bool = False
    default_filler: dict | None = None


def float_input(ctx: Context, x: Variable) -> Variable:
    if not is_float(x.dtype):
        raise ctx.shape_error(f"needs a float blob, got {x.dtype} {describe(x)} (from {ctx.bottom_names[0]!r})")
    return x
