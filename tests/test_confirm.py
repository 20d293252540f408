"""A static legality fail confronted with a traced run's per-family outcomes (compliance/confirm.py)."""

from __future__ import annotations

import pytest

from pgolf.compliance.confirm import confirm
from pgolf.compliance.errors import InputError
from pgolf.compliance.report import Finding
from pgolf.compliance.rules import load_ruleset
from pgolf.compliance.rules.registry import _rule_from

RULES = {rule.id: rule for rule in load_ruleset("track_10min_16mb").rules}


def _fail(rule_id: str, **kw) -> Finding:
    return RULES[rule_id].finding(
        "pre-quant TTT trains on validation tokens before scoring", file="train_gpt.py", line=10, **kw
    )


def test_a_fail_the_ledger_contradicts_becomes_review_with_both_sides():
    [out] = confirm([_fail("R-NO-PREQUANT-TTT")], RULES, {"C3": "clean", "C4": "unknown"})
    assert out.severity == "review"
    assert out.message.startswith("pre-quant TTT trains")  # the static side is kept
    assert "traced run contradicts" in out.message and "C3" in out.message
    assert out.evidence == {"traced_run": {"C3": "clean"}}


def test_a_flagged_family_confirms_and_unknown_changes_nothing():
    [confirmed] = confirm([_fail("R-NO-PREQUANT-TTT")], RULES, {"C3": "flagged"})
    assert confirmed.severity == "fail" and "confirmed by the traced run: C3" in confirmed.message
    [unknown] = confirm([_fail("R-NO-PREQUANT-TTT")], RULES, {"C3": "unknown"})
    assert unknown.severity == "fail" and unknown.evidence == {"traced_run": {"C3": "unknown"}}
    assert confirm([_fail("R-NO-PREQUANT-TTT")], RULES, None)[0] == _fail("R-NO-PREQUANT-TTT")


def test_every_family_a_rule_names_must_be_clean_to_contradict_it():
    assert RULES["R-NO-SLOT"].ledger == ("C1", "C3")
    [half] = confirm([_fail("R-NO-SLOT")], RULES, {"C1": "clean", "C3": "unknown"})
    assert half.severity == "fail"
    [both] = confirm([_fail("R-NO-SLOT")], RULES, {"C1": "clean", "C3": "clean"})
    assert both.severity == "review"


def test_only_active_script_fails_of_rules_with_a_ledger_are_confronted():
    clean = {family: "clean" for family in ("C1", "C2", "C3", "C4", "data")}
    inactive = _fail("R-NO-PREQUANT-TTT", active=False)
    review = _fail("R-NO-PREQUANT-TTT", severity="review")
    no_ledger = _fail("R-GPTQ-CALIB")  # the run's "data" outcome says nothing about calibration
    record_rule = _fail("R-TRAIN-VAL-OVERLAP")  # kind record: no traced run speaks to it
    kept = [inactive, review, no_ledger, record_rule]
    assert confirm(kept, RULES, clean) == kept


def test_a_catalog_entry_naming_an_unknown_ledger_family_is_refused():
    entry = {"id": "R-X", "title": "x", "severity": "fail", "source": "s", "check": "script.no_slot", "ledger": ["C9"]}
    with pytest.raises(InputError, match="unknown family"):
        _rule_from(entry, "test")
