"""The human form, for a terminal: per record a seed table and the grouped findings, then
the verdict and the summary line. Colour marks severities and verdicts when wanted."""

from __future__ import annotations

from rich.text import Text

from ..report import Finding, FindingGroup, RecordReport, Report
from ..terminal import render_lines
from ..textsafe import clip, printable
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
    where,
)

HEADER = (
    f"{'seed':>6}  {'val_bpb':>10}  {'val_loss':>10}  {'train s':>8}  {'eval s':>7}  {'bytes':>11}  {'metric':<32} log"
)
STYLE = {
    "fail": "bold red",
    "review": "bold yellow",
    "warn": "yellow",
    "info": "dim",
    "pass": "bold green",
    "error": "bold magenta",
}
GROUP_PLACES = 6


def render(report: Report, options: RenderOptions = RenderOptions()) -> str:
    lines: list[Text] = []
    shared = shared_findings(report)
    if shared:
        lines.append(Text(f"== every one of the {len(report.records)} records"))
        lines += _findings(shared, options)
        lines.append(Text(""))
    for record in report.records:
        lines += _record(record, own_findings(record, shared), options)
        lines.append(Text(""))
    if report.error:
        lines.append(Text(f"error: {printable(report.error)}", style=STYLE["error"]))
    for note in (commit_note(report), selection_note(report)):
        if note:
            lines.append(Text(printable(note)))
    verdict = Text("verdict: ")
    verdict.append(report.verdict.upper(), style=STYLE[report.verdict])
    verdict.append(f" (policy {report.policy})")
    lines += [verdict, Text(summary_line(report))]
    return render_lines(lines, options.color)


def _record(record: RecordReport, findings: list[Finding], options: RenderOptions) -> list[Text]:
    head = Text(f"== {printable(record.path)}  [")
    head.append(record.verdict.upper(), style=STYLE[record.verdict])
    head.append(f"]  ruleset {printable(record.ruleset or '-')}")
    lines = [head]
    if record.error:
        return lines + [Text(f"   error: {printable(record.error)}", style=STYLE["error"])]
    if record.summary:  # a lone script has legality findings only
        lines += _seed_table(record)
    return lines + _findings(findings, options)


def _seed_table(record: RecordReport) -> list[Text]:
    lines = [Text(HEADER)]
    for row in record.seeds:
        metric = clip(printable(row.metric_label or "-"), 32)
        lines.append(
            Text(
                f"{num(row.seed, 'd'):>6}  {num(row.val_bpb, '.8f'):>10}  {num(row.val_loss, '.8f'):>10}  "
                f"{seconds(row.train_time_ms):>8}  {seconds(row.eval_time_ms):>7}  "
                f"{num(row.bytes_total, ',d'):>11}  {metric:<32} {printable(row.log)}"
            )
        )
    s = record.summary
    lines.append(
        Text(
            f"   mean val_bpb {num(s.get('val_bpb_mean'), '.8f')} (std {num(s.get('val_bpb_std'), '.6f')}, "
            f"{s.get('n_seeds', 0)} seeds); submission.json says {num(s.get('claimed_val_bpb'), '')}"
        )
    )
    sig = significance_line(record.significance)
    if sig:
        lines.append(Text(f"   {sig}"))
    return lines


def _findings(findings: list[Finding], options: RenderOptions) -> list[Text]:
    lines = []
    for group in groups(findings, include_info=options.verbose):
        lines += _group(group, options.verbose)
    return lines


def _group(group: FindingGroup, verbose: bool) -> list[Text]:
    f = group.first
    line = Text("   ")
    line.append(f"{f.severity.upper():<6}", style=STYLE[f.severity] if f.active else STYLE["info"])
    line.append(f" {f.rule:<20} ")
    state = "" if f.active else " (switched off)"
    if group.count == 1:
        line.append(f"{printable(where(f))}: {printable(f.message)}{state}  [{printable(f.source)}]")
        return [line]
    similar = "" if group.same_message else f" (and {group.count - 1} like it)"
    line.append(f"×{group.count} {printable(f.message)}{similar}{state}  [{printable(f.source)}]")
    if verbose and not group.same_message:
        return [line] + [Text(f"{'':<31}{printable(where(m))}: {printable(m.message)}") for m in group.findings]
    named = [printable(p) for p in places(group)]
    shown = ", ".join(named if verbose else named[:GROUP_PLACES])
    more = "" if verbose or len(named) <= GROUP_PLACES else f" and {len(named) - GROUP_PLACES} more"
    return [line, Text(f"{'':<31}in {shown}{more}")]
