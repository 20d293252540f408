"""What a record's train logs say about which code ran.

A print or log call writes its literal text into the log each time it runs
(`slot:starting lr=`, `ttt_legal: chunks=`, `final_slot_exact val_loss:`). When that
text shows in a log, the branch holding the call ran; when a log ran to its final
score and the text is nowhere in it, the branch did not. The logs of the official
records sometimes open with the script's own source, which holds every such text
as code: that block is left out before searching.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import safeio

if TYPE_CHECKING:
    from ..record import LogRecord, Record

_MAX_LOG_BYTES = 64 * 1024 * 1024


@dataclass
class LogEvidence:
    """The output of a record's runs, searchable for the text a print call writes."""

    texts: list[str] = field(default_factory=list)  # one per log, embedded source removed
    complete: int = 0  # logs that ran to a final score
    names: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return bool(self.texts)

    def seen(self, fragment: str) -> str | None:
        """The first log line showing the fragment as output, as `file:line`, or None."""
        for name, text in zip(self.names, self.texts, strict=True):
            start = 0
            while True:
                at = text.find(fragment, start)
                if at < 0:
                    break
                line_start = text.rfind("\n", 0, at) + 1
                line_end = text.find("\n", at)
                line = text[line_start : line_end if line_end >= 0 else len(text)]
                glued = at > 0 and _is_word(fragment[0]) and _is_word(text[at - 1])
                if not glued and not _looks_like_code(line):
                    return f"{name}:{text.count(chr(10), 0, at) + 1}"
                start = at + len(fragment)
        return None


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _looks_like_code(line: str) -> bool:
    """A source line quoting the text (`log0(f"slot:starting lr={lr}")`), not the run writing it."""
    stripped = line.strip()
    return (
        ('"' in stripped or "'" in stripped)
        and ("(" in stripped or "=" in stripped)
        and ("{" in stripped or stripped.startswith(("log", "print", "logger", 'f"', "f'")) or "print(" in stripped)
    )


def from_record(record: Record | None) -> LogEvidence:
    evidence = LogEvidence()
    if record is None:
        return evidence
    for log in record.scored_logs():
        text = _log_text(record, log)
        if text is None:
            continue
        evidence.texts.append(text)
        evidence.names.append(log.rel)
        if log.facts.score is not None:
            evidence.complete += 1
    return evidence


def _log_text(record: Record, log: LogRecord) -> str | None:
    entry = next((e for e in record.entries if e.rel == log.rel), None)
    if entry is None or entry.problem:
        return None
    try:
        text = safeio.decode_text(safeio.read_bytes(entry, limit=_MAX_LOG_BYTES))
    except Exception:  # noqa: BLE001 - an unreadable log is already a record finding; here it says nothing
        return None
    source = log.facts.embedded_source
    if source:
        text = text.replace(source, "")
    return text
