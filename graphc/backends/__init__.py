"""Backends turn a graph into a program. Each one is a module with a ``compile`` function:

``compile(leaves, outputs) -> run`` where ``run(values)`` takes one array per leaf (the
function's inputs, then its shared variables) and returns one array per output. Backends see only
the IR (ops, variables, types), never the user-facing API.
"""
