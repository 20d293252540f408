"""Static rules on which data a run touches (RULES.md §2-§3): kind `script` checks.

Validation data may not train, calibrate or be stored; training data may not be
read once training is over (unless the training budget reserved the time for it)
nor reach a validation score; the evaluation makes no network calls.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..report import Finding
from ..rules import Rule, check
from ..static import ScriptContext
from ..static import events as ev
from ..static.events import Event
from ..static.findings import finding, worst_first
from ..static.verdicts import on_eval_path, val_scores, val_updates

_LISTING = {"glob", "iglob", "listdir", "scandir", "exists", "stat", "is_file"}


@check("script.gptq_calib", kind="script")
def gptq_calib(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    calib = ctx.of_kind(ev.CALIB)
    for event in worst_first([e for e in calib if "val" in e.labels]):
        yield finding(rule, ctx, event, "quantization calibration hooks are fed validation tokens")
    late = [e for e in calib if "train" in e.labels and "val" not in e.labels and _after_training_loop(ctx, e)]
    reserve = reserve_evidence(ctx) if late else None
    for event in worst_first(late):
        if reserve:
            yield finding(
                rule,
                ctx,
                event,
                "quantization calibrates on training data after the training loop, "
                f"inside the time the run reserved for it ({reserve})",
                severity="info",
                reserve=reserve,
            )
        else:
            yield finding(
                rule,
                ctx,
                event,
                "quantization calibrates on training data after the training loop "
                "with no time reserved for it in the 600 s budget (PR #593)",
            )


@check("script.no_val_in_train", kind="script")
def no_val_in_train(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    for update in val_updates(ctx.events):
        if "train" in update.labels:
            yield finding(rule, ctx, update, "validation tokens are mixed into the training stream")
    for event in worst_first([e for e in ctx.of_kind(ev.SAVE) if "val" in e.labels and not _metrics(e)]):
        yield finding(rule, ctx, event, "data derived from validation tokens is stored in the artifact")
    for event in worst_first(ctx.of_kind(ev.TOKENIZER)):
        yield finding(rule, ctx, event, "a tokenizer is trained on validation data")


def _metrics(save: Event) -> bool:
    """`json.dump({"val_bpb": ...})`: the score written out as a result, not weights or tables."""
    return save.detail.get("call") == "json.dump" and any(label.startswith("score#") for label in save.labels)


def _content_reads(events: list[Event]) -> list[Event]:
    return [
        e
        for e in events
        if e.kind == ev.READ
        and "train" in e.labels
        and e.detail.get("call") not in _LISTING
        and not str(e.detail.get("call", "")).endswith(tuple(f".{n}" for n in _LISTING))
    ]


def _training_steps(events: list[Event]) -> list[Event]:
    return [
        e
        for e in events
        if e.kind == ev.UPDATE and "train" in e.labels and "val" not in e.labels and e.activity != "off"
    ]


def _after_training_loop(ctx: ScriptContext, event: Event) -> bool:
    steps = _training_steps(ctx.events)
    if not steps:
        return False
    last = max(steps, key=lambda e: e.seq)
    return event.seq > last.seq and not event.shares_loop(last)


def _after_training(ctx: ScriptContext) -> list[Event]:
    """Content reads of training shards traced after the last training step, outside the training loop."""
    return [r for r in _content_reads(ctx.events) if _after_training_loop(ctx, r)]


def reserve_evidence(ctx: ScriptContext) -> str | None:
    """Why reading training data after the loop is still inside the 600 s: a reserved slice of it."""
    record = ctx.record
    for log in record.scored_logs() if record else []:
        facts = log.facts
        if facts.gptq_reserve_ms:
            return f"{log.rel}:{facts.lines.get('gptq_reserve_ms', '?')} reserves {facts.gptq_reserve_ms / 1000:g} s"
        for key, value in facts.hyperparams.items():
            if "reserve" in key.lower() and _positive(value):
                return f"{log.rel}:{facts.lines.get(f'hyperparams.{key}', '?')} {key}: {value}"
        if (
            facts.train_time_ms
            and facts.gptq_hessian_s is not None
            and facts.train_time_ms + 1000 * facts.gptq_hessian_s <= 600_000
        ):
            return f"{log.rel}: training {facts.train_time_ms / 1000:.1f} s + calibration {facts.gptq_hessian_s} s"
    for key, value in ctx.config.items():
        if key.lower() == "max_wallclock_seconds" and _positive(value) and float(value) < 600:
            return f"the run caps training at {float(value):g} s ({key}={value})"
    resolver = ctx.resolver
    for env_key, name in resolver.used_env.items() if resolver else []:
        knob = resolver.attrs.get(name, resolver.names.get(name)) if resolver else None
        if "RESERVE" in env_key.upper() and _positive(knob):
            return f"the script reserves {env_key}={knob}"
    return None


def _positive(value: object) -> bool:
    try:
        return float(str(value)) > 0
    except ValueError:
        return False


def _calibrates(ctx: ScriptContext, read: Event) -> bool:
    """The read happens where quantization collects its statistics (hooks registered, or Hessians)."""
    return any(e.kind == ev.CALIB and set(e.frames) & set(read.frames) for e in ctx.events)


@check("script.no_train_in_eval", kind="script")
def no_train_in_eval(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    """Training tokens that reach a validation score fail; a late read that feeds no score is only noted.

    Quantization calibration on training data after the loop is R-GPTQ-CALIB's; other late reads
    (a temperature fitted on a few training batches, PR #640) were accepted.
    """
    events = ctx.events
    calibrating = {f for e in ctx.of_kind(ev.CALIB) for f in e.frames}
    late = [r for r in _after_training(ctx) if not set(r.frames[1:]) & calibrating]
    for read in worst_first(late):
        yield finding(
            rule,
            ctx,
            read,
            "training shards are read after the training loop (no score is traced to depend on them)",
            severity="warn",
        )
    saved = any("train" in e.labels for e in ctx.of_kind(ev.SAVE))
    for score in worst_first([s for s in val_scores(events) if "train" in s.labels]):
        if late or not _training_steps(events):
            yield finding(
                rule,
                ctx,
                score,
                "the score depends on training tokens read at evaluation "
                "(e.g. an n-gram table prefilled from training shards, not in the artifact)",
                score=score,
            )
        elif not saved:
            # read inside the training loop only: a table the training built, but not traced into the artifact
            yield finding(
                rule,
                ctx,
                score,
                "the score depends on a table built from training tokens during "
                "training that is not traced into the saved artifact: whether the artifact carries it "
                "needs a person",
                score=score,
                severity="review",
            )


@check("script.network", kind="script")
def network(ctx: ScriptContext, rule: Rule) -> Iterator[Finding]:
    events = ctx.events
    for event in worst_first(ctx.of_kind(ev.NETWORK)):
        call = event.detail.get("call")
        if on_eval_path(event, events):
            yield finding(rule, ctx, event, f"network use ({call}) on the evaluation path")
        else:
            yield finding(rule, ctx, event, f"network use ({call}) outside the evaluation path", severity="warn")
