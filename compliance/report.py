"""The report: findings, per-seed rows and verdicts, in the pgolf-report/1 schema.

This is the contract between the checker, the pipeline and the formatters;
docs/report-schema.md describes it for other tools. Unknown values are None
(null in JSON), never guessed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

SCHEMA = "pgolf-report/1"
Severity = Literal["fail", "review", "warn", "info"]
Verdict = Literal["pass", "fail", "review", "error"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)  # most severe first
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
VERDICT_EXIT: dict[Verdict, int] = {"pass": 0, "fail": 1, "error": 2, "review": 3}


@dataclass
class Finding:
    rule: str
    severity: Severity
    message: str
    file: str | None = None
    line: int | None = None
    active: bool = True
    title: str | None = None
    source: str | None = None
    evidence: dict[str, Any] | None = None


@dataclass
class SeedRow:
    seed: int | None
    log: str
    metric_label: str | None = None
    val_loss: float | None = None
    val_bpb: float | None = None
    train_time_ms: float | None = None
    eval_time_ms: float | None = None
    bytes_total: int | None = None
    bytes_code: int | None = None
    bytes_model: int | None = None


@dataclass
class RecordReport:
    path: str
    verdict: Verdict = "pass"
    ruleset: str | None = None
    seeds: list[SeedRow] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    significance: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class Report:
    target: str
    verdict: Verdict = "pass"
    records: list[RecordReport] = field(default_factory=list)
    policy: str = "enforced"
    pgolf_version: str | None = None
    error: str | None = None
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"schema": data.pop("schema"), **data}

    @property
    def exit_code(self) -> int:
        return VERDICT_EXIT[self.verdict]


def verdict_of(findings: list[Finding]) -> Verdict:
    """fail if any active finding fails, review if any asks for review, pass otherwise."""
    active = {f.severity for f in findings if f.active}
    if "fail" in active:
        return "fail"
    if "review" in active:
        return "review"
    return "pass"


def combine(verdicts: list[Verdict]) -> Verdict:
    verdict: Verdict
    for verdict in ("error", "fail", "review"):
        if verdict in verdicts:
            return verdict
    return "pass"
