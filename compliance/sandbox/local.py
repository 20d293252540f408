"""Run a stage as a local child process group, with the cap enforced from outside.

The clock starts before the process is spawned and stops when it is reaped,
so start-up, imports and compilation all count: the script's own timer is
never trusted. On the cap the whole group gets SIGTERM, then SIGKILL after
the grace period, so torchrun workers die with their launcher.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import IO

from .base import StageResult, StageSpec, Tick, wait_under_cap


class LocalRuntime:
    name = "local"

    def describe(self) -> dict:
        return {"runtime": "local"}

    def run(self, spec: StageSpec, tick: Tick | None = None) -> StageResult:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(spec.log_path, "ab", buffering=0) as log:
            start = time.monotonic()
            proc = subprocess.Popen(spec.argv, cwd=spec.cwd, env=spec.env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            pump = threading.Thread(target=_copy, args=(proc.stdout, log), daemon=True)
            pump.start()
            try:
                killed = wait_under_cap(lambda t: _exited(proc, t), lambda: _terminate(proc, spec.grace_s),
                                        spec, start, tick)
            except BaseException:  # pgolf itself interrupted: take the stage down with it
                _terminate(proc, spec.grace_s)
                raise
            pump.join(timeout=5)
            wall = time.monotonic() - start
        return _result(spec, proc.returncode, wall, killed)


def _copy(source: IO[bytes], sink) -> None:
    """Stream output to the log as it comes, so a killed run keeps what it printed."""
    for chunk in iter(lambda: source.read1(65536), b""):
        sink.write(chunk)


def _exited(proc: subprocess.Popen, timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def _terminate(proc: subprocess.Popen, grace_s: float) -> None:
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _result(spec: StageSpec, returncode: int | None, wall: float, killed: bool) -> StageResult:
    if killed:
        return StageResult(spec.name, "timeout", returncode, wall, killed=True,
                           notes=[f"killed at {wall:.1f} s, cap {spec.cap_s:.0f} s"])
    status = "ok" if returncode == 0 else "failed"
    return StageResult(spec.name, status, returncode, wall)
