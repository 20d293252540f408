"""Which host paths a sandboxed stage is shown, shared by the container and bubblewrap runtimes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import StageSpec


def read_only_sources(paths: Iterable[str | Path]) -> list[Path]:
    """Each input, plus the targets of links inside an input directory (the eval stage's
    validation shards are links into the dataset; the dataset itself stays unmounted)."""
    out: list[Path] = []
    for path in (Path(p) for p in paths):
        if not path.exists():
            continue  # the stage will find it missing, as it would locally
        out.append(path)
        if path.is_dir():
            out += [link.resolve() for link in sorted(path.iterdir()) if link.is_symlink() and link.exists()]
    return out


def within(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
        return True
    except (ValueError, OSError, RuntimeError):
        return False


def writable_dirs(spec: StageSpec) -> list[Path]:
    """The stage's outputs and its working directory (created when missing)."""
    dirs = [Path(p) for p in spec.writable]
    if not any(within(Path(spec.cwd), d) for d in dirs):
        dirs.append(Path(spec.cwd))
    for path in dirs:
        path.mkdir(parents=True, exist_ok=True)
    return dirs
