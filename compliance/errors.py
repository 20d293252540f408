"""The one exception type for input pgolf cannot read.

Every public entry point turns bad input into an InputError whose text is a
single line naming the file, so the CLI can print it and exit 2 instead of
showing a traceback.
"""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    def __init__(self, path: str | Path | None, message: str):
        self.path = str(path) if path is not None else None
        self.message = " ".join(str(message).split())  # keep it on one line
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message
