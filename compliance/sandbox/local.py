"""Run a stage on this machine as the caller, with the cap enforced from outside.

For trusted code only (the bundled reference, or --unsafe-local): it isolates nothing.
It does contain the process tree: where bubblewrap can start, the stage runs in a PID
namespace of its own (the whole filesystem shared, nothing else changed), so when its
first process ends, is killed at the cap, or pgolf itself is killed, the kernel ends every
process it started, `setsid` daemons included. Without bubblewrap, the stage's process
group gets the signals and its first process dies with pgolf (PR_SET_PDEATHSIG, through
setpriv); a child that leaves the group can then outlive it, which the run's notes say.

The clock starts before the process is spawned and stops when it is reaped, so start-up,
imports and compilation all count: the script's own timer is never trusted. On the cap the
stage gets SIGTERM, then SIGKILL after the grace period.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from io import BufferedIOBase
from typing import IO, Any, cast

from . import pidns
from .base import Runtime, StageResult, StageSpec, Tick, find_tool, wait_under_cap

CONTAINED_NOTE = "no PID namespace (bwrap unavailable): a child that left the process group may outlive the stage"
_PROBED: dict[tuple[int, str | None], bool] = {}


class LocalRuntime(Runtime):
    name = "local"
    isolated = False
    summary = "this machine, as the caller: no isolation (trusted code, or --unsafe-local)"

    def describe(self) -> dict[str, Any]:
        return {"runtime": self.name, "pid_namespace": contained()}

    def run(self, spec: StageSpec, tick: Tick | None = None) -> StageResult:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        ns = pidns.Namespace() if contained() else None
        status_read, status_write = os.pipe() if ns is not None else (-1, -1)
        argv = _wrap(spec.argv, status_write)
        with open(spec.log_path, "ab", buffering=0) as log:
            start = time.monotonic()
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=spec.cwd,
                    env=spec.env,
                    stdin=subprocess.DEVNULL,
                    pass_fds=(status_write,) if ns is not None else (),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except BaseException:
                _close(status_read)
                raise
            finally:
                _close(status_write)
            if ns is not None:
                pidns.read_status(status_read, ns)
            pump = threading.Thread(target=_copy, args=(proc.stdout, log), daemon=True)
            pump.start()
            try:
                killed = wait_under_cap(
                    lambda t: _exited(proc, t), lambda: _terminate(proc, ns, spec.grace_s), spec, start, tick
                )
            except BaseException:  # pgolf itself interrupted: take the stage down with it
                _terminate(proc, ns, 0)
                raise
            pump.join(timeout=5)
            wall = time.monotonic() - start
        return _result(spec, proc.returncode, wall, killed, ns is not None)


def contained() -> bool:
    """Whether bubblewrap can give a stage a PID namespace here (probed once per uid)."""
    key = (os.getuid(), find_tool("bwrap"))
    if key not in _PROBED:
        bwrap = find_tool("bwrap")
        probe = [bwrap, *_namespace_args(), "--", "true"] if bwrap else None
        _PROBED[key] = (
            probe is not None
            and subprocess.run(probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        )
    return _PROBED[key]


def _namespace_args() -> list[str]:
    return ["--dev-bind", "/", "/", "--proc", "/proc", "--unshare-pid", "--die-with-parent"]


def _wrap(argv: list[str], status_fd: int) -> list[str]:
    """The stage's argv inside a PID namespace (bwrap's status on `status_fd`), or with a parent-death signal."""
    if status_fd >= 0:
        # a status fd is opened only where contained() found bwrap
        return [cast(str, find_tool("bwrap")), *_namespace_args(), "--json-status-fd", str(status_fd), "--", *argv]
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else list(argv)


def _close(fd: int) -> None:
    if fd >= 0:
        os.close(fd)


def _copy(source: BufferedIOBase, sink: IO[bytes]) -> None:
    """Stream output to the log as it comes, so a killed run keeps what it printed."""
    for chunk in iter(lambda: source.read1(65536), b""):
        sink.write(chunk)


def _exited(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def _terminate(proc: subprocess.Popen[bytes], ns: pidns.Namespace | None, grace_s: float) -> None:
    """SIGTERM (to the namespace's processes, or the group), SIGKILL after the grace period."""
    if ns is not None and ns.ready.wait(timeout=1):
        pidns.signal_members(ns.inode, signal.SIGTERM, 2)
    _signal_group(proc, signal.SIGTERM)
    if grace_s > 0 and _exited(proc, grace_s):
        return
    if ns is not None:
        pidns.kill_namespace(ns, proc.pid)
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _result(spec: StageSpec, returncode: int | None, wall: float, killed: bool, contained: bool) -> StageResult:
    notes = [] if contained else [CONTAINED_NOTE]
    if killed:
        return StageResult(
            spec.name,
            "timeout",
            returncode,
            wall,
            killed=True,
            notes=[f"killed at {wall:.1f} s, cap {spec.cap_s:.0f} s", *notes],
        )
    status = "ok" if returncode == 0 else "failed"
    return StageResult(spec.name, status, returncode, wall, notes=notes)
