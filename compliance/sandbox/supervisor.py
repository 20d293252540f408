"""The first process of a stage inside the sandbox, run as `python -I -S supervisor.py CONFIG -- ARGV`.

Standalone on purpose (no pgolf import: it runs with the interpreter's bare standard library).
It sets the limits, then runs ARGV under the sandbox's uid, and when ARGV's process exits,
kills every process the stage left behind, so the run ends when the stage does and nothing
(a daemon, a `setsid` child) outlives it. SIGTERM from pgolf (the cap) is passed on to the
stage's processes. Its exit status is ARGV's (128 + the signal's number when it was killed).

CONFIG is JSON: {"uid": int|null, "gid": int|null, "limits": {"NPROC": n, "FSIZE": n, ...}}.
"""

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time

PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAPBSET_DROP = 24


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option})")


def _drop_bounding_set() -> None:
    """Root here keeps its own capabilities (to switch uid and to kill), but nothing started may regain any."""
    for cap in range(64):
        try:
            _prctl(PR_CAPBSET_DROP, cap)
        except OSError:
            break  # EINVAL past the last capability; EPERM without CAP_SETPCAP (not root: nothing to drop)


def _spared() -> set[int]:
    """This process and its ancestors (pgolf's tracer, the namespace's init)."""
    spared, pid = {os.getpid()}, os.getpid()
    while pid > 1:
        pid = _ppid(pid)
        spared.add(pid)
    return spared


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 1


def _others(spared: set[int]) -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) not in spared]


def _signal_all(sig: int, spared: set[int]) -> int:
    sent = 0
    for pid in _others(spared):
        try:
            os.kill(pid, sig)
            sent += 1
        except OSError:
            pass
    return sent


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _sweep(spared: set[int]) -> None:
    """SIGKILL whatever is left until nothing is (a fork racing the kill shows up in the next round)."""
    for _ in range(200):
        _reap()
        if not _signal_all(signal.SIGKILL, spared):
            return
        time.sleep(0.01)


def main(argv: list[str]) -> int:
    config = json.loads(argv[1])
    command = argv[argv.index("--") + 1 :]
    for name, value in config.get("limits", {}).items():
        resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), (value, value))
    _prctl(PR_SET_NO_NEW_PRIVS, 1)  # no setuid binary or file capability gives anything back
    _drop_bounding_set()
    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans come back to us, not to the namespace's init
    spared = _spared()
    signal.signal(signal.SIGTERM, lambda *_: _signal_all(signal.SIGTERM, spared))
    drop = {}
    if os.getuid() == 0 and config.get("uid") is not None:
        drop = dict(user=config["uid"], group=config["gid"], extra_groups=[])
    try:
        child = subprocess.Popen(command, **drop)
    except OSError as exc:
        sys.stderr.write(f"pgolf-sandbox: cannot start {command[0]!r}: {exc.strerror}\n")
        return 127
    code = _wait_for(child.pid)
    child.returncode = code
    _sweep(spared)
    return code if code >= 0 else 128 - code


def _wait_for(pid: int) -> int:
    """Wait for the stage's process, reaping orphans as they end (a zombie still counts to NPROC)."""
    while True:
        done, status = os.waitpid(-1, 0)
        if done == pid:
            return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
