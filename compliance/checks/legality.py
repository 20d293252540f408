"""Static legality rules over the script trace (RULES.md §3, §4): kind `script` checks.

Each check receives a pgolf.compliance.static.ScriptContext. Findings point at
the offending operation; `evidence` carries the line of the score it is judged
against. A finding in a branch the run's configuration switches off is
reported inactive, as info.
"""
from __future__ import annotations

from typing import Iterator

from ..report import Finding
from ..rules import Rule, check
from ..static import ScriptContext
from ..static import events as ev
from ..static.events import Event
from ..static.verdicts import (eval_frames, is_fresh, judge_update, on_eval_path, val_scores,
                               val_updates)


def _finding(rule: Rule, ctx: ScriptContext, event: Event, message: str, *, severity: str | None = None,
             score: Event | None = None, **evidence) -> Finding:
    sev = severity or rule.severity
    if not event.active:
        sev = "info" if sev in ("fail", "review") else sev
        message = f"{message} [switched off by the run's configuration]"
    data = {"operation_line": event.line, **{k: v for k, v in evidence.items() if v is not None}}
    if score is not None:
        data["score_line"] = score.line
    return rule.finding(message, file=ctx.path, line=event.line, severity=sev, active=event.active,
                        evidence=data)


def _parse_problem(rule: Rule, ctx: ScriptContext) -> Iterator[Finding]:
    if ctx.parse_error:
        yield rule.finding(f"script not analysed: {ctx.parse_error}", file=ctx.path, severity="review")


def _model_updates(ctx: ScriptContext) -> list[Event]:
    return [u for u in val_updates(ctx.events) if not is_fresh(u)]


@check("script.ttt_score_first", kind="script")
def ttt_score_first(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    yield from _parse_problem(rule, ctx)
    for update in _model_updates(ctx):
        j = judge_update(update, ctx.events)
        if j.kind == "adapt_first":
            yield _finding(rule, ctx, update, "C3: steps on validation tokens before the same loop scores "
                           f"them (score at line {j.score.line})", score=j.score)
        elif j.kind == "last_epoch_only":
            yield _finding(rule, ctx, update, "C3: the score runs only in some iterations of a loop that "
                           f"also trains (score at line {j.score.line}): tokens trained on before scored",
                           score=j.score)


@check("script.no_prequant_ttt", kind="script")
def no_prequant_ttt(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    yield from _parse_problem(rule, ctx)
    for update in _model_updates(ctx):
        j = judge_update(update, ctx.events)
        if j.kind != "before_pass" or "train" in update.labels:
            continue
        if j.scored_before is not None:
            msg = (f"C3: validation scored (line {j.scored_before.line}), adapted on, then scored again "
                   f"(line {j.score.line}) for the report")
        else:
            msg = f"C3: optimizer steps on validation tokens before the scoring pass (line {j.score.line})"
        yield _finding(rule, ctx, update, msg, score=j.score)


@check("script.single_pass", kind="script")
def single_pass(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    yield from _parse_problem(rule, ctx)
    events = ctx.events
    for update in _model_updates(ctx):
        j = judge_update(update, events)
        if j.kind in ("score_first", "before_pass") and j.scored_before is not None and j.rescored is not None:
            yield _finding(rule, ctx, update, f"C4: validation re-scored (line {j.rescored.line}) after "
                           f"adapting on tokens already scored (line {j.scored_before.line})", score=j.rescored)
    scores = val_scores(events)
    for write in (e for e in events if e.kind == ev.TABLE_WRITE):
        if any(s.shares_loop(write) and s.seq < write.seq for s in scores):
            continue
        later = [s for s in scores if s.seq > write.seq and not s.shares_loop(write)]
        if later:
            yield _finding(rule, ctx, write, "C4: a table/cache is filled from validation tokens before the "
                           f"pass that scores them (line {later[0].line}): two-pass", score=later[0])
    for best in (e for e in events if e.kind == ev.BEST_OF):
        yield _finding(rule, ctx, best, "C4: keeps the better of two validation scores")


@check("script.no_ngram_leak", kind="script")
def no_ngram_leak(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    yield from _parse_problem(rule, ctx)
    seen: set[int] = set()
    for event in ctx.of_kind(ev.NGRAM_KEY):
        if event.line in seen:
            continue
        seen.add(event.line)
        yield _finding(rule, ctx, event, "C1/C2: a hashed table is addressed by a key that mixes in the "
                       "target token: only the realized token gets a probability")


def _fresh_updates(ctx: ScriptContext) -> list[tuple[Event, bool]]:
    """Updates of a fitted delta/bias, with whether it is created inside a scoring loop."""
    scores = val_scores(ctx.events)
    out = []
    for update in val_updates(ctx.events):
        if not is_fresh(update):
            continue
        loops = update.optim.loops
        per_window = bool(loops) and any(loops[-1] in s.loops for s in scores)
        out.append((update, bool(per_window)))
    return out


@check("script.no_slot", kind="script")
def no_slot(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    yield from _parse_problem(rule, ctx)
    for update, per_window in _fresh_updates(ctx):
        if not per_window:
            continue
        j = judge_update(update, ctx.events)
        if j.kind == "score_first":
            yield _finding(rule, ctx, update, "per-window delta fitted only on already-scored positions "
                           "(causal SLOT variant, PR #1333): no ruling, needs review", severity="review",
                           score=j.score)
        elif j.score is not None:
            yield _finding(rule, ctx, update, "C1/C3: per-window delta/bias optimized on the window's own "
                           f"targets, then used to score them (line {j.score.line})", score=j.score)


@check("script.no_etlb", kind="script")
def no_etlb(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    yield from _parse_problem(rule, ctx)
    for update, per_window in _fresh_updates(ctx):
        if per_window:
            continue
        j = judge_update(update, ctx.events)
        if j.kind in ("adapt_first", "before_pass", "last_epoch_only"):
            yield _finding(rule, ctx, update, "C3: a bias vector is fitted by gradient on validation targets "
                           f"before they are scored (line {j.score.line})", score=j.score)


@check("script.gptq_calib", kind="script")
def gptq_calib(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    yield from _parse_problem(rule, ctx)
    seen: set[int] = set()
    for event in ctx.of_kind(ev.CALIB):
        if "val" in event.labels and event.line not in seen:
            seen.add(event.line)
            yield _finding(rule, ctx, event, "quantization calibration hooks are fed validation tokens")


@check("script.no_val_in_train", kind="script")
def no_val_in_train(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    yield from _parse_problem(rule, ctx)
    for update in val_updates(ctx.events):
        if "train" in update.labels:
            yield _finding(rule, ctx, update, "validation tokens are mixed into the training stream")
    for event in ctx.of_kind(ev.SAVE):
        if "val" in event.labels:
            yield _finding(rule, ctx, event, "data derived from validation tokens is stored in the artifact")
    for event in ctx.of_kind(ev.TOKENIZER):
        yield _finding(rule, ctx, event, "a tokenizer is trained on validation data")


@check("script.no_train_in_eval", kind="script")
def no_train_in_eval(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    yield from _parse_problem(rule, ctx)
    events = ctx.events
    frames = eval_frames(events)
    for read in ctx.of_kind(ev.READ):
        if "train" in read.labels and frames & set(read.frames):
            yield _finding(rule, ctx, read, "training shards are read on the evaluation path")
    seen: set[int] = set()
    for score in val_scores(events):
        if "train" in score.labels and score.line not in seen:
            seen.add(score.line)
            yield _finding(rule, ctx, score, "the score depends on training tokens read at evaluation "
                           "(e.g. an n-gram table prefilled from training shards, not in the artifact)",
                           score=score)


@check("script.network", kind="script")
def network(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    yield from _parse_problem(rule, ctx)
    events = ctx.events
    for event in ctx.of_kind(ev.NETWORK):
        call = event.detail.get("call")
        if on_eval_path(event, events):
            yield _finding(rule, ctx, event, f"network use ({call}) on the evaluation path")
        else:
            yield _finding(rule, ctx, event, f"network use ({call}) outside the evaluation path",
                           severity="warn")


@check("script.ttt_warmup", kind="script")
def ttt_warmup(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    yield from _parse_problem(rule, ctx)
    for update in _model_updates(ctx):
        j = judge_update(update, ctx.events)
        if j.kind == "throwaway":
            yield _finding(rule, ctx, update, "warm-up steps on validation tokens on throw-away state "
                           "(accepted in PR #1530)", score=j.score)


@check("script.bos_leak", kind="script")
def bos_leak(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    yield from _parse_problem(rule, ctx)
    from ..static.structure import unmasked_prev_token_mixing
    if ctx.module is None:
        return
    for line in unmasked_prev_token_mixing(ctx.module):
        yield rule.finding("C1: previous-token mixing with no BOS mask: a document's first token may see "
                           "the previous document (PR #1797; disputed, issue #1988)", file=ctx.path, line=line)
