"""Numbers no run can produce fail R-LOG-PARSE with file and line: never a silent pass, never a crash."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pgolf.compliance.audit import audit
from pgolf.compliance.context import AuditOptions

from .factory import SCRIPT, log_text, make_record, snapshot

CHECK = [sys.executable, "-c", "from pgolf.compliance.cli import run; run()"]
LOG = "train_seed42.log"

# (what the seed-42 log says instead, the line it is on); factory.log_text lays the lines out
LOG_CASES = [
    ("val_bpb:1.20010000", "val_bpb:nan", 12),
    ("val_bpb:1.20010000", "val_bpb:NaN", 12),
    ("val_bpb:1.20010000", "val_bpb:inf", 12),
    ("val_bpb:1.20010000", "val_bpb:-inf", 12),
    ("val_bpb:1.20010000", "val_bpb:Infinity", 12),
    ("val_bpb:1.20010000", "val_bpb:-1.20010000", 12),
    ("val_bpb:1.20010000", "val_bpb:0.0", 12),
    ("val_bpb:1.20010000", "val_bpb:1e30", 12),
    ("val_loss:2.02816900", "val_loss:nan", 12),
    ("val_loss:2.02816900", "val_loss:-2.02816900", 12),
    ("eval_time:1401ms", "eval_time:nanms", 11),
    ("eval_time:1401ms", "eval_time:-5ms", 11),
    ("eval_time:1401ms", "eval_time:1e15ms", 11),
    ("wallclock_cap train_time:598000ms", "wallclock_cap train_time:nanms", 7),
    ("wallclock_cap train_time:598000ms", "wallclock_cap train_time:-1ms", 7),
    ("wallclock_cap train_time:598000ms", "wallclock_cap train_time:1e13ms", 7),
    ("int8+zlib: 15863489 bytes", "int8+zlib: -5 bytes", 10),
    ("int8+zlib: 15863489 bytes", "int8+zlib: nan bytes", 10),
    ("int8+zlib: 15863489 bytes", "int8+zlib: 1e15 bytes", 10),
    (f"Serialized model int8+zlib: {15_863_489 - len(SCRIPT)}", "Serialized model int8+zlib: -1", 9),
    (f"Code size: {len(SCRIPT)} bytes", "Code size: 2.5 bytes", 8),
    ("tokens:62021632", "tokens:0", 2),
    ("world_size:8", "world_size:0", 3),
]

# (a change to submission.json, the key the finding names)
JSON_CASES = [
    ({"val_bpb": float("nan")}, "val_bpb"),
    ({"val_bpb": -1.2}, "val_bpb"),
    ({"val_bpb": "inf"}, "val_bpb"),
    ({"val_bpb": 10**400}, "val_bpb"),
    ({"val_bpb": 1e30}, "val_bpb"),
    ({"val_loss": -1.0}, "val_loss"),
    ({"bytes_total": -5}, "bytes_total"),
    (
        {"seed_results": {"42": {"val_bpb": float("nan")}, "314": {"val_bpb": 1.2003}, "999": {"val_bpb": 1.2005}}},
        "seed_results.42.val_bpb",
    ),
    (
        {
            "seed_results": {
                "42": {"val_bpb": 1.2001, "train_time_s": -3},
                "314": {"val_bpb": 1.2003},
                "999": {"val_bpb": 1.2005},
            }
        },
        "seed_results.42.train_time_s",
    ),
]


def _log_parse_fails(report) -> list:
    record = report.records[0]
    assert report.error is None and record.error is None
    assert not [f for f in record.findings if "could not run" in f.message], record.findings
    return [f for f in record.findings if f.rule == "R-LOG-PARSE" and f.severity == "fail"]


def test_the_table_is_long_enough():
    assert len(LOG_CASES) + len(JSON_CASES) >= 20


@pytest.mark.parametrize("old, new, line", LOG_CASES, ids=[case[1] for case in LOG_CASES])
def test_impossible_log_value_fails_with_file_and_line(tmp_path, old, new, line):
    folder = make_record(tmp_path)
    text = (folder / LOG).read_text()
    assert old in text, old
    (folder / LOG).write_text(text.replace(old, new, 1))
    report = audit([str(folder)], AuditOptions())
    fails = _log_parse_fails(report)
    assert [(f.file, f.line) for f in fails] == [(LOG, line)], [f.message for f in fails]
    assert "impossible value" in fails[0].message
    assert report.verdict == "fail"
    row = next(r for r in report.records[0].seeds if r.seed == 42)
    for value in (row.val_bpb, row.val_loss, row.train_time_ms, row.eval_time_ms, row.bytes_total):
        assert value is None or 0 <= value < 1e12  # never passed on to a check or the report


@pytest.mark.parametrize("change, key", JSON_CASES, ids=[case[1] + "=" + str(i) for i, case in enumerate(JSON_CASES)])
def test_impossible_json_value_fails_with_file_and_line(tmp_path, change, key):
    folder = make_record(tmp_path)
    data = json.loads((folder / "submission.json").read_text())
    data.update(change)
    (folder / "submission.json").write_text(json.dumps(data, indent=2))  # json writes NaN for nan
    report = audit([str(folder)], AuditOptions())
    fails = _log_parse_fails(report)
    assert len(fails) == 1 and fails[0].file == "submission.json", [f.message for f in fails]
    text = (folder / "submission.json").read_text().split("\n")
    leaf = key.rsplit(".", 1)[-1]
    assert f'"{leaf}"' in text[fails[0].line - 1]
    assert report.verdict == "fail"


@pytest.mark.slow
def test_nan_score_through_the_cli_is_a_finding_not_an_internal_error(tmp_path):
    """`val_bpb:nan` used to reach statistics.stdev and end in "internal error"."""
    folder = make_record(tmp_path)
    for seed, bpb in ((42, 1.2001), (314, 1.2003)):
        (folder / f"train_seed{seed}.log").write_text(
            log_text(seed, bpb, bpb * 1.69).replace(f"val_bpb:{bpb:.8f}", "val_bpb:nan")
        )
    before = snapshot(folder)
    proc = subprocess.run(CHECK + [str(folder), "--format", "json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    fails = [f for f in report["records"][0]["findings"] if f["rule"] == "R-LOG-PARSE" and f["severity"] == "fail"]
    assert {(f["file"], f["line"]) for f in fails} == {("train_seed42.log", 12), ("train_seed314.log", 12)}
    assert snapshot(folder) == before


def test_a_diverged_run_outside_the_claim_only_warns(tmp_path):
    """A run the JSON does not report may have diverged; its nan decides nothing."""
    folder = make_record(tmp_path)
    (folder / "train_extra_seed42.log").write_text(log_text(42, 1.3, 2.2).replace("val_bpb:1.30000000", "val_bpb:nan"))
    report = audit([str(folder)], AuditOptions())
    findings = [f for f in report.records[0].findings if f.rule == "R-LOG-PARSE" and "impossible" in f.message]
    assert [(f.file, f.severity) for f in findings] == [("train_extra_seed42.log", "warn")]
    assert report.verdict == "pass"


def test_nan_in_training_validation_is_not_a_score(tmp_path):
    folder = make_record(tmp_path)
    text = (folder / LOG).read_text()
    (folder / LOG).write_text(text.replace("val_bpb:1.2101 train_time", "val_bpb:nan train_time"))
    report = audit([str(folder)], AuditOptions())
    assert report.verdict == "pass" and not _log_parse_fails(report)


def test_a_path_is_reported_relative(tmp_path):
    folder = make_record(tmp_path)
    (folder / LOG).write_text((folder / LOG).read_text().replace("val_bpb:1.20010000", "val_bpb:nan"))
    report = audit([str(folder)], AuditOptions())
    assert not Path(_log_parse_fails(report)[0].file).is_absolute()
