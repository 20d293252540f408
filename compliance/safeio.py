"""Read files of an audited folder without trusting them.

The folder may come from an untrusted PR: symlinks may point outside it,
files may be huge or binary. Nothing here writes to the folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError

MAX_TEXT_BYTES = 256 * 1024 * 1024  # far above any real log (~1 MB), below memory trouble
MAX_FILES = 10_000
MAX_INT_DIGITS = 40  # longer integers are read as floats (inf past 1e308), never as a crash


@dataclass(frozen=True)
class FolderEntry:
    rel: str
    path: Path
    size: int
    problem: str | None = None  # why the entry must not be read, if any


def _escapes(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return False
    except (ValueError, OSError, RuntimeError):
        return True


def list_folder(root: Path) -> list[FolderEntry]:
    """Every regular file under root, with symlinks out of the folder flagged, not followed, and
    every folder that cannot be listed flagged too: what pgolf cannot read is never skipped."""
    if not root.is_dir():
        raise InputError(root, "not a directory")
    entries: list[FolderEntry] = []

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename or root)
        rel = where.relative_to(root).as_posix() if where != root else "."
        entries.append(FolderEntry(rel, where, 0, f"folder cannot be read: {exc.strerror or type(exc).__name__}"))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if d not in {".git", "__pycache__"})
        for name in sorted(filenames) + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            entries.append(_entry(root, Path(dirpath) / name))
            if len(entries) > MAX_FILES:
                raise InputError(root, f"more than {MAX_FILES} files; not a record folder")
    return entries


def resolved(path: Path) -> Path:
    """path.resolve(), or the absolute path where links cannot be resolved (a loop, an unreadable
    folder on the way): a user's path never makes pgolf raise before it is reported on."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def _link_target(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _entry(root: Path, path: Path) -> FolderEntry:
    rel = path.relative_to(root).as_posix()
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):  # a loop, or nothing at the end of it
            return FolderEntry(
                rel, path, 0, f"symlink that leads nowhere (a loop or a missing target: -> {_link_target(path)})"
            )
        if _escapes(root, path):
            return FolderEntry(rel, path, 0, f"symlink points outside the folder (-> {_link_target(path)})")
        if not target.is_file():
            return FolderEntry(rel, path, 0, "symlink to something that is not a regular file")
    elif not path.is_file():
        return FolderEntry(rel, path, 0, "not a regular file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        return FolderEntry(rel, path, 0, f"cannot stat: {exc.strerror}")
    return FolderEntry(rel, path, size)


def read_bytes(entry: FolderEntry, limit: int = MAX_TEXT_BYTES) -> bytes:
    if entry.problem:
        raise InputError(entry.rel, entry.problem)
    if entry.size > limit:
        raise InputError(entry.rel, f"{entry.size:,} bytes is over the {limit:,}-byte read limit")
    try:
        with open(entry.path, "rb") as fh:
            return fh.read(limit + 1)[:limit]
    except OSError as exc:
        raise InputError(entry.rel, f"cannot read: {exc.strerror}") from None


def looks_binary(data: bytes) -> bool:
    """NUL bytes or mostly undecodable bytes in the first block mean: not text."""
    head = data[:8192]
    if b"\x00" in head:
        return True
    try:
        head.decode("utf-8")
        return False
    except UnicodeDecodeError as exc:
        # a multibyte character cut at the block edge is still text
        return exc.start < len(head) - 4


def decode_text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def load_json(data: bytes, name: str | Path) -> Any:
    """JSON from an untrusted file: every way it can be unreadable is an InputError naming the file.

    Python's reader recurses per nesting level and refuses integers of more than 4,300 digits,
    both with exceptions that are not JSONDecodeError; neither may reach the user as a crash.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(name, "not UTF-8 text") from None
    try:
        return json.loads(text, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise InputError(name, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InputError(name, "JSON nested too deeply to read (more levels than any real file has)") from None
    except (ValueError, OverflowError) as exc:
        raise InputError(name, f"unreadable JSON value: {str(exc)[:120]}") from None


def _bounded_int(text: str) -> int | float:
    return int(text) if len(text.lstrip("-")) <= MAX_INT_DIGITS else float(text)
