"""The traced run as a second witness for static legality fails (issue #10 item 5).

A static fail reads code; a traced run (--dynamic) watches it score a canary. Each rule's
catalog entry names under `ledger:` the families of the run's outcome that speak to it
(DynamicContext.family_outcomes: "clean", "flagged" or "unknown" per family). When every one
of them is "clean", the run contradicts the static reading: an accusation that one witness makes
and the other denies is a question for a person, so the fail becomes review and shows both
sides. A "flagged" family confirms the fail; "unknown" (no run, a failed run, a path that did
not run) changes nothing. Dynamic findings are never softened here: a dynamic fail stands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from .report import Finding
from .rules import Rule

# what "clean" means, per family, in words a reviewer can check against the run's ledger
CLEAN_MEANS = {
    "C1": "the reported score is the traced cross-entropy and the canary shows no leak of the scored token",
    "C2": "the reported score is the traced cross-entropy, normalized over the vocabulary, with no canary evidence",
    "C3": "test-time updates ran on the canary and none reached a score that was counted",
    "C4": "canary positions were scored more than once and the reported value is still a single pass",
    "data": "the scored evaluation was located and opened no training shard",
}


def confirm(
    findings: Iterable[Finding], rules: Mapping[str, Rule], outcomes: Mapping[str, str] | None
) -> list[Finding]:
    """The static findings, each fail checked against the run's per-family `outcomes`."""
    if not outcomes:
        return list(findings)
    return [_confronted(f, rules.get(f.rule), outcomes) for f in findings]


def _confronted(finding: Finding, rule: Rule | None, outcomes: Mapping[str, str]) -> Finding:
    if rule is None or rule.kind != "script" or not rule.ledger or finding.severity != "fail" or not finding.active:
        return finding
    said = {family: outcomes.get(family, "unknown") for family in rule.ledger}
    evidence = {**(finding.evidence or {}), "traced_run": said}
    if any(state == "flagged" for state in said.values()):
        flagged = ", ".join(f for f, state in said.items() if state == "flagged")
        return replace(
            finding, evidence=evidence, message=f"{finding.message} [confirmed by the traced run: {flagged} flagged]"
        )
    if all(state == "clean" for state in said.values()):
        why = "; ".join(f"{family}: {CLEAN_MEANS[family]}" for family in said)
        return replace(
            finding,
            severity="review",
            evidence=evidence,
            message=f"{finding.message} [the traced run contradicts this ({why}): the static reading "
            f"and the ledger disagree, a person decides]",
        )
    return replace(finding, evidence=evidence)
