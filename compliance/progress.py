"""Progress of every long task: pipeline stages per seed, the dynamic run, data builds.

On a terminal each running task has one live line (rich): elapsed time against its
cap, an ETA, the last line its log printed and the log's path; when it ends, one
permanent line says how. Piped (CI logs, files) there is no cursor movement: a line
when a task starts, then at 30 s, 60 s, 120 s, ... of it, and one when it ends.

The ETA comes from, in order: a `step:N/M` (or `N/M`) count in the task's last log
lines, bytes done of a known total, the time the previous task of the same kind
took in this session; without any, the time left to the cap is shown as a bound.

The pipeline and the checker both use this module; it lives in compliance/ because
the pipeline imports compliance and never the reverse.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import TextIO

from rich.live import Live
from rich.text import Text

from . import terminal
from .textsafe import clip, printable

FIRST_PLAIN_S = 30.0  # piped: the first periodic line, then each interval doubles
TAIL_BYTES = 4096
_STEP = re.compile(r"\bstep[:= ]\s*(\d+)\s*/\s*(\d+)")


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 1000:  # the caps read as 600 s in this project
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"


def last_log_line(path: Path | None) -> str | None:
    """The last line a task's log printed, pgolf's own lines and blank ones skipped."""
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    for line in reversed(re.split(r"[\r\n]+", tail)):
        line = line.strip()
        if line and not line.startswith("pgolf:"):
            return line
    return None


class Task:
    """One long task. Runtimes call `tick(elapsed)` about once a second; transfers call `advance`."""

    def __init__(
        self,
        progress: Progress,
        label: str,
        kind: str | None,
        cap_s: float | None,
        log_path: Path | None,
        total: float | None,
        unit: str,
    ):
        self.progress, self.label, self.kind = progress, label, kind
        self.cap_s, self.log_path, self.total, self.unit = cap_s, log_path, total, unit
        self.started = time.monotonic()
        self.elapsed = 0.0
        self.done: float | None = None
        self.detail: str | None = None
        self.outcome: str | None = None
        self._next_plain = FIRST_PLAIN_S
        self._last_draw = 0.0

    # --- fed by the work
    def tick(self, elapsed: float | None = None) -> None:
        self.elapsed = time.monotonic() - self.started if elapsed is None else elapsed
        self.detail = last_log_line(self.log_path) or self.detail
        self.progress._update(self)

    def advance(self, done: float, total: float | None = None) -> None:
        self.done, self.total = done, total if total is not None else self.total
        self.tick()

    def note(self, text: str) -> None:
        """A step worth keeping: a permanent line, and the live line's detail."""
        self.detail = text
        self.progress.say(f"{self.label}: {text}")

    def finish(self, outcome: str) -> None:
        self.outcome = outcome

    # --- what is shown
    def eta(self) -> tuple[float, bool] | None:
        """Seconds left and whether that is an estimate (False: only the cap's bound)."""
        fraction = self._fraction()
        if fraction is not None and fraction > 0.01:
            left = self.elapsed * (1 - fraction) / fraction
            if self.cap_s is not None:
                left = min(left, self.cap_s - self.elapsed)
            return left, True
        before = self.progress.durations.get(self.kind) if self.kind else None
        if before is not None and before > self.elapsed:
            return before - self.elapsed, True
        if self.cap_s is not None:
            return self.cap_s - self.elapsed, False
        return None

    def _fraction(self) -> float | None:
        if self.done is not None and self.total:
            return min(1.0, self.done / self.total)
        match = _STEP.search(self.detail or "")
        if match and int(match.group(2)) > 0:
            return min(1.0, int(match.group(1)) / int(match.group(2)))
        return None

    def status(self) -> str:
        parts = [self.label, _duration(self.elapsed) + (f" / {_duration(self.cap_s)} cap" if self.cap_s else "")]
        if self.done is not None:
            amount = f"{self.done / 1e6:.1f} MB" if self.unit == "bytes" else f"{self.done:g}"
            parts.append(amount + (f" of {self.total / 1e6:.1f} MB" if self.total and self.unit == "bytes" else ""))
        eta = self.eta()
        if eta is not None:
            parts.append(f"ETA {_duration(eta[0])}" if eta[1] else f"at most {_duration(eta[0])} left")
        if self.detail:
            parts.append(clip(printable(self.detail), 72))
        if self.log_path is not None:
            parts.append(f"log {printable(self.log_path)}")
        return " · ".join(parts)

    def __enter__(self) -> Task:
        self.progress._start(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.elapsed = max(self.elapsed, time.monotonic() - self.started)
        if exc_type is not None and self.outcome is None:
            self.outcome = "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed"
        self.progress._end(self)


class Progress:
    """Where long tasks report: `say` for permanent lines, `task(...)` for a live one."""

    def __init__(
        self, stream: TextIO | None = None, *, prefix: str = "pgolf", live: bool | None = None, color_mode: str = "auto"
    ):
        self.stream = stream if stream is not None else sys.stderr
        self.prefix = prefix
        self.live = terminal.is_tty(self.stream) if live is None else live
        self.color = terminal.wants_color(self.stream, color_mode)
        self.console = terminal.console(self.stream, self.color, live=self.live)
        self.durations: dict[str, float] = {}
        self._live: Live | None = None
        self._transfer: Task | None = None

    @classmethod
    def silent(cls) -> Progress:
        import io

        return cls(io.StringIO(), live=False)

    def say(self, text: str) -> None:
        line = Text(f"{self.prefix}: {printable(text)}" if self.prefix else printable(text))
        self.console.print(line)

    def task(
        self,
        label: str,
        *,
        kind: str | None = None,
        cap_s: float | None = None,
        log_path: Path | None = None,
        total: float | None = None,
        unit: str = "",
    ) -> Task:
        return Task(self, label, kind, cap_s, log_path, total, unit)

    def transfer(self, label: str, done: int, total: int | None) -> None:
        """Byte counts of one file after another (a download): a task per file."""
        if self._transfer is not None and self._transfer.label != label:
            self._transfer.__exit__(None, None, None)
            self._transfer = None
        if self._transfer is None:
            self._transfer = self.task(label, kind="transfer", total=total, unit="bytes").__enter__()
        self._transfer.advance(done, total)
        if total is not None and done >= total:
            self._transfer.finish("done")
            self._transfer.__exit__(None, None, None)
            self._transfer = None

    # --- drawing
    def _start(self, task: Task) -> None:
        if self.live:
            self._live = Live(
                Text(printable(task.status())),
                console=self.console,
                auto_refresh=False,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        else:
            self.say(
                f"{task.label} started"
                + (f", cap {_duration(task.cap_s)}" if task.cap_s else "")
                + (f", log {task.log_path}" if task.log_path else "")
            )

    def _update(self, task: Task) -> None:
        now = time.monotonic()
        if self.live and self._live is not None:
            if now - task._last_draw >= 0.2:
                task._last_draw = now
                self._live.update(Text(task.status()), refresh=True)
        elif not self.live and task.elapsed >= task._next_plain:
            task._next_plain *= 2
            self.say(task.status())

    def _end(self, task: Task) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        if task.kind and task.outcome in (None, "ok", "done"):
            self.durations[task.kind] = task.elapsed
        outcome = task.outcome or "done"
        line = Text(f"{self.prefix}: " if self.prefix else "")
        line.append(printable(task.label) + " ")
        line.append(outcome, style=("green" if outcome in ("ok", "done") else "bold red") if self.color else "")
        line.append(f" in {_duration(task.elapsed)}" + (f" (cap {_duration(task.cap_s)})" if task.cap_s else ""))
        self.console.print(line)
