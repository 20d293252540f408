"""Loops that fill a table online: each position records what the table held before that
position's own update (`out[i] = table[ctx]` ... `table[ctx] = tok`).

The records are prefix-causal hints, so a later pass that scores with them is not a second pass
over a table that already holds the scored tokens; whether the score reads only the records (and
not the finished table) is not something a trace of labels can tell apart, so such a fill asks for
review instead of failing R-SINGLE-PASS.
"""

from __future__ import annotations

import ast


def records_before_update(loop: ast.For) -> bool:
    """A positional store whose value reads a table that a later statement of the loop writes."""
    index = _position_names(loop)
    if not index:
        return False
    writes = _table_writes(loop)
    for node in ast.walk(loop):
        if isinstance(node, ast.Assign) and any(_indexed_by(t, index) for t in node.targets):
            read = _tables_read(node.value)
            if any(line > node.lineno for base in read for line in writes.get(base, ())):
                return True
    return False


def _position_names(loop: ast.For) -> set[str]:
    """`for i, tok in enumerate(xs)` and `for i in range(n)`: the names that count positions."""
    it, target = loop.iter, loop.target
    if isinstance(it, ast.Call) and isinstance(it.func, ast.Name):
        if (
            it.func.id == "enumerate"
            and isinstance(target, ast.Tuple)
            and target.elts
            and isinstance(target.elts[0], ast.Name)
        ):
            return {target.elts[0].id}
        if it.func.id == "range" and isinstance(target, ast.Name):
            return {target.id}
    return set()


def _indexed_by(target: ast.expr, names: set[str]) -> bool:
    return isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Name) and target.slice.id in names


def _table_writes(loop: ast.For) -> dict[str, list[int]]:
    """Containers written by key in the loop: base expression -> lines."""
    out: dict[str, list[int]] = {}
    for node in ast.walk(loop):
        if not isinstance(node, (ast.Assign, ast.AugAssign)):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            if isinstance(target, ast.Subscript):
                out.setdefault(ast.unparse(target.value), []).append(node.lineno)
    return out


def _tables_read(value: ast.expr) -> set[str]:
    """Containers the value reads by key: `t[k]` and `t.get(k)`."""
    read = set()
    for node in ast.walk(value):
        if isinstance(node, ast.Subscript):
            read.add(ast.unparse(node.value))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            read.add(ast.unparse(node.func.value))
    return read
