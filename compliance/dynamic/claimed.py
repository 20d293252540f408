"""The pass a record's score rests on, and the same pass in the traced run's log.

The traced run is judged by the pass the record claims, not by whatever its log prints last: the
eval preset's caps can add a pass after it, and a record may claim a number its logs print on a
line they do not count as final (a `diagnostic ...` line whose val_bpb is a byte-level mixture,
or `ppm_mix ... mix_bpb=1.0003`). A claim is found on such a line only when no final pass carries
it, and only when the line carries it in every run the record reports.
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from typing import TYPE_CHECKING

from ..logparse import LogFacts, MetricLine
from ..logparse.facts import pass_name
from ..scoring import same_value

if TYPE_CHECKING:
    from ..record import LogRecord, Record


def claimed_label(record: Record | None) -> str | None:
    """The label of the pass the record's score rests on (`final_compressed_eval_exact`, or
    `ppm_mix mix_bpb` where only that line carries the claimed number)."""
    scored = record.scored_logs() if record is not None else []
    if record is not None and scored:
        elsewhere = _claimed_elsewhere(record, scored)
        if elsewhere is not None:
            return elsewhere
    labels = [log.score.label for log in scored if log.score is not None and log.score.label]
    return labels[0] if labels else None


def judged_pass(facts: LogFacts, claimed: str | None) -> LogFacts:
    """The traced log's facts with the claimed pass as its score (see the module's docstring)."""
    if not claimed:
        return facts
    base = pass_name(claimed)
    same = [m for m in facts.finals if m.pass_name == base and m.val_loss is not None]
    if same:
        if facts.score in same:
            return facts
        return _judged(facts, same[-1], f"judged by the pass the record claims ({claimed}), not the log's last pass")
    other = [m for m in _not_final(facts) if m.label == claimed]
    if not other:
        return facts
    line = other[-1]
    if line.val_loss is not None:
        return _judged(
            facts, line, f"judged by the pass the record claims ({claimed}), a line the log marks {line.role}"
        )
    network = _network_pass(facts)
    if network is None:
        return facts
    # a named bpb prints no loss: the network's pass gives the targets and the loss, the claim its bpb
    note = f"judged by the bpb the record claims ({claimed}) over the targets of its {network.label} pass"
    return _judged(facts, replace(line, val_loss=network.val_loss, eval_time_ms=network.eval_time_ms), note)


def _network_pass(facts: LogFacts) -> MetricLine | None:
    """The network's own pass over the scored targets: the log's final one, else (a log whose only final
    figure is a named mixture bpb) its last diagnostic pass with a loss."""
    if facts.score is not None and facts.score.val_loss is not None:
        return facts.score
    if facts.score is not None:
        return None
    diagnostic = [m for m in facts.metrics if m.role == "diagnostic" and m.val_loss is not None]
    return diagnostic[-1] if diagnostic else None


def _judged(facts: LogFacts, score: MetricLine, note: str) -> LogFacts:
    return replace(facts, score=score, notes=[*facts.notes, (score.line, note)])


def _not_final(facts: LogFacts) -> list[MetricLine]:
    """Lines with a bpb the log does not count as a final pass: diagnostic passes, named bpbs."""
    marked = [m for m in facts.metrics if m.role == "diagnostic" and m.val_bpb is not None]
    return marked + facts.named_bpb


def _claimed_elsewhere(record: Record, scored: list[LogRecord]) -> str | None:
    """A label of a non-final line that carries the claim in every scored log, when the logs' scores
    do not."""
    sub = record.submission
    if sub is None:
        return None
    per_seed = {seed: c.val_bpb for seed, c in sub.seed_claims.items() if c.val_bpb is not None}
    if not all(log.seed in per_seed for log in scored):
        per_seed = {}
    headline = sub.val_bpb

    def carried(values: list[float | None]) -> bool:
        known = [v for v in values if v is not None]
        if len(known) != len(values) or not known:
            return False
        if per_seed:
            return all(same_value(per_seed[_seed(log)], v) for log, v in zip(scored, known, strict=True))
        return headline is not None and same_value(headline, statistics.fmean(known))

    if not per_seed and headline is None:
        return None
    if carried([log.score.val_bpb if log.score is not None else None for log in scored]):
        return None
    for label in dict.fromkeys(m.label for m in _not_final(scored[0].facts)):
        if carried([_last_value(log.facts, label) for log in scored]):
            return label
    return None


def _seed(log: LogRecord) -> int:
    assert log.seed is not None  # per_seed is kept only when every scored log has a claimed seed
    return log.seed


def _last_value(facts: LogFacts, label: str) -> float | None:
    values = [m.val_bpb for m in _not_final(facts) if m.label == label]
    return values[-1] if values else None
