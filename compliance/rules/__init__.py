"""Rules as data: YAML catalogs in catalog/, each rule bound by name to a registered check."""

from .registry import (
    KINDS,
    CheckSpec,
    Kind,
    Period,
    Rule,
    RuleSet,
    check,
    check_spec,
    get_check,
    load_ruleset,
    registered_checks,
    ruleset_names,
)

__all__ = [
    "KINDS",
    "CheckSpec",
    "Kind",
    "Period",
    "Rule",
    "RuleSet",
    "check",
    "check_spec",
    "get_check",
    "load_ruleset",
    "registered_checks",
    "ruleset_names",
]
