"""Judgements over the trace shared by several legality checks (RULES.md §4 C1-C4)."""
from __future__ import annotations

from dataclasses import dataclass

from . import events as ev
from .events import Event


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


def is_fresh(update: Event) -> bool:
    return update.optim is not None and "fresh" in update.optim.labels


def is_throwaway(update: Event, events: list[Event], scores: list[Event]) -> bool:
    """Optimizer over a deep copy, or the state restored before the next score."""
    if update.optim is not None and "copy" in update.optim.labels:
        return True
    later_scores = [s.seq for s in scores if s.seq > update.seq]
    horizon = min(later_scores) if later_scores else None
    return any(e.kind == ev.RESTORE and e.seq > update.seq and (horizon is None or e.seq < horizon)
               and not e.shares_loop(update) for e in events)


def judge_update(update: Event, events: list[Event]) -> UpdateJudgement:
    scores = val_scores(events)
    before = [s for s in scores if s.seq < update.seq]
    after = [s for s in scores if s.seq > update.seq]
    in_loop_first = [s for s in before if s.shares_loop(update)]
    legal = [s for s in in_loop_first if not (s.loopvar_guards & set(update.loops))]
    rescored = next((s for s in after if not s.shares_loop(update)), None)
    scored_before = before[-1] if before else None
    if is_throwaway(update, events, scores) and not legal:
        return UpdateJudgement(update, "throwaway", after[0] if after else None, None, scored_before)
    if legal:
        return UpdateJudgement(update, "score_first", legal[-1], rescored, scored_before)
    if in_loop_first:
        return UpdateJudgement(update, "last_epoch_only", in_loop_first[-1], rescored, scored_before)
    in_loop_after = [s for s in after if s.shares_loop(update)]
    if in_loop_after:
        return UpdateJudgement(update, "adapt_first", in_loop_after[0], rescored, scored_before)
    if after:
        return UpdateJudgement(update, "before_pass", after[0], rescored, scored_before)
    return UpdateJudgement(update, "after_all", None, None, scored_before)


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
