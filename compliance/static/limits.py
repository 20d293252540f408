"""The limits of the static analysis, and running it within them.

Real scripts nest expressions a few dozen levels at most; a deeper tree (a
600-term sum, thousands of nested calls) is either generated or built to break a
checker. Subtrees past the depth limit are cut (replaced by an opaque constant) so
the rest of the script is still judged, and the cut is reported: a finding can
still fail the script, but nothing the analysis could not see can make it pass.
The tracer recurses through the tree, so it runs on a thread with a stack sized
for the depth it allows.
"""

from __future__ import annotations

import ast
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

MAX_TREE_DEPTH = 120  # statements and expressions together, nodes from the module down
_STACK_BYTES = 512 * 1024 * 1024
_RECURSION = 60_000

T = TypeVar("T")


def cut_deep_subtrees(module: ast.Module, max_depth: int = MAX_TREE_DEPTH) -> int:
    """Replace expressions nested deeper than max_depth by a constant; the number of cuts."""
    cuts = 0
    stack: list[tuple[ast.AST, int]] = [(module, 0)]
    while stack:
        node, depth = stack.pop()
        for name, value in ast.iter_fields(node):
            if isinstance(value, list):
                for i, child in enumerate(value):
                    if isinstance(child, ast.AST):
                        if depth + 1 > max_depth and isinstance(child, ast.expr):
                            value[i] = _placeholder(child)
                            cuts += 1
                        else:
                            stack.append((child, depth + 1))
            elif isinstance(value, ast.AST):
                if depth + 1 > max_depth and isinstance(value, ast.expr):
                    setattr(node, name, _placeholder(value))
                    cuts += 1
                else:
                    stack.append((value, depth + 1))
    return cuts


def _placeholder(node: ast.expr) -> ast.expr:
    return ast.copy_location(ast.Constant(value=None), node)


def run_deep(fn: Callable[[], T]) -> T:
    """Call fn on a thread with a large stack and recursion limit; re-raise what it raised."""
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller below
            result["error"] = exc

    old_limit, old_stack = sys.getrecursionlimit(), threading.stack_size()
    try:
        threading.stack_size(_STACK_BYTES)
        sys.setrecursionlimit(max(old_limit, _RECURSION))
        worker = threading.Thread(target=target, name="pgolf-static")
        worker.start()
        worker.join()
    finally:
        threading.stack_size(old_stack)
        sys.setrecursionlimit(old_limit)
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]  # type: ignore[return-value]
