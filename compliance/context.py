"""What a record check sees: the loaded record, its per-seed rows and the audit options."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .record import LogRecord, Record
from .report import SeedRow

if TYPE_CHECKING:
    from .dynamic.harness import DynamicOptions
    from .selection import Selection


@dataclass(frozen=True)
class Baseline:
    """Per-seed results of the record a submission claims to beat."""
    label: str
    val_bpb: tuple[float, ...]
    val_loss: tuple[float, ...] | None = None


@dataclass(frozen=True)
class AuditOptions:
    policy: str = "enforced"          # which significance policy decides: enforced | written
    against: Baseline | None = None
    ruleset: str | None = None        # None: chosen from the record's track
    dynamic: "DynamicOptions | None" = None  # run the script traced on a canary (--dynamic)
    selection: "Selection | None" = None     # --select/--ignore: deselected rules do not run


@dataclass
class RecordContext:
    record: Record
    rows: list[SeedRow]
    options: AuditOptions = field(default_factory=AuditOptions)
    significance: dict | None = None  # filled by the R-SIGNIFICANCE check for the report

    def logs(self) -> list[LogRecord]:
        return self.record.scored_logs()

    def line(self, log: LogRecord, fact: str) -> int | None:
        return log.facts.lines.get(fact)

    def total_bytes(self, log: LogRecord) -> tuple[int | None, str]:
        return seed_bytes(self.record, log)


def seed_bytes(record: Record, log: LogRecord) -> tuple[int | None, str]:
    """A seed's submission size and the log fact it rests on.

    The folder's own script is measured here, so when the log gives the model bytes the
    total is that plus the script as submitted (packed or not); otherwise the log's total
    (which the log parser already derives from code + model where only those are given).
    """
    facts, script = log.facts, record.script
    if facts.bytes_model is not None and script is not None:
        total = facts.bytes_model + script.raw_bytes
        return total, "bytes_total" if total == facts.bytes_total else "bytes_model"
    return facts.bytes_total, "bytes_total"


def seed_rows(record: Record) -> list[SeedRow]:
    rows = []
    for log in record.scored_logs():
        facts, score = log.facts, log.facts.score
        rows.append(SeedRow(
            seed=log.seed, log=log.rel,
            metric_label=score.label if score else None,
            val_loss=score.val_loss if score else None,
            val_bpb=score.val_bpb if score else None,
            train_time_ms=facts.train_time_ms,
            eval_time_ms=score.eval_time_ms if score else None,
            bytes_total=seed_bytes(record, log)[0], bytes_code=facts.bytes_code, bytes_model=facts.bytes_model,
        ))
    return rows
