"""A stage's processes as one PID namespace, seen and signalled from the host.

Both bubblewrap runtimes start the stage in a PID namespace of its own: when the
namespace's first process (bubblewrap's init) dies, the kernel kills every process left
in it, a `setsid` daemon included, and `--die-with-parent` makes that happen when pgolf
itself is killed. bubblewrap reports the namespace on its --json-status-fd; this module
reads that report and signals the namespace's members for the grace period before the kill.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass
class Namespace:
    """What bubblewrap said about the sandbox it started (filled in by a reader thread)."""

    init_pid: int | None = None  # host pid of the namespace's pid 1
    inode: int | None = None  # of the pid namespace
    exit_code: int | None = None

    def __post_init__(self) -> None:
        self.ready = threading.Event()


def read_status(fd: int, ns: Namespace) -> threading.Thread:
    """Read bubblewrap's JSON status documents from `fd` (closed at the end) in the background."""

    def pump() -> None:
        buffer = b""
        with os.fdopen(fd, "rb", buffering=0) as stream:
            for chunk in iter(lambda: stream.read(4096), b""):
                buffer += chunk
                buffer = _documents(buffer, ns)
        ns.ready.set()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def _documents(buffer: bytes, ns: Namespace) -> bytes:
    """bubblewrap writes one JSON object per line; keep an incomplete tail for the next read."""
    *lines, tail = buffer.split(b"\n")
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if "child-pid" in doc:
            ns.init_pid, ns.inode = int(doc["child-pid"]), int(doc.get("pid-namespace") or 0) or None
            ns.ready.set()
        if "exit-code" in doc:
            ns.exit_code = int(doc["exit-code"])
    return tail


def members(inode: int) -> list[tuple[int, int]]:
    """(host pid, pid inside) of every process in the namespace."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(entry / "ns" / "pid").st_ino != inode:
                continue
            inner = _inner_pid(entry)
        except OSError:
            continue  # gone, or not ours to look at
        if inner is not None:
            found.append((int(entry.name), inner))
    return found


def _inner_pid(entry: Path) -> int | None:
    for line in (entry / "status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    return None


def signal_members(inode: int | None, sig: int, spare_below: int) -> int:
    """Send `sig` to the namespace's processes whose inner pid is `spare_below` or more (pid 1 is
    bubblewrap's init, the next ones pgolf's own tracer and supervisor). Returns how many got it."""
    if inode is None:
        return 0
    sent = 0
    for host_pid, inner in members(inode):
        if inner >= spare_below:
            try:
                os.kill(host_pid, sig)
                sent += 1
            except OSError:
                pass
    return sent


def kill_namespace(ns: Namespace, parent_pid: int) -> None:
    """SIGKILL the namespace's pid 1, so the kernel kills every process left inside. The pid comes
    from a pipe; it is used only while it is still bubblewrap's child (`parent_pid`) in that namespace."""
    if ns.init_pid is None:
        return
    try:
        status = (PROC / str(ns.init_pid) / "status").read_text()
        same_ns = ns.inode is None or os.stat(PROC / str(ns.init_pid) / "ns" / "pid").st_ino == ns.inode
    except OSError:
        return
    if same_ns and f"\nPPid:\t{parent_pid}\n" in status:
        try:
            os.kill(ns.init_pid, signal.SIGKILL)
        except OSError:
            pass
