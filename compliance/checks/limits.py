"""R-SIZE, R-TRAIN-TIME, R-EVAL-TIME, R-TRACK-HW: the caps, per seed, from the logs."""
from __future__ import annotations

import math
import re
from typing import Iterator

from .. import unpack
from ..context import RecordContext
from ..record import LogRecord
from ..report import Finding
from ..rules import Rule, check


@check("record.size")
def size(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    cap = int(rule.params["max_bytes"])
    measured = False
    for log in ctx.logs():
        total, fact = ctx.total_bytes(log)
        if total is None:
            continue
        measured = True
        line = ctx.line(log, fact)
        if total > cap:
            yield _over_cap(ctx, rule, log, total, cap, line)
        yield from _code_bytes_match(ctx, rule, log)
    if not measured:
        yield from _size_from_json(ctx, rule, cap)


def _over_cap(ctx: RecordContext, rule: Rule, log: LogRecord, total: int, cap: int, line: int | None) -> Finding:
    """Readable code over the cap may still fit packed, as accepted from PR #1285 on (PR #1412)."""
    message = f"seed {log.seed}: {total:,} bytes is {total - cap:,} over the {cap:,}-byte cap"
    evidence = {"bytes_total": total, "cap": cap}
    script = ctx.record.script
    if script is not None and not script.layers and log.facts.bytes_model is not None:
        packed = log.facts.bytes_model + len(unpack.build_wrapper(script.text).encode("utf-8"))
        evidence["bytes_total_packed"] = packed
        if packed <= cap:
            return rule.finding(f"{message}; {packed:,} with the code packed as an lzma+b85 wrapper "
                                f"(accepted so in PR #1412)", file=log.rel, line=line, severity="review",
                                evidence=evidence)
    return rule.finding(message, file=log.rel, line=line, evidence=evidence)


def _size_from_json(ctx: RecordContext, rule: Rule, cap: int) -> Iterator[Finding]:
    sub = ctx.record.submission
    claimed = sub.bytes_total if sub else None
    if claimed is None:
        yield rule.finding("no log states the submission size; cannot verify the cap", severity="review")
    elif claimed > cap:
        yield rule.finding(f"submission.json claims {claimed:,} bytes, over the {cap:,}-byte cap",
                           file=ctx.record.submission_file)
    else:
        yield rule.finding(f"no log states the size; only submission.json's own claim ({claimed:,} bytes)",
                           file=ctx.record.submission_file, severity="warn")


def _code_bytes_match(ctx: RecordContext, rule: Rule, log: LogRecord) -> Iterator[Finding]:
    script, logged = ctx.record.script, log.facts.bytes_code
    if script is None or logged is None or logged == script.raw_bytes:
        return
    yield rule.finding(f"log counts {logged:,} code bytes but {script.rel} has {script.raw_bytes:,}",
                       file=log.rel, line=ctx.line(log, "bytes_code"), severity="warn")


def _time_cap(ctx: RecordContext, rule: Rule) -> tuple[float, str]:
    """The rule's cap in ms and how to name it. Where the ruleset allows it (cpu-smoke), the cap is
    widened by the calibration scale the record states, never by more than the ruleset's bound."""
    cap = float(rule.params["max_ms"])
    bound = float(rule.params.get("max_calibration_scale", 1.0))
    scale = min(max(_stated_scale(ctx), 1.0), bound) if bound > 1.0 else 1.0
    if scale == 1.0:
        return cap, f"{cap / 1000:.0f} s cap"
    return cap * scale, f"{cap * scale / 1000:.0f} s cap ({cap / 1000:.0f} s x the stated calibration {scale:.2f})"


def _stated_scale(ctx: RecordContext) -> float:
    sub = ctx.record.submission
    stated = sub.raw.get("pgolf") if sub is not None else None
    calibration = stated.get("calibration") if isinstance(stated, dict) else None
    scale = calibration.get("scale") if isinstance(calibration, dict) else None
    if isinstance(scale, (int, float)) and not isinstance(scale, bool) and math.isfinite(scale):
        return float(scale)
    return 1.0


@check("record.train_time")
def train_time(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    cap, cap_name = _time_cap(ctx, rule)
    for log in ctx.logs():
        facts = log.facts
        if facts.train_time_ms is None:
            yield rule.finding("no training time in the log", file=log.rel, severity="warn")
            continue
        line = ctx.line(log, "train_time_ms")
        step_ms = facts.train_time_ms / facts.last_step if facts.last_step else 0.0
        slack = rule.params.get("tolerated_steps", 1) * step_ms * rule.params.get("step_slack_factor", 1.0)
        over = facts.train_time_ms - cap
        if over > slack:
            yield rule.finding(f"seed {log.seed}: training took {facts.train_time_ms / 1000:.1f} s, over the "
                               f"{cap_name} by more than one step ({step_ms:.0f} ms)",
                               file=log.rel, line=line, evidence={"train_time_ms": facts.train_time_ms})
        elif over > 0:
            yield rule.finding(f"seed {log.seed}: {over:.0f} ms over the cap, within one step: tolerated",
                               file=log.rel, line=line, severity="info")
        yield from _hessian_time(ctx, rule, log, cap)


def _hessian_time(ctx: RecordContext, rule: Rule, log: LogRecord, cap: float) -> Iterator[Finding]:
    """GPTQ calibration on training data counts as training unless a reserve was set aside for it."""
    facts = log.facts
    if facts.gptq_hessian_s is None or facts.gptq_reserve_ms is not None or facts.train_time_ms is None:
        return
    total = facts.train_time_ms + facts.gptq_hessian_s * 1000
    if total > cap:
        yield rule.finding(f"seed {log.seed}: training + Hessian collection = {total / 1000:.1f} s with no "
                           f"reserve (accepted before in PR #1493, #1855; needs a ruling)",
                           file=log.rel, line=ctx.line(log, "gptq_hessian_s"), severity="review")


@check("record.eval_time")
def eval_time(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    cap, cap_name = _time_cap(ctx, rule)
    for log in ctx.logs():
        score = log.facts.score
        if score is None or score.eval_time_ms is None:
            continue
        if score.eval_time_ms > cap:
            yield rule.finding(f"seed {log.seed}: scored evaluation took {score.eval_time_ms / 1000:.1f} s, "
                               f"over the {cap_name}", file=log.rel, line=score.line,
                               evidence={"eval_time_ms": score.eval_time_ms})


@check("record.track_hw")
def track_hw(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    want = rule.params["world_size"]
    pattern = re.compile(rule.params["gpu_pattern"])
    for log in ctx.logs():
        facts = log.facts
        if facts.world_size is not None and facts.world_size != want:
            yield rule.finding(f"seed {log.seed}: world_size {facts.world_size}, the track runs on {want}",
                               file=log.rel, line=ctx.line(log, "world_size"))
        others = sorted({g for g in facts.gpu_names if not pattern.search(g)})
        if others:
            yield rule.finding(f"seed {log.seed}: GPUs {', '.join(others)} are not {rule.params['gpu_pattern']}",
                               file=log.rel, line=ctx.line(log, "gpu_names"))
