"""Static legality of how a score is computed (RULES.md §4, C1-C4): kind `script` checks.

Each check receives a pgolf.compliance.static.ScriptContext and judges the ordered
trace of scores and updates. Findings point at the offending operation; evidence
carries the line of the score it is judged against and whether the path ran
(static/findings.py applies the verdict policy).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..report import Finding
from ..rules import Rule, check
from ..static import ScriptContext
from ..static import events as ev
from ..static.events import Event
from ..static.findings import finding, first_per_line, worst_first
from ..static.verdicts import is_fresh, judge_update, table_writes, val_scores, val_updates


def _line(event: Event | None) -> str:
    """The line of the score a verdict names (every kind that names one has it)."""
    return str(event.line) if event is not None else "?"


def _model_updates(ctx: ScriptContext) -> list[Event]:
    return [u for u in val_updates(ctx.events) if not is_fresh(u)]


@check("script.ttt_score_first", kind="script")
def ttt_score_first(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    for update in _model_updates(ctx):
        j = judge_update(update, ctx.events, ctx.reported)
        if j.kind == "adapt_first":
            yield finding(
                rule,
                ctx,
                update,
                f"C3: steps on validation tokens before the same loop scores them (score at line {_line(j.score)})",
                score=j.score,
            )
        elif j.kind == "rescored_each_pass":
            yield finding(
                rule,
                ctx,
                update,
                "C3/C4: each chunk is scored before it is trained on, but an "
                "enclosing loop goes over the same tokens again: later passes score tokens the "
                f"model already trained on (score at line {_line(j.score)})",
                score=j.score,
            )
        elif j.kind == "last_epoch_only":
            yield finding(
                rule,
                ctx,
                update,
                "C3: the score runs only in some iterations of a loop that "
                f"also trains (score at line {_line(j.score)}): tokens trained on before scored",
                score=j.score,
            )


@check("script.no_prequant_ttt", kind="script")
def no_prequant_ttt(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    for update in _model_updates(ctx):
        j = judge_update(update, ctx.events, ctx.reported)
        if j.kind != "before_pass" or "train" in update.labels:
            continue
        if j.scored_before is not None:
            msg = (
                f"C3: validation scored (line {j.scored_before.line}), adapted on, then scored again "
                f"(line {_line(j.score)}) for the report"
            )
        else:
            msg = f"C3: optimizer steps on validation tokens before the scoring pass (line {_line(j.score)})"
        yield finding(rule, ctx, update, msg, score=j.score)


@check("script.single_pass", kind="script")
def single_pass(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    events = ctx.events
    for update in _model_updates(ctx):
        j = judge_update(update, events, ctx.reported)
        if j.kind in ("score_first", "before_pass") and j.scored_before is not None and j.rescored is not None:
            yield finding(
                rule,
                ctx,
                update,
                f"C4: validation re-scored (line {j.rescored.line}) after "
                f"adapting on tokens already scored (line {j.scored_before.line})",
                score=j.rescored,
            )
    online_loops = ctx.tracer.online_loops if ctx.tracer is not None else set()
    # judged one by one: a helper's write on one line may be legal on one path and a second pass on another
    yield from first_per_line((w, _judge_write(ctx, rule, w, online_loops)) for w in table_writes(events))
    for best in (e for e in events if e.kind == ev.BEST_OF):
        yield finding(rule, ctx, best, "C4: keeps the better of two validation scores")


def _judge_write(ctx: ScriptContext, rule: Rule, write: Event, online_loops: set[int]) -> Finding | None:
    """C3/C4 for one table write: its place against the scores (judge_update)."""
    j = judge_update(write, ctx.events, ctx.reported)
    if j.kind in ("before_pass", "adapt_first") and j.score is not None and online_loops & set(write.loops):
        return finding(
            rule,
            ctx,
            write,
            "C4: a table takes in validation tokens before they are scored "
            f"(line {j.score.line}), in a loop that records each position's hint before "
            "that position's own update (an online, prefix-causal cache): whether the score reads "
            "only those records needs a person",
            score=j.score,
            severity="review",
        )
    if (
        j.kind == "before_pass"
        and j.scored_before is not None
        and write.seq > j.scored_before.seq
        and j.scored_before.shares_loop(write)
    ):
        return finding(
            rule,
            ctx,
            write,
            "C4: a cache filled while scoring (line "
            f"{j.scored_before.line}) holds every validation token before a second pass "
            f"re-scores them with it (line {_line(j.score)}): two-pass",
            score=j.score,
        )
    if j.kind == "before_pass":
        return finding(
            rule,
            ctx,
            write,
            "C4: a table/cache is filled from validation tokens before the "
            f"pass that scores them (line {_line(j.score)}): two-pass",
            score=j.score,
        )
    if j.kind == "score_first" and j.rescored is not None:
        return finding(
            rule,
            ctx,
            write,
            f"C4: a cache filled while scoring (line {_line(j.score)}) holds every "
            "validation token when a later pass re-scores them with it "
            f"(line {j.rescored.line}): two-pass",
            score=j.rescored,
        )
    if j.kind == "adapt_first":
        return finding(
            rule,
            ctx,
            write,
            f"C3: a table/cache takes in validation tokens before the same loop scores them (line {_line(j.score)})",
            score=j.score,
        )
    return None


@check("script.no_ngram_leak", kind="script")
def no_ngram_leak(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    for event in worst_first(ctx.of_kind(ev.NGRAM_KEY)):
        yield finding(
            rule,
            ctx,
            event,
            "C1/C2: a hashed table is addressed by a key that mixes in the "
            "target token: only the realized token gets a probability",
        )


def _fresh_updates(ctx: ScriptContext) -> list[tuple[Event, bool]]:
    """Updates of a fitted delta/bias, with whether it is created inside a scoring loop."""
    scores = val_scores(ctx.events)
    out = []
    for update in val_updates(ctx.events):
        if not is_fresh(update):
            continue
        loops = update.optim.loops if update.optim is not None else ()
        per_window = bool(loops) and any(loops[-1] in s.loops for s in scores)
        out.append((update, bool(per_window)))
    return out


@check("script.no_slot", kind="script")
def no_slot(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    for update, per_window in _fresh_updates(ctx):
        if not per_window:
            continue
        j = judge_update(update, ctx.events, ctx.reported)
        if j.kind == "score_first":
            yield finding(
                rule,
                ctx,
                update,
                "per-window delta fitted only on already-scored positions "
                "(causal SLOT variant, PR #1333): no ruling, needs review",
                severity="review",
                score=j.score,
            )
        elif j.score is not None and "tsub" in update.labels:
            yield finding(
                rule,
                ctx,
                update,
                "per-window delta/bias fitted on part of the window's targets (a "
                f"mask or prefix), then the window is scored with it (line {_line(j.score)}): a "
                "context-only (causal) variant has no ruling (PR #1333, issue #1336); whether the fit "
                "covers scored positions needs a person",
                severity="review",
                score=j.score,
            )
        elif j.score is not None:
            yield finding(
                rule,
                ctx,
                update,
                "C1/C3: per-window delta/bias optimized on the window's own "
                f"targets, then used to score them (line {_line(j.score)})",
                score=j.score,
            )


@check("script.no_etlb", kind="script")
def no_etlb(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    for update, per_window in _fresh_updates(ctx):
        if per_window:
            continue
        j = judge_update(update, ctx.events, ctx.reported)
        if j.kind in ("adapt_first", "before_pass", "last_epoch_only") and "tsub" in update.labels:
            yield finding(
                rule,
                ctx,
                update,
                "a bias vector carried across windows is fitted on part of each "
                f"window's targets (a prefix or mask) before the window is scored (line {_line(j.score)}): "
                "fitted on context only it has no ruling; whether scored targets reach the fit needs "
                "a person (issue #1336)",
                severity="review",
                score=j.score,
            )
        elif j.kind in ("adapt_first", "before_pass", "last_epoch_only"):
            yield finding(
                rule,
                ctx,
                update,
                "C3: a bias vector is fitted by gradient on validation targets "
                f"before they are scored (line {_line(j.score)})",
                score=j.score,
            )


@check("script.ttt_warmup", kind="script")
def ttt_warmup(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    for update in _model_updates(ctx):
        j = judge_update(update, ctx.events, ctx.reported)
        if j.kind == "throwaway":
            yield finding(
                rule,
                ctx,
                update,
                "warm-up steps on validation tokens on throw-away state (accepted in PR #1530)",
                score=j.score,
            )


@check("script.bos_leak", kind="script")
def bos_leak(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    from ..static.structure import unmasked_prev_token_mixing

    if ctx.module is None:
        return
    for line in unmasked_prev_token_mixing(ctx.module):
        yield rule.finding(
            "C1: previous-token mixing with no BOS mask: a document's first token may see "
            "the previous document (PR #1797; disputed, issue #1988)",
            file=ctx.path,
            line=line,
        )


def _reported_values(ctx: ScriptContext) -> list[Event]:
    """What the reported number is made of: its scores, and the print that writes it."""
    from ..static.verdicts import reported_prints

    return ctx.reported + reported_prints(ctx)


@check("script.normalized", kind="script")
def normalized(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    """C2: the reported loss is -log of a distribution over the token vocabulary."""
    values = _reported_values(ctx)
    spread = [e for e in values if "spread" in e.labels]
    for event in worst_first(spread):
        yield finding(
            rule,
            ctx,
            event,
            "C2: each token's probability is spread over its bytes (p^(1/n)) and "
            "scored per byte, mixed with a byte model: not a distribution over the token vocabulary "
            "(issue #1872, PR #1902)",
        )
    if spread:
        return
    for event in worst_first([e for e in values if "bytelevel" in e.labels]):
        yield finding(
            rule,
            ctx,
            event,
            "C2: the reported score is computed byte by byte from the token model's "
            "probabilities; whether the mixture is a distribution over tokens needs a person (a proper "
            "first-byte marginal has no ruling, issue #1872)",
            severity="review",
        )


@check("script.no_target_gate", kind="script")
def no_target_gate(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    """C1: nothing the reported score uses is switched by a property of the token being scored.

    The logs decide a gated channel both ways when the run prints its count (`within_gate=N`):
    a nonzero count shows it fired, zero in every log shows the configuration kept it shut.
    """
    reported = {e.seq for e in _reported_values(ctx)}
    gated = [e for e in val_scores(ctx.events) + _reported_values(ctx) if "tgate" in e.labels]
    if not gated:
        return
    kernels = ctx.of_kind(ev.NATIVE_GATE)
    source = kernels[0] if kernels else None
    where = (
        (
            f" (kernel {source.detail.get('kernel')}:{source.detail.get('kernel_line')} writes "
            f"`{source.detail.get('output')}` from the current token read at line "
            f"{source.detail.get('seed_line')})"
        )
        if source
        else ""
    )
    fired, silent = _gated_counts(ctx)
    for event in worst_first(gated):
        message = f"C1: the score uses a hint switched by a property of the token it scores{where}"
        if fired and silent:
            yield finding(
                rule,
                ctx,
                event,
                f"{message}; of the counts the run prints from it, some are nonzero "
                f"({fired}) and some zero ({silent}): whether the target-gated part fired needs a person",
                severity="review",
            )
        elif fired:
            yield finding(
                rule,
                ctx,
                event,
                f"{message}; the channel fired in the run ({fired})",
                severity=None if event.seq in reported else "review",
            )
        elif silent:
            yield finding(
                rule, ctx, event, f"{message}; the channel never fired in the run ({silent})", severity="info"
            )
        else:
            yield finding(
                rule,
                ctx,
                event,
                f"{message}: the distribution depends on the realized target",
                severity=None if event.seq in reported else "review",
            )


def _gated_counts(ctx: ScriptContext) -> tuple[str | None, str | None]:
    """(a printed count from a gated output that is nonzero in some log, one that is zero in every log).

    Each count is judged over all logs: a field nonzero anywhere fired; a field zero everywhere
    stayed shut. A count that mixes the gated channel with others can be nonzero while the
    gated part never fired, so both together are no proof either way."""
    import re

    from ..static.logsignals import from_record

    prefixes = sorted({p for e in ctx.of_kind(ev.LOG) for p in e.detail.get("gated_fields", ())})
    if not prefixes:
        return None, None
    logs = from_record(ctx.record)
    fired: dict[str, str] = {}
    zero: dict[str, str] = {}
    for name, text in zip(logs.names, logs.texts, strict=True):
        for prefix in prefixes:
            for m in re.finditer(re.escape(prefix) + r"\s*(-?[0-9]+)(?![0-9.eE])", text):  # counts, not rates
                where = f"`{prefix}{m.group(1)}` in {name}:{text.count(chr(10), 0, m.start()) + 1}"
                try:
                    value = float(m.group(1))
                except ValueError:
                    continue
                (fired if value != 0 else zero).setdefault(prefix, where)
    silent = [where for prefix, where in zero.items() if prefix not in fired]
    return (next(iter(fired.values()), None), silent[0] if silent else None)
