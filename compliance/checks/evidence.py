"""R-SEEDS, R-FULL-VAL, R-JSON-CONSISTENCY, R-CODE-IDENTITY: do the logs back the claim."""
from __future__ import annotations

import statistics
from typing import Iterator

from ..context import RecordContext
from ..report import Finding
from ..rules import Rule, check


@check("record.seeds")
def seeds(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    scored = sorted({row.seed for row in ctx.rows if row.val_bpb is not None and row.seed is not None})
    need = int(rule.params["min_seeds"])
    if len(scored) < need:
        yield rule.finding(f"{len(scored)} distinct scored seed(s) {scored}; a record needs {need}")
    sources = {log.facts.embedded_source_sha256 for log in ctx.logs() if log.facts.embedded_source_sha256}
    if len(sources) > 1:
        yield rule.finding(f"the logs embed {len(sources)} different scripts; seeds must share one code")
    yield from _config_drift(ctx, rule)


def _config_drift(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    ignored = set(rule.params.get("ignored_keys", []))
    prefixes = tuple(rule.params.get("ignored_prefixes", []))
    dumps = [(log, {k: v for k, v in log.facts.hyperparams.items()
                    if k.lower() not in ignored and not k.lower().startswith(prefixes)})
             for log in ctx.logs() if log.facts.hyperparams]
    if len(dumps) < 2:
        return
    first_log, first = dumps[0]
    for log, dump in dumps[1:]:
        differing = sorted(k for k in set(first) | set(dump) if first.get(k) != dump.get(k))
        if differing:
            shown = ", ".join(f"{k}={first.get(k)!s}/{dump.get(k)!s}" for k in differing[:5])
            yield rule.finding(f"configuration differs from {first_log.rel}: {shown}", file=log.rel,
                               severity="review")


def _vocab_key(ctx: RecordContext) -> str | None:
    for log in ctx.logs():
        vocab = log.facts.hyperparams.get("vocab_size") or log.facts.hyperparams.get("VOCAB_SIZE")
        if vocab and vocab.strip().isdigit():
            caseops = "caseops" in ctx.record.name.lower()
            return f"sp{int(vocab)}" + ("_caseops" if caseops else "")
    return None


@check("record.full_val")
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
                yield rule.finding(f"{count:,} validation tokens match no canonical split "
                                   f"({', '.join(f'{k} {v:,}' for k, v in canonical.items())})",
                                   file=log.rel, line=line, severity="review")
            continue
        if count < expected - tolerance:
            yield rule.finding(f"{count:,} validation tokens scored; the {key} split has {expected:,}",
                               file=log.rel, line=line, evidence={"val_tokens": count, "canonical": expected})
        elif count > expected + tolerance:
            yield rule.finding(f"{count:,} validation tokens, more than the {key} split's {expected:,}",
                               file=log.rel, line=line, severity="warn")


def rounding_tolerance(value: float) -> float:
    """Half a unit in the last decimal the JSON printed: 1.1194 may stand for 1.11935..1.11945."""
    text = repr(value)
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 8
    return 0.5 * 10 ** -decimals + 1e-12


@check("record.json_consistency")
def json_consistency(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    sub, where = ctx.record.submission, ctx.record.submission_file
    scored = [row for row in ctx.rows if row.val_bpb is not None]
    if sub is None or not scored:
        return
    for note in sub.notes:
        yield rule.finding(note, file=where, severity="warn")
    if sub.val_bpb is None:
        yield rule.finding("submission.json has no numeric val_bpb", file=where)
    else:
        mean = statistics.fmean(row.val_bpb for row in scored)
        yield from _compare(rule, "val_bpb", sub.val_bpb, mean, f"mean of {len(scored)} log(s)", where)
    yield from _seed_claims(ctx, rule)
    yield from _bytes_claim(ctx, rule)


def _compare(rule: Rule, what: str, claimed: float, measured: float, against: str,
             where: str | None) -> Iterator[Finding]:
    diff = abs(claimed - measured)
    if diff <= rounding_tolerance(claimed) + rounding_tolerance(measured):  # either side may be rounded
        return
    severity = "warn" if diff <= rule.params["warn_within_bpb"] else None
    yield rule.finding(f"{what} {claimed} in the JSON, {measured:.8f} from the {against} "
                       f"(off by {diff:.6f})", file=where, severity=severity,
                       evidence={"claimed": claimed, "measured": measured})


def _seed_claims(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    sub, where = ctx.record.submission, ctx.record.submission_file
    logged = {row.seed: row for row in ctx.rows if row.seed is not None}
    claimed = set(sub.seeds) | set(sub.seed_claims)
    for seed in sorted(claimed - set(logged)):
        yield rule.finding(f"seed {seed} is claimed but has no log", file=where)
    if claimed:
        for seed in sorted(set(logged) - claimed):
            yield rule.finding(f"seed {seed} has a log but is not in submission.json", file=where, severity="warn")
    for seed, claim in sorted(sub.seed_claims.items()):
        row = logged.get(seed)
        if row is not None and claim.val_bpb is not None and row.val_bpb is not None:
            yield from _compare(rule, f"seed {seed} val_bpb", claim.val_bpb, row.val_bpb, row.log, where)


def _bytes_claim(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    sub, where = ctx.record.submission, ctx.record.submission_file
    totals = {row.bytes_total for row in ctx.rows if row.bytes_total is not None}  # as R-SIZE counts them
    if sub.bytes_total is None or not totals or sub.bytes_total in totals:
        return
    if sub.bytes_total < max(totals):  # a summary slip: R-SIZE judges every seed's own size
        yield rule.finding(f"bytes_total {sub.bytes_total:,} in the JSON is below the largest logged "
                           f"size {max(totals):,}", file=where, severity="warn")
    else:
        yield rule.finding(f"bytes_total {sub.bytes_total:,} matches no logged size", file=where, severity="warn")


@check("record.code_identity")
def code_identity(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    script = ctx.record.script
    embedded = [log for log in ctx.logs() if log.facts.embedded_source]
    if not embedded:
        yield rule.finding("no log embeds its source; code identity not verifiable", severity="info")
        return
    if script is None:
        yield rule.finding("logs embed a script but the folder has no entry script to compare", severity="info")
        return
    for log in embedded:
        if log.facts.embedded_source.strip() != script.text.strip():
            yield rule.finding(f"the source embedded in this log differs from {script.rel} (stale log?)",
                               file=log.rel, line=ctx.line(log, "embedded_source"))
