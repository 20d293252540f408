"""The contract between the pipeline and a runtime: what to run, and what happened.

A runtime is a class with a `name`, registered in compliance/sandbox/__init__.py. What
runtimes differ in (an environment report of their own, a CPU variant for the dynamic
check, whether they isolate at all) are methods of Runtime with defaults, so callers ask
the runtime instead of testing its type.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import InputError


@dataclass(frozen=True)
class StageSpec:
    name: str  # train | quantize | eval | run (a script without the stage contract)
    argv: list[str]
    env: dict[str, str]  # the whole environment the stage sees under the local runtime
    cwd: Path
    cap_s: float  # wall-clock cap measured from outside
    log_path: Path  # output is appended here as it is written
    grace_s: float = 10.0  # between SIGTERM and SIGKILL
    read_only: tuple[Path, ...] = ()  # inputs the stage may read (a sandbox shows only these)
    writable: tuple[Path, ...] = ()  # outputs it may write
    network: bool = True  # False: any attempt is an R-NETWORK finding (sandboxes never give one)
    caller_env: frozenset[str] = frozenset()  # names in env copied from the caller's environment, not set
    # by pgolf: a sandbox keeps only those on its allowlist


@dataclass(frozen=True)
class Connection:
    """One attempt to reach a socket, seen from outside the process that made it."""

    pid: int
    cmdline: str  # of the process that made the attempt
    family: str  # AF_INET | AF_INET6
    address: str  # host:port
    result: str  # "ok", "pending" or the error name (ECONNREFUSED ...)
    internal: bool = False  # to a port a process of the same run serves (torch.distributed)

    def describe(self) -> str:
        return f"{self.cmdline} -> {self.address} ({self.result})"


@dataclass
class StageResult:
    name: str
    status: str  # ok | failed | timeout
    returncode: int | None
    wall_s: float
    killed: bool = False
    notes: list[str] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


Tick = Callable[[float], None]  # called about once a second with elapsed seconds


@dataclass(frozen=True)
class RuntimeOptions:
    """What the CLIs know about where stages should run; each runtime takes what applies to it."""

    image: str | None = None  # container runtimes
    device: str = "cpu"  # cpu | cuda: a profile's device (the GPUs a stage gets)


class SandboxUnavailable(InputError):
    """The runtime cannot start here (a missing tool, no user namespaces, no engine): one line, exit 2."""

    def __init__(self, message: str) -> None:
        super().__init__(None, message)


class Runtime:
    name: ClassVar[str] = "?"
    isolated: ClassVar[bool] = True  # untrusted code may run in it
    summary: ClassVar[str] = ""  # one line for --help

    @classmethod
    def from_options(cls, options: RuntimeOptions) -> Runtime:
        return cls()

    def run(self, spec: StageSpec, tick: Tick | None = None) -> StageResult:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"runtime": self.name}

    def unavailable(self) -> str | None:
        """Why this runtime cannot start here, or None when it can."""
        return None

    def env_report(self) -> dict[str, Any] | None:
        """`pgolf env --json` as the stages' own environment sees itself; None: the caller's is theirs."""
        return None

    def cpu_variant(self) -> Runtime | None:
        """The same isolation on the CPU (for the dynamic check), or None when there is none to offer."""
        return None


def find_tool(tool: str) -> str | None:
    """A helper binary on PATH (or /usr/bin); PGOLF_<TOOL> (PGOLF_BWRAP, PGOLF_STRACE) names another."""
    chosen = os.environ.get(f"PGOLF_{tool.upper()}")
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    return shutil.which(tool, path=os.environ.get("PATH", "") + os.pathsep + "/usr/bin:/bin")


def caller_environment(drop: Callable[[str], bool]) -> dict[str, str]:
    """The caller's environment less the names `drop` refuses: the base of every stage's env."""
    return {k: v for k, v in os.environ.items() if not drop(k)}


def compose_env(inherited: Mapping[str, str], *ours: Mapping[str, str]) -> tuple[dict[str, str], frozenset[str]]:
    """The stage's environment, and which of its names still hold the caller's value rather than pgolf's."""
    env = dict(inherited)
    set_by_us: set[str] = set()
    for layer in ours:
        env.update(layer)
        set_by_us.update(layer)
    return env, frozenset(k for k in inherited if k not in set_by_us)


def wait_under_cap(
    exited: Callable[[float], bool], stop: Callable[[], None], spec: StageSpec, start: float, tick: Tick | None
) -> bool:
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
