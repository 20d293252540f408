"""Judgements over the trace shared by several legality checks (RULES.md §4 C1-C4).

An update on validation data (an optimizer step, a cache or table write) is judged
against the scores that make the reported number: the scores whose running sums
reach the print of the metric the record's logs report as final. A diagnostic pass
after the reported one, or one the run never prints, does not count against it.
Without logs (a lone script), every score counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import events as ev
from .events import Event

if TYPE_CHECKING:
    from . import ScriptContext


@dataclass
class UpdateJudgement:
    update: Event
    kind: str  # "score_first" (legal) | "adapt_first" | "last_epoch_only" | "before_pass"
    # | "after_all" | "throwaway"
    score: Event | None  # the score it is judged against
    rescored: Event | None = None  # a later score pass over the same data (C4)
    scored_before: Event | None = None


def val_scores(events: list[Event]) -> list[Event]:
    """Scores of validation tokens that ran or may have run (an update is judged against these)."""
    return [e for e in events if e.kind == ev.SCORE and "val" in e.labels and e.activity != "off"]


def val_updates(events: list[Event]) -> list[Event]:
    """Every update on validation data, switched off or not (an inactive one is still reported, as info)."""
    return [e for e in events if e.kind == ev.UPDATE and "val" in e.labels]


def table_writes(events: list[Event]) -> list[Event]:
    return [e for e in events if e.kind == ev.TABLE_WRITE]


def is_fresh(update: Event) -> bool:
    return update.optim is not None and "fresh" in update.optim.labels


def reported_ids(ctx: ScriptContext) -> set[str] | None:
    """The score ids behind the metric line the logs report as final; None when that cannot be told."""
    record = ctx.record
    labels = {log.facts.score.label for log in (record.scored_logs() if record else []) if log.facts.score}
    if not labels:
        return None
    ids: set[str] = set()
    for event in ctx.events:
        if event.kind != ev.LOG or event.activity == "off":
            continue
        if any(_writes_label(fragment, label) for fragment in event.detail.get("fragments", ()) for label in labels):
            ids |= {label for label in event.labels if label.startswith("score#")}
    return ids or None


def _writes_label(fragment: str, label: str) -> bool:
    return fragment.startswith(label) and (len(fragment) == len(label) or fragment[len(label)] in " :=\t,")


def reported_prints(ctx: ScriptContext) -> list[Event]:
    """The print calls that write the number the submission claims.

    First the log lines holding the val_bpb that submission.json claims (a record may report
    a pass other than the log's last final line); else the final metric line the logs end
    with; without logs, every print of a metric.
    """
    prints = [e for e in ctx.events if e.kind == ev.LOG and e.activity != "off" and "val" in e.labels]
    lines = claimed_lines(ctx)
    if lines:
        found = [p for p in prints if _writes_any(p, lines)]
        if found:
            return found
    found = _mean_matches(ctx, prints)
    if found:
        return found
    record = ctx.record
    labels = {log.facts.score.label for log in (record.scored_logs() if record else []) if log.facts.score}
    if not labels:
        return [p for p in prints if any("bpb" in f or "val_loss" in f for f in p.detail.get("fragments", ()))]
    return [
        p for p in prints if any(_writes_label(f, label) for f in p.detail.get("fragments", ()) for label in labels)
    ]


def _writes_any(event: Event, lines: list[str]) -> bool:
    """The print's literal text all shows in one of the lines (so it wrote that line)."""
    fragments = event.detail.get("fragments", ())
    return bool(fragments) and any(all(f in line for f in fragments) for line in lines)


_NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d+")


def claimed_lines(ctx: ScriptContext) -> list[str]:
    """Log lines that print a val_bpb submission.json claims, to the JSON's own precision."""
    record = ctx.record
    if record is None or record.submission is None:
        return []
    claims = _claimed_bpb(record.submission.raw)
    if not claims:
        return []
    from .logsignals import from_record

    out: list[str] = []
    for text in from_record(record).texts:
        for line in text.splitlines():
            if "bpb" not in line.lower() and "mix" not in line.lower():
                continue
            numbers = [float(m) for m in _NUMBER.findall(line)]
            if any(abs(n - value) <= 0.5 * 10**-places for n in numbers for value, places in claims):
                out.append(line)
    return out


def _mean_matches(ctx: ScriptContext, prints: list[Event]) -> list[Event]:
    """Prints whose number, averaged over the seeds' logs, is the mean val_bpb the JSON claims."""
    record = ctx.record
    if record is None or record.submission is None:
        return []
    claims = [c for c in _claimed_bpb(record.submission.raw) if c[1] >= 3]
    from .logsignals import from_record

    texts = from_record(record).texts
    if len(texts) < 2 or not claims:
        return []
    found = []
    for event in prints:
        columns = _printed_numbers(event, texts)
        if columns and any(
            abs(sum(col) / len(col) - value) <= 0.5 * 10**-places + 1e-9 for col in columns for value, places in claims
        ):
            found.append(event)
    return found


def _printed_numbers(event: Event, texts: list[str]) -> list[list[float]]:
    """Per number position, the value each log's last line from this print shows (all logs, or none)."""
    fragments = event.detail.get("fragments", ())
    if not fragments:
        return []
    rows = []
    for text in texts:
        lines = [line for line in text.splitlines() if all(f in line for f in fragments)]
        if not lines:
            return []
        rows.append([float(m) for m in _NUMBER.findall(lines[-1])])
    width = min(len(r) for r in rows)
    return [[r[j] for r in rows] for j in range(width)]


def _claimed_bpb(raw: object, key: str = "", parent: str = "") -> list[tuple[float, int]]:
    """(value, decimals) of every val_bpb the JSON claims: top level, per seed, in seed tables."""
    found: list[tuple[float, int]] = []
    if isinstance(raw, dict):
        for k, v in raw.items():
            found += _claimed_bpb(v, str(k), key)
    elif isinstance(raw, list):
        for v in raw:
            found += _claimed_bpb(v, key, parent)
    elif isinstance(raw, float) and 0.1 < raw < 10:
        name = key.lower()
        seedish = parent.lower().startswith(("val_bpb", "seed")) and ("seed" in name or name.isdigit())
        if name in ("val_bpb", "mean_val_bpb", "val_bpb_mean") or seedish:
            text = repr(raw)
            places = len(text.split(".")[1]) if "." in text and "e" not in text else 6
            found.append((raw, max(places, 2)))
    return found


def reported_scores(ctx: ScriptContext) -> list[Event]:
    scores = val_scores(ctx.events)
    ids = reported_ids(ctx)
    mine = [s for s in scores if s.detail.get("sid") in ids] if ids else []
    return mine or scores


def is_throwaway(update: Event, events: list[Event], scores: list[Event]) -> bool:
    """Optimizer over a deep copy, or the state restored before the next score."""
    if update.optim is not None and "copy" in update.optim.labels:
        return True
    if _per_pass_object(update, events):
        return True
    later_scores = [s.seq for s in scores if s.seq > update.seq]
    horizon = min(later_scores) if later_scores else None
    return any(
        e.kind == ev.RESTORE
        and e.seq > update.seq
        and (horizon is None or e.seq < horizon)
        and not e.shares_loop(update)
        for e in events
    )


def _per_pass_object(update: Event, events: list[Event]) -> bool:
    """The optimizer steps an object made for the purpose (a compile warm-up's LoRA made anew on
    each pass, a probe made in the function that fits it) which no score reads and nothing
    saves afterwards: thrown away. An object made elsewhere (the model, built by a helper) is not."""
    owners = {label for label in update.optim.labels if label.startswith("new")} if update.optim else set()
    if not owners:
        return False
    made = {e.detail.get("label"): e for e in events if e.kind == ev.NEW}
    for label in owners:
        new = made.get(label)
        if new is None:
            return False
        per_pass = bool(new.loops) and new.loops[-1] in update.loops
        local = len(new.frames) > 1 and update.frames[: len(new.frames)] == new.frames
        if not (per_pass or local):
            return False
        if any(label in e.labels for e in events if e.kind == ev.SCORE and "val" in e.labels):
            return False  # an adapter a score reads (on any path) is test-time training, judged as such
        if any(label in e.labels for e in events if e.seq > update.seq and e.kind == ev.SAVE):
            return False
    return True


def judge_update(update: Event, events: list[Event], reported: list[Event] | None = None) -> UpdateJudgement:
    """Where an update sits against the scores: in their loop after them (legal), before them, or not at all."""
    scores = [s for s in val_scores(events) if not s.excludes(update)]
    final = [s for s in reported if not s.excludes(update)] if reported else scores
    before = [s for s in scores if s.seq < update.seq]
    scored_before = before[-1] if before else None
    later_passes = [s for s in final if s.seq > update.seq and not s.shares_loop(update)]
    in_loop = [s for s in scores if s.shares_loop(update)]
    in_loop_reported = [s for s in in_loop if s in final] or (in_loop if not reported else [])
    rescored = later_passes[0] if later_passes else None
    if is_throwaway(update, events, scores):
        legal = [s for s in in_loop_reported if s.seq < update.seq]
        if not legal:
            return UpdateJudgement(
                update, "throwaway", rescored or (in_loop[0] if in_loop else None), None, scored_before
            )
    if later_passes and not in_loop_reported:
        # the model (or cache) the reported pass scores with was changed on validation tokens first
        return UpdateJudgement(update, "before_pass", later_passes[0], rescored, scored_before)
    first = [s for s in in_loop_reported if s.seq < update.seq]
    legal = [s for s in first if not (s.loopvar_guards & set(update.loops))]
    repeated = [s for s in legal if repeats(s, update)]
    if repeated:
        # score-first inside, but an enclosing loop goes over the same tokens again after the update
        return UpdateJudgement(update, "rescored_each_pass", repeated[-1], rescored, scored_before)
    if legal:
        return UpdateJudgement(update, "score_first", legal[-1], rescored, scored_before)
    if first:
        return UpdateJudgement(update, "last_epoch_only", first[-1], rescored, scored_before)
    after = [s for s in in_loop_reported if s.seq > update.seq]
    if after:
        return UpdateJudgement(update, "adapt_first", after[0], rescored, scored_before)
    if later_passes:
        return UpdateJudgement(update, "before_pass", later_passes[0], rescored, scored_before)
    return UpdateJudgement(update, "after_all", None, None, scored_before)


def repeats(score: Event, update: Event) -> bool:
    """A loop around both whose variable selects none of the scored data: every pass re-scores
    tokens the previous pass trained on (an epoch loop around score-then-train chunks)."""
    shared = [loop for loop in score.loops if loop in update.loops]
    return len(shared) >= 2 and any(loop > 0 and f"lv{loop}" not in score.labels for loop in shared[:-1])


def eval_frames(events: list[Event]) -> set[int]:
    """Call instances that directly hold a validation score: the evaluation path."""
    return {s.frames[-1] for s in val_scores(events) if len(s.frames) > 1}


def on_eval_path(event: Event, events: list[Event]) -> bool:
    frames = eval_frames(events)
    if frames & set(event.frames):
        return True
    train_updates = [e.seq for e in events if e.kind == ev.UPDATE and "train" in e.labels]
    scores = [s.seq for s in val_scores(events)]
    if not scores:
        return False
    last_train = max(train_updates) if train_updates else -1
    final_scores = [s for s in scores if s > last_train]
    return bool(final_scores) and event.seq > last_train and event.seq <= max(final_scores)
