"""The rewrite engine: rebuild a graph bottom-up, trying local rules at each node.

Graphs are immutable and hash-consed, so a rewrite is a rebuild: each node is rebuilt on its
(possibly rewritten) inputs through ``graph.apply`` (which merges structurally equal nodes),
then the rules for its op are tried; a rule returns a replacement variable or None. A pass
sweeps until no rule fires. Every firing is counted under the rule's name for the report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ..errors import GraphcError
from ..graph import Variable, apply, created_at, toposort
from ..ops.elementwise import Elementwise

Rule = Callable[[Variable], Variable | None]


ANY_OP = "any op"  # the key of rules that apply to every op (constant folding)


def rule_key(op) -> object:
    """Rules are looked up by elementwise row (``exp``) or, for other ops, by op class."""
    return op if isinstance(op, Elementwise) else type(op)


def rewrite(outputs: list[Variable], rules: dict[object, list[Rule]], fired: Counter, max_sweeps: int = 20):
    """``outputs`` rebuilt with ``rules`` applied until none fires (or ``max_sweeps`` sweeps)."""
    for _ in range(max_sweeps):
        outputs, changed = _sweep(outputs, rules, fired)
        if not changed:
            break
    return outputs


def _sweep(outputs, rules, fired) -> tuple[list[Variable], bool]:
    mapping: dict[Variable, Variable] = {}
    changed = False
    for node in toposort(outputs):
        inputs = [mapping.get(i, i) for i in node.inputs]
        outs = node.outputs
        with created_at(node.location):  # what replaces a node keeps the user line that wrote it
            if any(a is not b for a, b in zip(inputs, node.inputs)):
                outs = apply(node.op, inputs)
            if len(outs) == 1:
                new = _apply_rules(outs[0], rules, fired)
                if new is not outs[0]:
                    outs = (new,)
        for old, new in zip(node.outputs, outs):
            if new is not old:
                mapping[old] = new
                changed = True
    return [mapping.get(o, o) for o in outputs], changed


def _apply_rules(var: Variable, rules, fired, limit: int = 16) -> Variable:
    for _ in range(limit):
        if var.owner is None:
            return var
        for rule in (*rules.get(rule_key(var.owner.op), ()), *rules.get(ANY_OP, ())):
            new = rule(var)
            if new is not None and new is not var:
                _check(rule, var, new)
                fired[rule.__name__] += 1
                var = new
                break
        else:
            return var
    return var


def _check(rule, old: Variable, new: Variable) -> None:
    """A rewrite must keep the variable's type: a rule that does not is a bug, named here."""
    same_rank = len(old.type.shape) == len(new.type.shape)
    if new.dtype != old.dtype or not same_rank or not old.type.is_compatible(new.type):
        raise GraphcError(f"rewrite {rule.__name__} changed the type {old.type} into {new.type}")


def rules_table(*rules: tuple[object, Rule]) -> dict[object, list[Rule]]:
    table: dict[object, list[Rule]] = {}
    for key, rule in rules:
        table.setdefault(key, []).append(rule)
    return table
