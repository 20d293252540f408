"""pgolf's own temporary folders beside a stage (its trace, its /etc/hosts), which outlive pgolf
when it is SIGKILLed: no `finally` runs then. Each folder names the process that made it, and the
next one made sweeps away those whose maker is gone, so killed runs do not pile up in /tmp.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

OWNER = ".pgolf-owner"  # "<pid> <start time in clock ticks>": a pid alone may have been reused


def make(prefix: str) -> Path:
    """A new 0700 folder under the temporary directory, after sweeping its prefix's orphans."""
    sweep(prefix)
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    (folder / OWNER).write_text(_identity(os.getpid()) or str(os.getpid()))
    return folder


def sweep(prefix: str, root: Path | None = None) -> list[Path]:
    """Remove this user's `prefix*` folders whose maker no longer runs; the ones removed."""
    removed = []
    for folder in sorted((root or Path(tempfile.gettempdir())).glob(f"{prefix}*")):
        if _orphan(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _orphan(folder: Path) -> bool:
    try:
        if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
            return False
        owner = (folder / OWNER).read_text().split()
    except (OSError, UnicodeDecodeError):
        return False  # no owner named (not one of ours, or still being made): left alone
    if not owner or not owner[0].isdigit() or not Path("/proc/self/stat").exists():
        return False  # without /proc no maker can be told gone
    return _identity(int(owner[0])) != " ".join(owner)


def _identity(pid: int) -> str | None:
    """The pid with its start time, or None when no such process runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: fields count from the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    return f"{pid} {fields[19]}"
