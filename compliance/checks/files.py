"""R-RECORD-FILES and R-LOG-PARSE: is everything a reviewer needs there, and readable."""
from __future__ import annotations

import re
from typing import Iterator

from ..context import RecordContext
from ..report import Finding
from ..rules import Rule, check

FILE_KINDS = {"README.md": "readme", "submission.json": "submission", "train_gpt.py": "script",
              "requirements.txt": "requirements"}


@check("record.files")
def record_files(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    record = ctx.record
    kinds = set(record.kinds.values())
    for required in rule.params.get("required", []):
        if required == "logs":
            if not record.logs:
                yield rule.finding("no train log found (expected train_seed<N>.log or similar)")
        elif FILE_KINDS.get(required) not in kinds:
            yield rule.finding(f"{required} is missing")
    pattern = rule.params.get("folder_pattern")
    if pattern and not re.match(pattern, record.name):
        yield rule.finding(f"folder name {record.name!r} is not YYYY-MM-DD_description", severity="warn")
    for problem in record.problems:
        yield rule.finding(problem.message, file=problem.file, severity=problem.severity)
    if record.script and record.script.layers:
        layers = "+".join(record.script.layers)
        yield rule.finding(f"entry script is a self-extracting wrapper ({layers}); audited decoded",
                           file=record.script.rel, severity="info")


@check("record.log_parse")
def log_parse(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    for log in ctx.record.logs:
        facts = log.facts
        if log.duplicate_of:
            yield rule.finding(f"same run as {log.duplicate_of}; counted once", file=log.rel, severity="info")
            continue
        if log.excluded:
            yield rule.finding(f"not scored: {log.excluded}", file=log.rel, severity="info")
            continue
        if facts.score is None:
            yield rule.finding("no final score line found (truncated or unknown log layout)",
                               file=log.rel, line=facts.n_lines or None)
        if log.seed is None:
            yield rule.finding("seed not found in the log or its name", file=log.rel, severity="warn")
        for line, note in facts.notes:
            yield rule.finding(note, file=log.rel, line=line, severity="info")
