"""Caffe's net and solver files, in protobuf text format or YAML, as plain dicts and lists.

Caffe files are protobuf *text format* (``name: value``, nested ``name { ... }``, a repeated field
written once per value). graphc reads them without protobuf: a small tokenizer and a recursive
descent parser that keep the line and column of every token, so a typo is reported where it is.

Protobuf text does not say which fields are repeated (the ``.proto`` schema does): ``top: "data"``
written once looks like a scalar. So the result is normalised against a small schema of Caffe's
repeated fields (``REPEATED``): those are always lists, whether written once, several times, or as
a YAML list. Any other field written twice also becomes a list (in order). YAML files give the
same structure (``layer:`` is a list of mappings), so a net reads the same from either format.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import GraphcError

__all__ = ["PrototxtError", "parse", "parse_yaml", "load", "load_net", "load_solver", "normalise", "REPEATED"]


class PrototxtError(GraphcError, ValueError):
    """A Caffe file that cannot be read; the message starts with ``file:line:column``."""

    auto_location = False  # the mistake is in the file, not in a line of Python


# -- the schema: which fields are repeated, and which nested message each field holds ---------------

#: message type -> its repeated fields (from caffe.proto)
REPEATED: dict[str, set[str]] = {
    "NetParameter": {"layer", "layers", "input", "input_shape", "input_dim"},
    "SolverParameter": {"test_iter", "test_net", "test_net_param", "test_state", "stepvalue", "weights"},
    "LayerParameter": {"bottom", "top", "param", "include", "exclude", "loss_weight", "blobs", "propagate_down"},
    "NetStateRule": {"stage", "not_stage"},
    "NetState": {"stage"},
    "ConvolutionParameter": {"kernel_size", "stride", "pad", "dilation"},
    "TransformationParameter": {"mean_value"},
    "InputParameter": {"shape"},
    "BlobShape": {"dim"},
    "EltwiseParameter": {"coeff"},
    "DummyDataParameter": {"data_filler", "shape", "num", "channels", "height", "width"},
}

#: (message type, field) -> the message type of the nested value
CHILDREN: dict[tuple[str, str], str] = {
    ("NetParameter", "layer"): "LayerParameter",
    ("NetParameter", "input_shape"): "BlobShape",
    ("NetParameter", "state"): "NetState",
    ("SolverParameter", "net_param"): "NetParameter",
    ("SolverParameter", "train_net_param"): "NetParameter",
    ("SolverParameter", "test_net_param"): "NetParameter",
    ("SolverParameter", "train_state"): "NetState",
    ("SolverParameter", "test_state"): "NetState",
    ("LayerParameter", "include"): "NetStateRule",
    ("LayerParameter", "exclude"): "NetStateRule",
    ("LayerParameter", "convolution_param"): "ConvolutionParameter",
    ("LayerParameter", "transform_param"): "TransformationParameter",
    ("LayerParameter", "input_param"): "InputParameter",
    ("LayerParameter", "eltwise_param"): "EltwiseParameter",
    ("LayerParameter", "dummy_data_param"): "DummyDataParameter",
    ("InputParameter", "shape"): "BlobShape",
    ("DummyDataParameter", "shape"): "BlobShape",
}


def normalise(value, kind: str | None):
    """``value`` (a parsed or YAML-loaded message of type ``kind``) with repeated fields as lists,
    recursively. Values of fields written more than once are lists already."""
    if not isinstance(value, dict):
        return value
    repeated = REPEATED.get(kind or "", set())
    out = {}
    for key, item in value.items():
        child = CHILDREN.get((kind or "", key))
        if isinstance(item, list):
            item = [normalise(v, child) for v in item]
        else:
            item = normalise(item, child)
            if key in repeated:
                item = [item]
        out[key] = item
    return out


# -- the tokenizer ---------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\f\v]+)
  | (?P<newline>\n)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)[fF]?(?![A-Za-z_0-9]))
  | (?P<signed_word>[-+](?:inf|infinity|nan)\b)
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[{}<>\[\]:,;])
    """,
    re.VERBOSE | re.IGNORECASE,
)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)", re.DOTALL)


class _Token:
    __slots__ = ("kind", "text", "line", "col")

    def __init__(self, kind, text, line, col):
        self.kind, self.text, self.line, self.col = kind, text, line, col

    def describe(self) -> str:
        return "the end of the file" if self.kind == "eof" else repr(self.text)


def _unescape(body: str) -> str:
    def one(match):
        code = match.group(1)
        if code[0] in "xX":
            return chr(int(code[1:], 16))
        if code[0].isdigit():
            return chr(int(code, 8))
        if code not in _ESCAPES:
            raise ValueError(f"unknown escape \\{code}")
        return _ESCAPES[code]

    return _ESCAPE.sub(one, body)


def _tokens(text: str, filename: str) -> list[_Token]:
    out, pos, line, line_start = [], 0, 1, 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        col = pos - line_start + 1
        if match is None:
            raise PrototxtError(f"{filename}:{line}:{col}: unexpected character {text[pos]!r}")
        kind = match.lastgroup
        if kind == "newline":
            line, line_start = line + 1, match.end()
        elif kind == "signed_word":
            out.append(_Token("number", match.group(), line, col))
        elif kind not in ("space", "comment"):
            out.append(_Token(kind, match.group(), line, col))
        pos = match.end()
    out.append(_Token("eof", "", line, pos - line_start + 1))
    return out


# -- the parser ------------------------------------------------------------------------------------

_BOOLS = {"true": True, "True": True, "false": False, "False": False}
_FLOAT_WORDS = {"inf", "infinity", "nan"}


class _Parser:
    def __init__(self, text: str, filename: str):
        self.filename = filename
        self.tokens = _tokens(text, filename)
        self.k = 0

    def error(self, token: _Token, message: str) -> PrototxtError:
        return PrototxtError(f"{self.filename}:{token.line}:{token.col}: {message}")

    def peek(self) -> _Token:
        return self.tokens[self.k]

    def take(self) -> _Token:
        token = self.tokens[self.k]
        self.k += 1
        return token

    def message(self, close: str | None, opener: _Token | None = None) -> dict:
        """Fields up to ``close`` (``}`` or ``>``) or the end of the file (``None``)."""
        fields: dict[str, list] = {}
        while True:
            token = self.peek()
            if token.kind == "eof":
                if close is not None:
                    where = f" opened at line {opener.line}, column {opener.col}" if opener else ""
                    raise self.error(
                        token, f"expected {close!r} to close the message{where}, found the end of the file"
                    )
                break
            if token.kind == "punct" and token.text == close:
                self.take()
                break
            if token.kind != "word":
                raise self.error(token, f"expected a field name, found {token.describe()}")
            self.take()
            name = token.text
            value = self.field_value(token)
            fields.setdefault(name, [])
            fields[name].extend(value if isinstance(value, _ListValue) else [value])
            nxt = self.peek()
            if nxt.kind == "punct" and nxt.text in ",;":
                self.take()
        return {name: values[0] if len(values) == 1 else values for name, values in fields.items()}

    def field_value(self, name: _Token):
        token = self.peek()
        if token.kind == "punct" and token.text == ":":
            self.take()
            token = self.peek()
            if token.kind == "punct" and token.text in "{<":
                self.take()
                return self.message("}" if token.text == "{" else ">", token)
            if token.kind == "punct" and token.text == "[":
                self.take()
                return self.list_value()
            return self.scalar()
        if token.kind == "punct" and token.text in "{<":
            self.take()
            return self.message("}" if token.text == "{" else ">", token)
        raise self.error(token, f"expected ':' or '{{' after the field name {name.text!r}, found {token.describe()}")

    def list_value(self):
        """``[a, b, c]``: the short form of a repeated field."""
        items = _ListValue()
        token = self.peek()
        if token.kind == "punct" and token.text == "]":
            self.take()
            return items
        while True:
            token = self.peek()
            if token.kind == "punct" and token.text in "{<":
                self.take()
                items.append(self.message("}" if token.text == "{" else ">", token))
            else:
                items.append(self.scalar())
            token = self.take()
            if token.kind == "punct" and token.text == "]":
                return items
            if not (token.kind == "punct" and token.text == ","):
                raise self.error(token, f"expected ',' or ']' in the list, found {token.describe()}")

    def scalar(self):
        token = self.take()
        if token.kind == "string":
            parts = [token]
            while self.peek().kind == "string":  # adjacent strings concatenate, as in C
                parts.append(self.take())
            try:
                return "".join(_unescape(part.text[1:-1]) for part in parts)
            except ValueError as exc:
                raise self.error(token, f"bad string: {exc}") from None
        if token.kind == "number":
            return _number(token.text)
        if token.kind == "word":
            if token.text in _BOOLS:
                return _BOOLS[token.text]
            if token.text.lower() in _FLOAT_WORDS:
                return float(token.text)
            return token.text  # an enum value: MAX, LMDB, TRAIN, FAN_IN
        raise self.error(token, f"expected a value (string, number, enum or true/false), found {token.describe()}")


class _ListValue(list):
    """A ``[...]`` value: its items extend the field instead of nesting."""


def _number(text: str):
    if text.lstrip("-+").lower() in _FLOAT_WORDS:
        return float(text)
    if re.fullmatch(r"[-+]?0[xX][0-9a-fA-F]+", text):
        return int(text, 16)
    body = text.rstrip("fF")  # C-style float suffix: 1.5f
    if re.fullmatch(r"[-+]?\d+", body) and body == text:
        return int(body)
    return float(body)


def parse(text: str, kind: str | None = None, filename: str = "<string>") -> dict:
    """The message in protobuf text ``text`` as a dict (``kind``: its message type, for
    normalising repeated fields: ``"NetParameter"`` or ``"SolverParameter"``)."""
    return normalise(_Parser(text, filename).message(None), kind)


# -- YAML ------------------------------------------------------------------------------------------


def _yaml_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """YAML 1.1 reads ``1e-4`` as a string (it wants ``1.0e-4``); Caffe files write it bare."""

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
        list("-+0123456789."),
    )
    return Loader


def parse_yaml(text: str, kind: str | None = None, filename: str = "<string>") -> dict:
    """The same structure as :func:`parse`, from YAML: a mapping whose ``layer`` is a list."""
    import yaml

    try:
        data = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark is not None else filename
        problem = getattr(exc, "problem", None) or str(exc)
        raise PrototxtError(f"{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PrototxtError(f"{filename}: the top level must be a mapping of fields, got {type(data).__name__}")
    _check_yaml(data, filename, "")
    return normalise(data, kind)


def _check_yaml(value, filename: str, where: str) -> None:
    """Only what protobuf text can say: mappings with string keys, lists, scalars."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PrototxtError(f"{filename}: field names are strings, got {key!r} in {where or 'the top level'}")
            _check_yaml(item, filename, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for k, item in enumerate(value):
            if isinstance(item, list):
                raise PrototxtError(f"{filename}: {where}[{k}] is a list inside a list, which Caffe files cannot say")
            _check_yaml(item, filename, f"{where}[{k}]")
    elif value is None:
        raise PrototxtError(f"{filename}: {where} has no value")


# -- files -----------------------------------------------------------------------------------------


def load(path: str | os.PathLike, kind: str | None = None) -> dict:
    """A Caffe file by its extension: ``.prototxt``/``.pbtxt``/``.txt`` (text format) or
    ``.yaml``/``.yml``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PrototxtError(f"{path}: no such file") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        return parse_yaml(text, kind, str(path))
    return parse(text, kind, str(path))


def load_net(path: str | os.PathLike) -> dict:
    """A net definition (``NetParameter``): ``{"name": ..., "layer": [{...}, ...]}``."""
    return load(path, "NetParameter")


def load_solver(path: str | os.PathLike) -> dict:
    """A solver definition (``SolverParameter``): ``{"net": ..., "base_lr": ..., ...}``."""
    return load(path, "SolverParameter")
