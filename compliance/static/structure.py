"""Purely structural patterns that need no data flow."""

from __future__ import annotations

import ast


def unmasked_prev_token_mixing(module: ast.Module) -> list[int]:
    """Lines of a shift-by-one (roll/pad/cat of x[:, :-1]) in a function that never compares tokens."""
    lines: list[int] = []
    if _compares_to_special_token(module):
        return lines  # a BOS/EOS mask exists somewhere in the model: judged masked
    for fn in ast.walk(module):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        shift = next((n for n in ast.walk(fn) if isinstance(n, ast.Call) and _is_shift(n)), None)
        if shift is None:
            continue
        lines.append(shift.lineno)
    return lines


def _compares_to_special_token(module: ast.Module) -> bool:
    """`ids == 1`, `x != 2`: a comparison with the BOS/EOS ids (RULES.md §6)."""
    for node in ast.walk(module):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            for side in [node.left, *node.comparators]:
                if isinstance(side, ast.Constant) and side.value in (1, 2) and not isinstance(side.value, bool):
                    return True
    return False


def _is_shift(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
    if name == "roll":
        return any(isinstance(a, ast.Constant) and a.value == 1 for a in node.args[1:2]) or any(
            k.arg == "shifts" and isinstance(k.value, ast.Constant) and k.value.value == 1 for k in node.keywords
        )
    if name == "pad" and len(node.args) >= 2 and isinstance(node.args[1], ast.Tuple):
        values = [e.value for e in node.args[1].elts if isinstance(e, ast.Constant)]
        return values[-2:] == [1, 0]
    if name == "cat" and node.args and isinstance(node.args[0], (ast.List, ast.Tuple)):
        return any(isinstance(e, ast.Subscript) and _drops_last(e.slice) for e in node.args[0].elts)
    return False


def _drops_last(node: ast.expr) -> bool:
    parts = node.elts if isinstance(node, ast.Tuple) else [node]
    for part in parts:
        if isinstance(part, ast.Slice) and part.upper is not None and part.lower is None:
            up = part.upper
            if (
                isinstance(up, ast.UnaryOp)
                and isinstance(up.op, ast.USub)
                and isinstance(up.operand, ast.Constant)
                and up.operand.value == 1
            ):
                return True
    return False
