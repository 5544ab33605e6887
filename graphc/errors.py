"""graphc's exceptions, and where in user code a node was created.

Every node remembers the first frame outside the graphc package that built it, so that an error
found later (when building a dependent node, compiling, or running) can point at the user's line.
Errors subclass the builtin exception users would expect (a dtype mistake is a ``TypeError``, a
shape mistake a ``ValueError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import linecache
import os
import sys
from dataclasses import dataclass

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """A line of user code: cheap to capture (no file reads) and formatted only on error."""

    filename: str
    lineno: int

    def line(self) -> str:
        return linecache.getline(self.filename, self.lineno).strip()

    def __str__(self) -> str:
        text = self.line()
        where = f'File "{self.filename}", line {self.lineno}'
        return f"{where}: {text}" if text else where


def user_location() -> SourceLocation | None:
    """The innermost frame on the stack that is not graphc's own code."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return None
    return SourceLocation(frame.f_code.co_filename, frame.f_lineno)


class GraphcError(Exception):
    """Base class of all graphc errors."""

    auto_location = True  # point at the running user line when no node location is given

    def __init__(
        self,
        message: str,
        *,
        op: str | None = None,
        location: SourceLocation | None = None,
        label: str = "created at",
    ):
        """``location`` is the user line that made the offending node; without one, the error
        points at the user line that is running now (where the mistake was made)."""
        if location is None and self.auto_location:
            location, label = user_location(), "at"
        self.op = op
        self.location = location
        self.detail = message
        text = f"{op}: {message}" if op else message
        if location is not None:
            text += f"\n  {label} {location}"
        super().__init__(text)


class ShapeError(GraphcError, ValueError):
    """Shapes that do not fit an op, or a runtime value whose shape does not fit its variable."""


class DTypeError(GraphcError, TypeError):
    """A dtype an op does not accept, or a value that cannot be stored in a variable's dtype."""


class ArityError(GraphcError, TypeError):
    """The wrong number of inputs to an op or arguments to a compiled function."""


class UsageError(GraphcError, TypeError):
    """A symbolic variable used where a value is needed (``if x:``, ``len(x)``, iteration), or an
    argument of the wrong kind."""


class IndexingError(GraphcError, IndexError):
    """An index graphc cannot express statically (boolean masks, float or repeated array indices)."""


class GraphError(GraphcError, ValueError):
    """A graph that cannot be compiled as asked: a missing input, a bad update, a cycle."""


class EvaluationError(GraphcError, RuntimeError):
    """A failure while running a node, reported with the node and the user line that built it."""
