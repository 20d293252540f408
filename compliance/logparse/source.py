"""The "source" layout: a script that logs its own text, ended by a separator line; shared copies
replace the text by a placeholder naming its length and hash."""

from __future__ import annotations

import hashlib

from .grammar import PLACEHOLDER, PY_START, PY_START_STRONG, SOURCE_BREAK, is_separator
from .state import ParserState


class SourceBlocks(ParserState):
    def _source_starts(self, i: int, line: str) -> bool:
        if i < self.no_source_before or not line or line[0] in " \t":
            return False
        if not self.run.output_seen:
            return bool(PY_START.match(line))
        return self.run.has_final and bool(PY_START_STRONG.match(line))

    def _begin_source(self, i: int, explicit: bool = False) -> None:
        self.mode = "source"
        self.source_start = i
        self.source_explicit = explicit

    def _source_line(self, i: int, line: str) -> int | None:
        if is_separator(line):
            self._end_source(i, closed=True)
        elif SOURCE_BREAK.match(line):
            if not self._source_is_certain(i):
                return self._reject_source(i)
            self._end_source(i, closed=False)
            self._dispatch(i, line)
        return None

    def _source_at_eof(self) -> int | None:
        end = len(self.raw)
        if not self._source_is_certain(end):
            return self._reject_source(end)
        self._end_source(end, closed=False)
        return None

    def _source_is_certain(self, end: int) -> bool:
        """An unclosed block still counts as source when it is declared or unmistakable."""
        first = self._clean(self.raw[self.source_start]) or ""
        strong = bool(PY_START_STRONG.match(first))
        return self.source_explicit or strong or self._block_has_placeholder(end)

    def _reject_source(self, end: int) -> int:
        """Not a source block after all: read its lines again as run output."""
        self.mode = None
        self.no_source_before = end
        return self.source_start

    def _block_has_placeholder(self, end: int) -> bool:
        block = range(self.source_start, min(end, len(self.raw)))
        return any(PLACEHOLDER.search(self.raw[k]) for k in block)

    def _end_source(self, end: int, closed: bool) -> None:
        self.mode = None
        self._maybe_new_run(self.source_start)
        start_line = self.source_start + 1
        self.layout.add("source")
        self.run.lines["embedded_source"] = start_line
        body = [self._clean(self.raw[k]) or "" for k in range(self.source_start, end)]
        removed = next((m for m in map(PLACEHOLDER.search, body) if m), None)
        if not closed:
            self.notes.append((start_line, "embedded source is not closed by a separator line"))
        if removed:
            lines, digest = removed.groups()
            msg = f"embedded source removed from this copy ({lines} lines, sha256/16={digest})"
            self.notes.append((start_line, msg))
            return
        # `print(code)` adds one newline, so the joined block is the script file byte for byte.
        source = "\n".join(body)
        self.run.values["embedded_source"] = source
        digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
        self.run.values["embedded_source_sha256"] = digest
