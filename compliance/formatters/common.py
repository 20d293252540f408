"""Small helpers the text formatters share."""
from __future__ import annotations

from ..report import Finding, SEVERITIES


def num(value: float | int | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def where(finding: Finding) -> str:
    if finding.file is None:
        return "-"
    return f"{finding.file}:{finding.line}" if finding.line else finding.file


def ordered(findings: list[Finding], include_info: bool) -> list[Finding]:
    shown = [f for f in findings if include_info or f.severity != "info"]
    return sorted(shown, key=lambda f: (not f.active, SEVERITIES.index(f.severity), f.rule))


def seconds(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.1f}"
