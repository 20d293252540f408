"""Rules as data: YAML catalogs in catalog/, each rule bound by name to a registered check."""
from .registry import Rule, RuleSet, check, get_check, load_ruleset, registered_checks, ruleset_names

__all__ = ["Rule", "RuleSet", "check", "get_check", "load_ruleset", "registered_checks", "ruleset_names"]
