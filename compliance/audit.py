"""Run a ruleset's record checks over one record folder, or every record under a path."""
from __future__ import annotations

import math
import re
import statistics
from pathlib import Path

from . import __version__, gitrange, safeio, unpack
from .context import AuditOptions, RecordContext, seed_rows
from .errors import InputError
from .record import Record, load_record
from .report import Finding, RecordReport, Report, combine, verdict_of
from .rules import Rule, RuleSet, get_check, load_ruleset

RECORD_MARKER = re.compile(r"^submission.*\.json$|^train_gpt\.py$|\.log$|log.*\.txt$", re.IGNORECASE)
DEFAULT_RULESET = "track_10min_16mb"
MAX_DEPTH = 4


def is_record_dir(path: Path) -> bool:
    try:
        names = [p.name.lower() for p in path.iterdir() if not p.is_dir() or p.is_symlink()]
    except OSError:
        return False
    return any(RECORD_MARKER.search(name) for name in names)


def find_records(target: Path, depth: int = 0) -> list[Path]:
    """The target itself when it is a record, else the records below it (records/<track>/<run>)."""
    if is_record_dir(target):
        return [target]
    if depth >= MAX_DEPTH:
        return []
    found: list[Path] = []
    for child in sorted(p for p in target.iterdir() if p.is_dir() and not p.is_symlink()):
        found.extend(find_records(child, depth + 1))
    return found


def ruleset_for(record: Record, options: AuditOptions) -> str:
    if options.ruleset:
        return options.ruleset
    return record.track or DEFAULT_RULESET


def audit_record(path: Path, options: AuditOptions) -> RecordReport:
    report = RecordReport(path=str(path))
    try:
        record = load_record(path)
        report.ruleset = ruleset_for(record, options)
        ruleset = load_ruleset(report.ruleset)
    except InputError as exc:
        report.verdict, report.error = "error", str(exc)
        return report
    context = RecordContext(record, seed_rows(record), options)
    report.seeds = context.rows
    report.summary = summarize(record, context)
    for rule in ruleset.of_kind("record"):
        if rule.applies_on(record.date):
            report.findings.extend(run_check(rule, context))
    report.findings.extend(script_findings(ruleset, record))
    if record.script is not None:
        report.findings.extend(dynamic_findings(ruleset, record.root / record.script.rel, record.script.text,
                                                options, record.date))
    report.significance = context.significance
    report.verdict = verdict_of(report.findings)
    return report


def script_findings(ruleset: RuleSet, record: Record) -> list[Finding]:
    """Legality rules read the entry script (decoded), under the configuration the run used."""
    rules = [r for r in ruleset.of_kind("script") if r.applies_on(record.date)]
    if not rules or record.script is None:
        return []
    from .static import build_script_context  # parsing costs time: only when a rule needs it
    context = build_script_context(record)
    return _run_all(rules, context) if context else []


def dynamic_findings(ruleset: RuleSet, script: Path, source: str, options: AuditOptions,
                     date: str | None = None) -> list[Finding]:
    """One traced run on a canary (only with --dynamic: it executes the submission, sandboxed)."""
    rules = [r for r in ruleset.of_kind("dynamic") if r.applies_on(date)]
    if not rules or options.dynamic is None:
        return []
    from .dynamic.context import DynamicContext
    from .dynamic.harness import run_dynamic
    try:
        context = DynamicContext(run_dynamic(script, source, options.dynamic), file=script.name)
    except InputError as exc:
        context = DynamicContext(None, error=str(exc), file=script.name)
    return _run_all(rules, context)


def _run_all(rules: list[Rule], context) -> list[Finding]:
    return [finding for rule in rules for finding in run_check(rule, context)]


def run_check(rule: Rule, context) -> list[Finding]:
    """A check that breaks on odd input asks for a human instead of crashing the audit."""
    try:
        return list(get_check(rule.check)(context, rule))
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
        return [rule.finding(f"check could not run: {type(exc).__name__}: {exc}", severity="review")]


def summarize(record: Record, context: RecordContext) -> dict:
    scores = [row.val_bpb for row in context.rows if _finite(row.val_bpb)]
    losses = [row.val_loss for row in context.rows if _finite(row.val_loss)]
    sub = record.submission
    return {
        "n_seeds": len({row.seed for row in context.rows if row.val_bpb is not None}),
        "val_bpb_mean": statistics.fmean(scores) if scores else None,
        "val_bpb_std": statistics.stdev(scores) if len(scores) > 1 else None,
        "val_loss_mean": statistics.fmean(losses) if losses else None,
        "claimed_val_bpb": sub.val_bpb if sub else None,
        "track": record.track,
        "date": record.date,
    }


def _finite(value) -> bool:
    """A logged 1e999 reads as inf: no mean or deviation of it means anything (statistics would raise)."""
    return value is not None and math.isfinite(value)


def audit(targets: list[str], options: AuditOptions) -> Report:
    """Record folders (or trees of them) get the record audit; a .py file the legality rules alone."""
    report = Report(target=" ".join(targets), policy=options.policy, pgolf_version=__version__)
    try:
        jobs = []
        for target in map(Path, targets):
            if _is_script(target):
                jobs.append((audit_script, target))
            else:
                jobs += [(audit_record, path) for path in _records_of(target)]
    except InputError as exc:
        report.verdict, report.error = "error", str(exc)
        return report
    report.records = [_guarded(run, path, options) for run, path in jobs]
    report.verdict = combine([r.verdict for r in report.records])
    return report


def _guarded(run, path: Path, options: AuditOptions) -> RecordReport:
    """One folder that breaks the checker is that folder's error; the others are still checked and reported."""
    try:
        return run(path, options)
    except Exception as exc:  # noqa: BLE001 - the tree's report must still be written
        message = str(exc) if isinstance(exc, InputError) else f"{path}: could not be checked ({type(exc).__name__}: {exc})"
        return RecordReport(path=str(path), verdict="error", error=" ".join(message.split())[:500])


def _is_script(path: Path) -> bool:
    return path.suffix == ".py" and path.is_file()


def audit_script(path: Path, options: AuditOptions) -> RecordReport:
    from .static import script_context_from_source
    report = RecordReport(path=str(path), ruleset=options.ruleset or DEFAULT_RULESET)
    try:
        ruleset = load_ruleset(report.ruleset)
        entry = safeio.FolderEntry(path.name, path, path.stat().st_size)
        source = unpack.decode_script(safeio.decode_text(safeio.read_bytes(entry))).text
    except (InputError, unpack.UnpackError, OSError) as exc:
        report.verdict, report.error = "error", f"{path}: {exc}" if not isinstance(exc, InputError) else str(exc)
        return report
    context = script_context_from_source(path.name, source, {})
    report.findings = _run_all(ruleset.of_kind("script"), context)
    report.findings += dynamic_findings(ruleset, path, source, options)
    report.verdict = verdict_of(report.findings)
    return report


def audit_git(repo: Path, rng: str, options: AuditOptions) -> Report:
    """PR mode: every record folder the range adds, plus what it changes outside them."""
    report = Report(target=f"{repo} {rng}", policy=options.policy, pgolf_version=__version__)
    try:
        folders, outside = gitrange.added_record_folders(gitrange.changed_files(repo, rng))
        if not folders:
            raise InputError(rng, "the range adds no record folder under records/<track>/")
        with gitrange.temp_root() as tmp:
            for folder in folders:
                exported = gitrange.export_folder(repo, gitrange.head_of(rng), folder, Path(tmp))
                record = _guarded(audit_record, exported, options)
                record.path = folder
                record.findings += _pr_findings(record.ruleset, folders, outside)
                record.verdict = verdict_of(record.findings) if record.error is None else "error"
                report.records.append(record)
    except InputError as exc:
        report.verdict, report.error = "error", str(exc)
        return report
    report.verdict = combine([r.verdict for r in report.records])
    return report


def _pr_findings(ruleset_name: str | None, folders: list[str], outside: list[str]) -> list[Finding]:
    rule = load_ruleset(ruleset_name or DEFAULT_RULESET).get("R-RECORD-FILES")
    found = []
    if len(folders) > 1:
        found.append(rule.finding(f"the PR adds {len(folders)} record folders ({', '.join(folders)}); "
                                  f"one per PR, and each is judged (PR #1406)"))
    if outside:
        shown = ", ".join(outside[:5]) + (f" and {len(outside) - 5} more" if len(outside) > 5 else "")
        found.append(rule.finding(f"the PR changes files outside its record folder: {shown}"))
    return found


def _records_of(target: Path) -> list[Path]:
    if not target.exists() and not target.is_symlink():
        raise InputError(target, "no such file or directory")
    if not target.is_dir():
        raise InputError(target, "not a record folder or a .py script")
    found = find_records(target)
    if not found:
        raise InputError(target, "no record folder found (no submission.json, train log or train_gpt.py)")
    return found
