"""Rules are data: every catalog entry binds to a registered check that declares its kind and
params, inheritance resolves, and rules apply as they were in force on a date."""

from __future__ import annotations

import sys
from typing import get_args

import pytest

from pgolf.compliance.errors import InputError
from pgolf.compliance.report import SEVERITIES, VERDICTS, Severity, Verdict
from pgolf.compliance.rules import KINDS, Kind, check, load_ruleset, registered_checks, registry, ruleset_names


def test_every_rule_of_every_catalog_is_bound():
    checks = registered_checks()
    for name in ruleset_names():
        for rule in load_ruleset(name).rules:
            assert rule.check in checks, (name, rule.id)
            assert rule.source and rule.title
            spec = checks[rule.check]
            assert rule.kind == spec.kind  # the kind comes from the check, never from a second copy
            assert set(rule.params) == set(spec.params), (name, rule.id)  # merged over the declared defaults


def test_kinds_severities_and_verdicts_are_literal_types():
    assert KINDS == get_args(Kind) == ("record", "script", "dynamic")
    assert SEVERITIES == get_args(Severity) == ("fail", "review", "warn", "info")
    assert set(VERDICTS) == set(get_args(Verdict)) == {"pass", "fail", "review", "error"}
    with pytest.raises(ValueError, match="kind"):
        check("x.bad", kind="legality")  # type: ignore[call-overload]


def test_every_registered_record_check_is_used():
    used = {r.check for name in ruleset_names() for r in load_ruleset(name).rules}
    unused = {name for name in registered_checks() if name.startswith(("record.", "dynamic."))} - used
    assert not unused


def test_track_catalog_inherits_and_overrides():
    base = load_ruleset("base")
    non_record = load_ruleset("track_non_record_16mb")
    legality = load_ruleset("legality")
    dynamic = load_ruleset("dynamic")
    assert {r.id for r in non_record.rules} == {r.id for r in base.rules} | {r.id for r in legality.rules} | {
        r.id for r in dynamic.rules
    }
    # the legality catalog holds the script rules and the record rules on the data a run used (README)
    assert {r.kind for r in legality.rules} == {"script", "record"}
    assert "R-TTT-SCORE-FIRST" in {r.id for r in legality.rules}
    assert {r.id for r in legality.rules if r.kind == "record"} == {"R-TRAIN-VAL-OVERLAP", "R-TOKENIZER-BPB"}
    assert all(r.kind == "dynamic" for r in dynamic.rules) and "R-DYN-SCORE-FIRST" in {r.id for r in dynamic.rules}
    assert base.get("R-TRAIN-TIME").enabled and not non_record.get("R-TRAIN-TIME").enabled
    assert non_record.get("R-SEEDS").severity == "warn"
    assert non_record.get("R-SIZE").params == base.get("R-SIZE").params


def _write(tmp_path, monkeypatch, files):
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    monkeypatch.setattr(registry, "CATALOG_DIR", tmp_path)
    registry.load_ruleset.cache_clear()


RULE = """  - id: R-X
    title: t
    severity: fail
    source: s
    check: record.size
    params: {max_bytes: 10, unmeasured: warn}
"""


def test_params_merge_and_date_window(tmp_path, monkeypatch):
    _write(
        tmp_path,
        monkeypatch,
        {
            "a": "ruleset: a\nrules:\n" + RULE,
            "b": "ruleset: b\nextends: a\noverrides:\n  R-X: {params: {max_bytes: 20}, since: 2026-04-01}\n",
        },
    )
    try:
        rule = load_ruleset("b").get("R-X")
        declared = registered_checks()["record.size"].params
        assert rule.params == {**declared, "max_bytes": 20, "unmeasured": "warn"}
        assert rule.kind == "record"  # no `kind:` in the entry: the check's
        assert not rule.applies_on("2026-03-31") and rule.applies_on("2026-04-01") and rule.applies_on(None)
        assert rule.at("2026-03-31") is None and rule.at("2026-04-02").judged_on == "2026-04-02"
    finally:
        registry.load_ruleset.cache_clear()


PERIODS = """    periods:
      - until: 2026-03-20
        severity: warn
        params: {unmeasured: info}
        note: accepted then
      - since: 2026-04-01
        until: 2026-04-30
        params: {max_bytes: 30}
"""


def test_periods_change_severity_and_params_and_quote_their_note(tmp_path, monkeypatch):
    _write(tmp_path, monkeypatch, {"a": "ruleset: a\nrules:\n" + RULE + PERIODS})
    try:
        rule = load_ruleset("a").get("R-X")
        early, gap, april = rule.at("2026-03-19"), rule.at("2026-03-25"), rule.at("2026-04-15")
        assert (early.severity, early.params["unmeasured"], early.params["max_bytes"]) == ("warn", "info", 10)
        assert (gap.severity, gap.params["unmeasured"], gap.note) == ("fail", "warn", None)
        assert (april.severity, april.params["max_bytes"]) == ("fail", 30)
        assert rule.at(None) is rule  # no date known: the rule as written
        softened = early.finding("too big")
        assert softened.severity == "warn" and "as practised on 2026-03-19: accepted then" in softened.message
        assert "practised" in early.finding("x", level="unmeasured").message
        assert "practised" not in early.finding("x", level="code_mismatch").message  # the period left it alone
        assert "practised" not in early.finding("x", severity="info").message
    finally:
        registry.load_ruleset.cache_clear()


@pytest.mark.parametrize(
    "files, fragment",
    [
        ({"a": "ruleset: a\nextends: b\n", "b": "ruleset: b\nextends: a\n"}, "loops"),
        ({"a": "ruleset: a\nrules:\n" + RULE.replace("record.size", "no.such.check")}, "unregistered check"),
        ({"a": "ruleset: a\nrules:\n" + RULE.replace("severity: fail", "severity: fatal")}, "severity"),
        ({"a": "ruleset: a\noverrides:\n  R-NOPE: {enabled: false}\n"}, "unknown rule"),
        ({"a": "ruleset: a\nrules:\n  - id: R-X\n    title: t\n"}, "lacks 'severity'"),
        ({"a": "ruleset: a\nrules:\n" + RULE.replace("unmeasured: warn", "nonsense: 1")}, "unknown key.*nonsense"),
        ({"a": "ruleset: a\nrules:\n" + RULE.replace("max_bytes: 10", "max_bytes: lots")}, "max_bytes must be int"),
        ({"a": "ruleset: a\nrules:\n" + RULE + "    kind: script\n"}, "check record.size is kind 'record'"),
        ({"a": "ruleset: a\nrules:\n" + RULE + "    colour: red\n"}, "unknown key.*colour"),
        ({"a": "ruleset: a\nrules:\n" + RULE + "    since: yesterday\n"}, "not a YYYY-MM-DD date"),
        ({"a": "ruleset: a\nrules:\n" + RULE + PERIODS.replace("note: accepted then", "why: x")}, "unknown key.*why"),
        ({"a": "ruleset: a\nrules:\n" + RULE + PERIODS.replace("since: 2026-04-01", "since: 2026-03-01")}, "overlap"),
        ({"a": "ruleset: a\nrules:\n" + RULE + PERIODS.replace("max_bytes: 30", "max_bites: 30")}, "max_bites"),
        (
            {
                "a": "ruleset: a\nrules:\n" + RULE,
                "b": "ruleset: b\nextends: a\noverrides:\n  R-X: {params: {cap: 1}}\n",
            },
            "unknown key.*cap",
        ),
    ],
)
def test_bad_catalogs_are_refused(tmp_path, monkeypatch, files, fragment):
    _write(tmp_path, monkeypatch, files)
    try:
        with pytest.raises(InputError, match=fragment):
            load_ruleset("b" if "b" in files and "extends: a" in files["b"] else "a")
    finally:
        registry.load_ruleset.cache_clear()


def test_yaml_is_data_only(tmp_path, monkeypatch):
    _write(tmp_path, monkeypatch, {"a": "ruleset: a\nrules: !!python/object/apply:os.system ['true']\n"})
    try:
        with pytest.raises(InputError, match="not a rule catalog"):
            load_ruleset("a")
    finally:
        registry.load_ruleset.cache_clear()


def test_loading_the_checks_does_not_import_scipy():
    """pgolf-check pays for scipy only when a significance test runs (stats.py imports it lazily)."""
    import subprocess

    code = (
        "import sys; from pgolf.compliance.rules import load_ruleset; load_ruleset('track_10min_16mb'); "
        "import pgolf.compliance.cli; print('scipy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
