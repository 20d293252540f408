"""A budget you can see: measure the run while it goes, predict its end, shrink the canary in time.

The tracer appends its ledger as events happen, so the harness reads it during the run:
- the first training step (the time between the first two optimizer steps that saw no canary
  target), and the first evaluation window (the first loss call on canary targets, up to the next);
- then, pass by pass, how far the current pass over the canary has come: a pass walks the canary
  positions in order (windows, chunks, documents), so its end is projected from the highest
  position it reached and the time it took (a pass restarts when the positions go back to the start).

When the projected end of the pass under way already lies beyond the cap, the run cannot finish:
it is stopped at once and run again on a smaller canary, sized from what was measured (evaluation
time scales with the canary's tokens; start-up and training do not), instead of running into the
cap with nothing reported. The evidence is then summed over the smaller canary's targets.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from .stall import RunStalled, StallWatch

MIN_TOKENS = 4096  # two 2048-token sequences: below this no record's evaluation is meaningful
SLACK = 1.5  # passes not seen yet: the shrunk run is sized for 1.5x the measured work
READ_EVERY_S = 3.0


class BudgetStop(Exception):
    """Raised from the runtime's tick: the run is taken down and run again on a smaller canary."""

    def __init__(self, tokens: int, reason: str) -> None:
        super().__init__(reason)
        self.tokens, self.reason = tokens, reason


@dataclass
class _Process:
    """One traced process: what its ledger shows so far."""

    events_at: int = 0
    start_ns: int | None = None
    train_steps: list[int] = field(default_factory=list)
    eval_events: int = 0
    first_eval_ns: int | None = None
    second_eval_ns: int | None = None
    first_window_positions: int = 0
    pass_start_ns: int | None = None
    pass_front: int = 0  # highest canary position this pass reached (far below it: a new pass)
    pass_seen: np.ndarray | None = None  # positions this pass scored
    pass_base: int = 0  # of them, those its first event scored (the pace starts after it)
    passes: int = 0
    last_ns: int | None = None


@dataclass
class Budget:
    """Watches one attempt. `tick(elapsed)` is the runtime's callback; it raises BudgetStop."""

    ledger_dir: Path
    cap_s: float
    tokens: int  # the canary's scored tokens this attempt
    spent_s: float = 0.0  # wall time earlier attempts already used from the cap
    may_shrink: bool = True
    say: Callable[[str], None] | None = None  # progress lines: what was measured, what is projected
    passes_hint: int = 0  # an update loop no knob bounds runs this many times (a literal count)
    stall: StallWatch = field(default_factory=StallWatch)  # a run waiting on itself is stopped, not shrunk
    spawn_ns: int = field(default_factory=time.monotonic_ns)
    processes: dict[str, _Process] = field(default_factory=dict)
    predictions: list[dict[str, float]] = field(default_factory=list)
    _read_at: float = -math.inf
    _told: int = 0
    _noted: int = 0

    # ---------------------------------------------------------------- the runtime's callback

    def tick(self, elapsed: float) -> None:
        if elapsed - self._read_at < READ_EVERY_S:
            return
        self._read_at = elapsed
        self.read()
        stalled = self.stall.stalled()
        if stalled is not None:
            raise RunStalled(stalled)
        projected = self.projected_end_s()
        if projected is None:
            return
        self._note(elapsed, projected)
        self._tell(projected)
        limit = self.cap_s - self.spent_s
        if projected > limit and self.may_shrink:
            tokens = self.shrunk_tokens(elapsed)
            if tokens is not None:
                raise BudgetStop(
                    tokens,
                    f"at {elapsed:.0f}s the evaluation pass under way was projected to end at "
                    f"{projected:.0f}s, past the {limit:.0f}s left of the cap",
                )

    def _tell(self, projected: float) -> None:
        if self._noted > self._told:
            summary = self.summary()
            if self.say is not None and summary["first_eval_window_s"] is not None:
                step = summary["train_step_s"]
                self.say(
                    f"dynamic: budget: first training step {'-' if step is None else f'{step:.1f}s'}, first "
                    f"eval window {summary['first_eval_window_s']:.1f}s ({summary['first_eval_window_targets']} "
                    f"targets) at {summary['eval_start_s']:.0f}s; pass {summary['passes_seen']} projected to "
                    f"end at {projected:.0f}s of {self.cap_s - self.spent_s:.0f}s"
                )
            self._told = self._noted

    def _note(self, elapsed: float, projected: float) -> None:
        if not self.predictions or abs(self.predictions[-1]["projected_s"] - projected) > 5:
            self.predictions.append({"at_s": round(elapsed, 1), "projected_s": round(projected, 1)})
            self._noted += 1
            del self.predictions[:-20]

    # ---------------------------------------------------------------- reading the ledger

    def read(self) -> None:
        if not self.ledger_dir.is_dir():
            return
        for folder in sorted(p for p in self.ledger_dir.iterdir() if p.is_dir()):
            proc = self.processes.setdefault(folder.name, _Process())
            for event in _new_events(folder / "events.jsonl", proc):
                self.stall.event(folder.name, event)
                self._event(folder, proc, event)

    def _event(self, folder: Path, proc: _Process, event: dict[str, Any]) -> None:
        kind, t = event.get("kind"), event.get("t")
        if not isinstance(t, int):
            return
        if kind == "start":
            proc.start_ns = t
        elif kind == "step" and not event.get("canary") and proc.eval_events == 0:
            proc.train_steps.append(t)
        elif kind == "loss":
            positions = _positions(folder, event)
            if positions is not None and len(positions):
                self._loss(proc, t, positions[(positions > 0) & (positions <= self.tokens)])

    def _loss(self, proc: _Process, t: int, positions: np.ndarray) -> None:
        """Progress is the share of the canary this pass has scored (windows, chunks and documents
        in any order); positions far behind the pass's front start a new pass."""
        if not len(positions):
            return
        proc.eval_events += 1
        if proc.first_eval_ns is None:
            proc.first_eval_ns, proc.first_window_positions = t, len(positions)
        elif proc.second_eval_ns is None:
            proc.second_eval_ns = t
        high = int(positions.max())
        if proc.pass_seen is None or high < proc.pass_front - max(self.tokens // 4, 2048):
            proc.pass_start_ns = t
            proc.pass_seen, proc.pass_front = np.zeros(self.tokens + 1, dtype=bool), 0
            proc.pass_seen[positions] = True
            proc.pass_base = int(proc.pass_seen.sum())
            proc.passes += 1
        proc.pass_seen[positions] = True
        proc.pass_front = max(proc.pass_front, high)
        proc.last_ns = t

    # ---------------------------------------------------------------- predictions

    def projected_end_s(self) -> float | None:
        """Seconds from spawn at which the pass under way ends, at the pace it kept since its first
        event (the latest of the processes); None before it has covered 5% of the canary. Once passes
        are seen to repeat and an update loop no knob bounds runs `passes_hint` times, the passes
        still to come (and a scoring pass after them) are counted in at the same pace."""
        ends = []
        for proc in self.processes.values():
            # pass_start_ns is set with pass_seen: its test only narrows the type
            if (
                proc.pass_seen is None
                or proc.pass_start_ns is None
                or proc.last_ns is None
                or proc.last_ns <= proc.pass_start_ns
            ):
                continue
            seen = int(proc.pass_seen.sum())
            if seen - proc.pass_base < 0.05 * self.tokens:
                continue
            rate = (seen - proc.pass_base) / ((proc.last_ns - proc.pass_start_ns) / 1e9)
            end = (proc.last_ns - self.spawn_ns) / 1e9 + (self.tokens - seen) / rate
            if proc.passes >= 2 and self.passes_hint > proc.passes:
                end += (self.passes_hint + 1 - proc.passes) * (self.tokens / rate)
            ends.append(end)
        return max(ends) if ends else None

    def eval_start_s(self) -> float | None:
        starts = [p.first_eval_ns for p in self.processes.values() if p.first_eval_ns is not None]
        return (min(starts) - self.spawn_ns) / 1e9 if starts else None

    def shrunk_tokens(self, elapsed: float) -> int | None:
        """The canary size a fresh run fits the rest of the cap with: start-up and training again, then
        the evaluation measured so far (to the projected end of this pass) scaled to the new size."""
        start, projected = self.eval_start_s(), self.projected_end_s()
        if start is None or projected is None or projected <= start:
            return None
        per_token = (projected - start) / self.tokens
        left = self.cap_s - self.spent_s - elapsed - start
        tokens = int(left / (per_token * SLACK)) // 2048 * 2048
        return tokens if MIN_TOKENS <= tokens < self.tokens else None

    def summary(self) -> dict[str, Any]:
        """What was measured, for the finding: first training step, first evaluation window, passes."""
        steps = [b - a for p in self.processes.values() for a, b in zip(p.train_steps, p.train_steps[1:], strict=False)]
        first = [p for p in self.processes.values() if p.second_eval_ns is not None]
        # a process with a second eval event has a first one
        window = min(first, key=lambda p: cast(int, p.first_eval_ns)) if first else None
        return {
            "train_step_s": round(min(steps) / 1e9, 3) if steps else None,
            "train_steps_seen": max((len(p.train_steps) for p in self.processes.values()), default=0),
            "eval_start_s": None if self.eval_start_s() is None else round(cast(float, self.eval_start_s()), 1),
            "first_eval_window_s": round((cast(int, window.second_eval_ns) - cast(int, window.first_eval_ns)) / 1e9, 3)
            if window
            else None,
            "first_eval_window_targets": window.first_window_positions if window else None,
            "passes_seen": max((p.passes for p in self.processes.values()), default=0),
            "predictions": list(self.predictions),
        }


def _new_events(path: Path, proc: _Process) -> Iterator[dict[str, Any]]:
    """Complete lines appended since the last read (a line still being written waits)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(proc.events_at)
            data = handle.read()
    except OSError:
        return
    end = data.rfind(b"\n") + 1
    proc.events_at += end
    for line in data[:end].splitlines():
        try:
            yield json.loads(line)
        except ValueError:
            continue


def _positions(folder: Path, event: dict[str, Any]) -> np.ndarray | None:
    start, n = event.get("start"), event.get("n")
    if not isinstance(start, int) or not isinstance(n, int) or n <= 0:
        return None
    try:
        return np.fromfile(folder / "positions.bin", dtype="<i4", count=n, offset=4 * start)
    except (OSError, ValueError):
        return None
