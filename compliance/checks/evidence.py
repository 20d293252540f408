"""R-SEEDS, R-FULL-VAL, R-JSON-CONSISTENCY, R-CODE-IDENTITY: do the logs back the claim."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterator

from .. import sourcediff
from ..context import RecordContext
from ..record import LogRecord
from ..report import Finding, SeedRow, listed
from ..rules import Rule, check
from ..scoring import Claim, same_value


@check(
    "record.seeds",
    kind="record",
    params={
        "min_seeds": 3,
        "ignored_prefixes": ["pgolf_"],
        "ignored_keys": [
            "seed",
            "run_id",
            "logfile",
            "log_path",
            "output_dir",
            "artifact_dir",
            "model_path",
            "quantized_model_path",
        ],
        "ignore_paths": True,  # a data or output path differs from machine to machine
        "config_drift": "review",
        "minor_drift": 0.10,  # share of lines two embedded scripts may differ by and count as one code
        "script_versions": {"minor": "warn", "major": "fail"},
    },
)
def seeds(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    if ctx.record.stray:
        return
    scored = sorted({row.seed for row in ctx.rows if row.val_bpb is not None and row.seed is not None})
    need = int(rule.params["min_seeds"])
    if len(scored) < need:
        yield _too_few_seeds(ctx, rule, scored, need)
    yield from _script_versions(ctx, rule)
    yield from _config_drift(ctx, rule)


def _unscored(ctx: RecordContext) -> tuple[list[str], list[str]]:
    """The logs with no score: those the parser could not read a score from (it may be there, in a
    layout pgolf does not know), and those that show their run was cut short, with how."""
    unscored = [log for log in ctx.logs() if log.score is None and not log.facts.invalid]
    unread = [log.rel for log in unscored if log.facts.cut_short is None]
    cut = [f"{log.rel}: {log.facts.cut_short}" for log in unscored if log.facts.cut_short]
    return unread, cut


def _too_few_seeds(ctx: RecordContext, rule: Rule, scored: list[int], need: int) -> Finding:
    """Fail only on what the logs show: a log whose score the parser could not read may hold the missing seed."""
    unread, cut = _unscored(ctx)
    message = (
        f"{len(scored)} distinct scored seed(s) {scored}; a record needs {need} from one "
        f"configuration (README: 'an average over 3 training runs'; PR #2124)"
    )
    if cut:
        message += f"; cut short: {'; '.join(cut)}"
    evidence = {"seeds": scored, "min_seeds": need, "unread_logs": unread}
    if len(scored) + len(unread) < need:
        return rule.finding(message, evidence=evidence)
    return rule.finding(
        f"{message}; {len(unread)} log(s) with no score the parser could read ({', '.join(unread)}) may hold "
        "the rest: a person must read them",
        severity="review",
        evidence=evidence,
    )


def _script_versions(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    logs = [log for log in ctx.logs() if log.facts.embedded_source]
    versions: dict[str, LogRecord] = {}
    for log in logs:
        versions.setdefault(log.facts.embedded_source_sha256 or "", log)
    if len(versions) < 2:
        return
    first, *others = versions.values()
    base = first.facts.embedded_source or ""
    worst = max(sourcediff.drift(base, other.facts.embedded_source or "") for other in others)
    major = worst > rule.params["minor_drift"]
    severity = rule.params["script_versions"]["major" if major else "minor"]
    yield rule.finding(
        f"the logs embed {len(versions)} versions of the script (up to {worst:.1%} of lines differ "
        f"from {first.rel}); seeds must share one code"
        + ("" if major else " (minor edits, as accepted with PR #1530 and #1868)"),
        severity=severity,
        evidence={"versions": len(versions), "drift": round(worst, 4)},
    )


def _config_drift(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    """Settings both logs print and that differ; a key one dump lacks is a logging difference."""
    ignored = set(rule.params["ignored_keys"])
    prefixes = tuple(rule.params["ignored_prefixes"])

    def kept(key: str, value: str) -> bool:
        low = key.lower()
        is_path = rule.params["ignore_paths"] and "/" in value
        return low not in ignored and not low.startswith(prefixes) and not is_path

    dumps = [
        (log, {k: v for k, v in log.facts.hyperparams.items() if kept(k, v)})
        for log in ctx.logs()
        if log.facts.hyperparams
    ]
    if len(dumps) < 2:
        return
    first_log, first = dumps[0]
    for log, dump in dumps[1:]:
        differing = sorted(k for k in set(first) & set(dump) if first[k] != dump[k])
        if differing:
            shown = ", ".join(f"{k}={first[k]!s}/{dump[k]!s}" for k in differing[:5])
            yield rule.finding(
                f"configuration differs from {first_log.rel}: {shown}", file=log.rel, level="config_drift"
            )


_DATASET_VOCAB = re.compile(r"fineweb\w*?_sp(\d+)", re.IGNORECASE)


def _vocab_key(ctx: RecordContext) -> str | None:
    """The canonical split a log scores: its vocab_size, else the dataset name it loads (fineweb10B_sp1024)."""
    for log in ctx.logs():
        params = log.facts.hyperparams
        vocab = params.get("vocab_size") or params.get("VOCAB_SIZE") or ""
        if not vocab.strip().isdigit():
            found = next((m.group(1) for v in params.values() if (m := _DATASET_VOCAB.search(v))), "")
            vocab = found
        if vocab.strip().isdigit():
            caseops = "caseops" in ctx.record.name.lower() or any("caseops" in v.lower() for v in params.values())
            return f"sp{int(vocab)}" + ("_caseops" if caseops else "")
    return None


@check(
    "record.full_val",
    kind="record",
    params={
        # token counts seen in accepted logs; each is truncated to a multiple of the sequence length
        "canonical_tokens": {"sp1024": 62021632, "sp4096": 45508608, "sp8192": 40540160, "sp8192_caseops": 47851520},
        "tolerance_tokens": 65536,
        "unknown_split": "review",  # a count that matches no canonical split of any vocabulary
    },
)
def full_val(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    canonical: dict[str, int] = rule.params["canonical_tokens"]
    tolerance = int(rule.params["tolerance_tokens"])
    key = _vocab_key(ctx)
    for log in ctx.logs():
        count = log.facts.val_tokens
        if count is None:
            continue
        line = ctx.line(log, "val_tokens")
        expected = canonical.get(key) if key else None
        if expected is None:
            near = [k for k, v in canonical.items() if abs(v - count) <= tolerance]
            if not near:
                yield rule.finding(
                    f"{count:,} validation tokens match no canonical split "
                    f"({', '.join(f'{k} {v:,}' for k, v in canonical.items())})",
                    file=log.rel,
                    line=line,
                    level="unknown_split",
                )
            continue
        if count < expected - tolerance:
            yield rule.finding(
                f"{count:,} validation tokens scored; the {key} split has {expected:,}",
                file=log.rel,
                line=line,
                evidence={"val_tokens": count, "canonical": expected},
            )
        elif count > expected + tolerance:
            yield rule.finding(
                f"{count:,} validation tokens, more than the {key} split's {expected:,}",
                file=log.rel,
                line=line,
                severity="warn",
            )


@check(
    "record.json_consistency",
    kind="record",
    params={
        "warn_within_bpb": 0.0005,  # a larger gap between the JSON and its logs is a claim no log supports
        "unsupported": "fail",  # the JSON's score matches no log and no mean of them
        "unread": "review",  # no log has a score the parser could read, and some may hold one
        "unlogged_seed": "fail",  # a seed the JSON claims has no log
        "single_run": "warn",  # the JSON reports one run of several, not their mean
        "renamed": "warn",  # a claimed seed's value is in a log that prints another seed
        "extra_log": "warn",  # a log's seed is not in the JSON
    },
)
def json_consistency(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    record = ctx.record
    sub, where = record.submission, record.submission_file
    if sub is None or record.stray:
        return
    for note in sub.notes:
        yield rule.finding(note, file=where, severity="warn")
    scored = [row for row in ctx.rows if row.val_bpb is not None]
    if sub.val_bpb is None:
        if scored and not sub.invalid:
            yield rule.finding("submission.json has no numeric val_bpb", file=where, level="unsupported")
    else:
        yield from _headline(ctx, rule, scored)
    yield from _seed_claims(ctx, rule)
    yield from _bytes_claim(ctx, rule)


def _headline(ctx: RecordContext, rule: Rule, scored: list[SeedRow]) -> Iterator[Finding]:
    record = ctx.record
    sub, claim = record.submission, record.claim
    assert sub is not None and sub.val_bpb is not None
    values = [row.val_bpb for row in scored if row.val_bpb is not None]
    line = record.json_line(sub.val_bpb_key or "val_bpb")
    if claim is not None and claim.single:
        mean = statistics.fmean(values)
        yield rule.finding(
            f"{sub.val_bpb_key} {sub.val_bpb} is {claim.how} ({mean:.8f}); the score shown is the mean",
            file=record.submission_file,
            line=line,
            level="single_run",
        )
        return
    if not scored:
        unread, _ = _unscored(ctx)
        yield rule.finding(
            f"{sub.val_bpb_key} {sub.val_bpb} in the JSON, and no log has a final score to support it"
            + (f"; the parser could read no score in {listed(unread, 3)}: a person must read them" if unread else ""),
            file=record.submission_file,
            line=line,
            level="unread" if unread else "unsupported",
        )
        return
    mean = statistics.fmean(values)
    yield from _compare(
        rule, f"{sub.val_bpb_key}", sub.val_bpb, mean, f"mean of {len(scored)} log(s)", record.submission_file, line
    )


def _compare(
    rule: Rule, what: str, claimed: float, measured: float, against: str, where: str | None, line: int | None
) -> Iterator[Finding]:
    if same_value(claimed, measured):  # either side may be rounded: no finding for rounding
        return
    diff = abs(claimed - measured)
    small = diff <= rule.params["warn_within_bpb"]
    tail = "" if small else "; no log supports the claimed value"
    yield rule.finding(
        f"{what} {claimed} in the JSON, {measured:.8f} from the {against} (off by {diff:.6f}){tail}",
        file=where,
        line=line,
        severity="warn" if small else None,
        level="unsupported",
        evidence={"claimed": claimed, "measured": measured},
    )


def _seed_claims(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    record = ctx.record
    sub, where, claim = record.submission, record.submission_file, record.claim
    assert sub is not None
    logged = {log.seed for log in ctx.logs() if log.seed is not None}
    every_run = [log for log in record.logs if log.duplicate_of is None]
    renamed = claim.renamed if claim else {}
    claimed = set(sub.seeds) | set(sub.seed_claims)
    for seed in sorted(claimed - logged - set(renamed)):
        key = sub.seed_claims[seed].key if seed in sub.seed_claims else "seeds"
        yield rule.finding(
            f"seed {seed} is claimed but has no log", file=where, line=record.json_line(key), level="unlogged_seed"
        )
    for seed, found in sorted(renamed.items()):
        yield rule.finding(f"seed {seed}'s value is in {found}", file=where, level="renamed")
    if claimed:
        found_by_name = _renamed_logs(renamed)
        extra = {
            log.seed
            for log in every_run
            if log.seed is not None and log.seed not in claimed and log.rel not in found_by_name
        }
        for seed in sorted(extra):
            yield rule.finding(f"seed {seed} has a log but is not in submission.json", file=where, level="extra_log")
    for seed, seed_claim in sorted(sub.seed_claims.items()):
        log = _claimed_log(ctx, seed, claim)
        if log is not None and seed_claim.val_bpb is not None and log.score and log.score.val_bpb is not None:
            yield from _compare(
                rule,
                f"seed {seed} val_bpb",
                seed_claim.val_bpb,
                log.score.val_bpb,
                log.rel,
                where,
                record.json_line(seed_claim.key),
            )


def _renamed_logs(renamed: dict[int, str]) -> set[str]:
    return {text.split(" (", 1)[0] for text in renamed.values()}


def _claimed_log(ctx: RecordContext, seed: int, claim: Claim | None) -> LogRecord | None:
    if claim is not None and seed in claim.renamed:
        rel = claim.renamed[seed].split(" (", 1)[0]
        return next((log for log in ctx.logs() if log.rel == rel), None)
    return next((log for log in ctx.logs() if log.seed == seed), None)


def _bytes_claim(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    sub, where = ctx.record.submission, ctx.record.submission_file
    assert sub is not None
    totals = {row.bytes_total for row in ctx.rows if row.bytes_total is not None}  # as R-SIZE counts them
    if sub.bytes_total is None or not totals or sub.bytes_total in totals:
        return
    if sub.bytes_total < max(totals):  # a summary slip: R-SIZE judges every seed's own size
        yield rule.finding(
            f"bytes_total {sub.bytes_total:,} in the JSON is below the largest logged size {max(totals):,}",
            file=where,
            severity="warn",
        )
    else:
        yield rule.finding(f"bytes_total {sub.bytes_total:,} matches no logged size", file=where, severity="warn")


@check("record.code_identity", kind="record", params={"minor_drift": 0.10, "minor": "warn", "major": "review"})
def code_identity(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    """Each log's embedded source against the folder's scripts: stale logs are common and were accepted
    when the edits were small (PR #52, #86, #1530, #1868); a log of another program asks for review."""
    record = ctx.record
    script = record.script
    embedded = [log for log in ctx.logs() if log.facts.embedded_source]
    if not embedded:
        yield rule.finding("no log embeds its source; code identity not verifiable", severity="info")
        return
    if script is None:
        yield rule.finding("logs embed a script but the folder has no entry script to compare", severity="info")
        return
    for log in embedded:
        source = (log.facts.embedded_source or "").strip()
        if source == script.text.strip():
            continue
        module = next((rel for rel, text in record.sources.items() if text.strip() == source), None)
        if module is not None:
            yield rule.finding(
                f"this log ran {module}, not the entry script {script.rel}",
                file=log.rel,
                line=ctx.line(log, "embedded_source"),
                severity="info",
            )
            continue
        share = sourcediff.drift(script.text, source)
        changed = sourcediff.changed_lines(script.text, source)
        major = share > rule.params["minor_drift"]
        yield rule.finding(
            f"the source embedded in this log differs from {script.rel} in {changed} line(s) "
            f"({share:.1%}): " + ("another program" if major else "a stale log"),
            file=log.rel,
            line=ctx.line(log, "embedded_source"),
            level="major" if major else "minor",
            evidence={"changed_lines": changed, "drift": round(share, 4)},
        )
