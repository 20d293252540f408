"""What the formatters share: options, ordering, grouping, locations and the summary line."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..report import SEVERITIES, Finding, FindingGroup, RecordReport, Report, group_findings, totals
from ..textsafe import printable


@dataclass(frozen=True)
class RenderOptions:
    """Everything a formatter may be told; each formatter reads what concerns it."""

    verbose: bool = False  # info findings and every member of a group
    color: bool = False  # human: ANSI colour (the CLI decides: TTY, NO_COLOR, --color)
    docs_url: str | None = None  # base URL of compliance/rules/docs for links and helpUri
    root: Path | None = None  # repository root: SARIF and annotation paths are relative to it
    fail_on: str = "review"  # junit and annotations: which verdicts count as failures
    max_chars: int | None = None  # markdown: the PR comment's budget


def num(value: float | int | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def seconds(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.1f}"


def where(finding: Finding) -> str:
    if finding.file is None:
        return "-"
    return f"{finding.file}:{finding.line}" if finding.line else finding.file


def places(group: FindingGroup) -> list[str]:
    """Where a group's findings are, each place once."""
    return list(dict.fromkeys(where(f) for f in group.findings))


def ordered(findings: list[Finding], include_info: bool) -> list[Finding]:
    shown = [f for f in findings if include_info or f.severity != "info"]
    return sorted(shown, key=lambda f: (not f.active, SEVERITIES.index(f.severity), f.rule))


def groups(findings: list[Finding], include_info: bool) -> list[FindingGroup]:
    return group_findings(ordered(findings, include_info))


def _key(f: Finding) -> tuple[str, str, bool, str]:
    return f.rule, f.severity, f.active, f.message


def shared_findings(report: Report) -> list[Finding]:
    """Findings about no file that every record of a multi-record report carries alike
    (a PR that adds several folders, files changed outside them): said once, not per record."""
    if len(report.records) < 2:
        return []
    keyed = [{_key(f): f for f in r.findings if f.file is None} for r in report.records]
    common = set(keyed[0]).intersection(*keyed[1:])
    return [f for k, f in keyed[0].items() if k in common]


def own_findings(record: RecordReport, shared: list[Finding]) -> list[Finding]:
    skip = {_key(f) for f in shared}
    return [f for f in record.findings if _key(f) not in skip]


def summary_line(report: Report) -> str:
    """`2 fail · 9 review · 16 warn · 34 records · 7.2 s`."""
    t = totals(report)
    parts = [
        f"{t['fail']} fail",
        f"{t['review']} review",
        f"{t['warn']} warn",
        f"{t['records']} record" + ("" if t["records"] == 1 else "s"),
    ]
    if t["errors"]:
        parts.append(f"{t['errors']} error" + ("" if t["errors"] == 1 else "s"))
    if t["elapsed_s"] is not None:
        parts.append(f"{t['elapsed_s']:.1f} s")
    return " · ".join(parts)


def selection_note(report: Report) -> str | None:
    s = report.settings or {}
    parts = []
    if s.get("select"):
        parts.append("select " + ", ".join(s["select"]))
    if s.get("ignore"):
        parts.append("ignore " + ", ".join(s["ignore"]))
    if not parts:
        return None
    origin = f" ({s['config']})" if s.get("config") else ""
    return "rules: " + "; ".join(parts) + origin


def commit_note(report: Report) -> str | None:
    g = report.git or {}
    if not g.get("head"):
        return None
    return f"base {g.get('base', '?')[:12]} → head {g['head'][:12]}"


def significance_line(sig: dict[str, Any] | None, escape: Callable[[object], str] = printable) -> str | None:
    """One line on R-SIGNIFICANCE, shown even though a pass is only an info finding; `escape`
    is applied to the one untrusted piece, the baseline's label."""
    if not sig:
        return None
    enforced = sig["enforced"]
    written = {True: "pass", False: "fail", None: "n/a"}[sig.get("written_pass")]
    return (
        f"Significance vs {escape(sig['against'])}: enforced Welch p = {num(enforced.get('p'), '.3f')} "
        f"({'pass' if sig['enforced_pass'] else 'fail'} at p < {sig['enforced_alpha']}); written "
        f"({sig['margin_nats']} nats at p < {sig['written_alpha']}): {written}; decided by "
        f"{sig['decided_by']}: {'PASS' if sig['passed'] else 'FAIL'}"
    )


# Locations: code hosts want a file, relative to the repository, for every result.


def is_script_record(record: RecordReport) -> bool:
    return not record.summary and record.path.endswith(".py")


def finding_path(record: RecordReport, finding: Finding) -> str:
    """The file a finding is about; a finding about the whole folder is anchored at a file of it
    (the first log, else submission.json), a lone script's at the script."""
    if is_script_record(record):
        return record.path
    base = record.path.rstrip("/")
    if finding.file:
        return f"{base}/{finding.file}"
    if record.seeds:
        return f"{base}/{record.seeds[0].log}"
    return f"{base}/submission.json"


def repo_relative(path: str, root: Path | None) -> str:
    """A POSIX path relative to the repository root when it lies below it."""
    if root is not None and os.path.isabs(path):
        try:
            return PurePosixPath(Path(path).resolve().relative_to(root.resolve())).as_posix()
        except ValueError:
            pass
    return PurePosixPath(path).as_posix()


def fingerprint(rule: str, path: str, message_shape: str, occurrence: int) -> str:
    """Stable across runs and line moves: rule, file, the message without its numbers, and
    which of several alike findings in that file this is."""
    text = "\0".join((rule, path, message_shape, str(occurrence)))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
