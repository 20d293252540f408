"""--select and --ignore: which rules take part in the verdict, as ruff selects its codes.

A selector is
- a rule id: `R-SIZE`;
- a prefix of ids that ends where a dash does: `R-DYN` (every `R-DYN-*`), `R-NO`;
- a kind: `record` (files, logs, caps, seeds), `script` (alias `legality`, `static`:
  the entry script's code) or `dynamic` (the traced run);
- a condition of a valid score: `C1` causal, `C2` normalized, `C3` score before
  update, `C4` single pass (the rules whose documentation names it);
- `ALL`.

A rule takes part when some selector of `select` matches it (every rule when
`select` is empty) and no selector of `ignore` does. Deselected rules do not run,
and findings that other steps report under their ids are dropped, so the verdict
is that of the selected rules alone.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from functools import lru_cache

from . import ruledocs
from .errors import InputError
from .report import Report, combine, verdict_of
from .rules import RuleSet, load_ruleset, ruleset_names

KINDS = {"record": "record", "script": "script", "legality": "script", "static": "script", "dynamic": "dynamic"}
CONDITIONS = ("C1", "C2", "C3", "C4")


@dataclass(frozen=True)
class RuleInfo:
    id: str
    kind: str
    conditions: tuple[str, ...]


@lru_cache(maxsize=1)
def known_rules() -> dict[str, RuleInfo]:
    """Every rule of every ruleset, plus those documented before a catalog carries them."""
    rules: dict[str, RuleInfo] = {}
    for name in ruleset_names():
        for rule in load_ruleset(name).rules:
            doc = ruledocs.get(rule.id)
            rules[rule.id] = RuleInfo(rule.id, rule.kind, doc.conditions if doc else ())
    for doc in ruledocs.all_docs().values():
        rules.setdefault(doc.id, RuleInfo(doc.id, doc.kind, doc.conditions))
    return rules


def _matches(selector: str, rule: RuleInfo) -> bool:
    if selector == "ALL":
        return True
    if selector in KINDS:
        return rule.kind == KINDS[selector]
    if selector in CONDITIONS:
        return selector in rule.conditions
    return rule.id == selector or rule.id.startswith(selector + "-")


def _validate(selector: str, option: str) -> None:
    known = known_rules()
    if any(_matches(selector, rule) for rule in known.values()):
        return
    vocabulary = list(known) + list(KINDS) + list(CONDITIONS) + ["ALL"]
    close = difflib.get_close_matches(selector, vocabulary, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise InputError(None, f"{option} {selector}: no rule, prefix, kind or condition of that name{hint}")


@dataclass(frozen=True)
class Selection:
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()

    @classmethod
    def of(cls, select: tuple[str, ...] = (), ignore: tuple[str, ...] = ()) -> Selection:
        """Validated: an unknown selector is bad input, as a typo must not silently select nothing."""
        for option, selectors in (("--select", select), ("--ignore", ignore)):
            for selector in selectors:
                _validate(selector, option)
        return cls(tuple(select), tuple(ignore))

    @property
    def everything(self) -> bool:
        return not self.select and not self.ignore

    def wants(self, rule_id: str) -> bool:
        rule = known_rules().get(rule_id, RuleInfo(rule_id, "", ()))
        if self.select and not any(_matches(s, rule) for s in self.select):
            return False
        return not any(_matches(s, rule) for s in self.ignore)

    def apply_to(self, ruleset: RuleSet) -> RuleSet:
        """The ruleset with deselected rules switched off, so they never run."""
        if self.everything:
            return ruleset
        return RuleSet(ruleset.name, tuple(r if self.wants(r.id) else replace(r, enabled=False) for r in ruleset.rules))

    def filter(self, report: Report) -> None:
        """Drop findings of deselected rules and judge each record again on what is left."""
        if self.everything:
            return
        for record in report.records:
            record.findings = [f for f in record.findings if self.wants(f.rule)]
            if record.error is None:
                record.verdict = verdict_of(record.findings)
        if report.error is None:
            report.verdict = combine([r.verdict for r in report.records])
