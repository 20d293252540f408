"""What pgolf measures itself instead of reading it from the script."""

from __future__ import annotations

from pathlib import Path

from pgolf.compliance import unpack


def code_bytes(script: Path, pack: bool) -> int:
    """The script's bytes, or those of the lzma+b85 wrapper pgolf builds for it (RULES.md §2 R-SIZE)."""
    if not pack:
        return script.stat().st_size
    return len(packed_code(script).encode("utf-8"))


def packed_code(script: Path) -> str:
    source = script.read_text(encoding="utf-8")
    if unpack.is_wrapper(source):
        return source
    return unpack.build_wrapper(source)
