"""graphc: a symbolic computation-graph compiler.

Define a static graph with symbolic tensors, compile it with :func:`function`, call it with
values::

    import graphc as gc
    x1, x2 = gc.scalar("x1"), gc.scalar("x2")
    y = x1 * x2 + gc.exp(x1 * x2) - gc.sin(x2)
    f = gc.function([x1, x2], y)
    f(2.0, 5.0)  # array(22037.42471908)
"""

from . import nn, optim, training  # noqa: E402  (layers, optimizers and the training loop build on the rest)
from .autodiff import check_grad, grad, hessian, hvp, jacobian, jvp, numeric_grad, vjp
from .compare import Comparison, compare_modes
from .diagrams import RenderError, draw, to_dot
from .errors import (
    ArityError,
    DTypeError,
    EvaluationError,
    GraphcError,
    GraphError,
    IndexingError,
    ShapeError,
    UsageError,
)
from .function import Function, function
from .graph import (
    Constant,
    Graph,
    Input,
    Node,
    SharedVariable,
    Variable,
    ancestors,
    apply,
    clone_replace,
    constant,
    graph_inputs,
    shared,
    toposort,
)
from .inputs import matrix, scalar, tensor, vector
from .ops import *  # noqa: F403  (the op library is the public API)
from .ops import random
from .optimize import optimize
from .printing import pformat, pprint
from .scaling import fd_error_curve, scaling
from .symbolic import SymbolicError, from_sympy, to_sympy
from .trace import Trace, trace
from .types import TensorType

__version__ = "0.1.0"
