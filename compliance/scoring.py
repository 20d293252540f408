"""Which runs, and which number of each run, a submission's score rests on (RULES.md §5).

A log may print several final scoring passes (an int8 roundtrip, a sliding window, a TTT
pass) and a folder may hold more logs than runs it reports (a train.log copy, reruns,
experiments). submission.json says which: the number it reports is the score when one of
the log's final lines carries it; otherwise the last final scoring pass is. Its per-seed
values single out one run per seed; a headline that is the mean of one pass across the
logs names that pass. Everything chosen here is said in words (`LogRecord.score_basis`,
`Claim.how`) so a report can show it. Differences no larger than the JSON's own rounding
are equality.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .logparse import MetricLine

if TYPE_CHECKING:
    from .record import LogRecord, Record

LAST_PASS = "the last final scoring pass"


@dataclass
class Claim:
    """What submission.json's score rests on, as far as the logs show it."""

    how: str  # one line for the report
    logs: list[str] = field(default_factory=list)  # the runs the headline rests on
    supported: bool | None = None  # the headline matches them (None: no headline)
    single: str | None = None  # set when the JSON reports one run of several
    renamed: dict[int, str] = field(default_factory=dict)  # claimed seed -> log found by name or score


def rounding_tolerance(value: float) -> float:
    """Half a unit in the last decimal printed: 1.1194 may stand for 1.11935..1.11945."""
    text = repr(float(value))
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 8
    return 0.5 * 10.0**-decimals + 1e-12


def same_value(claimed: float, measured: float) -> bool:
    """Equal up to the rounding of either side (a JSON rounds, a log prints 4 or 8 decimals)."""
    return abs(claimed - measured) <= rounding_tolerance(claimed) + rounding_tolerance(measured)


def resolve(record: Record) -> None:
    """Set each log's score and basis, exclude runs the JSON does not report, describe the claim."""
    for log in record.logs:
        log.score, log.score_basis = log.facts.score, LAST_PASS if log.facts.score else "no final scoring pass"
    sub = record.submission
    if sub is None:
        return
    claimed = {seed: c.val_bpb for seed, c in sub.seed_claims.items() if c.val_bpb is not None}
    if claimed:
        record.claim = _per_seed(record, claimed)
    if record.claim is None and sub.val_bpb is not None:
        record.claim = _headline(record, sub.val_bpb)


def _candidates(record: Record) -> list[LogRecord]:
    return [log for log in record.logs if log.duplicate_of is None and log.excluded is None]


def _pick_line(log: LogRecord, value: float) -> MetricLine | None:
    """The last of the log's final passes that carries `value`."""
    hits = [m for m in log.facts.finals if m.val_bpb is not None and same_value(value, m.val_bpb)]
    return hits[-1] if hits else None


def _per_seed(record: Record, claimed: dict[int, float]) -> Claim:
    """Match every claimed seed to one run: by its logged seed, its file name, or its score."""
    logs = _candidates(record)
    chosen: dict[int, LogRecord] = {}
    claim = Claim(how="")
    for seed, value in sorted(claimed.items()):
        log = _find_run(logs, seed, value, chosen, claim)
        if log is None:
            continue
        chosen[seed] = log
        line = _pick_line(log, value)
        if line is not None:
            log.score = line
            log.score_basis = (
                LAST_PASS if line is log.facts.score else f"the pass submission.json reports for seed {seed}"
            )
    claim.logs = [log.rel for log in chosen.values()]
    by_seed = {log.seed: seed for seed, log in chosen.items()}
    complete = len(chosen) == len(claimed)
    for log in logs:
        if log in chosen.values():
            continue
        if log.seed in by_seed:
            log.excluded = (
                f"another run of seed {log.seed}; submission.json's value for it is in {chosen[by_seed[log.seed]].rel}"
            )
        elif complete:  # every claimed seed has its run: the rest is not part of the score
            log.excluded = "not among the runs submission.json reports per seed"
    missing = sorted(set(claimed) - set(chosen))
    claim.how = f"per-seed values of {len(claimed)} seed(s) in submission.json, {len(chosen)} matched to a log" + (
        f"; no log for seed(s) {missing}" if missing else ""
    )
    if record.submission is not None and record.submission.val_bpb is not None:
        scores = [claimed[s] for s in chosen]
        claim.supported = bool(scores) and same_value(record.submission.val_bpb, statistics.fmean(scores))
    return claim


def _find_run(
    logs: list[LogRecord], seed: int, value: float, chosen: dict[int, LogRecord], claim: Claim
) -> LogRecord | None:
    free = [log for log in logs if log not in chosen.values()]
    by_seed = [log for log in free if log.seed == seed]
    if len(by_seed) > 1:
        return _closest(by_seed, value)
    if by_seed:
        return by_seed[0]
    by_name = [log for log in free if _seed_in_name(log.rel) == seed]
    by_score = [log for log in free if _pick_line(log, value) is not None]
    found = by_name[0] if len(by_name) == 1 else (by_score[0] if len(by_score) == 1 else None)
    if found is not None:
        how = "its file name" if found in by_name else "its score"
        claim.renamed[seed] = f"{found.rel} (found by {how}; it logs seed {found.seed})"
    return found


def _closest(logs: list[LogRecord], value: float) -> LogRecord | None:
    """Of several runs of one seed, the one whose final pass is nearest the claimed value."""
    carrying = [
        (abs(line.val_bpb - value), log)
        for log in logs
        if (line := _pick_line(log, value)) is not None and line.val_bpb is not None
    ]
    if not carrying:
        return None
    carrying.sort(key=lambda item: item[0])
    if len(carrying) > 1 and carrying[0][0] == carrying[1][0]:
        return None  # two runs carry it equally: the claim does not say which
    return carrying[0][1]


def _seed_in_name(rel: str) -> int | None:
    from .record import seed_from_name

    return seed_from_name(rel)


def _headline(record: Record, headline: float) -> Claim:
    """No usable per-seed values: the headline is one pass's mean over the logs, or one run's score.

    Of the readings that carry the headline, the closest wins; a tie goes to the mean.
    """
    logs = [log for log in _candidates(record) if log.facts.finals]
    if not logs:
        return Claim(how="submission.json's score; no log has a final scoring pass", supported=False)
    label, mean = _label_with_mean(logs, headline)
    single = [
        (abs(line.val_bpb - headline), log, line)
        for log in logs
        if (line := _pick_line(log, headline)) is not None and line.val_bpb is not None
    ]
    best_single = min(single, key=lambda item: item[0]) if single else None
    if label is None and best_single is None:
        return Claim(
            how=f"no log's final pass, and no mean of one, carries submission.json's {headline}",
            logs=[log.rel for log in logs],
            supported=False,
        )
    if label is not None and (best_single is None or abs(mean - headline) <= best_single[0]):
        for log in logs:
            line = next(m for m in reversed(log.facts.finals) if m.label == label)
            if line is not log.facts.score:
                log.score, log.score_basis = line, f"the pass ({label}) whose mean submission.json reports"
        return Claim(
            how=f"the mean of {len(logs)} log(s)' {label} pass", logs=[log.rel for log in logs], supported=True
        )
    assert best_single is not None
    _, log, line = best_single
    log.score, log.score_basis = line, LAST_PASS if line is log.facts.score else "the pass submission.json reports"
    for other in logs:
        if other is not log and other.seed is not None and other.seed == log.seed:
            other.excluded = f"another run of seed {log.seed}; submission.json reports {log.rel}"
    alone = len(_candidates(record)) > 1
    how = f"{log.rel} alone" + (f", not the mean of the {len(_candidates(record))} logs" if alone else "")
    return Claim(how=how, logs=[log.rel], supported=True, single=log.rel if alone else None)


def _label_with_mean(logs: list[LogRecord], headline: float) -> tuple[str | None, float]:
    """The pass label all logs print whose mean is the headline (the last such), and that mean."""
    common = set.intersection(*({m.label for m in log.facts.finals} for log in logs))
    found: tuple[str | None, float] = (None, 0.0)
    for label in (m.label for m in logs[0].facts.finals):
        if label not in common:
            continue
        values = [next(m for m in reversed(log.facts.finals) if m.label == label).val_bpb for log in logs]
        if all(v is not None for v in values):
            mean = statistics.fmean(v for v in values if v is not None)
            if same_value(headline, mean):
                found = (label, mean)
    return found
