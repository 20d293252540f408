"""Markdown for a PR comment: verdict and summary line first, the commits judged, findings shared
by every folder once, then per record its seeds (with their logs) and grouped findings.

Everything that comes from the audited files goes through textsafe.md_text/md_code, so
a file name or log line cannot open a code span, a heading, a table cell or HTML.
"""

from __future__ import annotations

from ..report import Finding, FindingGroup, RecordReport, Report
from ..ruledocs import doc_url
from ..textsafe import md_code, md_text, md_trusted
from .common import (
    RenderOptions,
    commit_note,
    groups,
    num,
    own_findings,
    places,
    seconds,
    selection_note,
    shared_findings,
    significance_line,
    summary_line,
)

ICON = {"pass": "✅", "fail": "❌", "review": "🟡", "error": "⚠️"}
OPEN_ROWS = 8  # findings shown before the rest go into <details>
OPEN_SEEDS = 10  # seed rows shown before the rest go into <details>
GROUP_PLACES = 4  # places of a group named in its row


def render(report: Report, options: RenderOptions = RenderOptions()) -> str:
    head = _head(report)
    shared = shared_findings(report)
    sections = []
    if shared:
        scope = "every folder of this PR" if report.git else "every record checked"
        sections.append([f"#### In {scope} ({len(report.records)})", ""] + _findings(shared, options, with_where=False))
    sections += [_record(r, own_findings(r, shared), options) for r in report.records]
    foot = [
        f"<sub>pgolf {md_text(report.pgolf_version)} · significance policy {report.policy}"
        f"{' · ' + md_text(selection_note(report)) if selection_note(report) else ''}</sub>"
    ]
    return _fit(head, sections, foot, options.max_chars)


def _head(report: Report) -> list[str]:
    out = [f"### pgolf-check: {ICON[report.verdict]} {report.verdict.upper()}", "", f"**{summary_line(report)}**"]
    commits = commit_note(report)
    if commits:
        out[-1] += f" · {md_text(commits)}"
    out.append("")
    if report.error:
        out += [f"**Could not check:** {md_text(report.error)}", ""]
    return out


def _fit(head: list[str], sections: list[list[str]], foot: list[str], budget: int | None) -> str:
    """Whole record sections while they fit the budget; a line says how many were left out."""
    out = list(head)
    size = len("\n".join(head + foot)) + 200
    for index, section in enumerate(sections):
        text = "\n".join(section)
        if budget is not None and size + len(text) > budget:
            out += [
                f"_{len(sections) - index} more section(s) left out to fit the comment; the full report is "
                f"in the job summary and the SARIF upload._",
                "",
            ]
            break
        out += section
        size += len(text) + 1
    return "\n".join(out + foot) + "\n"


def _record(record: RecordReport, findings: list[Finding], options: RenderOptions) -> list[str]:
    out = [f"#### {md_code(record.path)} {ICON[record.verdict]} {record.verdict}", ""]
    if record.error:
        return out + [f"Could not check: {md_text(record.error)}", ""]
    if record.summary:
        out += _seeds(record)
    return out + _findings(findings, options, with_where=True)


def _seeds(record: RecordReport) -> list[str]:
    rows = [
        f"| {num(r.seed, 'd')} | {num(r.val_bpb, '.8f')} | {num(r.val_loss, '.8f')} | "
        f"{seconds(r.train_time_ms)} | {seconds(r.eval_time_ms)} | {num(r.bytes_total, ',d')} | "
        f"{md_code(r.metric_label or '-')} | {md_code(r.log)} |"
        for r in record.seeds
    ]
    table = [
        "| seed | val_bpb | val_loss | train s | eval s | bytes | metric | log |",
        "|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    out = _table(table, rows, OPEN_SEEDS, "logs")
    s = record.summary
    out += [
        "",
        f"Mean val_bpb **{num(s.get('val_bpb_mean'), '.8f')}** over {s.get('n_seeds', 0)} seeds "
        f"(submission.json: {num(s.get('claimed_val_bpb'), '')}).",
        "",
    ]
    sig = significance_line(record.significance, escape=md_code)
    if sig:
        out += [md_trusted(sig) + ".", ""]
    return out


def _findings(findings: list[Finding], options: RenderOptions, with_where: bool) -> list[str]:
    rows = [_row(g, options, with_where) for g in groups(findings, include_info=options.verbose)]
    if not rows:
        return ["No findings.", ""] if with_where else []
    header = (
        ["| severity | rule | where | finding |", "|---|---|---|---|"]
        if with_where
        else ["| severity | rule | finding |", "|---|---|---|"]
    )
    return _table(header, rows, OPEN_ROWS, "findings") + [""]


def _table(header: list[str], rows: list[str], open_rows: int, what: str) -> list[str]:
    """Long tables fold: the first rows stay open, the rest are in <details>."""
    if len(rows) <= open_rows:
        return header + rows
    rest = len(rows) - open_rows
    return (
        header
        + rows[:open_rows]
        + ["", f"<details><summary>{rest} more {what}</summary>", ""]
        + header
        + rows[open_rows:]
        + ["", "</details>"]
    )


def _row(group: FindingGroup, options: RenderOptions, with_where: bool) -> str:
    f = group.first
    severity = f.severity if f.active else f"{f.severity} (switched off)"
    url = doc_url(f.rule, options.docs_url)
    rule = f"[{f.rule}]({url})" if url else f.rule
    message = md_text(f.message)
    if group.count > 1:
        message = f"**×{group.count}** {message}" + ("" if group.same_message else f" (and {group.count - 1} like it)")
    if not with_where:
        return f"| {severity} | {rule} | {message} |"
    named = [md_code(p) if p != "-" else "-" for p in places(group)]
    shown = ", ".join(named[:GROUP_PLACES]) + (
        f" and {len(named) - GROUP_PLACES} more" if len(named) > GROUP_PLACES else ""
    )
    return f"| {severity} | {rule} | {shown} | {message} |"
