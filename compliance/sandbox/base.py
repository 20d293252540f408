"""The contract between the pipeline and a runtime: what to run, and what happened."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol


@dataclass(frozen=True)
class StageSpec:
    name: str                          # train | quantize | eval | run (a script without the stage contract)
    argv: list[str]
    env: dict[str, str]                # the whole environment the stage sees
    cwd: Path
    cap_s: float                       # wall-clock cap measured from outside
    log_path: Path                     # output is appended here as it is written
    grace_s: float = 10.0              # between SIGTERM and SIGKILL
    read_only: tuple[Path, ...] = ()   # inputs the stage may read (a container mounts only these)
    writable: tuple[Path, ...] = ()    # outputs it may write
    network: bool = True


@dataclass
class StageResult:
    name: str
    status: str                        # ok | failed | timeout
    returncode: int | None
    wall_s: float
    killed: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


Tick = Callable[[float], None]         # called about once a second with elapsed seconds


class Runtime(Protocol):
    name: str

    def run(self, spec: StageSpec, tick: Tick | None = None) -> StageResult: ...

    def describe(self) -> dict: ...


def wait_under_cap(exited: Callable[[float], bool], stop: Callable[[], None], spec: StageSpec,
                   start: float, tick: Tick | None) -> bool:
    """Poll a running stage about once a second until it exits or reaches its cap.

    `exited(timeout)` waits up to timeout seconds and says whether the stage ended;
    `stop()` ends it (SIGTERM, then a kill after the grace period). True when stopped at the cap.
    """
    while True:
        if exited(min(1.0, max(0.01, spec.cap_s - (time.monotonic() - start)))):
            return False
        elapsed = time.monotonic() - start
        if tick:
            tick(elapsed)
        if elapsed >= spec.cap_s:
            stop()
            return True
