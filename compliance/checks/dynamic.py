"""Dynamic legality rules: kind `dynamic` checks over one traced run (compliance.dynamic).

Each receives a DynamicContext. Findings carry their evidence: positions and the call sites
of the events that decide, nats and p-values, byte totals. numpy and the dynamic modules are
imported by the checks that use them: discovering the checks (every audit) must not pay for them.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from ..report import Finding, listed
from ..rules import Rule, check
from ..textsafe import printable

if TYPE_CHECKING:
    import numpy as np

    from ..dynamic.context import DynamicContext
    from ..dynamic.harness import DynamicRun
    from ..dynamic.ledger import Ledger, Order
    from ..logparse import MetricLine
    from ..sandbox.base import Connection


def _order(ctx: DynamicContext, rule: Rule) -> Order | None:
    return ctx.order(rule.params)


def _ready(ctx: DynamicContext) -> bool:
    return ctx.run is not None and ctx.reported is not None


@check("dynamic.run", kind="dynamic")
def run_state(ctx: DynamicContext, rule: Rule) -> Iterator[Finding]:
    if ctx.run is None:
        yield rule.finding(f"no dynamic run: {ctx.error}", file=ctx.file)
        return
    from ..dynamic.context import LIMITS

    run, ledger = ctx.run, ctx.run.ledger
    base = {
        "canary_sha256": run.canary.sha256,
        "canary_seed": run.canary.seed,
        "targets": run.scored_tokens,
        "k": run.canary.k,
        "wall_s": round(run.wall_s, 1),
        "status": run.status,
        "limits": LIMITS,
        "attempts": run.attempts,
        "budget": run.budget,
        "eval_preset": run.eval_preset.as_dict(),
        "log_tail": [printable(line) for line in run.log_tail],
    }
    if run.status != "ok":
        yield rule.finding(
            f"the traced run did not finish ({_how(run)}){_last_said(ledger)}{_kept(run)}; its last "
            f"{len(run.log_tail)} lines:{_tail_block(run.log_tail)}",
            file=ctx.file,
            evidence=base,
        )
    if ledger.processes == 0:
        yield rule.finding(
            "the tracer never started in the script's processes (nothing under its ledger)",
            file=ctx.file,
            evidence=base,
        )
    elif ctx.reported is None:
        yield rule.finding(
            "the traced run printed no final val_loss the log parser recognizes", file=ctx.file, evidence=base
        )
    elif not ledger.traced:
        yield rule.finding(
            "no cross_entropy/nll_loss call saw canary targets: the scoring runs through ops "
            "the tracer cannot see; only the canary evidence applies",
            file=ctx.file,
            evidence=base,
        )
    for error in ledger.trace_errors:
        yield rule.finding(
            f"the tracer failed on a loss call ({printable(error)}); some events may be missing",
            file=ctx.file,
            evidence=base,
        )
    spawned = ctx.run.ledger.of_kind("subprocess")
    if spawned:
        shown = "; ".join(f"{printable(e['argv'][:80])} at {e['site']}" for e in spawned[:3])
        yield rule.finding(
            f"{len(spawned)} subprocess(es) started: {shown}",
            file=ctx.file,
            severity="info",
            evidence={"subprocesses": [{"argv": e["argv"], "site": e["site"]} for e in spawned[:20]]},
        )
    yield from _preset_findings(ctx, rule)
    yield rule.finding(
        f"traced run: {run.status} in {run.wall_s:.1f}s, {ledger.processes} process(es), "
        f"{len(ledger.pos)} traced targets of a {run.scored_tokens}-token canary{_budget_text(run)}; "
        f"{LIMITS}",
        file=ctx.file,
        severity="info",
        evidence=base,
    )


def _preset_findings(ctx: DynamicContext, rule: Rule) -> Iterator[Finding]:
    """What the run was set to: the run's own configuration, the caps on evaluation work, what no knob bounds."""
    run = ctx.run
    assert run is not None  # run_state returned without a run
    if run.run_config:
        shown = listed([f"{k}={printable(v)[:40]}" for k, v in run.run_config.items()], 16)
        yield rule.finding(
            f"the submitted run's configuration (README, logs): {shown}",
            file=ctx.file,
            severity="info",
            evidence={"run_config": run.run_config},
        )
    preset = run.eval_preset
    if preset.capped:
        yield rule.finding(
            "evaluation work capped (knobs found by data flow): " + ", ".join(c.text() for c in preset.capped),
            file=ctx.file,
            severity="info",
            evidence=preset.as_dict(),
        )
    if preset.unsettable:
        yield rule.finding(
            "evaluation work no knob bounds: "
            + "; ".join(preset.unsettable)
            + f"; bounded by the canary's size ({run.scored_tokens} targets) and the budget",
            file=ctx.file,
            severity="info",
            evidence=preset.as_dict(),
        )
    if run.knobs_ignored:
        shown = ", ".join(run.knobs_ignored[:12]) + (" ..." if len(run.knobs_ignored) > 12 else "")
        yield rule.finding(f"preset knobs not found in the script's source: {shown}", file=ctx.file, severity="info")


def _budget_text(run: DynamicRun) -> str:
    shrunk = [a for a in run.attempts if a.get("status") == "shrunk"]
    budget = run.budget or {}
    parts = []
    if budget.get("train_step_s") is not None:
        parts.append(f"first training step {budget['train_step_s']:.1f}s")
    if budget.get("first_eval_window_s") is not None:
        parts.append(
            f"first eval window {budget['first_eval_window_s']:.1f}s "
            f"({budget['first_eval_window_targets']} targets) at {budget['eval_start_s']:.0f}s"
        )
    for attempt in shrunk:
        parts.append(
            f"a {attempt['tokens']}-token canary was stopped after {attempt['wall_s']:.0f}s ({attempt['why']})"
        )
    return ("; " + "; ".join(parts)) if parts else ""


def _how(run: DynamicRun) -> str:
    stalled = next((note for note in run.notes if note.startswith("stalled:")), None)
    if stalled is not None:
        return f"{stalled}; stopped after {run.wall_s:.0f}s"
    if run.status == "timeout":
        return f"killed at its {run.wall_s:.0f}s cap"
    return f"exit {run.returncode}"


def _last_said(ledger: Ledger) -> str:
    said = ledger.last_output()
    if said is None:
        return ""
    text, before = said
    return f"; the script's last output, {before:.0f}s before the end: `{printable(text)[:200]}`"


def _kept(run: DynamicRun) -> str:
    if run.workdir is not None:
        return f"; log and ledger kept in {run.workdir}"
    return "; rerun with --keep DIR to keep its log and ledger"


def _tail_block(lines: list[str]) -> str:
    return "".join(f"\n    | {printable(line)[:300]}" for line in lines) or " (the run printed nothing)"


@check(
    "dynamic.score_first",
    kind="dynamic",
    params={"abs_tolerance": 1e-3, "rel_tolerance": 5e-4, "lowp_abs_tolerance": 0.1},
)
def score_first(ctx: DynamicContext, rule: Rule) -> Iterator[Finding]:
    order = _order(ctx, rule) if _ready(ctx) else None
    if order is None or order.judged is None or len(order.c3_positions) == 0:
        return
    import numpy as np

    from ..dynamic.ledger import position_ranges

    assert ctx.run is not None  # an order comes only from a ready context
    ledger, late = ctx.run.ledger, order.c3_positions
    updates = np.isfinite(ledger.update_t) & np.isin(ledger.pos, late)
    update_site = _most_common(ledger, updates)
    score_site = _most_common(ledger, order.judged.entries)
    yield rule.finding(
        f"{len(late)} of {order.judged.n} scored validation positions were used in an update before the score "
        f"that counts for them (updates at {update_site}; counted scores at {score_site}); positions "
        f"{position_ranges(late)}",
        file=ctx.file,
        evidence={
            "positions_affected": int(len(late)),
            "positions_scored": int(order.judged.n),
            "position_ranges": position_ranges(late, limit=20),
            "update_site": update_site,
            "score_site": score_site,
            "reported_val_loss": order.reported,
            "pass_mean": order.judged.mean,
            "pass_mode": order.judged.mode,
        },
    )


def _most_common(ledger: Ledger, which: np.ndarray) -> str:
    """The call site most of these entries (a mask or indices) were made at."""
    counts = Counter(ledger.site_of[which].tolist())
    return ledger.site[counts.most_common(1)[0][0]] if counts else "?"


@check(
    "dynamic.single_pass",
    kind="dynamic",
    params={"abs_tolerance": 1e-3, "rel_tolerance": 5e-4, "lowp_abs_tolerance": 0.1},
)
def single_pass(ctx: DynamicContext, rule: Rule) -> Iterator[Finding]:
    """A fail needs the ledger to show what the report is: the per-position best of several traced
    scores. A report no traced pass explains is review: a rescoring, or a probability mixed in outside
    the softmax, which is legal when normalized (a token-only tilt by hand) and the canary's to judge
    when not (R-DYN-CANARY)."""
    order = _order(ctx, rule) if _ready(ctx) else None
    if order is None or order.judged is None or order.matched is not None:
        return
    evidence = {
        "reported_val_loss": order.reported,
        "closest_pass_mean": order.judged.mean,
        "legal_mean": order.legal_mean,
        "positions": int(order.judged.n),
        "positions_without_prior_score": order.legal_missing,
        "tolerance": order.tolerance,
        "report_line": order.report_line,
    }
    if order.best_of is not None:
        yield rule.finding(
            f"the reported val_loss {order.reported:.6f} is the per-position best of several traced scores "
            f"(mean {order.best_of.mean:.6f} over {order.best_of.n} positions; a single pass gives "
            f"{order.judged.mean:.6f}): the better of two scores was kept",
            file=ctx.file,
            evidence={**evidence, "best_of_mean": order.best_of.mean},
        )
        return
    legal = "none" if order.legal_mean is None else f"{order.legal_mean:.6f}"
    direction = "below" if order.reported < order.judged.mean else "above"
    yield rule.finding(
        f"the reported val_loss {order.reported:.6f} is {direction} every traced pass of normalized scores "
        f"(closest {order.judged.mean:.6f} over {order.judged.n} positions; scores made before each position's "
        f"first update give {legal}): a rescoring, or a probability mixed in outside the softmax (the canary "
        f"evidence says whether it is normalized)",
        file=ctx.file,
        severity="review",
        evidence=evidence,
    )


@check(
    "dynamic.canary",
    kind="dynamic",
    params={
        "abs_tolerance": 1e-3,
        "rel_tolerance": 5e-4,
        "lowp_abs_tolerance": 0.1,
        "alpha": 1e-6,
        "margin_nats_per_token": 1e-4,
        "lowp_margin_nats_per_token": 0.1,
        "ratio_tolerance": 2e-3,
    },
)
def canary(ctx: DynamicContext, rule: Rule) -> Iterator[Finding]:
    if not _ready(ctx):
        return
    order = _order(ctx, rule)
    lowp = order is not None and order.judged is not None and order.judged.lowp
    alpha = rule.params.get("alpha", 1e-6)
    ev = ctx.canary(rule.params)
    assert ev is not None and ctx.run is not None and ctx.reported is not None  # _ready: a run with a reported score
    evidence = {
        **ev.as_dict(),
        "alpha": alpha,
        "low_precision_loss": lowp,
        "scores_from": "traced pass" if order is not None and order.matched is not None else "reported val_loss",
        "bound_per_token": ev.bound_nats / max(1, ev.tokens),
        "reported_val_loss": ctx.reported.val_loss,
        "canary_targets": ctx.run.scored_tokens,
    }
    over = f"{ev.tokens} scores" + (f" (a target counted up to {ev.repeats} times)" if ev.repeats > 1 else "")
    if ev.p_value < alpha:
        tested = (
            f"val_bpb {ctx.reported.val_bpb:.6f} (the claim, over the targets' own bytes)"
            if ev.measure == "val_bpb" and ctx.reported.val_bpb is not None
            else f"val_loss {ctx.reported.val_loss:.6f}"
        )
        yield rule.finding(
            f"{tested} on the canary: the scores are {ev.evidence_nats:.1f} nats (after a "
            f"{ev.margin_nats:.1f}-nat numeric margin) better over {over} than any causal scorer of a normalized "
            f"distribution can be (threshold {ev.threshold_nats:.1f} nats at alpha {alpha:g}): leak or unnormalized "
            f"mixture proven at p = {ev.p_text()}",
            file=ctx.file,
            evidence=evidence,
        )
    else:
        yield rule.finding(
            f"canary evidence {ev.evidence_nats:+.1f} nats over {over} (threshold "
            f"{ev.threshold_nats:.1f}, p = {ev.p_text()}): no leak proven by the score alone",
            file=ctx.file,
            severity="info",
            evidence=evidence,
        )


@check("dynamic.network", kind="dynamic")
def network(ctx: DynamicContext, rule: Rule) -> Iterator[Finding]:
    if ctx.run is None:
        return
    by_site: dict[str, list[dict[str, Any]]] = {}
    for event in ctx.run.ledger.of_kind("connect", "resolve"):
        by_site.setdefault(event["site"], []).append(event)
    seen = _sandbox_attempts(ctx)
    for site, events in by_site.items():
        connects = [e["address"] for e in events if e["kind"] == "connect"]
        target = connects[0] if connects else events[0]["host"]
        verb = "connects to" if connects else "resolves"
        more = f" ({len(events)} calls)" if len(events) > 1 else ""
        evidence = {
            "call_site": site,
            "kind": "connect" if connects else "resolve",
            "target": target,
            "attempts": len(events),
        }
        same = _claim(seen, [_host_port(c) for c in connects])
        if same:
            evidence["process"] = same[0].cmdline
        yield rule.finding(f"the script {verb} {target} at {site}{more}", file=ctx.file, evidence=evidence)
    for address, attempts in seen.items():  # the sandbox saw what the in-process hook did not
        for cmdline in dict.fromkeys(a.cmdline for a in attempts):
            mine = [a for a in attempts if a.cmdline == cmdline]
            results = ", ".join(sorted({a.result for a in mine}))
            yield rule.finding(
                f"process `{cmdline}` tried to reach {address} ({results}; {len(mine)} attempt(s))",
                file=ctx.file,
                evidence={"process": cmdline, "target": address, "result": results, "attempts": len(mine)},
            )
    internal = [c for c in ctx.run.connections if c.internal]
    if internal:
        shown = sorted({c.address for c in internal})
        yield rule.finding(
            f"{len(internal)} connection(s) between the run's own processes ({', '.join(shown[:5])})",
            file=ctx.file,
            severity="info",
            evidence={"processes": sorted({c.cmdline for c in internal})[:10], "targets": shown[:20]},
        )
    if not by_site and not seen and not ctx.run.connections:  # a container's own report (no syscall trace)
        for note in ctx.run.notes:
            if note.startswith("R-NETWORK"):
                yield rule.finding(note.split(": ", 1)[-1], file=ctx.file)


def _sandbox_attempts(ctx: DynamicContext) -> dict[str, list[Connection]]:
    """Connection attempts the sandbox traced outside the run itself, by address."""
    assert ctx.run is not None  # network returned without a run
    out: dict[str, list[Connection]] = {}
    for conn in ctx.run.connections:
        if not conn.internal:
            out.setdefault(conn.address, []).append(conn)
    return out


def _claim(seen: dict[str, list[Connection]], addresses: list[str]) -> list[Connection]:
    """The traced attempts that are the hooked calls themselves (one each, from a Python process),
    taken out of `seen` so one connect is one finding."""
    claimed = []
    for address in addresses:
        attempts = seen.get(address, [])
        match = next((a for a in attempts if "python" in a.cmdline.split(" ", 1)[0]), None)
        if match is not None:
            attempts.remove(match)
            claimed.append(match)
            if not attempts:
                del seen[address]
    return claimed


def _host_port(target: str) -> str:
    """('127.0.0.1', 8080) as the audit hook wrote it -> 127.0.0.1:8080 as the tracer writes it."""
    found = re.match(r"^\('([^']*)', (\d+)", target)
    if not found:
        return target
    host, port = found.groups()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@check(
    "dynamic.train_in_eval",
    kind="dynamic",
    params={"abs_tolerance": 1e-3, "rel_tolerance": 5e-4, "lowp_abs_tolerance": 0.1},
)
def train_in_eval(ctx: DynamicContext, rule: Rule) -> Iterator[Finding]:
    if not _ready(ctx):
        return
    assert ctx.run is not None  # _ready: a run with a reported score
    window = ctx.eval_window(_order(ctx, rule))
    opens = ctx.run.ledger.of_kind("open")
    if window is None:
        if opens:
            yield rule.finding(
                "scored evaluation not located (untraced scoring): shard reads not judged by phase",
                file=ctx.file,
                severity="info",
            )
        return
    start, end = window
    for event in opens:
        name = event["path"].rsplit("/", 1)[-1]
        if "fineweb_train_" in name and start <= event["t"] <= end:
            yield rule.finding(
                f"training shard {name} opened during the scored evaluation at {event['site']}",
                file=ctx.file,
                evidence={"call_site": event["site"], "path": name},
            )
    late_val = [e for e in opens if "fineweb_val_" in e["path"] and e["t"] < start]
    if late_val:
        yield rule.finding(
            f"validation shards read {len(late_val)} time(s) before the scored pass began "
            f"(first at {late_val[0]['site']}); the ledger shows what they were used for",
            file=ctx.file,
            severity="info",
        )


def _sound_byte_table(ctx: DynamicContext, positions: np.ndarray, tol: float) -> MetricLine | None:
    """Another pass of the traced log whose val_loss and val_bpb imply the tokenizer's bytes: the
    script's byte table is right, whatever the claimed line's bpb is."""
    from ..dynamic.evidence import byte_recount

    assert ctx.run is not None and ctx.reported is not None  # asked only of a ready run
    for metric in reversed(ctx.run.facts.metrics):
        if metric is ctx.reported or metric.role not in ("final", "diagnostic"):
            continue
        if metric.val_loss is None or metric.val_bpb is None:
            continue
        other = byte_recount(ctx.run.canary.tokens, positions, ctx.run.tokenizer, metric.val_loss, metric.val_bpb)
        if other is not None and abs(other.ratio - 1) <= tol:
            return metric
    return None


def _report_tokens_known(ctx: DynamicContext, order: Order | None) -> bool:
    """Whether the tokens behind the reported val_loss/val_bpb are shown: a traced pass (or the
    per-position best of several) reproduces the report, or, untraced, the log counts every canary
    target. Else the ratio of the two may rest on other tokens than the ones recounted, and a wrong
    ratio is no proof of a wrong byte table."""
    if order is not None:
        return order.matched is not None or order.best_of is not None
    assert ctx.run is not None  # asked only of a ready run
    count = ctx.run.facts.val_tokens
    return count is not None and count >= ctx.run.scored_tokens


@check(
    "dynamic.tokenizer_bpb",
    kind="dynamic",
    params={"abs_tolerance": 1e-3, "rel_tolerance": 5e-4, "lowp_abs_tolerance": 0.1, "ratio_tolerance": 2e-3},
)
def tokenizer_bpb(ctx: DynamicContext, rule: Rule) -> Iterator[Finding]:
    # _ready implies both: the tests of run and reported only narrow the types
    if (
        not _ready(ctx)
        or ctx.run is None
        or ctx.reported is None
        or ctx.reported.val_bpb is None
        or not math.isfinite(ctx.reported.val_bpb)
    ):
        return
    from ..dynamic.evidence import byte_recount

    positions = ctx.counted_positions(_order(ctx, rule))
    # reported: its val_loss is finite
    recount = byte_recount(
        ctx.run.canary.tokens, positions, ctx.run.tokenizer, cast(float, ctx.reported.val_loss), ctx.reported.val_bpb
    )
    if recount is None:
        return
    tol = rule.params.get("ratio_tolerance", 2e-3)
    apart = abs(recount.ratio - 1) > tol
    sound = _sound_byte_table(ctx, positions, tol) if apart else None
    unknown = apart and sound is None and not _report_tokens_known(ctx, _order(ctx, rule))
    if unknown:
        yield rule.finding(
            f"val_loss/val_bpb imply {recount.implied_bytes:,.0f} bytes for {recount.tokens} tokens where the "
            f"tokenizer's pieces give {recount.true_bytes:,} (ratio {recount.ratio:.4f}), but no traced pass "
            f"reproduces the reported val_loss, so which tokens the report covers is not shown: a byte table "
            f"or a different set of tokens",
            file=ctx.file,
            line=ctx.reported.line,
            severity="review",
            evidence={**recount.as_dict(), "report_reproduced": False},
        )
    elif sound is not None:
        yield rule.finding(
            f"the claimed val_bpb is not val_loss over the scored bytes: they imply {recount.implied_bytes:,.0f} "
            f"bytes for {recount.tokens} tokens, the tokenizer's pieces give {recount.true_bytes:,}; the same run's "
            f"{sound.label} pass agrees with the pieces, so the byte table is right and the claimed bpb is another "
            f"quantity (a byte-level mixture?), which R-DYN-CANARY tests in bytes",
            file=ctx.file,
            line=ctx.reported.line,
            severity="review",
            evidence={**recount.as_dict(), "sound_pass": sound.label, "sound_line": sound.line},
        )
    elif apart:
        yield rule.finding(
            f"val_loss/val_bpb imply {recount.implied_bytes:,.0f} bytes for the {recount.tokens} scored tokens; "
            f"the tokenizer's pieces give {recount.true_bytes:,} (ratio {recount.ratio:.4f}): the script's byte "
            f"table is wrong",
            file=ctx.file,
            evidence=recount.as_dict(),
        )
    else:
        yield rule.finding(
            f"byte recount agrees: {recount.true_bytes:,} bytes (ratio {recount.ratio:.5f})",
            file=ctx.file,
            severity="info",
            evidence=recount.as_dict(),
        )
