"""Row streaming: ``X @ w``, an elementwise group over its rows and ``X.T @ r`` as one kernel.

The gradient step of linear and logistic regression (and of any model whose first layer is a
matrix-vector product) reads the data matrix twice through BLAS: once for ``X @ w`` and once for
``X.T @ r``, where the residual ``r`` is elementwise in ``X @ w``. Row by row, the residual of a
row needs only that row, so one pass can compute the row's dot product, the fused group's body
and the row's contribution to ``X.T @ r`` while the row is in cache. ``find`` spots the pattern;
``lowering.fused_step`` builds the kernel (``loops.RowProducts``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ...graph import Node, Variable
from ...ops.fused import Fused
from ...ops.linalg import MatMul
from ...ops.reduction import LOGSUMEXP
from ...ops.shape import DimShuffle
from ...types import is_float


@dataclass
class Stream:
    first: Node  # X @ w
    group: Node  # the fused group reading X @ w as input ``dot``
    last: Node  # X.T @ r, r the group's result ``scatter``
    dot: int
    scatter: int


def find(nodes: list[Node], outputs: list[Variable]) -> list[Stream]:
    """Every ``X.T @ group(X @ w)`` where the group is the only reader of ``X @ w``."""
    uses = Counter(id(v) for node in nodes for v in node.inputs) + Counter(id(v) for v in outputs)
    found, taken = [], set()
    for last in nodes:
        if not isinstance(last.op, MatMul):
            continue
        xt, r = last.inputs
        shuffle, group = xt.owner, r.owner
        if shuffle is None or not isinstance(shuffle.op, DimShuffle) or shuffle.op.order != (1, 0):
            continue
        if group is None or not isinstance(group.op, Fused) or id(group) in taken or r.ndim != 1:
            continue
        x = shuffle.inputs[0]
        op = group.op
        position = group.outputs.index(r)
        if op.results[position][1] is not None or any(
            red is not None and red.kind is LOGSUMEXP for _, red in op.results
        ):
            continue
        if len(op._types[op.nin].shape if op.program else ()) != 1:
            continue
        for p, z in enumerate(group.inputs):
            first = z.owner
            if (
                first is not None
                and isinstance(first.op, MatMul)
                and first.inputs[0] is x
                and first.inputs[1].ndim == 1
                and uses[id(z)] == 1
                and all(is_float(v.dtype) for v in (x, first.inputs[1], r))
            ):
                found.append(Stream(first, group, last, p, position))
                taken.add(id(group))
                break
    return found
