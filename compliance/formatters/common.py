"""Small helpers the text formatters share."""
from __future__ import annotations

from ..report import Finding, SEVERITIES


def num(value: float | int | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def where(finding: Finding) -> str:
    if finding.file is None:
        return "-"
    return f"{finding.file}:{finding.line}" if finding.line else finding.file


def ordered(findings: list[Finding], include_info: bool) -> list[Finding]:
    shown = [f for f in findings if include_info or f.severity != "info"]
    return sorted(shown, key=lambda f: (not f.active, SEVERITIES.index(f.severity), f.rule))


def seconds(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.1f}"


def significance_line(sig: dict | None) -> str | None:
    """One line on R-SIGNIFICANCE, shown even though a pass is only an info finding."""
    if not sig:
        return None
    enforced = sig["enforced"]
    written = {True: "pass", False: "fail", None: "n/a"}[sig.get("written_pass")]
    return (f"significance vs {sig['against']}: enforced Welch p = {num(enforced.get('p'), '.3f')} "
            f"({'pass' if sig['enforced_pass'] else 'fail'} at p < {sig['enforced_alpha']}); written "
            f"({sig['margin_nats']} nats at p < {sig['written_alpha']}): {written}; decided by "
            f"{sig['decided_by']}: {'PASS' if sig['passed'] else 'FAIL'}")
