"""Markdown for a PR comment: verdict first, then a table per record and the findings."""
from __future__ import annotations

from ..report import RecordReport, Report
from .common import num, ordered, seconds, significance_line, where

ICON = {"pass": "✅", "fail": "❌", "review": "🟡", "error": "⚠️"}


def render(report: Report) -> str:
    out = [f"### pgolf-check: {ICON[report.verdict]} {report.verdict.upper()}", ""]
    if report.error:
        out += [f"**Error:** `{report.error}`", ""]
    for record in report.records:
        out += _record(record)
    out.append(f"<sub>pgolf {report.pgolf_version}, significance policy: {report.policy}</sub>")
    return "\n".join(out) + "\n"


def _record(record: RecordReport) -> list[str]:
    out = [f"#### `{record.path}` {ICON[record.verdict]} {record.verdict}", ""]
    if record.error:
        return out + [f"Could not check: `{record.error}`", ""]
    out += ["| seed | val_bpb | val_loss | train s | eval s | bytes | metric |", "|---:|---:|---:|---:|---:|---:|---|"]
    for row in record.seeds:
        out.append(f"| {num(row.seed, 'd')} | {num(row.val_bpb, '.8f')} | {num(row.val_loss, '.8f')} | "
                   f"{seconds(row.train_time_ms)} | {seconds(row.eval_time_ms)} | {num(row.bytes_total, ',d')} | "
                   f"`{row.metric_label or '-'}` |")
    s = record.summary
    out += ["", f"Mean val_bpb **{num(s.get('val_bpb_mean'), '.8f')}** over {s.get('n_seeds', 0)} seeds "
                f"(submission.json: {num(s.get('claimed_val_bpb'), '')}).", ""]
    sig = significance_line(record.significance)
    if sig:
        out += [sig[0].upper() + sig[1:] + ".", ""]
    findings = ordered(record.findings, include_info=False)
    if findings:
        out += ["| severity | rule | where | finding |", "|---|---|---|---|"]
        out += [f"| {f.severity} | {f.rule} | `{where(f)}` | {f.message.replace('|', '/')} |" for f in findings]
        out.append("")
    return out
