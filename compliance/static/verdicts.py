"""Judgements over the trace shared by several legality checks (RULES.md §4 C1-C4).

An update on validation data (an optimizer step, a cache or table write) is judged
against the scores that make the reported number: the scores whose running sums
reach the print of the metric the record's logs report as final. A diagnostic pass
after the reported one, or one the run never prints, does not count against it.
Without logs (a lone script), every score counts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import events as ev
from .events import Event

if TYPE_CHECKING:
    from . import ScriptContext


@dataclass
class UpdateJudgement:
    update: Event
    kind: str                  # "score_first" (legal) | "adapt_first" | "last_epoch_only" | "before_pass"
                               # | "after_all" | "throwaway"
    score: Event | None        # the score it is judged against
    rescored: Event | None = None   # a later score pass over the same data (C4)
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


def reported_ids(ctx: "ScriptContext") -> set[str] | None:
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


def reported_scores(ctx: "ScriptContext") -> list[Event]:
    scores = val_scores(ctx.events)
    ids = reported_ids(ctx)
    mine = [s for s in scores if s.detail.get("sid") in ids] if ids else []
    return mine or scores


def is_throwaway(update: Event, events: list[Event], scores: list[Event]) -> bool:
    """Optimizer over a deep copy, or the state restored before the next score."""
    if update.optim is not None and "copy" in update.optim.labels:
        return True
    later_scores = [s.seq for s in scores if s.seq > update.seq]
    horizon = min(later_scores) if later_scores else None
    return any(e.kind == ev.RESTORE and e.seq > update.seq and (horizon is None or e.seq < horizon)
               and not e.shares_loop(update) for e in events)


def judge_update(update: Event, events: list[Event], reported: list[Event] | None = None) -> UpdateJudgement:
    """Where an update sits against the scores: in their loop after them (legal), before them, or not at all."""
    scores = val_scores(events)
    final = reported if reported else scores
    before = [s for s in scores if s.seq < update.seq]
    scored_before = before[-1] if before else None
    later_passes = [s for s in final if s.seq > update.seq and not s.shares_loop(update)]
    in_loop = [s for s in scores if s.shares_loop(update)]
    in_loop_reported = [s for s in in_loop if s in final] or (in_loop if not reported else [])
    rescored = later_passes[0] if later_passes else None
    if is_throwaway(update, events, scores):
        legal = [s for s in in_loop_reported if s.seq < update.seq]
        if not legal:
            return UpdateJudgement(update, "throwaway", rescored or (in_loop[0] if in_loop else None),
                                   None, scored_before)
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
