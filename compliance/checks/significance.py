"""R-SIGNIFICANCE: does the record beat the baseline it claims to beat, under both policies.

The baseline is `--against` (a folder or values), or with `--against auto` the chronological
frontier: the best accepted record of the track whose PR was opened earlier (compliance.frontier).
The alphas and the margin are this rule's params, so a catalog can change them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from .. import frontier, stats
from ..context import Baseline, FrontierPool, RecordContext
from ..report import Finding
from ..rules import Rule, check

WAIVER = (
    'README: "For submissions that improve speed through systems optimization without changing the ML, '
    'this requirement is waived"'
)


@check(
    "record.significance",
    kind="record",
    params={
        "enforced_alpha": 0.25,
        "written_alpha": 0.01,
        "margin_nats": 0.005,
        # how a record claims the README's waiver for systems-only speedups (README.md or submission.json)
        "waiver_patterns": [
            r"systems?[- ]only",
            r"systems? optimi[sz]ation",
            r"without changing the ml",
            r"significance (?:requirement )?(?:is )?waived",
            r"\bwaiver\b",
        ],
        "waiver": "review",
        "frontier": True,  # does `--against auto` apply (the non-record track has no frontier)
    },
)
def significance(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    baseline, why_not = _baseline(ctx, rule)
    if baseline is None:
        yield rule.finding(why_not, severity="info")
        return
    new_bpb = [row.val_bpb for row in ctx.rows if row.val_bpb is not None]
    new_loss = [row.val_loss for row in ctx.rows if row.val_loss is not None]
    waiver = _waiver_claim(ctx, rule)
    if len(new_bpb) < 2 or len(baseline.val_bpb) < 2:
        message = (
            f"{len(new_bpb)} vs {len(baseline.val_bpb)} seeds against {baseline.label}: a t-test needs two "
            f"or more on each side"
        )
        yield _unless_waived(rule, message, waiver, None)
        return
    use_loss = baseline.val_loss is not None and len(new_loss) == len(new_bpb)
    result = stats.significance(
        new_bpb,
        list(baseline.val_bpb),
        new_loss if use_loss else None,
        list(baseline.val_loss) if use_loss and baseline.val_loss else None,
        policy=ctx.options.policy,
        enforced_alpha=float(rule.params["enforced_alpha"]),
        written_alpha=float(rule.params["written_alpha"]),
        margin_nats=float(rule.params["margin_nats"]),
    )
    ctx.significance = {"against": baseline.label, **asdict(result)}
    message = _describe(result, baseline.label)
    if result.passed:
        yield rule.finding(message, severity="info", evidence=ctx.significance)
    else:
        yield _unless_waived(rule, message, waiver, ctx.significance)


def _baseline(ctx: RecordContext, rule: Rule) -> tuple[Baseline | None, str]:
    options = ctx.options
    if options.against is not None:
        return options.against, ""
    if not options.against_auto:
        return None, "no baseline given (--against); significance not tested"
    if not rule.params["frontier"]:
        return None, "this track has no chronological frontier; significance not tested"
    pool = options.frontier or FrontierPool(ctx.record.root.parent, label="the records beside it")
    if ctx.judged.date is None:
        return None, "the record's date is unknown, so the chronological frontier cannot be told; not tested"
    row = frontier.best_before(frontier.rows(pool, exclude=ctx.record.name), ctx.judged)
    if row is None:
        return None, (
            f"no accepted record in {pool.label} was opened before {ctx.judged.date}: nothing to beat, not tested"
        )
    return Baseline(f"the frontier {frontier.describe(row)}", row.baseline.val_bpb, row.baseline.val_loss), ""


def _waiver_claim(ctx: RecordContext, rule: Rule) -> str | None:
    """The phrase by which the record claims the systems-optimization waiver, if it does."""
    record = ctx.record
    texts = [record.readme or "", record.submission_text or ""]
    for pattern in rule.params["waiver_patterns"]:
        for text in texts:
            match = re.search(pattern, text, re.IGNORECASE)
            if match:
                return match.group(0)
    return None


def _unless_waived(rule: Rule, message: str, waiver: str | None, evidence: dict[str, Any] | None) -> Finding:
    if waiver is None:
        return rule.finding(message, evidence=evidence)
    return rule.finding(
        f"{message}; the record claims the systems-only waiver ('{waiver[:60]}'): {WAIVER} "
        f"- a reviewer must confirm the ML is unchanged",
        level="waiver",
        evidence=evidence,
    )


def _describe(result: stats.Significance, label: str) -> str:
    enforced = result.enforced
    written = "n/a" if result.written_pass is None else ("pass" if result.written_pass else "fail")
    return (
        f"vs {label}: mean {enforced.mean_new:.5f} vs {enforced.mean_base:.5f}; enforced Welch p = "
        f"{enforced.p:.3f} ({'pass' if result.enforced_pass else 'fail'} at p < {result.enforced_alpha}); "
        f"written policy ({result.margin_nats} nats at p < {result.written_alpha}): {written}; "
        f"decided by {result.decided_by}: {'pass' if result.passed else 'fail'}"
    )
