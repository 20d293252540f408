"""R-SIGNIFICANCE: does the record beat the baseline it claims to beat, under both policies."""
from __future__ import annotations

from dataclasses import asdict
from typing import Iterator

from .. import stats
from ..context import RecordContext
from ..report import Finding
from ..rules import Rule, check


@check("record.significance")
def significance(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    baseline = ctx.options.against
    if baseline is None:
        yield rule.finding("no baseline given (--against); significance not tested", severity="info")
        return
    new_bpb = [row.val_bpb for row in ctx.rows if row.val_bpb is not None]
    new_loss = [row.val_loss for row in ctx.rows if row.val_loss is not None]
    if len(new_bpb) < 2 or len(baseline.val_bpb) < 2:
        yield rule.finding(f"{len(new_bpb)} vs {len(baseline.val_bpb)} seeds: a t-test needs two or more on each side")
        return
    use_loss = baseline.val_loss is not None and len(new_loss) == len(new_bpb)
    result = stats.significance(new_bpb, list(baseline.val_bpb),
                                new_loss if use_loss else None,
                                list(baseline.val_loss) if use_loss else None,
                                policy=ctx.options.policy)
    ctx.significance = {"against": baseline.label, **asdict(result)}
    message = _describe(result, baseline.label)
    yield rule.finding(message, severity=None if not result.passed else "info", evidence=ctx.significance)


def _describe(result: stats.Significance, label: str) -> str:
    enforced = result.enforced
    written = "n/a" if result.written_pass is None else ("pass" if result.written_pass else "fail")
    return (f"vs {label}: mean {enforced.mean_new:.5f} vs {enforced.mean_base:.5f}; enforced Welch p = "
            f"{enforced.p:.3f} ({'pass' if result.enforced_pass else 'fail'} at p < {result.enforced_alpha}); "
            f"written policy ({result.margin_nats} nats at p < {result.written_alpha}): {written}; "
            f"decided by {result.decided_by}: {'pass' if result.passed else 'fail'}")
