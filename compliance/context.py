"""What a record check sees: the loaded record, its per-seed rows, the date it is judged by
and the audit options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .record import LogRecord, Record
from .report import SeedRow

if TYPE_CHECKING:
    from .dynamic.harness import DynamicOptions
    from .prmeta import PrMeta, PullRequest
    from .selection import Selection


@dataclass(frozen=True)
class Baseline:
    """Per-seed results of the record a submission claims to beat."""

    label: str
    val_bpb: tuple[float, ...]
    val_loss: tuple[float, ...] | None = None


@dataclass(frozen=True)
class FrontierPool:
    """Where the accepted records to compare with live (`--against auto`).

    `root` holds record folders of one track (PR mode: the base commit's, exported);
    `opened` maps a folder name to (date or time its PR was opened, how that is known).
    """

    root: Path
    opened: dict[str, tuple[str, str]] = field(default_factory=dict)
    label: str = "the base branch"


@dataclass(frozen=True)
class AuditOptions:
    policy: str = "enforced"  # which significance policy decides: enforced | written
    against: Baseline | None = None
    against_auto: bool = False  # compare with the chronological frontier (--against auto)
    ruleset: str | None = None  # None: chosen from the record's track
    dynamic: DynamicOptions | None = None  # run the script traced on a canary (--dynamic)
    selection: Selection | None = None  # --select/--ignore: deselected rules do not run
    pr_meta: PrMeta | None = None  # --pr-meta: gh pr view/list JSON
    pr: PullRequest | None = None  # the PR under audit (PR mode), when the metadata names it
    frontier: FrontierPool | None = None  # PR mode: the base branch's records of the track


@dataclass(frozen=True)
class JudgingDate:
    """The date rules are applied as of, and where it came from (RULES.md §5)."""

    date: str | None  # YYYY-MM-DD; None: unknown, every rule applies as written
    source: str
    opened_at: str | None = None  # the PR's full createdAt, when known (orders same-day PRs)


def judging_date(record: Record, pr: PullRequest | None) -> JudgingDate:
    """The PR's creation date when known, else the folder's date prefix, else submission.json's date."""
    if pr is not None:
        return JudgingDate(pr.created_on, f"PR #{pr.number} createdAt {pr.created_at}", pr.created_at)
    folder = record.folder_date
    if folder:
        return JudgingDate(folder, "the folder name's date")
    claimed = record.submission.date[:10] if record.submission and record.submission.date else None
    if claimed and _is_date(claimed):
        return JudgingDate(claimed, "submission.json's date")
    return JudgingDate(None, "no date known: every rule applies as written")


def _is_date(text: str) -> bool:
    import datetime as dt

    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


@dataclass
class RecordContext:
    record: Record
    rows: list[SeedRow]
    options: AuditOptions = field(default_factory=AuditOptions)
    significance: dict[str, Any] | None = None  # filled by the R-SIGNIFICANCE check for the report
    judged: JudgingDate = field(default_factory=lambda: JudgingDate(None, "not set"))

    def logs(self) -> list[LogRecord]:
        """The runs the claim rests on; a stray folder (no claim) has none."""
        return [] if self.record.stray else self.record.scored_logs()

    def line(self, log: LogRecord, fact: str) -> int | None:
        return log.facts.lines.get(fact)

    def total_bytes(self, log: LogRecord) -> tuple[int | None, str]:
        return seed_bytes(self.record, log)


def seed_bytes(record: Record, log: LogRecord) -> tuple[int | None, str]:
    """A seed's submission size as the log judged it, and the log fact it rests on.

    The log's own `Total submission size` line is what reviewers judged (RULES.md §2), even
    when it counts the code compressed; without one, the log's code + model bytes; without
    those, the model bytes plus the folder's script as submitted.
    """
    facts, script = log.facts, record.script
    if facts.bytes_total is not None:
        return facts.bytes_total, "bytes_total"
    if facts.bytes_model is not None and script is not None:
        return facts.bytes_model + script.raw_bytes, "bytes_model"
    return None, "bytes_total"


def seed_rows(record: Record) -> list[SeedRow]:
    rows: list[SeedRow] = []
    for log in [] if record.stray else record.scored_logs():
        facts, score = log.facts, log.score
        rows.append(
            SeedRow(
                seed=log.seed,
                log=log.rel,
                metric_label=score.label if score else None,
                val_loss=score.val_loss if score else None,
                val_bpb=score.val_bpb if score else None,
                train_time_ms=facts.train_time_ms,
                eval_time_ms=eval_ms(log),
                bytes_total=seed_bytes(record, log)[0],
                bytes_code=facts.bytes_code,
                bytes_model=facts.bytes_model,
            )
        )
    return rows


def eval_ms(log: LogRecord) -> float | None:
    """The scored pass's time, or the log's total evaluation time when that is printed after it."""
    score, facts = log.score, log.facts
    timed = score.eval_time_ms if score else None
    total, where = facts.total_eval_time_ms, facts.lines.get("total_eval_time_ms")
    if total is not None and score is not None and where is not None and where > score.line:
        return max(total, timed or 0.0)
    return timed
