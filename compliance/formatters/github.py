"""GitHub Actions workflow commands: one annotation per group of findings, on its file.

`::error file=...,line=...,title=...::message`; GitHub shows them on the PR's
diff and in the run's summary. Properties and messages are percent-escaped, so a
newline in a file name cannot end the command and start another.
"""

from __future__ import annotations

from ..report import FindingGroup, Report
from ..textsafe import gh_data, gh_property
from .common import (
    RenderOptions,
    finding_path,
    groups,
    own_findings,
    places,
    repo_relative,
    shared_findings,
    summary_line,
)

COMMAND = {"fail": "error", "review": "warning", "warn": "warning", "info": "notice"}


def render(report: Report, options: RenderOptions = RenderOptions()) -> str:
    lines = []
    shared = shared_findings(report)
    for index, record in enumerate(report.records):
        if record.error:
            lines.append(
                f"::error file={gh_property(repo_relative(record.path, options.root))},"
                f"title=pgolf-check could not check::{gh_data(record.error)}"
            )
            continue
        findings = own_findings(record, shared) + (shared if index == 0 else [])
        for group in groups(findings, include_info=options.verbose):
            f = group.first
            path = repo_relative(finding_path(record, f), options.root)
            props = [f"file={gh_property(path)}"]
            if f.line and f.file:
                props.append(f"line={f.line}")
            props.append(f"title={gh_property(f'{f.rule}: {f.title or f.rule}')}")
            message = f.message if group.count == 1 else f"{f.message} (×{group.count}: {_places(group)})"
            command = COMMAND[f.severity] if f.active else "notice"
            lines.append(f"::{command} {','.join(props)}::{gh_data(message)}")
    if report.error:
        lines.append(f"::error title=pgolf-check could not check::{gh_data(report.error)}")
    lines.append(f"pgolf-check: {report.verdict.upper()}: {summary_line(report)}")
    return "\n".join(lines) + "\n"


def _places(group: FindingGroup) -> str:
    return ", ".join(places(group))
