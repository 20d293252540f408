"""The human form: a per-seed table and the findings, for a terminal."""
from __future__ import annotations

from ..report import RecordReport, Report
from .common import num, ordered, seconds, significance_line, where

HEADER = f"{'seed':>6}  {'val_bpb':>10}  {'val_loss':>10}  {'train s':>8}  {'eval s':>7}  {'bytes':>11}  {'metric':<32} log"


def render(report: Report, verbose: bool = False) -> str:
    out = []
    for record in report.records:
        out.extend(_record(record, verbose))
        out.append("")
    if report.error:
        out.append(f"error: {report.error}")
    out.append(f"verdict: {report.verdict.upper()} ({len(report.records)} record(s), policy {report.policy})")
    return "\n".join(out) + "\n"


def _record(record: RecordReport, verbose: bool) -> list[str]:
    lines = [f"== {record.path}  [{record.verdict.upper()}]  ruleset {record.ruleset or '-'}"]
    if record.error:
        return lines + [f"   error: {record.error}"]
    if not record.summary:  # a lone script: legality findings only
        return lines + _findings(record, verbose)
    lines.append(HEADER)
    for row in record.seeds:
        lines.append(f"{num(row.seed, 'd'):>6}  {num(row.val_bpb, '.8f'):>10}  {num(row.val_loss, '.8f'):>10}  "
                     f"{seconds(row.train_time_ms):>8}  {seconds(row.eval_time_ms):>7}  "
                     f"{num(row.bytes_total, ',d'):>11}  {(row.metric_label or '-'):<32} {row.log}")
    s = record.summary
    lines.append(f"   mean val_bpb {num(s.get('val_bpb_mean'), '.8f')} (std {num(s.get('val_bpb_std'), '.6f')}, "
                 f"{s.get('n_seeds', 0)} seeds); submission.json says {num(s.get('claimed_val_bpb'), '')}")
    sig = significance_line(record.significance)
    if sig:
        lines.append(f"   {sig}")
    return lines + _findings(record, verbose)


def _findings(record: RecordReport, verbose: bool) -> list[str]:
    lines = []
    for f in ordered(record.findings, include_info=verbose):
        state = "" if f.active else " (switched off)"
        lines.append(f"   {f.severity.upper():<6} {f.rule:<20} {where(f)}: {f.message}{state}  [{f.source}]")
    return lines
