"""Rules as in force on the submission's date: which date, where it comes from, what it changes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pgolf.compliance import prmeta
from pgolf.compliance.audit import audit
from pgolf.compliance.context import AuditOptions
from pgolf.compliance.errors import InputError

from .factory import SCRIPT, log_text, make_record

CHECK = [sys.executable, "-c", "from pgolf.compliance.cli import run; run()"]


def one_seed(tmp_path: Path, name: str) -> Path:
    return make_record(tmp_path, seeds=(1337,), bpbs=(1.2001,), name=name)


def pr_json(path: Path, **fields) -> Path:
    entry = {
        "number": 42,
        "createdAt": "2026-03-19T10:00:00Z",
        "headRefOid": "ab" * 20,
        "baseRefOid": "cd" * 20,
        "mergedAt": None,
        "state": "OPEN",
        "title": "Record",
    }
    entry.update(fields)
    path.write_text(json.dumps(entry))
    return path


def seeds_finding(report):
    return next(f for f in report.records[0].findings if f.rule == "R-SEEDS")


def test_one_seed_warns_in_march_and_fails_in_april(tmp_path):
    march = audit([str(one_seed(tmp_path, "2026-03-19_Early"))], AuditOptions())
    finding = seeds_finding(march)
    assert finding.severity == "warn" and "as practised on 2026-03-19" in finding.message
    assert march.records[0].summary["judged_on"] == "2026-03-19"
    assert march.records[0].summary["judged_by"] == "the folder name's date"
    april = audit([str(one_seed(tmp_path, "2026-04-19_Late"))], AuditOptions())
    assert seeds_finding(april).severity == "fail" and "practised" not in seeds_finding(april).message
    assert april.verdict == "fail"


def test_the_json_date_stands_in_for_an_undated_folder(tmp_path):
    folder = one_seed(tmp_path, "NoDatePrefix")
    report = audit([str(folder)], AuditOptions())
    assert report.records[0].summary["judged_on"] == "2026-05-01"
    assert report.records[0].summary["judged_by"] == "submission.json's date"


def test_no_date_at_all_applies_every_rule_as_written(tmp_path):
    folder = one_seed(tmp_path, "NoDatePrefix")
    data = json.loads((folder / "submission.json").read_text())
    del data["date"]
    (folder / "submission.json").write_text(json.dumps(data))
    report = audit([str(folder)], AuditOptions())
    assert report.records[0].summary["judged_on"] is None and seeds_finding(report).severity == "fail"


def test_the_pr_creation_date_wins_over_the_folder(tmp_path):
    folder = one_seed(tmp_path, "2026-04-19_Late")
    meta = prmeta.load(pr_json(tmp_path / "pr.json", createdAt="2026-03-20T23:59:59Z"))
    report = audit([str(folder)], AuditOptions(pr_meta=meta))
    summary = report.records[0].summary
    assert summary["judged_on"] == "2026-03-20" and summary["judged_by"].startswith("PR #42 createdAt 2026-03-20T23:59")
    assert seeds_finding(report).severity == "warn"


def test_pr_meta_through_the_cli(tmp_path):
    folder = one_seed(tmp_path, "2026-04-19_Late")
    meta = pr_json(tmp_path / "pr.json")
    proc = subprocess.run(
        CHECK + [str(folder), "--pr-meta", str(meta), "--format", "json"], capture_output=True, text=True, timeout=120
    )
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["records"][0]["summary"]["judged_on"] == "2026-03-19"


def test_gh_pr_list_output_is_matched_by_head(tmp_path):
    path = tmp_path / "list.json"
    path.write_text(
        json.dumps(
            [
                {"number": 7, "createdAt": "2026-03-18T01:00:00Z", "headRefOid": "aa" * 20},
                {"number": 9, "createdAt": "2026-04-02T09:30:00-07:00", "headRefOid": "bb" * 20, "state": "MERGED"},
            ]
        )
    )
    meta = prmeta.load(path)
    assert meta.for_head("bb" * 20).number == 9 and meta.for_head("bbbbbbb").number == 9
    assert meta.for_head("cc" * 20) is None and meta.for_head(None) is None  # a list names no default
    assert meta.by_number(9).created_at == "2026-04-02T16:30:00+00:00"  # in UTC
    assert meta.by_number(9).created_on == "2026-04-02"


@pytest.mark.slow
@pytest.mark.parametrize(
    "content, fragment",
    [
        ("{not json", "invalid JSON"),
        ("[]", "holds no pull request"),
        ("[1, 2]", "expected an object"),
        ('{"createdAt": "2026-03-19T10:00:00Z"}', "`number` must be a positive integer"),
        ('{"number": 3}', "createdAt is missing"),
        ('{"number": 3, "createdAt": "yesterday"}', "not an ISO 8601 time"),
        ('{"number": 3, "createdAt": "2026-03-19T10:00:00Z", "headRefOid": "; rm -rf"}', "hex commit id"),
        ("[" * 100000 + "]" * 100000, "JSON nested too deeply"),
    ],
)
def test_bad_pr_meta_is_one_line_of_bad_input(tmp_path, content, fragment):
    path = tmp_path / "pr.json"
    path.write_text(content)
    with pytest.raises(InputError, match=fragment):
        prmeta.load(path)
    folder = make_record(tmp_path)
    proc = subprocess.run(CHECK + [str(folder), "--pr-meta", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_missing_pr_meta_file_is_bad_input(tmp_path):
    proc = subprocess.run(
        CHECK + [str(make_record(tmp_path)), "--pr-meta", str(tmp_path / "nope.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "nope.json" in proc.stderr


def test_against_auto_needs_pr_mode_or_pr_meta(tmp_path):
    proc = subprocess.run(
        CHECK + [str(make_record(tmp_path)), "--against", "auto"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and "--against auto needs PR mode" in proc.stderr


def test_training_time_graded_as_enforced(tmp_path):
    """Within a step: tolerated; up to 1 s over: review (PR #1120 accepted 600.365 s); beyond: fail."""
    folder = make_record(tmp_path)
    cases = [(600_050, "info"), (600_365, "review"), (601_153, "fail")]
    for train_ms, severity in cases:
        text = log_text(42, 1.2001, 1.2001 * 1.69, train_ms=train_ms)
        # a realistic step: 6,593 steps of 91 ms, as in PR #1120
        text = text.replace("step:1001/20000", "step:6593/20000").replace("step:1000/20000", "step:6592/20000")
        (folder / "train_seed42.log").write_text(text)
        report = audit([str(folder)], AuditOptions())
        found = [f for f in report.records[0].findings if f.rule == "R-TRAIN-TIME"]
        assert [f.severity for f in found] == [severity], (train_ms, [f.message for f in found])


def test_hessian_collection_after_training_is_not_added(tmp_path):
    folder = make_record(tmp_path)
    text = log_text(42, 1.2001, 1.2001 * 1.69, train_ms=599_592)
    text = text.replace("Code size:", "GPTQ:collected 67 Hessians in 4.7s\nCode size:")
    (folder / "train_seed42.log").write_text(text)
    report = audit([str(folder)], AuditOptions())
    found = [f for f in report.records[0].findings if f.rule == "R-TRAIN-TIME"]
    assert report.verdict == "pass" and [f.severity for f in found] == ["info"]
    assert "is not added" in found[0].message


def test_size_is_judged_by_the_logs_own_total(tmp_path):
    """A log that counts its code compressed is judged by that total, as reviewers did (PR #1610)."""
    folder = make_record(tmp_path)
    script = SCRIPT + "x = 1  # a long readable script\n" * 6000
    (folder / "train_gpt.py").write_text(script)
    for seed, bpb in ((42, 1.2001), (314, 1.2003), (999, 1.2005)):
        text = log_text(seed, bpb, bpb * 1.69, total=15_990_000, code=3_000)
        text = text.replace("Code size: 3000 bytes", "Code size (compressed): 3000 bytes")
        (folder / f"train_seed{seed}.log").write_text(text)
    assert 15_987_000 + len(script) > 16_000_000  # over the cap counted raw
    report = audit([str(folder)], AuditOptions())
    size = [f for f in report.records[0].findings if f.rule == "R-SIZE"]
    assert report.verdict == "pass" and {f.severity for f in size} == {"warn"}
    assert "counted compressed" in size[0].message
    assert {row.bytes_total for row in report.records[0].seeds} == {15_990_000}


def test_against_auto_beside_the_record_with_pr_meta(tmp_path):
    """Outside PR mode the frontier is drawn from the record folders beside it, ordered by date."""
    track = tmp_path / "records" / "track_10min_16mb"
    make_record(track, name="2026-04-01_Old", bpbs=(1.2101, 1.2103, 1.2105))
    make_record(track, name="2026-04-20_Later", bpbs=(1.1001, 1.1003, 1.1005))
    mine = make_record(track, name="2026-04-10_Mine")
    meta = prmeta.load(pr_json(tmp_path / "pr.json", createdAt="2026-04-10T09:00:00Z"))
    report = audit([str(mine)], AuditOptions(against_auto=True, pr_meta=meta))
    sig = report.records[0].significance
    assert "2026-04-01_Old" in sig["against"] and sig["passed"] and report.verdict == "pass"


def test_the_non_record_track_has_no_frontier(tmp_path):
    track = tmp_path / "records" / "track_non_record_16mb"
    make_record(track, name="2026-04-01_Old", bpbs=(1.1001, 1.1003, 1.1005))
    mine = make_record(track, name="2026-04-10_Mine")
    data = json.loads((mine / "submission.json").read_text())
    data["track"] = "non_record_16mb"
    (mine / "submission.json").write_text(json.dumps(data))
    report = audit([str(mine)], AuditOptions(against_auto=True))
    sig = [f for f in report.records[0].findings if f.rule == "R-SIGNIFICANCE"]
    assert [f.severity for f in sig] == ["info"] and "no chronological frontier" in sig[0].message


def test_one_seed_in_march_is_not_tested_for_significance_but_warns(tmp_path):
    track = tmp_path / "records" / "track_10min_16mb"
    make_record(track, seeds=(1337,), bpbs=(1.2244,), name="2026-03-17_Baseline")
    mine = one_seed(track, "2026-03-19_Mine")
    report = audit([str(mine)], AuditOptions(against_auto=True))
    sig = next(f for f in report.records[0].findings if f.rule == "R-SIGNIFICANCE")
    assert sig.severity == "warn" and "without a significance test" in sig.message
