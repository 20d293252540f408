"""Where check functions register and rule catalogs are resolved.

A check is a function decorated with @check("name", kind=..., params={defaults}) in any
module of pgolf.compliance.checks; discovery imports them all, so adding a rule means a
YAML entry plus one decorated function, never an edit here. The check declares what it
takes: its kind (which context it reads) and its params with their defaults. A catalog
entry is validated against that declaration (an unknown param, a param of the wrong type
or a `kind:` that does not match is refused) and the rule carries the merged params.

Catalogs chain by `extends` (a track's catalog overrides params, severity or periods of its
parent's rules) and are read with a safe YAML loader: data only, nothing evaluated. Rules are
judged as they were in force at the submission's date: `since`/`until` bound a rule, and
`periods` change its severity or params for a stretch of dates where the maintainers'
practice differed from the written rule (RULES.md §5), with a note quoted in the findings.
"""

from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from itertools import pairwise
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    Protocol,
    TypeVar,
    get_args,
    overload,
)

import yaml

from ..errors import InputError
from ..report import SEVERITIES, Finding, Severity

if TYPE_CHECKING:
    from ..context import RecordContext
    from ..dynamic.context import DynamicContext
    from ..static import ScriptContext

CATALOG_DIR = Path(__file__).with_name("catalog")
# libyaml's safe loader where PyYAML has it: the same safe subset, five times faster (every audit
# reads four catalogs)
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Kind = Literal["record", "script", "dynamic"]
KINDS: tuple[Kind, ...] = get_args(Kind)
# which condition of RULES.md §4 (C1-C4), or which data rule, a legality rule enforces;
# `make accuracy` and `--select` group rules by it; "analysis" marks what the analysis could not see
FAMILIES = ("C1", "C2", "C3", "C4", "data", "analysis")
# what a traced run can say about a family (DynamicContext.family_outcomes): a rule's `ledger:`
# names those of them whose outcome can confirm or contradict its static finding
LEDGER_FAMILIES = ("C1", "C2", "C3", "C4", "data")


class RecordCheck(Protocol):
    """kind "record": reads a loaded record folder, its per-seed rows and the audit options."""

    def __call__(self, ctx: RecordContext, rule: Rule) -> Iterable[Finding]: ...


class ScriptCheck(Protocol):
    """kind "script": reads the static trace of the entry script."""

    def __call__(self, ctx: ScriptContext, rule: Rule) -> Iterable[Finding]: ...


class DynamicCheck(Protocol):
    """kind "dynamic": reads one traced run of the entry script on a canary."""

    def __call__(self, ctx: DynamicContext, rule: Rule) -> Iterable[Finding]: ...


CheckFn = RecordCheck | ScriptCheck | DynamicCheck
RecordF = TypeVar("RecordF", bound=RecordCheck)
ScriptF = TypeVar("ScriptF", bound=ScriptCheck)
DynamicF = TypeVar("DynamicF", bound=DynamicCheck)
F = TypeVar("F", bound=Callable[..., Iterable[Finding]])


@dataclass(frozen=True)
class CheckSpec:
    """What a check declared: its kind and the params a catalog may set, with defaults."""

    name: str
    kind: Kind
    params: Mapping[str, Any]
    fn: Callable[..., Iterable[Finding]]


_CHECKS: dict[str, CheckSpec] = {}


@overload
def check(
    name: str, *, kind: Literal["record"], params: Mapping[str, Any] | None = None
) -> Callable[[RecordF], RecordF]: ...


@overload
def check(
    name: str, *, kind: Literal["script"], params: Mapping[str, Any] | None = None
) -> Callable[[ScriptF], ScriptF]: ...


@overload
def check(
    name: str, *, kind: Literal["dynamic"], params: Mapping[str, Any] | None = None
) -> Callable[[DynamicF], DynamicF]: ...


def check(name: str, *, kind: Kind, params: Mapping[str, Any] | None = None) -> Callable[[F], F]:
    """Register a check of `kind` that takes `params` (the defaults; a catalog may set only these)."""
    if kind not in KINDS:
        raise ValueError(f"check {name!r}: kind {kind!r} is not one of {KINDS}")

    def register(fn: F) -> F:
        old = _CHECKS.get(name)
        if old is not None and old.fn is not fn:
            raise RuntimeError(f"check {name!r} registered twice")
        _CHECKS[name] = CheckSpec(name, kind, dict(params or {}), fn)
        return fn

    return register


@lru_cache(maxsize=1)
def _discover() -> None:
    from .. import checks

    for module in pkgutil.iter_modules(checks.__path__):
        importlib.import_module(f"{checks.__name__}.{module.name}")


def get_check(name: str) -> Callable[..., Iterable[Finding]]:
    _discover()
    return _CHECKS[name].fn


def check_spec(name: str) -> CheckSpec:
    _discover()
    return _CHECKS[name]


def registered_checks() -> dict[str, CheckSpec]:
    _discover()
    return dict(_CHECKS)


@dataclass(frozen=True)
class Period:
    """A stretch of dates where a rule was applied differently; bounds are inclusive."""

    since: str | None = None
    until: str | None = None
    severity: Severity | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    note: str | None = None

    def contains(self, date: str) -> bool:
        return (self.since is None or date >= self.since) and (self.until is None or date <= self.until)


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: Severity
    source: str
    check: str
    kind: Kind = "record"
    since: str | None = None
    until: str | None = None
    enabled: bool = True
    params: Mapping[str, Any] = field(default_factory=dict)
    periods: tuple[Period, ...] = ()
    family: tuple[str, ...] = ()
    ledger: tuple[str, ...] = ()  # traced-run outcomes that confirm or contradict a static fail
    judged_on: str | None = None  # set by at(): the date this copy of the rule applies to
    note: str | None = None  # the practice note of the period in force on that date
    practised: frozenset[str] = frozenset()  # what that period changed: "severity" and param names

    def finding(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        severity: Severity | None = None,
        level: str | None = None,
        active: bool = True,
        evidence: dict[str, Any] | None = None,
    ) -> Finding:
        """A finding at `severity`, else at the severity param `level`, else at the rule's own.

        When the period in force changed the severity used, its note is quoted: the finding
        says which practice softened (or hardened) the written rule on that date.
        """
        changed = "severity" if level is None else level
        if severity is None:
            severity = self.params[level] if level is not None else self.severity
            if self.note and changed in self.practised:
                message = f"{message} [as practised on {self.judged_on}: {self.note}]"
        return Finding(
            rule=self.id,
            severity=severity,
            message=message,
            file=file,
            line=line,
            active=active,
            title=self.title,
            source=self.source,
            evidence=evidence,
        )

    def applies_on(self, date: str | None) -> bool:
        """Rules carry the dates they were in force; an undated record gets every rule."""
        if date is None:
            return True
        return (self.since is None or date >= self.since) and (self.until is None or date <= self.until)

    def at(self, date: str | None) -> Rule | None:
        """This rule as it was in force on `date` (None: not in force, or switched off)."""
        if not self.enabled or not self.applies_on(date):
            return None
        if date is None:
            return self
        for period in self.periods:
            if period.contains(date):
                changed = set(period.params) | ({"severity"} if period.severity else set())
                return replace(
                    self,
                    severity=period.severity or self.severity,
                    params=_merge(self.params, period.params),
                    judged_on=date,
                    note=period.note,
                    practised=frozenset(changed),
                )
        return replace(self, judged_on=date)


@dataclass(frozen=True)
class RuleSet:
    name: str
    rules: tuple[Rule, ...]

    def of_kind(self, kind: Kind) -> list[Rule]:
        return [r for r in self.rules if r.kind == kind and r.enabled]

    def in_force(self, kind: Kind, date: str | None) -> list[Rule]:
        """The rules of a kind as they applied on `date`."""
        return [ruled for r in self.rules if r.kind == kind and (ruled := r.at(date)) is not None]

    def get(self, rule_id: str) -> Rule:
        return next(r for r in self.rules if r.id == rule_id)


def ruleset_names() -> list[str]:
    return sorted(p.stem for p in CATALOG_DIR.glob("*.yaml"))


@cache
def load_ruleset(name: str) -> RuleSet:
    rules = _resolve(name, seen=())
    return RuleSet(name, tuple(rules.values()))


def _read_catalog(name: str) -> dict[str, Any]:
    path = CATALOG_DIR / f"{name}.yaml"
    if not path.is_file():
        raise InputError(None, f"unknown ruleset {name!r} (known: {', '.join(ruleset_names())})")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER) or {}
    except yaml.YAMLError as exc:
        raise InputError(path, f"not a rule catalog: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict) or data.get("ruleset") != name:
        found = data.get("ruleset") if isinstance(data, dict) else None
        raise InputError(path, f"declares ruleset {found!r}, expected {name!r}")
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
    for entry in data.get("rules") or []:
        rule = _rule_from(entry, name)
        if rule.id in rules:
            raise InputError(None, f"ruleset {name}: {rule.id} redefined; use overrides")
        rules[rule.id] = rule
    for rule_id, changes in (data.get("overrides") or {}).items():
        if rule_id not in rules:
            raise InputError(None, f"ruleset {name}: override of unknown rule {rule_id}")
        rules[rule_id] = _override(rules[rule_id], changes, name)
    return rules


ENTRY_KEYS = {
    "id",
    "title",
    "severity",
    "source",
    "check",
    "kind",
    "since",
    "until",
    "enabled",
    "params",
    "periods",
    "family",
    "ledger",
}
OVERRIDE_KEYS = {"severity", "since", "until", "enabled", "params", "periods", "title", "source"}
PERIOD_KEYS = {"since", "until", "severity", "params", "note"}


def _rule_from(entry: Any, catalog: str) -> Rule:
    if not isinstance(entry, dict):
        raise InputError(None, f"ruleset {catalog}: a rule entry is not a mapping")
    where = f"ruleset {catalog}: {entry.get('id', 'a rule entry')}"
    _refuse_unknown(set(entry) - ENTRY_KEYS, where)
    try:
        rule_id, check_name = entry["id"], entry.get("check", entry["id"])
        title, severity, source = entry["title"], entry["severity"], entry["source"]
    except KeyError as exc:
        raise InputError(None, f"ruleset {catalog}: rule entry lacks {exc.args[0]!r}") from None
    if check_name not in registered_checks():
        raise InputError(None, f"{where} is bound to unregistered check {check_name!r}")
    spec = check_spec(check_name)
    if entry.get("kind", spec.kind) != spec.kind:
        raise InputError(None, f"{where} says kind {entry['kind']!r} but check {check_name} is kind {spec.kind!r}")
    rule = Rule(
        id=rule_id,
        title=title,
        severity=_severity(severity, where),
        source=source,
        check=check_name,
        kind=spec.kind,
        since=_date(entry.get("since"), where),
        until=_date(entry.get("until"), where),
        enabled=bool(entry.get("enabled", True)),
        params=_merge(spec.params, _params(entry.get("params"), spec, where)),
        periods=_periods(entry.get("periods"), spec, where),
        family=_family(entry.get("family"), where),
        ledger=_family(entry.get("ledger"), where, LEDGER_FAMILIES),
    )
    return rule


def _family(value: Any, where: str, known: tuple[str, ...] = FAMILIES) -> tuple[str, ...]:
    if value is None:
        return ()
    families = tuple(str(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
    unknown = set(families) - set(known)
    if unknown:
        raise InputError(None, f"{where}: unknown family {sorted(unknown)} (known: {', '.join(known)})")
    return families


def _override(rule: Rule, changes: Any, catalog: str) -> Rule:
    where = f"ruleset {catalog}: override of {rule.id}"
    if not isinstance(changes, dict):
        raise InputError(None, f"{where} is not a mapping")
    unknown = set(changes) - OVERRIDE_KEYS
    if unknown:
        raise InputError(None, f"ruleset {catalog}: cannot override {sorted(unknown)} of {rule.id}")
    spec = check_spec(rule.check)
    merged: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "params":
            merged[key] = _merge(rule.params, _params(value, spec, where))
        elif key == "periods":
            merged[key] = _periods(value, spec, where)
        elif key in ("since", "until"):
            merged[key] = _date(value, where)
        elif key == "severity":
            merged[key] = _severity(value, where)
        else:
            merged[key] = value
    return replace(rule, **merged)


def _params(value: Any, spec: CheckSpec, where: str) -> dict[str, Any]:
    """Catalog params checked against what the check declared: known keys, compatible types."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(None, f"{where}: params is not a mapping")
    _refuse_unknown(set(value) - set(spec.params), f"{where}: params of check {spec.name}", known=sorted(spec.params))
    for key, given in value.items():
        default = spec.params[key]
        if default is not None and not _same_type(default, given):
            raise InputError(None, f"{where}: param {key} must be {type(default).__name__}, got {type(given).__name__}")
    return value


def _same_type(default: Any, given: Any) -> bool:
    if isinstance(default, bool) or isinstance(given, bool):
        return isinstance(default, bool) and isinstance(given, bool)
    if isinstance(default, (int, float)):
        return isinstance(given, (int, float))
    return isinstance(given, type(default))


def _periods(value: Any, spec: CheckSpec, where: str) -> tuple[Period, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InputError(None, f"{where}: periods is not a list")
    periods = []
    for item in value:
        if not isinstance(item, dict):
            raise InputError(None, f"{where}: a period is not a mapping")
        _refuse_unknown(set(item) - PERIOD_KEYS, f"{where}: period")
        severity = item.get("severity")
        periods.append(
            Period(
                since=_date(item.get("since"), where),
                until=_date(item.get("until"), where),
                severity=_severity(severity, where) if severity is not None else None,
                params=_params(item.get("params"), spec, where),
                note=str(item["note"]) if item.get("note") else None,
            )
        )
    for a, b in pairwise(periods):
        if a.until is None or b.since is None or b.since <= a.until:
            raise InputError(None, f"{where}: periods must be ordered and must not overlap")
    return tuple(periods)


def _refuse_unknown(unknown: set[str], where: str, known: list[str] | None = None) -> None:
    if unknown:
        also = f" (declared: {', '.join(known) or 'none'})" if known is not None else ""
        raise InputError(None, f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}{also}")


def _severity(value: Any, where: str) -> Severity:
    if value not in SEVERITIES:
        raise InputError(None, f"{where} has severity {value!r}")
    return value  # type: ignore[no-any-return]


def _date(value: Any, where: str) -> str | None:
    """YAML reads 2026-04-01 as a date; a string must be one too."""
    if value is None:
        return None
    text = value.isoformat() if isinstance(value, dt.date) else str(value)
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise InputError(None, f"{where}: {text!r} is not a YYYY-MM-DD date") from None


def _merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Params merge key by key; a mapping param merges one level deeper (e.g. per-file severities)."""
    merged = dict(base)
    for key, value in changes.items():
        old = merged.get(key)
        merged[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
    return merged
