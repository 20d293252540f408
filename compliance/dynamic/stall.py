"""Telling a run that waits for ever from a slow one.

Every traced process beats: the tracer writes its CPU time to the ledger every few seconds
(pgolf_shim_tracer, PGOLF_BEAT_S). When every process that has done work (a training step or a
score; the launcher never does) goes on beating without using the CPU, and writes nothing else,
for `stall_s` seconds, the run is waiting on itself: ranks at a collective one of them never
reaches. It is stopped there and said to have stalled, instead of running into the cap.

A process whose beats stop is not idle but unknown (a C call holding the interpreter's lock stops
them too), and unknown is never a stall: such a run goes on to the cap as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STALL_S = 90.0
BEAT_S = 10.0
IDLE_SHARE = 0.02  # CPU time per wall second below which a beating process is waiting


def beat_s(stall_s: float) -> float:
    """How often processes beat: several beats to a stall, at most every BEAT_S seconds."""
    return max(0.5, min(BEAT_S, stall_s / 6))


class RunStalled(Exception):
    """Raised from the runtime's tick: the run is taken down and reported as stalled."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Beats:
    working: bool = False
    exited: bool = False
    last_work_ns: int = 0  # the last event that was not a beat
    beats: list[tuple[int, float]] = field(default_factory=list)  # (t ns, CPU seconds)


@dataclass
class StallWatch:
    stall_s: float = STALL_S
    beat_s: float = BEAT_S
    processes: dict[str, _Beats] = field(default_factory=dict)

    def event(self, process: str, event: dict[str, Any]) -> None:
        kind, t = event.get("kind"), event.get("t")
        if not isinstance(t, int):
            return
        proc = self.processes.setdefault(process, _Beats())
        if kind == "beat":
            cpu = event.get("cpu_s")
            if isinstance(cpu, (int, float)):
                proc.beats.append((t, float(cpu)))
                del proc.beats[:-256]
            return
        proc.last_work_ns = max(proc.last_work_ns, t)
        if kind in ("step", "loss"):
            proc.working = True
        elif kind == "exit":
            proc.exited = True

    def stalled(self) -> str | None:
        """Why the run is waiting on itself, or None while any working process may still move."""
        working = {name: p for name, p in self.processes.items() if p.working and not p.exited}
        if not working:
            return None
        now = max((p.beats[-1][0] for p in working.values() if p.beats), default=0)
        idle = [self._idle_for(p, now) for p in working.values()]
        if any(s is None or s < self.stall_s for s in idle):
            return None
        return (
            f"stalled: the {len(working)} working process(es) went on running but used no CPU and "
            f"traced nothing for {min(s for s in idle if s is not None):.0f}s (waiting on each other)"
        )

    def _idle_for(self, proc: _Beats, now: int) -> float | None:
        """Seconds this process has been beating idle up to `now`; None when its beats are not recent."""
        if not proc.beats or now - proc.beats[-1][0] > 2 * self.beat_s * 1e9:
            return None
        t_end, cpu_end = proc.beats[-1]
        start = t_end
        for t, cpu in reversed(proc.beats):
            if t < proc.last_work_ns or cpu_end - cpu > IDLE_SHARE * (t_end - t) / 1e9 + 0.05:
                break
            start = t
        return (t_end - start) / 1e9
