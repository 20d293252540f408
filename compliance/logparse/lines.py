"""A raw line as the run printed it, before any layout is read: progress-bar overwrites, the
"timestamped" layout's Unix times and the "torchrun" layout's rank prefixes and banners; binary input."""

from __future__ import annotations

from .grammar import BAD_CHARS, BINARY_BAD_RATIO, RANK, TIMESTAMP, TORCHRUN_BANNER


def clean_line(line: str, layout: set[str]) -> str | None:
    """The line without CR, progress-bar overwrites, time stamp and rank prefix."""
    if "\r" in line:
        parts = [p for p in line.split("\r") if p]
        line = parts[-1] if parts else ""
    if line[:1].isdigit():
        m = TIMESTAMP.match(line)
        if m:
            layout.add("timestamped")
            line = line[m.end() :]
    if line[:1] == "[":
        m = RANK.match(line)
        if m:
            layout.add("torchrun")
            if m.group(1) != "0":
                return None
            line = line[m.end() :]
    elif line[:1] == "W" and TORCHRUN_BANNER.match(line):
        layout.add("torchrun")
        return None
    return line


def count_lines(text: str) -> int:
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def looks_binary(sample: str) -> bool:
    if not sample:
        return False
    return len(BAD_CHARS.findall(sample)) / len(sample) > BINARY_BAD_RATIO
