"""Where check functions register and rule catalogs are resolved.

A check is a function decorated with @check("name") in any module of
pgolf.compliance.checks; discovery imports them all, so adding a rule means a
YAML entry plus one decorated function, never an edit here. Catalogs chain by
`extends` (a track's catalog overrides params or severity of its parent's
rules) and are read with yaml.safe_load: data only, nothing evaluated.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from ..errors import InputError
from ..report import SEVERITIES, Finding

CATALOG_DIR = Path(__file__).with_name("catalog")
KINDS = ("record", "script", "dynamic")
FAMILIES = ("C1", "C2", "C3", "C4", "data", "analysis")
CheckFn = Callable[..., Iterable[Finding]]
_CHECKS: dict[str, CheckFn] = {}


def check(name: str) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        if name in _CHECKS and _CHECKS[name] is not fn:
            raise RuntimeError(f"check {name!r} registered twice")
        _CHECKS[name] = fn
        return fn
    return register


@lru_cache(maxsize=1)
def _discover() -> None:
    from .. import checks
    for module in pkgutil.iter_modules(checks.__path__):
        importlib.import_module(f"{checks.__name__}.{module.name}")


def get_check(name: str) -> CheckFn:
    _discover()
    return _CHECKS[name]


def registered_checks() -> dict[str, CheckFn]:
    _discover()
    return dict(_CHECKS)


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str
    source: str
    check: str
    kind: str = "record"
    since: str | None = None
    until: str | None = None
    enabled: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    # which condition of RULES.md §4 (C1-C4) or which data rule a legality rule enforces;
    # `make accuracy` and `--select` group rules by it
    family: tuple[str, ...] = ()

    def finding(self, message: str, *, file: str | None = None, line: int | None = None,
                severity: str | None = None, active: bool = True,
                evidence: dict[str, Any] | None = None) -> Finding:
        return Finding(rule=self.id, severity=severity or self.severity, message=message, file=file,
                       line=line, active=active, title=self.title, source=self.source, evidence=evidence)

    def applies_on(self, date: str | None) -> bool:
        """Rules carry the dates they were in force; an undated record gets every rule."""
        if date is None:
            return True
        return (self.since is None or date >= self.since) and (self.until is None or date <= self.until)


@dataclass(frozen=True)
class RuleSet:
    name: str
    rules: tuple[Rule, ...]

    def of_kind(self, kind: str) -> list[Rule]:
        return [r for r in self.rules if r.kind == kind and r.enabled]

    def get(self, rule_id: str) -> Rule:
        return next(r for r in self.rules if r.id == rule_id)


def ruleset_names() -> list[str]:
    return sorted(p.stem for p in CATALOG_DIR.glob("*.yaml"))


@lru_cache(maxsize=None)
def load_ruleset(name: str) -> RuleSet:
    rules = _resolve(name, seen=())
    return RuleSet(name, tuple(rules.values()))


def _read_catalog(name: str) -> dict[str, Any]:
    path = CATALOG_DIR / f"{name}.yaml"
    if not path.is_file():
        raise InputError(None, f"unknown ruleset {name!r} (known: {', '.join(ruleset_names())})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(path, f"not a rule catalog: {' '.join(str(exc).split())}") from None
    if data.get("ruleset") != name:
        raise InputError(path, f"declares ruleset {data.get('ruleset')!r}, expected {name!r}")
    return data


def _resolve(name: str, seen: tuple[str, ...]) -> dict[str, Rule]:
    if name in seen:
        raise InputError(None, f"ruleset inheritance loops: {' -> '.join(seen + (name,))}")
    data = _read_catalog(name)
    parents = data.get("extends") or []
    rules: dict[str, Rule] = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        for rule_id, rule in _resolve(parent, seen + (name,)).items():
            if rule_id in rules and rules[rule_id] != rule:
                raise InputError(None, f"ruleset {name}: {rule_id} comes from two parents that disagree")
            rules[rule_id] = rule
    for entry in data.get("rules", []):
        rule = _rule_from(entry, name)
        if rule.id in rules:
            raise InputError(None, f"ruleset {name}: {rule.id} redefined; use overrides")
        rules[rule.id] = rule
    for rule_id, changes in (data.get("overrides") or {}).items():
        if rule_id not in rules:
            raise InputError(None, f"ruleset {name}: override of unknown rule {rule_id}")
        rules[rule_id] = _override(rules[rule_id], changes, name)
    return rules


def _rule_from(entry: dict[str, Any], catalog: str) -> Rule:
    try:
        rule = Rule(id=entry["id"], title=entry["title"], severity=entry["severity"],
                    source=entry["source"], check=entry.get("check", entry["id"]),
                    kind=entry.get("kind", "record"), since=_date(entry.get("since")),
                    until=_date(entry.get("until")), enabled=entry.get("enabled", True),
                    params=dict(entry.get("params") or {}), family=_family(entry.get("family")))
    except KeyError as exc:
        raise InputError(None, f"ruleset {catalog}: rule entry lacks {exc.args[0]!r}") from None
    _validate(rule, catalog)
    return rule


def _override(rule: Rule, changes: dict[str, Any], catalog: str) -> Rule:
    allowed = {"severity", "since", "until", "enabled", "params", "title", "source"}
    unknown = set(changes) - allowed
    if unknown:
        raise InputError(None, f"ruleset {catalog}: cannot override {sorted(unknown)} of {rule.id}")
    merged = dict(changes)
    if "params" in merged:
        merged["params"] = {**rule.params, **merged["params"]}
    for key in ("since", "until"):
        if key in merged:
            merged[key] = _date(merged[key])
    updated = replace(rule, **merged)
    _validate(updated, catalog)
    return updated


def _family(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(str(v) for v in (value if isinstance(value, (list, tuple)) else [value]))


def _date(value: Any) -> str | None:
    return None if value is None else str(value)  # YAML reads 2026-04-01 as a date


def _validate(rule: Rule, catalog: str) -> None:
    if rule.severity not in SEVERITIES:
        raise InputError(None, f"ruleset {catalog}: {rule.id} has severity {rule.severity!r}")
    unknown_family = set(rule.family) - set(FAMILIES)
    if unknown_family:
        raise InputError(None, f"ruleset {catalog}: {rule.id} has unknown family {sorted(unknown_family)}")
    if rule.kind not in KINDS:
        raise InputError(None, f"ruleset {catalog}: {rule.id} has kind {rule.kind!r}")
    if rule.check not in registered_checks():
        raise InputError(None, f"ruleset {catalog}: {rule.id} is bound to unregistered check {rule.check!r}")
