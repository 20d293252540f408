"""Progress on screen: seed i/n, stage, elapsed against the cap."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, n_seeds: int, stream: TextIO = sys.stderr, every_s: float = 10.0):
        self.n_seeds, self.stream, self.every_s = n_seeds, stream, every_s
        self.tty = stream.isatty()
        self._last = 0.0
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(f"pgolf: {text}\n")
        self.stream.flush()

    def ticker(self, index: int, seed: int, stage: str, cap_s: float):
        def tick(elapsed: float) -> None:
            line = (f"seed {index}/{self.n_seeds} (seed={seed}) {stage}: {elapsed:6.1f} s / {cap_s:.0f} s cap"
                    f"  [total {time.monotonic() - self.started:.0f} s]")
            if self.tty:
                self.stream.write(f"\r\033[K{line}")
                self.stream.flush()
            elif elapsed - self._last >= self.every_s or elapsed < self._last:
                self.stream.write(line + "\n")
                self.stream.flush()
            self._last = elapsed
        return tick
