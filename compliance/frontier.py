"""The chronological frontier: the best accepted record whose PR was opened earlier.

README FAQ: "we're accepting record submissions chronologically depending on their PR
creation time" (RULES.md §5). `--against auto` compares a record with the lowest mean
val_bpb among the accepted records of its track (PR mode: those on the base branch)
whose PR was opened before its own. Opening times come from `--pr-meta` (gh pr list);
without them a folder's date stands in, and then only strictly earlier dates count.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from .baseline import from_record
from .context import Baseline, FrontierPool, JudgingDate
from .errors import InputError
from .record import load_record


@dataclass(frozen=True)
class Row:
    name: str
    opened: str  # YYYY-MM-DD, or an ISO time when the PR's createdAt is known
    opened_source: str
    baseline: Baseline
    mean: float


_LOADED: dict[tuple[object, ...], list[Row]] = {}


def rows(pool: FrontierPool, exclude: str | None = None) -> list[Row]:
    """Every record folder in the pool with per-seed scores and a known opening date.

    Auditing a tree with `--against auto` asks for the same pool once per record: it is read
    once, and again when a folder in it is added, removed or touched.
    """
    folders = sorted(p for p in pool.root.iterdir() if p.is_dir() and not p.is_symlink())
    key = (
        str(pool.root.resolve()),
        tuple(sorted(pool.opened.items())),
        tuple((p.name, p.stat().st_mtime_ns) for p in folders),
    )
    if key not in _LOADED:
        _LOADED[key] = _load(pool)
    return [row for row in _LOADED[key] if row.name != exclude]


def _load(pool: FrontierPool) -> list[Row]:
    found = []
    for folder in sorted(p for p in pool.root.iterdir() if p.is_dir() and not p.is_symlink()):
        try:
            record = load_record(folder)
        except (InputError, OSError):
            continue
        baseline = from_record(record, folder.name)
        opened, source = pool.opened.get(folder.name, (record.date or "", "its folder date"))
        if baseline is None or not opened:
            continue
        found.append(Row(folder.name, opened, source, baseline, statistics.fmean(baseline.val_bpb)))
    return found


def opened_before(opened: str, judged: JudgingDate) -> bool:
    """Strictly earlier: by time when both times are known, else by date."""
    if judged.opened_at and "T" in opened:
        return opened < judged.opened_at
    return judged.date is not None and opened[:10] < judged.date


def best_before(candidates: list[Row], judged: JudgingDate) -> Row | None:
    earlier = [row for row in candidates if opened_before(row.opened, judged)]
    return min(earlier, key=lambda row: (row.mean, row.opened)) if earlier else None


def describe(row: Row) -> str:
    return f"{row.name} (opened {row.opened[:10]} by {row.opened_source}; mean {row.mean:.5f})"
