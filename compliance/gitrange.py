"""PR mode: audit every record folder a git range adds, as committed, not as checked out.

Folders are exported with `git archive` into a temporary directory (links kept as
links, so the record loader still flags one that points outside its folder), and
what the PR does outside records/ is reported against R-RECORD-FILES.
"""
from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from .errors import InputError

MAX_EXPORT_BYTES = 512 * 1024 * 1024


def _git(repo: Path, *args: str) -> bytes:
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(repo, f"git could not run: {exc}") from None
    if out.returncode != 0:
        message = out.stderr.decode("utf-8", "replace").strip().splitlines() or ["git failed"]
        raise InputError(repo, f"git {args[0]}: {message[-1]}")
    return out.stdout


def changed_files(repo: Path, rng: str) -> list[tuple[str, str]]:
    """(status, path) for every file the range changes; renames count as delete + add."""
    if ".." not in rng:
        raise InputError(rng, "--range takes BASE..HEAD")
    base, head = rng.split("..", 1)
    raw = _git(repo, "diff", "--name-status", "--no-renames", "-z", f"{base}...{head or 'HEAD'}")
    fields = raw.decode("utf-8", "replace").split("\0")
    return [(fields[i], fields[i + 1]) for i in range(0, len(fields) - 1, 2)]


def added_record_folders(changes: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Record folders (records/<track>/<folder>) the range adds files to, and files changed elsewhere."""
    folders: list[str] = []
    outside: list[str] = []
    for status, path in changes:
        parts = PurePosixPath(path).parts
        if len(parts) >= 4 and parts[0] == "records":
            folder = "/".join(parts[:3])
            if status == "A" and folder not in folders:
                folders.append(folder)
            elif status != "A":
                outside.append(f"{path} ({'modified' if status == 'M' else 'deleted' if status == 'D' else status})")
        else:
            outside.append(path)
    return folders, outside


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
                target.write_bytes(tar.extractfile(member).read())
    return dest / folder


def head_of(rng: str) -> str:
    return rng.split("..", 1)[1].lstrip(".") or "HEAD"


def temp_root() -> tempfile.TemporaryDirectory:
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
