"""The code a record's entry script runs besides itself: helper modules and native kernels.

Records import helpers from their own folder (`from ngram_tilt import NgramTiltState`,
`importlib` loads by path, `ctypes.CDLL` of a C file they compile) and the legality of
a score can sit in those files (a C kernel that gates a hint on the token it scores).
Helpers are parsed (never imported); native sources are read as text for
compliance.static.native. Only files inside the record folder are read.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from .. import safeio
from .parse import StaticParseError, parse_source

if TYPE_CHECKING:
    from ..record import Record

NATIVE_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".cu", ".h", ".hpp")
_MAX_HELPER_BYTES = 4 * 1024 * 1024
_PY_FILE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\.py\b")


@dataclass
class Helper:
    name: str  # module name as imported (`ngram_tilt`)
    rel: str  # path in the record folder
    module: ast.Module


@dataclass
class SourceSet:
    helpers: dict[str, Helper] = field(default_factory=dict)
    native: dict[str, str] = field(default_factory=dict)  # rel -> text
    problems: list[str] = field(default_factory=list)  # helpers that could not be parsed


def referenced_modules(module: ast.Module) -> set[str]:
    """Module names the script imports or loads by file name."""
    names: set[str] = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and ".py" in node.value:
            names.update(_PY_FILE.findall(node.value))
    return names


def collect(record: Record | None, module: ast.Module, entry_rel: str) -> SourceSet:
    """Helpers the entry script reaches (transitively) and every native source beside it."""
    out = SourceSet()
    if record is None:
        return out
    folder = str(PurePosixPath(entry_rel).parent)
    by_name = {}
    for entry in record.entries:
        rel = entry.rel
        if str(PurePosixPath(rel).parent) != folder or entry.problem:
            continue
        suffix = PurePosixPath(rel).suffix.lower()
        if suffix == ".py" and rel != entry_rel:
            by_name[PurePosixPath(rel).stem] = entry
        elif suffix in NATIVE_SUFFIXES and entry.size <= _MAX_HELPER_BYTES:
            text = _read(entry)
            if text is not None:
                out.native[rel] = text
    pending = list(referenced_modules(module))
    while pending:
        name = pending.pop()
        module_file = by_name.get(name)
        if module_file is None or name in out.helpers or module_file.size > _MAX_HELPER_BYTES:
            continue
        text = _read(module_file)
        if text is None:
            continue
        try:
            helper = parse_source(text)
        except StaticParseError as exc:
            out.problems.append(f"{module_file.rel}: {exc}")
            continue
        out.helpers[name] = Helper(name, module_file.rel, helper)
        pending.extend(referenced_modules(helper))
    return out


def _read(entry: safeio.FolderEntry) -> str | None:
    try:
        data = safeio.read_bytes(entry, limit=_MAX_HELPER_BYTES)
    except Exception:  # noqa: BLE001 - an unreadable helper is a record problem reported elsewhere
        return None
    return None if safeio.looks_binary(data) else safeio.decode_text(data)
