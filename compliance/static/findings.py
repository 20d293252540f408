"""Turning a traced operation into a finding, under the verdict policy.

A fail is an accusation: it stands only when the operation ran in the run's
configuration (activity "on") and the violation is shown. When the analysis could
not tell whether the operation ran, the finding asks for review and says why; when
the configuration or the logs show it did not run, it is reported as inactive info.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from .events import Event

T = TypeVar("T")

if TYPE_CHECKING:
    from ..report import Finding, Severity
    from ..rules import Rule
    from . import ScriptContext


def finding(
    rule: Rule,
    ctx: ScriptContext,
    event: Event,
    message: str,
    *,
    severity: Severity | None = None,
    score: Event | None = None,
    **evidence: Any,
) -> Finding:
    severity = severity or rule.severity
    active = True
    data: dict[str, Any] = {"operation_line": event.line, "activity": event.activity, "path": ctx.chain(event)}
    data.update({k: v for k, v in evidence.items() if v is not None})
    if score is not None:
        data["score_line"] = score.line
    why = ctx.why(event)
    if why:
        data["activity_evidence"] = why
    if event.activity == "off":
        severity, active = ("info" if severity in ("fail", "review") else severity), False
        message = f"{message} [not run: {why or 'switched off by the configuration'}]"
    elif event.activity == "unknown" and severity == "fail":
        severity = "review"
        message = f"{message} [review: whether this path ran is not shown: {why or 'unresolved'}]"
    elif event.activity == "on" and why:
        message = f"{message} [{why}]"
    return rule.finding(
        message, file=event.file or ctx.path, line=event.line, severity=severity, active=active, evidence=data
    )


def worst_first(events: list[Event]) -> list[Event]:
    """One finding per line is enough; the one that ran beats the one that may have."""
    return first_per_line((event, event) for event in events)


def first_per_line(judged: Iterable[tuple[Event, T | None]]) -> list[T]:
    """One result per line, chosen after judging: of the events on a line that gave one, the one that
    ran beats the one that may have (a line reached on two paths can be legal on one of them)."""
    rank = {"on": 0, "unknown": 1, "off": 2}
    seen: dict[int, tuple[Event, T]] = {}
    for event, found in sorted(judged, key=lambda pair: rank.get(pair[0].activity, 3)):
        if found is not None:
            seen.setdefault(event.line, (event, found))
    return [found for _, found in sorted(seen.values(), key=lambda pair: pair[0].seq)]
