"""Whether each traced operation ran in the configuration the record used: on, off or unknown.

The configuration settles most branches (`if args.slot_enabled:` with the log's
hyperparameter dump). A branch it cannot settle is a gate (trace.Gate); the logs
then decide it both ways: text that only a print inside the branch writes, found in
a log, shows it ran; text the branch would have written, missing from every log that
ran to its final score, shows it did not. Otherwise the operation stays unknown, and
a finding on it can only ask for review.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from . import events as ev
from .events import Event
from .logsignals import LogEvidence
from .trace import Gate


@dataclass(frozen=True)
class GateState:
    state: str  # on | off | unknown
    why: str  # the evidence, for the report


def judge_gates(events: list[Event], gates: dict[int, Gate], logs: LogEvidence) -> dict[int, GateState]:
    prints = [e for e in events if e.kind == ev.LOG and e.active]
    captured = _captured_channels(prints, logs)
    writers: dict[str, list[Event]] = defaultdict(list)  # fragment -> every traced print that may write it
    for p in prints:
        for fragment in _may_write(p):
            writers[fragment].append(p)
    states = {}
    for gid, gate in gates.items():
        inside = [p for p in prints if gid in p.gates]
        outside = {f for p in prints if gid not in p.gates for f in _may_write(p)}
        # a helper's print reached from inside the branch and from elsewhere too tells nothing
        own = sorted(
            {
                f
                for p in inside
                for f in _may_write(p)
                if all(gid in w.gates for w in writers[f]) and not any(f in other for other in outside)
            }
        )
        # only what goes to a channel the logs capture, for sure, can show that a branch did not run
        heard = sorted(
            {
                f
                for p in inside
                if p.detail.get("channel") in captured
                for f in p.detail.get("fragments", ())
                if f in own
            }
        )
        states[gid] = _judge(gate, own, heard, logs)
    return states


def _may_write(p: Event) -> tuple[str, ...]:
    """Text a print writes whenever it runs, and text it writes on one side of a conditional expression."""
    return (*p.detail.get("fragments", ()), *p.detail.get("maybe_fragments", ()))


def _captured_channels(prints: list[Event], logs: LogEvidence) -> set[str]:
    """The print functions whose output the logs hold (log0 to a file, not print to a console)."""
    channels: set[str] = set()
    for p in prints:
        channel = p.detail.get("channel")
        if not isinstance(channel, str) or channel in channels:
            continue
        if any(logs.seen(f) for f in p.detail.get("fragments", ())):
            channels.add(channel)
    return channels


def _judge(gate: Gate, own: list[str], heard: list[str], logs: LogEvidence) -> GateState:
    where = f"line {gate.line} `{gate.test}`" + (" (else branch)" if gate.branch == "else" else "")
    for fragment in own:
        seen = logs.seen(fragment)
        if seen:
            return GateState("on", f"{where} ran: its output `{fragment}` is in {seen}")
    if heard and logs.complete:
        shown = ", ".join(f"`{f}`" for f in heard[:3])
        return GateState(
            "off",
            f"{where} did not run: its output ({shown}) is in none of the "
            f"{logs.complete} logs that reached a final score",
        )
    if gate.prior is not None:
        setting = "on" if gate.prior else "off"
        return GateState(setting, f"{where} is {setting} in the run's configuration")
    if not logs.usable:
        return GateState("unknown", f"{where} is not settled by the configuration, and no log was given")
    return GateState("unknown", f"{where} is not settled by the configuration or the logs")


def resolve(events: list[Event], gates: dict[int, Gate], logs: LogEvidence) -> dict[int, GateState]:
    """Set each event's activity; return the gate judgements for the report."""
    states = judge_gates(events, gates, logs)
    for event in events:
        if not event.active:
            event.activity = "off"
            continue
        judged = [states[g] for g in event.gates if g in states]
        if any(s.state == "off" for s in judged):
            event.activity = "off"
        elif all(s.state == "on" for s in judged):
            event.activity = "on"
        else:
            event.activity = "unknown"
    return states


def why(event: Event, states: dict[int, GateState]) -> str:
    """The evidence behind an event's activity, one sentence."""
    judged = [states[g] for g in event.gates if g in states]
    wanted = "off" if event.activity == "off" else "unknown" if event.activity == "unknown" else "on"
    reasons = [s.why for s in judged if s.state == wanted]
    return "; ".join(reasons[:2])
