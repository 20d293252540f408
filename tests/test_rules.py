"""Rules are data: every catalog entry binds to a registered check, inheritance resolves."""
from __future__ import annotations

import pytest

from pgolf.compliance.errors import InputError
from pgolf.compliance.rules import load_ruleset, registered_checks, ruleset_names
from pgolf.compliance.rules import registry


def test_every_rule_of_every_catalog_is_bound():
    checks = registered_checks()
    for name in ruleset_names():
        for rule in load_ruleset(name).rules:
            assert rule.check in checks, (name, rule.id)
            assert rule.source and rule.title


def test_every_registered_record_check_is_used():
    used = {r.check for name in ruleset_names() for r in load_ruleset(name).rules}
    unused = {name for name in registered_checks() if name.startswith(("record.", "dynamic."))} - used
    assert not unused


def test_track_catalog_inherits_and_overrides():
    base = load_ruleset("base")
    non_record = load_ruleset("track_non_record_16mb")
    legality = load_ruleset("legality")
    dynamic = load_ruleset("dynamic")
    assert {r.id for r in non_record.rules} == {r.id for r in base.rules} | {r.id for r in legality.rules} \
        | {r.id for r in dynamic.rules}
    assert all(r.kind == "script" for r in legality.rules) and "R-TTT-SCORE-FIRST" in {r.id for r in legality.rules}
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
    params: {max_bytes: 10, other: 1}
"""


def test_params_merge_and_date_window(tmp_path, monkeypatch):
    _write(tmp_path, monkeypatch, {
        "a": "ruleset: a\nrules:\n" + RULE,
        "b": "ruleset: b\nextends: a\noverrides:\n  R-X: {params: {max_bytes: 20}, since: 2026-04-01}\n"})
    try:
        rule = load_ruleset("b").get("R-X")
        assert rule.params == {"max_bytes": 20, "other": 1}
        assert not rule.applies_on("2026-03-31") and rule.applies_on("2026-04-01") and rule.applies_on(None)
    finally:
        registry.load_ruleset.cache_clear()


@pytest.mark.parametrize("files, fragment", [
    ({"a": "ruleset: a\nextends: b\n", "b": "ruleset: b\nextends: a\n"}, "loops"),
    ({"a": "ruleset: a\nrules:\n" + RULE.replace("record.size", "no.such.check")}, "unregistered check"),
    ({"a": "ruleset: a\nrules:\n" + RULE.replace("severity: fail", "severity: fatal")}, "severity"),
    ({"a": "ruleset: a\noverrides:\n  R-NOPE: {enabled: false}\n"}, "unknown rule"),
    ({"a": "ruleset: a\nrules:\n  - id: R-X\n    title: t\n"}, "lacks 'severity'"),
])
def test_bad_catalogs_are_refused(tmp_path, monkeypatch, files, fragment):
    _write(tmp_path, monkeypatch, files)
    try:
        with pytest.raises(InputError, match=fragment):
            load_ruleset("a")
    finally:
        registry.load_ruleset.cache_clear()


def test_yaml_is_data_only(tmp_path, monkeypatch):
    _write(tmp_path, monkeypatch, {"a": "ruleset: a\nrules: !!python/object/apply:os.system ['true']\n"})
    try:
        with pytest.raises(InputError, match="not a rule catalog"):
            load_ruleset("a")
    finally:
        registry.load_ruleset.cache_clear()
