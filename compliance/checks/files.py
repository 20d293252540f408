"""R-RECORD-FILES and R-LOG-PARSE: is everything a reviewer needs there, and readable."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..context import RecordContext
from ..report import Finding, Severity
from ..rules import Rule, check

FILE_KINDS = {
    "README.md": "readme",
    "submission.json": "submission",
    "train_gpt.py": "script",
    "requirements.txt": "requirements",
}


@check(
    "record.files",
    kind="record",
    params={
        "required": ["README.md", "submission.json", "logs", "train_gpt.py"],
        "missing": {"README.md": "fail", "submission.json": "fail", "logs": "fail", "train_gpt.py": "fail"},
        "folder_pattern": r"^\d{4}-\d{2}-\d{2}_\S+$",
        "folder_name": "warn",
        "problems": {"unreadable": "fail", "second_json": "warn", "seed_conflict": "review"},
        "stray_folder": "warn",
        # what a PR does beside its record folder (PR mode): severities by kind
        "pr_layout": {"several_folders": "warn", "outside_files": "warn", "other_records": "warn"},
    },
)
def record_files(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    record = ctx.record
    if record.stray:
        names = ", ".join(sorted(entry.rel for entry in record.entries)[:5]) or "nothing"
        yield rule.finding(
            f"holds only {names}: no submission.json, README.md or script, so no claim to audit (a stray folder)",
            level="stray_folder",
        )
        return
    kinds = set(record.kinds.values())
    missing_severity: dict[str, Severity] = rule.params["missing"]
    for required in rule.params["required"]:
        present = bool(record.logs) if required == "logs" else FILE_KINDS.get(required) in kinds
        if not present:
            what = (
                "no train log found (expected train_seed<N>.log or similar)"
                if required == "logs"
                else f"{required} is missing"
            )
            yield rule.finding(what, severity=missing_severity.get(required, rule.severity))
    pattern = rule.params["folder_pattern"]
    if pattern and not re.match(pattern, record.name):
        yield rule.finding(f"folder name {record.name!r} is not YYYY-MM-DD_description", level="folder_name")
    severities: dict[str, Severity] = rule.params["problems"]
    for problem in record.problems:
        yield rule.finding(problem.message, file=problem.file, severity=severities.get(problem.kind, problem.severity))
    if record.script and record.script.layers:
        layers = "+".join(record.script.layers)
        yield rule.finding(
            f"entry script is a self-extracting wrapper ({layers}); audited decoded",
            file=record.script.rel,
            severity="info",
        )


@check("record.log_parse", kind="record", params={"impossible": "fail"})
def log_parse(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    """Logs without a readable score ask for review; impossible numbers fail, with their line."""
    record = ctx.record
    if record.stray:
        return
    scored = record.scored_logs()
    for log in record.logs:
        facts = log.facts
        # a run outside the claim may have diverged to nan; it decides nothing, so it only warns
        severity: Severity = rule.params["impossible"] if log in scored else "warn"
        for line, what in facts.invalid:
            yield rule.finding(
                f"impossible value: {what}", file=log.rel, line=line, severity=severity, evidence={"value": what}
            )
        if log.duplicate_of:
            yield rule.finding(f"same run as {log.duplicate_of}; counted once", file=log.rel, severity="info")
            continue
        if log.excluded:
            yield rule.finding(f"not scored: {log.excluded}", file=log.rel, severity="info")
            continue
        if log.score is None and not facts.invalid:
            yield rule.finding(
                "no final score line found (truncated or unknown log layout)", file=log.rel, line=facts.n_lines or None
            )
        elif log.score is not None:
            yield rule.finding(
                f"score: line {log.score.line} `{log.score.label}` ({log.score_basis})",
                file=log.rel,
                line=log.score.line,
                severity="info",
            )
        if log.seed is None:
            yield rule.finding("seed not found in the log or its name", file=log.rel, severity="warn")
        for line, note in facts.notes:
            yield rule.finding(note, file=log.rel, line=line, severity="info")
    yield from _submission_values(ctx, rule)


def _submission_values(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    record = ctx.record
    sub = record.submission
    if sub is None:
        return
    for path, what in sub.invalid:
        yield rule.finding(
            f"impossible value: {what}",
            file=record.submission_file,
            line=record.json_line(path),
            level="impossible",
            evidence={"key": path},
        )
