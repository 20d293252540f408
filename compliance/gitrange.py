"""PR mode: audit every record folder a git range adds or changes, as committed, not as checked out.

Folders are exported with `git archive` into a temporary directory (links kept as
links, so the record loader still flags one that points outside its folder). What the
PR does beside its record folder (a second folder, files outside records/, another
record's folder changed or deleted) is reported against R-RECORD-FILES. The base side
of the range also gives the accepted records the chronological frontier is drawn from.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import InputError

MAX_EXPORT_BYTES = 512 * 1024 * 1024
_REV = re.compile(r"^[\w./@^~{}:+-]{1,200}$")


def _git(repo: Path, *args: str) -> bytes:
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(repo, f"git could not run: {exc}") from None
    if out.returncode != 0:
        message = out.stderr.decode("utf-8", "replace").strip().splitlines() or ["git failed"]
        raise InputError(repo, f"git {args[0]}: {message[-1]}")
    return out.stdout


def split_range(rng: str) -> tuple[str, str]:
    """BASE..HEAD (or BASE...HEAD) as two revisions; an empty HEAD is HEAD."""
    if ".." not in rng:
        raise InputError(rng, "--range takes BASE..HEAD")
    base, head = rng.split("..", 1)
    head = head.lstrip(".") or "HEAD"
    for rev in (base, head):
        if not _REV.match(rev) or rev.startswith("-"):
            raise InputError(rng, f"{rev!r} is not a git revision")
    return base, head


def changed_files(repo: Path, rng: str) -> list[tuple[str, str]]:
    """(status, path) for every file the range changes; renames count as delete + add."""
    base, head = split_range(rng)
    raw = _git(repo, "diff", "--name-status", "--no-renames", "-z", f"{base}...{head}")
    fields = raw.decode("utf-8", "replace").split("\0")
    return [(fields[i], fields[i + 1]) for i in range(0, len(fields) - 1, 2)]


@dataclass
class Layout:
    """Which record folders a range touches, and how."""

    added: list[str] = field(default_factory=list)  # folders new in the range
    modified: list[str] = field(default_factory=list)  # folders that existed and still exist
    deleted: list[str] = field(default_factory=list)  # folders the range removes entirely
    outside: list[str] = field(default_factory=list)  # files changed outside records/<track>/<folder>/

    @property
    def audited(self) -> list[str]:
        return self.added + self.modified


def record_layout(repo: Path, rng: str, changes: list[tuple[str, str]]) -> Layout:
    """Sort the changed files into record folders added, modified or deleted, and everything else."""
    base, head = split_range(rng)
    fork = _git(repo, "merge-base", base, head).decode().strip()
    touched: list[str] = []
    layout = Layout()
    for _status, path in changes:
        parts = PurePosixPath(path).parts
        folder = "/".join(parts[:3])
        if len(parts) >= 4 and parts[0] == "records":
            touched += [folder] if folder not in touched else []
        else:
            layout.outside.append(path)
    for folder in touched:
        if not exists(repo, fork, folder):
            layout.added.append(folder)
        elif exists(repo, head, folder):
            layout.modified.append(folder)
        else:
            layout.deleted.append(folder)
    return layout


def exists(repo: Path, rev: str, path: str) -> bool:
    return bool(_git(repo, "ls-tree", "--name-only", rev, "--", path).strip())


def export_folder(repo: Path, rev: str, folder: str, dest: Path) -> Path:
    data = _git(repo, "archive", "--format=tar", rev, "--", folder)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        total = 0
        for member in tar.getmembers():
            target = dest / member.name
            if member.name.startswith("/") or ".." in PurePosixPath(member.name).parts:
                raise InputError(member.name, "unsafe path in the git archive")
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.issym():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(member.linkname)
            elif member.isfile():
                total += member.size
                if total > MAX_EXPORT_BYTES:
                    raise InputError(folder, f"more than {MAX_EXPORT_BYTES:,} bytes in the folder")
                target.parent.mkdir(parents=True, exist_ok=True)
                extracted = tar.extractfile(member)
                target.write_bytes(extracted.read() if extracted else b"")
    return dest / folder


def adding_subject(repo: Path, rev: str, folder: str) -> str | None:
    """The subject of the first-parent commit that brought `folder` onto `rev`'s branch."""
    out = _git(repo, "log", "--first-parent", "--diff-filter=A", "--format=%s", rev, "--", folder)
    lines = out.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else None


def resolve(repo: Path, rev: str) -> str:
    return _git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}").decode().strip()


def head_of(rng: str) -> str:
    return split_range(rng)[1]


def base_of(rng: str) -> str:
    return split_range(rng)[0]


def temp_root() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="pgolf-pr-")


def _rev(repo: Path, rev: str) -> str:
    return _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").decode().strip()


def commits(repo: Path, rng: str) -> dict[str, str]:
    """The commits a report names: the range as given, and BASE and HEAD resolved to SHAs."""
    base, head = rng.split("..", 1)
    return {"range": rng, "base": _rev(repo, base.rstrip(".") or "HEAD"), "head": _rev(repo, head_of(rng))}


def empty_range_message(repo: Path, rng: str) -> str:
    """A range with no changes is usually a merged PR read against the branch it went into:
    its merge commit's first parent is the base that shows what it added."""
    head = head_of(rng)
    parents = _git(repo, "rev-list", "--parents", "-n", "1", head).decode().split()[1:]
    merge = _rev(repo, head)[:12]
    if len(parents) > 1:
        hint = f"for the merge commit {merge}, try --range {merge}^1..{merge}"
    else:
        hint = "for a merged PR, give its merge commit's first parent as BASE: --range MERGE^1..MERGE"
    return f"the range changes nothing (HEAD is already in BASE); {hint}"
