"""Elementwise fusion: maximal groups of elementwise ops become one :class:`Fused` node each.

1. Grouping, in evaluation order: an elementwise node joins the group of an elementwise
   producer with the same output shape, and the groups of its other such producers merge in,
   unless that would make a cycle (a path leaving a group and coming back through other ops).
   Within a group every node has the same static shape, and since unknown dimensions never
   broadcast, the same run-time shape: one loop nest runs the whole group.
2. Sinking: a member that only one later group reads moves into that group when it reads
   nothing the first group would not write anyway (relu's gradient mask ``o > 0`` is then
   computed in the backward kernel from the activation ``o``, not written by the forward one).
3. Reductions absorb their producer: ``sum(f(x))`` joins the group of ``f(x)`` as a reduced
   result, so it is one kernel.
4. Each group becomes one multi-output node with its scalar program; its results are the
   members used outside it and its reductions. There is no cap on the number of operands.
"""

from __future__ import annotations

from collections import Counter

from ..graph import Node, Variable, apply, created_at, toposort
from ..ops.elementwise import Elementwise
from ..ops.fused import Fused
from ..ops.reduction import Reduce


class _Group:
    __slots__ = ("members", "shape", "start", "end", "reductions")

    def __init__(self, node: Node, index: int):
        self.members: list[Node] = [node]  # in no particular order until the group is built
        self.shape = node.outputs[0].type.shape
        self.start = self.end = index  # the span of evaluation-order positions of its members
        self.reductions: list[Node] = []


def _fusible(node: Node) -> bool:
    return isinstance(node.op, Elementwise)


def fuse(outputs: list[Variable], fired: Counter) -> list[Variable]:
    nodes = toposort(outputs)
    index = {id(n): k for k, n in enumerate(nodes)}
    consumers: dict[int, list[Node]] = {}
    for node in nodes:
        for i in node.inputs:
            consumers.setdefault(id(i), []).append(node)
    group_of: dict[int, _Group] = {}

    def reaches(src: _Group, dst: _Group) -> bool:
        """Whether ``dst`` depends on ``src`` through nodes outside both (direct edges are fine)."""
        if src.start > dst.end:
            return False  # nothing in dst comes after src: it cannot depend on it
        # Search backwards from dst's inputs. A third group counts as one unit: entering it at
        # one member and leaving by another is a path too, once the groups are kernels.
        stack = [
            i.owner
            for m in dst.members
            for i in m.inputs
            if i.owner is not None and group_of.get(id(i.owner)) not in (src, dst) and index[id(i.owner)] >= src.start
        ]
        seen: set[int] = set()
        while stack:
            node = stack.pop()
            if id(node) in seen or index[id(node)] < src.start:
                continue
            seen.add(id(node))
            owner = group_of.get(id(node))
            if owner is src:
                return True
            if owner is dst:
                continue
            for member in owner.members + owner.reductions if owner is not None else [node]:
                seen.add(id(member))
                stack.extend(i.owner for i in member.inputs if i.owner is not None and id(i.owner) not in seen)
        return False

    def merge(into: _Group, other: _Group) -> None:
        into.members += other.members
        into.start, into.end = min(into.start, other.start), max(into.end, other.end)
        for m in other.members:
            group_of[id(m)] = into
        fired["merge_groups"] += 1

    for k, node in enumerate(nodes):
        if not _fusible(node):
            continue
        shape = node.outputs[0].type.shape
        candidates: list[_Group] = []
        for i in node.inputs:
            g = group_of.get(id(i.owner)) if i.owner is not None else None
            if g is not None and g.shape == shape and g not in candidates:
                candidates.append(g)
        own = _Group(node, k)
        group_of[id(node)] = own
        for g in candidates:
            # merging must not close a cycle through nodes outside both groups
            if not reaches(g, own) and not reaches(own, g):
                big, small = (g, own) if len(g.members) >= len(own.members) else (own, g)
                merge(big, small)
                own = big

    # Siblings: groups reading the same variable of the group's own shape (so the same run-time
    # shape) become one multi-output kernel that reads it once.
    readers: dict[int, list[_Group]] = {}
    for node in nodes:
        g = group_of.get(id(node))
        for i in node.inputs if g is not None else ():
            if i.type.shape == g.shape and group_of.get(id(i.owner)) is not g:
                readers.setdefault(id(i), []).append(g)
    for groups in readers.values():
        first = groups[0]
        for g in groups[1:]:
            a, b = group_of[id(first.members[0])], group_of[id(g.members[0])]
            if a is not b and _acyclic(nodes, group_of, (a, b)):
                merge(a, b) if len(a.members) >= len(b.members) else merge(b, a)

    _sink(nodes, index, consumers, group_of, {id(o) for o in outputs}, fired)

    for k, node in enumerate(nodes):  # reductions absorb their elementwise producer
        producer = node.inputs[0].owner if isinstance(node.op, Reduce) else None
        if producer is not None and _fusible(producer):
            g = group_of[id(producer)]
            # after every member, so no member can read the reduction (that would be a cycle)
            if node.inputs[0].type.shape == g.shape and k > g.end:
                g.reductions.append(node)
                group_of[id(node)] = g
                if _acyclic(nodes, group_of):
                    fired["absorb_reduction"] += 1
                else:  # reading it back through another kernel would make kernels wait on each other
                    g.reductions.pop()
                    del group_of[id(node)]

    if not _acyclic(nodes, group_of):  # never seen; the cheap local checks above are not a proof
        group_of = {id(n): _Group(n, k) for k, n in enumerate(nodes) if _fusible(n)}
        fired["fallback_one_kernel_per_op"] += 1
    return _rebuild(outputs, nodes, index, consumers, group_of, fired)


def _sink(nodes: list[Node], index: dict, consumers: dict, group_of: dict, wanted: set[int], fired: Counter) -> None:
    """Move members into the one group reading their results, where that writes fewer arrays.

    A member ``m`` of group ``g`` whose result only group ``h`` reads costs one array written by
    ``g`` and read by ``h``. Computed in ``h`` instead, it costs ``h`` a read of each of its
    inputs, and ``g`` a write of each input of ``g``'s own that nothing else outside ``g`` reads.
    It moves when that is at most one array each way, so no kernel writes or reads more arrays
    than before. In reverse order, so a chain (``cast(o > 0)``) moves one member at a time.
    Moving keeps the kernels acyclic: ``h`` already waits for ``g``, and anything ``m`` reads
    from outside ``g`` came before ``g``, so before ``h``."""

    def outside(v: Variable, g: _Group, but: Node) -> bool:
        """Whether something other than ``but`` reads ``v`` from outside ``g`` (so ``g`` writes it)."""
        return id(v) in wanted or any(c is not but and group_of.get(id(c)) is not g for c in consumers.get(id(v), ()))

    for node in reversed(nodes):
        g = group_of.get(id(node))
        users = consumers.get(id(node.outputs[0]), [])
        if g is None or not users or id(node.outputs[0]) in wanted:
            continue
        h = group_of.get(id(users[0]))
        if h is None or h is g or h.shape != g.shape or any(group_of.get(id(u)) is not h for u in users):
            continue
        read_by_h = {id(i) for m in h.members for i in m.inputs}
        new_reads = {id(i) for i in node.inputs if i.type.shape == g.shape and id(i) not in read_by_h}
        new_writes = {id(i) for i in node.inputs if group_of.get(id(i.owner)) is g and not outside(i, g, node)}
        if len(new_reads) > 1 or len(new_writes) > 1:
            continue
        g.members.remove(node)
        h.members.append(node)
        h.start = min(h.start, index[id(node)])
        group_of[id(node)] = h
        fired["sink_into_consumer"] += 1


def _acyclic(nodes, group_of, merged: tuple = ()) -> bool:
    """Whether the graph of kernels (each group one unit, other nodes units of their own) has no
    cycle, with the two groups in ``merged`` counted as one. Kahn's algorithm, O(nodes + edges):
    a merge of two groups can close a cycle through a third, which no local check sees."""
    same = {id(g): id(merged[0]) for g in merged}

    def unit(node) -> int:
        g = group_of.get(id(node))
        return id(node) if g is None else same.get(id(g), id(g))

    edges: dict[int, set[int]] = {}
    indegree: dict[int, int] = {}
    for node in nodes:
        u = unit(node)
        indegree.setdefault(u, 0)
        for i in node.inputs:
            if i.owner is not None:
                p = unit(i.owner)
                if p != u and u not in edges.setdefault(p, set()):
                    edges[p].add(u)
                    indegree[u] = indegree.get(u, 0) + 1
    ready = [u for u, d in indegree.items() if d == 0]
    seen = 0
    while ready:
        u = ready.pop()
        seen += 1
        for v in edges.get(u, ()):
            indegree[v] -= 1
            if indegree[v] == 0:
                ready.append(v)
    return seen == len(indegree)


def _rebuild(outputs, nodes, index, consumers, group_of, fired) -> list[Variable]:
    """Replace each group by one fused node, in an order where every input is ready."""
    wanted = {id(o) for o in outputs}
    mapping: dict[int, Variable] = {}
    built: set[int] = set()

    def resolve(v: Variable) -> Variable:
        return mapping.get(id(v), v)

    def build(group) -> None:
        group.members.sort(key=lambda n: index[id(n)])
        members = set(map(id, group.members)) | set(map(id, group.reductions))
        ext: list[Variable] = []
        ref: dict[int, int] = {}
        for m in group.members:
            for i in m.inputs:
                if id(i.owner) not in members and id(i) not in ref:
                    ref[id(i)] = len(ext)
                    ext.append(i)
        program, sources = [], []
        for m in group.members:
            program.append((m.op, tuple(ref[id(i)] for i in m.inputs)))
            sources.append(m.location)
            ref[id(m.outputs[0])] = len(ext) + len(program) - 1
        results, produced = [], []
        for m in group.members:
            out = m.outputs[0]
            used_outside = any(id(c) not in members for c in consumers.get(id(out), ())) or id(out) in wanted
            if used_outside:
                results.append((ref[id(out)], None))
                produced.append(out)
        for r in group.reductions:
            results.append((ref[id(r.inputs[0])], r.op))
            produced.append(r.outputs[0])
        op = Fused(tuple(v.type for v in ext), tuple(program), tuple(results), tuple(sources))
        with created_at((group.reductions or group.members)[-1].location):  # the group's last line
            fused_outputs = apply(op, [resolve(v) for v in ext])
        for old, new in zip(produced, fused_outputs):
            mapping[id(old)] = new
        fired["fused_kernel"] += 1

    # Order the units (groups and single nodes) so each comes after what it reads.
    order: list = []
    state: dict[int, int] = {}
    for start in nodes:
        stack = [(group_of.get(id(start), start), False)]
        while stack:
            unit, expanded = stack.pop()
            if expanded:
                order.append(unit)
                continue
            if state.get(id(unit)):
                continue
            state[id(unit)] = 1
            stack.append((unit, True))
            members = unit.members + unit.reductions if not isinstance(unit, Node) else [unit]
            for m in members:
                for i in m.inputs:
                    if i.owner is not None:
                        dep = group_of.get(id(i.owner), i.owner)
                        if dep is not unit and not state.get(id(dep)):
                            stack.append((dep, False))
    for unit in order:
        if isinstance(unit, Node):
            new_inputs = [resolve(i) for i in unit.inputs]
            if any(a is not b for a, b in zip(new_inputs, unit.inputs)):
                with created_at(unit.location):  # rebuilt, it keeps the user line that wrote it
                    rebuilt = apply(unit.op, new_inputs)
                for old, new in zip(unit.outputs, rebuilt):
                    mapping[id(old)] = new
        elif id(unit) not in built:
            built.add(id(unit))
            build(unit)
    return [resolve(o) for o in outputs]
