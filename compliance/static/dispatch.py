"""Functions kept in a table and called through it.

`run = {"train": train, "eval": evaluate}; run[stage](hp)` and
`passes = [("exact", score, args)]; for label, scorer, args in passes: scorer(...)`
are how a script picks a stage or a scoring pass. The tracer follows each
function such a table holds, under the branches that put it there; where the
key a call picks is not known, each candidate runs behind a gate of its own,
so what is found in it is review, not fail.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import UNKNOWN

if TYPE_CHECKING:
    from .trace import Ctx, Tracer

_MAX_VARIANTS = 6  # distinct rows a loop body is traced for; past it, the first ones


@dataclass(frozen=True)
class Row:
    key: object  # the dict key or list position that selects the row
    fns: tuple[ast.AST | None, ...]  # per tuple position: the function it holds, or None
    gates: tuple[int, ...]  # unresolved branches around the statement that added it
    active: bool


def _row(tracer: Tracer, key: object, value: ast.expr, ctx: Ctx) -> Row | None:
    parts = value.elts if isinstance(value, ast.Tuple) else [value]
    fns = tuple(tracer._function_value(p) for p in parts)
    if not any(fns):
        return None
    return Row(key, fns, ctx.gates, ctx.active)


def rows_of(tracer: Tracer, value: ast.expr, ctx: Ctx) -> list[Row]:
    """The rows a literal dict, list or tuple of functions holds (empty when it holds none)."""
    rows: list[Row | None] = []
    if isinstance(value, ast.Dict):
        rows = [
            _row(tracer, tracer.res.fold(k, tracer.frame.consts) if k is not None else UNKNOWN, v, ctx)
            for k, v in zip(value.keys, value.values, strict=True)
        ]
    elif isinstance(value, (ast.List, ast.Tuple)):
        rows = [_row(tracer, i, v, ctx) for i, v in enumerate(value.elts)]
    return [r for r in rows if r is not None]


def note_assign(tracer: Tracer, target: ast.expr, value: ast.expr, ctx: Ctx) -> None:
    """`name = {...}` / `name = [...]` / `name[key] = fn`: remember the functions it holds."""
    frame = tracer.frame
    if isinstance(target, ast.Name):
        rows = rows_of(tracer, value, ctx)
        if rows or isinstance(value, (ast.List, ast.Dict)):
            frame.fn_tables[target.id] = rows  # an empty literal may be filled later
        else:
            frame.fn_tables.pop(target.id, None)
    elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
        rows_now = table(tracer, target.value.id)
        row = _row(tracer, tracer.res.fold(target.slice, frame.consts), value, ctx)
        if rows_now is not None and row is not None:
            rows_now.append(row)


def note_fill(tracer: Tracer, node: ast.Call, ctx: Ctx) -> None:
    """`passes.append((label, fn, args))`: a row added under the branches around the call."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and node.args):
        return
    rows = table(tracer, func.value.id)
    if rows is None:
        return
    if func.attr in ("append", "insert"):
        row = _row(tracer, len(rows), node.args[-1], ctx)
        if row is not None:
            rows.append(row)
    elif func.attr == "extend":
        rows.extend(rows_of(tracer, node.args[0], ctx))


def table(tracer: Tracer, name: str) -> list[Row] | None:
    for frame in reversed(tracer.stack):
        if name in frame.fn_tables:
            return frame.fn_tables[name]
    return None


def loop_variants(tracer: Tracer, node: ast.For, ctx: Ctx) -> Iterator[tuple[dict[str, ast.AST], Ctx]]:
    """`for a, fn, b in table:` the body once per distinct row: the functions the loop variables
    name in it, and the context of the statement that added the row."""
    if not isinstance(node.iter, ast.Name):
        return
    rows = table(tracer, node.iter.id)
    if not rows:
        return
    names = node.target.elts if isinstance(node.target, ast.Tuple) else [node.target]
    bindings = [
        {n.id: fn for n, fn in zip(names, row.fns, strict=False) if isinstance(n, ast.Name) and fn is not None}
        for row in rows
    ]
    kinds = [tuple(sorted((k, id(v)) for k, v in b.items())) for b in bindings]
    # a loop that runs a different function on each pass repeats none of them: it is no epoch loop
    loops = ctx.loops[:-1] if len(set(kinds)) == len(kinds) else ctx.loops
    seen: set[tuple[object, ...]] = set()
    for row, binding, kind in zip(rows, bindings, kinds, strict=True):
        key = (kind, row.gates, row.active)
        if not binding or key in seen or len(seen) >= _MAX_VARIANTS:
            continue
        seen.add(key)
        yield (
            binding,
            ctx.but(
                gates=ctx.gates + tuple(g for g in row.gates if g not in ctx.gates),
                active=ctx.active and row.active,
                loops=loops,
            ),
        )


def call_candidates(tracer: Tracer, node: ast.Call, ctx: Ctx) -> list[tuple[ast.AST, Ctx]] | None:
    """`run[stage](...)`: the functions the call may reach, each with the context it runs in."""
    func = node.func
    if not (isinstance(func, ast.Subscript) and isinstance(func.value, ast.Name)):
        return None
    rows = table(tracer, func.value.id)
    if not rows:
        return None
    key = tracer.res.fold(func.slice, tracer.frame.consts)
    chosen = [r for r in rows if key is not UNKNOWN and r.key == key]
    if not chosen:
        # `for stage in STAGES: run[stage]()`: a loop that picks a different function on each pass
        names = {n.id for n in ast.walk(func.slice) if isinstance(n, ast.Name)}
        picking = {loop for loop, loop_names in ctx.loop_vars if loop_names & names}
        ctx = ctx.but(loops=tuple(loop for loop in ctx.loops if loop not in picking))
    out = []
    for row in chosen or rows:
        fn = next((f for f in row.fns if f is not None), None)
        if fn is None:
            continue
        gates = ctx.gates + tuple(g for g in row.gates if g not in ctx.gates)
        if not chosen and len(rows) > 1:  # which one runs is not known: each is a branch of its own
            test = f"{ast.unparse(func)} is {getattr(fn, 'name', '?')}"
            gates += (tracer._gate(node, test, "if"),)
        out.append((fn, ctx.but(gates=gates, active=ctx.active and row.active)))
    return out
