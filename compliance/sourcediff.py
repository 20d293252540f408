"""How far apart two versions of a script are, in lines: stale logs against the submitted code."""

from __future__ import annotations

import difflib
from functools import lru_cache


@lru_cache(maxsize=64)
def changed_lines(a: str, b: str) -> int:
    """Lines inserted, deleted or replaced to turn `a` into `b` (the larger side of each change)."""
    left, right = a.strip().split("\n"), b.strip().split("\n")
    matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
    return sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in matcher.get_opcodes() if op != "equal")


def drift(a: str, b: str) -> float:
    """The share of `a`'s lines that differ in `b` (0.0: the same program)."""
    if a.strip() == b.strip():
        return 0.0
    return changed_lines(a, b) / max(1, a.strip().count("\n") + 1)
