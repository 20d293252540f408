"""Run a ruleset's record checks over one record folder, or every record under a path."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, gitrange, prmeta, safeio, unpack
from .confirm import confirm
from .context import AuditOptions, FrontierPool, RecordContext, judging_date, seed_rows
from .errors import InputError
from .record import Record, load_record
from .report import Finding, RecordReport, Report, combine, listed, verdict_of
from .rules import Rule, RuleSet, get_check, load_ruleset

if TYPE_CHECKING:
    from .dynamic.context import DynamicContext
    from .static import ScriptContext

    AnyContext = RecordContext | ScriptContext | DynamicContext

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
        ruleset = _selected(load_ruleset(report.ruleset), options)
    except InputError as exc:
        report.verdict, report.error = "error", str(exc)
        return report
    pr = options.pr or (options.pr_meta.for_head(None) if options.pr_meta else None)
    context = RecordContext(record, seed_rows(record), options, judged=judging_date(record, pr))
    report.seeds = context.rows
    report.summary = summarize(record, context)
    for rule in ruleset.in_force("record", context.judged.date):  # rules as in force on that date
        report.findings.extend(run_check(rule, context))
    if record.stray:  # no claim, no code: nothing for the legality rules either
        report.verdict = verdict_of(report.findings)
        return report
    static = script_findings(ruleset, record, context.judged.date)
    if record.script is not None:
        static = _with_traced_run(
            ruleset, record.root / record.script.rel, record.script.text, options, context.judged.date, static
        )
    report.findings.extend(static)
    report.significance = context.significance
    report.verdict = verdict_of(report.findings)
    return report


def _selected(ruleset: RuleSet, options: AuditOptions) -> RuleSet:
    return options.selection.apply_to(ruleset) if options.selection else ruleset


def script_findings(ruleset: RuleSet, record: Record, date: str | None = None) -> list[Finding]:
    """Legality rules read the entry script (decoded), under the configuration the run used,
    as the rules stood on the judging date."""
    rules = ruleset.in_force("script", date if date is not None else record.date)
    if not rules or record.script is None:
        return []
    from .static import build_script_context  # parsing costs time: only when a rule needs it

    context = build_script_context(record)
    return _run_all(rules, context) if context else []


def _with_traced_run(
    ruleset: RuleSet, script: Path, source: str, options: AuditOptions, date: str | None, static: list[Finding]
) -> list[Finding]:
    """The static findings confronted with the traced run (a static fail the ledger contradicts
    becomes review showing both sides, confirm.py), followed by the run's own findings."""
    found, outcomes = dynamic_findings(ruleset, script, source, options, date)
    return confirm(static, {rule.id: rule for rule in ruleset.rules}, outcomes) + found


def dynamic_findings(
    ruleset: RuleSet, script: Path, source: str, options: AuditOptions, date: str | None = None
) -> tuple[list[Finding], dict[str, str] | None]:
    """One traced run on a canary (only with --dynamic: it executes the submission, sandboxed):
    its findings and its per-family outcomes (DynamicContext.family_outcomes)."""
    rules = ruleset.in_force("dynamic", date)
    if not rules or options.dynamic is None:
        return [], None
    from .dynamic.context import DynamicContext
    from .dynamic.harness import run_dynamic

    try:
        context = DynamicContext(run_dynamic(script, source, options.dynamic), file=script.name)
    except InputError as exc:
        context = DynamicContext(None, error=str(exc), file=script.name)
    return _run_all(rules, context), context.family_outcomes()


def _run_all(rules: list[Rule], context: AnyContext) -> list[Finding]:
    return [finding for rule in rules for finding in run_check(rule, context)]


def run_check(rule: Rule, context: AnyContext) -> list[Finding]:
    """A check that breaks on odd input asks for a human instead of crashing the audit."""
    try:
        return list(get_check(rule.check)(context, rule))
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
        return [rule.finding(f"check could not run: {type(exc).__name__}: {exc}", severity="review")]


def summarize(record: Record, context: RecordContext) -> dict[str, Any]:
    # the parser and the JSON reader drop impossible numbers; finite() keeps a stray one from
    # reaching statistics (which raises on nan) all the same
    scores = [v for v in (row.val_bpb for row in context.rows) if v is not None and math.isfinite(v)]
    losses = [v for v in (row.val_loss for row in context.rows) if v is not None and math.isfinite(v)]
    sub = record.submission
    return {
        "n_seeds": len({row.seed for row in context.rows if _finite(row.val_bpb)}),
        "val_bpb_mean": statistics.fmean(scores) if scores else None,
        "val_bpb_std": statistics.stdev(scores) if len(scores) > 1 else None,
        "val_loss_mean": statistics.fmean(losses) if losses else None,
        "claimed_val_bpb": sub.val_bpb if sub else None,
        "claim": record.claim.how if record.claim else None,
        "track": record.track,
        "date": record.date,
        "judged_on": context.judged.date,
        "judged_by": context.judged.source,
    }


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def audit(targets: list[str], options: AuditOptions) -> Report:
    """Record folders (or trees of them) get the record audit; a .py file the legality rules alone."""
    report = Report(target=" ".join(targets), policy=options.policy, pgolf_version=__version__)
    for target in map(Path, targets):
        if _is_script(target):
            report.records.append(_guarded(audit_script, target, options))
            continue
        try:
            folders = _records_of(target)
        except (InputError, OSError) as exc:  # reported as that target's error; the others are still checked
            message = str(exc) if isinstance(exc, InputError) else f"{target}: {exc.strerror or exc}"
            report.records.append(RecordReport(path=str(target), verdict="error", error=message))
            continue
        report.records += [_guarded(audit_record, path, options) for path in folders]
    report.verdict = combine([r.verdict for r in report.records])
    return report


def _guarded(run: Callable[[Path, AuditOptions], RecordReport], path: Path, options: AuditOptions) -> RecordReport:
    """One folder that breaks the checker is that folder's error; the others are still checked and reported."""
    try:
        return run(path, options)
    except Exception as exc:  # noqa: BLE001 - the tree's report must still be written
        message = (
            str(exc) if isinstance(exc, InputError) else f"{path}: could not be checked ({type(exc).__name__}: {exc})"
        )
        return RecordReport(path=str(path), verdict="error", error=" ".join(message.split())[:500])


def _is_script(path: Path) -> bool:
    return path.suffix == ".py" and path.is_file()


def audit_script(path: Path, options: AuditOptions) -> RecordReport:
    from .static import script_context_from_source

    report = RecordReport(path=str(path), ruleset=options.ruleset or DEFAULT_RULESET)
    try:
        ruleset = _selected(load_ruleset(report.ruleset), options)
        entry = safeio.FolderEntry(path.name, path, path.stat().st_size)
        source = unpack.decode_script(safeio.decode_text(safeio.read_bytes(entry))).text
    except (InputError, unpack.UnpackError, OSError) as exc:
        report.verdict, report.error = "error", f"{path}: {exc}" if not isinstance(exc, InputError) else str(exc)
        return report
    context = script_context_from_source(path.name, source, {})
    report.findings = _with_traced_run(
        ruleset, path, source, options, None, _run_all(ruleset.of_kind("script"), context)
    )
    report.verdict = verdict_of(report.findings)
    return report


def audit_git(repo: Path, rng: str, options: AuditOptions) -> Report:
    """PR mode: every record folder the range adds or changes, plus what it does beside them."""
    report = Report(target=f"{repo} {rng}", policy=options.policy, pgolf_version=__version__)
    try:
        changes = gitrange.changed_files(repo, rng)
        report.git = gitrange.commits(repo, rng)
        if not changes:
            raise InputError(rng, gitrange.empty_range_message(repo, rng))
        layout = gitrange.record_layout(repo, rng, changes)
        if not layout.audited:
            raise InputError(rng, _nothing_to_audit(layout))
        head = gitrange.head_of(rng)
        pr = options.pr_meta.for_head(gitrange.resolve(repo, head)) if options.pr_meta else None
        with gitrange.temp_root() as tmp:
            pools = _frontier_pools(repo, rng, layout, options, Path(tmp) / "base") if options.against_auto else {}
            for folder in layout.audited:
                exported = gitrange.export_folder(repo, head, folder, Path(tmp) / "head")
                track = folder.split("/")[1]
                record = _guarded(audit_record, exported, replace(options, pr=pr, frontier=pools.get(track)))
                record.path = folder
                record.findings += _pr_findings(record, layout, folder)
                record.verdict = verdict_of(record.findings) if record.error is None else "error"
                report.records.append(record)
    except InputError as exc:
        report.verdict, report.error = "error", str(exc)
        return report
    report.verdict = combine([r.verdict for r in report.records])
    return report


def _frontier_pools(
    repo: Path, rng: str, layout: gitrange.Layout, options: AuditOptions, dest: Path
) -> dict[str, FrontierPool]:
    """The base branch's records of each audited track, with the time each one's PR was opened."""
    base = gitrange.base_of(rng)
    pools = {}
    for track in sorted({folder.split("/")[1] for folder in layout.audited}):
        if not gitrange.exists(repo, base, f"records/{track}"):
            continue
        root = gitrange.export_folder(repo, base, f"records/{track}", dest)
        opened = {}
        for folder in sorted(p.name for p in root.iterdir() if p.is_dir()):
            subject = gitrange.adding_subject(repo, base, f"records/{track}/{folder}") or ""
            number = prmeta.pr_number_in(subject)
            pr = options.pr_meta.by_number(number) if options.pr_meta and number else None
            if pr is not None:
                opened[folder] = (pr.created_at, f"PR #{number} createdAt")
        pools[track] = FrontierPool(root, opened, label=f"{base} (the base branch)")
    return pools


def _nothing_to_audit(layout: gitrange.Layout) -> str:
    """A range with no folder to judge; one that only deletes records is said to (a PR only adds a folder)."""
    if not layout.deleted:
        return "the range adds or changes no record folder under records/<track>/"
    return f"the range adds no record folder; it deletes {len(layout.deleted)} existing one(s): {listed(layout.deleted, 3)}"


def _pr_findings(record: RecordReport, layout: gitrange.Layout, folder: str) -> list[Finding]:
    """What the PR does beside this folder, at the severities in force on the record's date."""
    ruleset = load_ruleset(record.ruleset or DEFAULT_RULESET)
    rule = ruleset.get("R-RECORD-FILES").at(record.summary.get("judged_on") if record.summary else None)
    if rule is None:
        return []
    severity = rule.params["pr_layout"]
    found = []
    if folder in layout.modified and not layout.added:
        found.append(
            rule.finding(
                "the range changes this existing record folder; audited as it is after the change", severity="info"
            )
        )
    if len(layout.added) > 1:
        found.append(
            rule.finding(
                f"the PR adds {len(layout.added)} record folders ({', '.join(layout.added)}); "
                f"one per PR, and each is judged (PR #1406)",
                severity=severity["several_folders"],
            )
        )
    others = [f for f in layout.modified + layout.deleted if f != folder]
    if others:
        changed = ", ".join(f"{f} ({'deleted' if f in layout.deleted else 'changed'})" for f in others[:3])
        found.append(
            rule.finding(f"the PR also changes other record folders: {changed}", severity=severity["other_records"])
        )
    if layout.outside:
        found.append(
            rule.finding(
                f"the PR changes files outside its record folder: {listed(layout.outside, 5)}",
                severity=severity["outside_files"],
            )
        )
    return found


def _records_of(target: Path) -> list[Path]:
    if not target.exists() and not target.is_symlink():
        raise InputError(target, "no such file or directory")
    if not target.exists():
        raise InputError(target, "symlink that leads nowhere (a loop or a missing target)")
    if not target.is_dir():
        raise InputError(target, "not a record folder or a .py script")
    found = find_records(target)
    if not found:
        raise InputError(target, "no record folder found (no submission.json, train log or train_gpt.py)")
    return found
