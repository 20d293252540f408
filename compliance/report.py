"""The report: findings, per-seed rows and verdicts, in the pgolf-report/1 schema.

This is the contract between the checker, the pipeline and the formatters;
compliance/report-schema.md describes it for other tools and
compliance/report-schema.json is its JSON Schema. Unknown values are None
(null in JSON), never guessed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
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
    elapsed_s: float | None = None  # wall time of the whole audit
    git: dict[str, Any] | None = None  # PR mode: range, base and head commits
    settings: dict[str, Any] | None = None  # rule selection and exit policy in force

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"schema": data.pop("schema"), **data, "totals": totals(self)}

    @property
    def exit_code(self) -> int:
        return VERDICT_EXIT[self.verdict]


def report_from_dict(data: dict[str, Any]) -> Report:
    """A Report again from its JSON form (what `--format json` wrote), for rendering it otherwise."""

    def record(r: dict[str, Any]) -> RecordReport:
        return RecordReport(
            **{
                **_known(RecordReport, r),
                "seeds": [SeedRow(**_known(SeedRow, s)) for s in r["seeds"]],
                "findings": [Finding(**_known(Finding, f)) for f in r["findings"]],
            }
        )

    return Report(**{**_known(Report, data), "records": [record(r) for r in data["records"]]})


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The fields the dataclass has: a newer writer's extra fields are left out, not an error."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def listed(items: list[str], limit: int) -> str:
    """The first `limit` items of a finding's list, and how many more: "a, b, c and 4 more"."""
    more = len(items) - limit
    return ", ".join(items[:limit]) + (f" and {more} more" if more > 0 else "")


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


def totals(report: Report) -> dict[str, Any]:
    """What the summary line says: active findings per severity, records, errors, time."""
    counts: dict[str, int] = {severity: 0 for severity in SEVERITIES}
    for record in report.records:
        for finding in record.findings:
            if finding.active:
                counts[finding.severity] += 1
    errors = sum(r.error is not None for r in report.records) + (report.error is not None)
    return {**counts, "records": len(report.records), "errors": errors, "elapsed_s": report.elapsed_s}


@dataclass
class FindingGroup:
    """Findings of one rule that say the same thing about several files or seeds."""

    findings: list[Finding]

    @property
    def first(self) -> Finding:
        return self.findings[0]

    @property
    def count(self) -> int:
        return len(self.findings)

    @property
    def same_message(self) -> bool:
        return all(f.message == self.first.message for f in self.findings)


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def message_shape(finding: Finding) -> str:
    """The message without the file it names and without its numbers."""
    message = finding.message
    if finding.file:
        message = message.replace(finding.file, "\0")
    return _NUMBER.sub("#", message)


def _shape(finding: Finding) -> tuple[object, ...]:
    """Two findings group when they differ only in the file they name and in numbers."""
    return finding.rule, finding.severity, finding.active, message_shape(finding)


def group_findings(findings: Iterable[Finding]) -> list[FindingGroup]:
    """Findings grouped by shape, in the order their first member comes."""
    groups: dict[tuple[object, ...], FindingGroup] = {}
    for finding in findings:
        key = _shape(finding)
        if key in groups:
            groups[key].findings.append(finding)
        else:
            groups[key] = FindingGroup([finding])
    return list(groups.values())
