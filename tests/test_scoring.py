"""Which number is the score: the JSON's layouts, the final line it names, the runs it rests on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgolf.compliance.audit import audit
from pgolf.compliance.context import AuditOptions
from pgolf.compliance.record import load_record
from pgolf.compliance.submission import normalize

from .conftest import record_dir
from .factory import log_text, make_record

TTT_TAIL = "ttt_sliding:start\nlegal_ttt_exact val_loss:2.50000000 val_bpb:1.33600000 eval_time:9000ms\n"


def _findings(report, rule: str) -> list:
    return [f for f in report.records[0].findings if f.rule == rule]


def _json(folder: Path, **changes) -> None:
    data = json.loads((folder / "submission.json").read_text())
    data.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del data[key]
    (folder / "submission.json").write_text(json.dumps(data, indent=2))


@pytest.mark.parametrize(
    "raw, key, value",
    [
        ({"val_bpb": 1.1}, "val_bpb", 1.1),
        ({"mean_val_bpb": 1.17475315}, "mean_val_bpb", 1.17475315),
        ({"val_bpb_mean": "1.1221"}, "val_bpb_mean", 1.1221),
        ({"mean_bpb": 1.0925}, "mean_bpb", 1.0925),
        ({"val_bpb": None, "mean_val_bpb": 1.2}, "mean_val_bpb", 1.2),
    ],
)
def test_every_headline_layout(raw, key, value):
    sub = normalize(raw)
    assert (sub.val_bpb_key, sub.val_bpb) == (key, value)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"seed_results": {"1337": {"val_bpb": 1.17558517}, "42": {"val_bpb": 1.17423973}}}, {1337: 1.17558517}),
        ({"seeds": {"0": {"val_bpb": 1.08209788}}}, {0: 1.08209788}),
        ({"results": {"seed_1337": {"val_bpb": 1.1153}}}, {1337: 1.1153}),
        ({"val_bpb_per_seed": {"42": 1.01519482}}, {42: 1.01519482}),
        ({"val_bpb_seeds": {"seed_42": 0.99235, "1337": "1.0957"}}, {42: 0.99235, 1337: 1.0957}),
        ({"seed_42": {"val_bpb": 1.1102, "val_bpb_exact": 1.11018163}}, {42: 1.11018163}),
        ({"seeds": [1337, 42], "val_bpb_exact": [1.10232227, 1.10369838]}, {1337: 1.10232227, 42: 1.10369838}),
        ({"seeds": [42, 0], "seed_scores": [1.09, 1.08]}, {42: 1.09, 0: 1.08}),
        ({"seed_results": [{"seed": 7, "val_bpb": 1.2}]}, {7: 1.2}),
        ({"seed_results": {"42": {"val_var_bpb": 1.1465}}}, {42: 1.1465}),
    ],
)
def test_every_per_seed_layout(raw, expected):
    sub = normalize(raw)
    for seed, value in expected.items():
        assert sub.seed_claims[seed].val_bpb == value, (raw, sub.seed_claims)


def test_the_json_names_which_final_line_is_the_score(tmp_path):
    """A log ending with a later pass (a diverged TTT pass) keeps the pass the JSON reports."""
    folder = make_record(tmp_path)
    log = folder / "train_seed42.log"
    log.write_text(log.read_text() + TTT_TAIL)
    record = load_record(folder)
    seed42 = next(lg for lg in record.logs if lg.seed == 42)
    assert seed42.facts.score.label == "legal_ttt_exact"  # the parser's default: the last final pass
    assert seed42.score.label == "final_int8_zlib_roundtrip_exact"
    assert "submission.json reports" in seed42.score_basis
    report = audit([str(folder)], AuditOptions())
    assert report.verdict == "pass", [f.message for f in report.records[0].findings if f.severity != "info"]
    infos = [f.message for f in _findings(report, "R-LOG-PARSE") if f.file == "train_seed42.log"]
    assert any("score: line 12 `final_int8_zlib_roundtrip_exact` (the pass submission.json reports" in m for m in infos)


def test_without_a_json_match_the_last_final_pass_is_the_score(tmp_path):
    folder = make_record(tmp_path)
    log = folder / "train_seed42.log"
    log.write_text(log.read_text() + TTT_TAIL)
    _json(folder, seed_results=None, val_bpb=1.2512345)  # matches no pass and no mean of one
    report = audit([str(folder)], AuditOptions())
    row = next(r for r in report.records[0].seeds if r.seed == 42)
    assert row.metric_label == "legal_ttt_exact" and row.val_bpb == 1.336
    assert any(f.severity == "fail" and "no log supports" in f.message for f in _findings(report, "R-JSON-CONSISTENCY"))


def test_a_headline_that_is_one_pass_mean_picks_that_pass(tmp_path):
    folder = make_record(tmp_path)
    for seed, bpb in ((42, 1.2001), (314, 1.2003), (999, 1.2005)):
        log = folder / f"train_seed{seed}.log"
        log.write_text(log.read_text() + f"final_sliding_window_exact val_loss:2.0 val_bpb:{bpb - 0.02:.8f}\n")
    _json(folder, seed_results=None)  # headline only: the mean of the roundtrip passes
    record = load_record(folder)
    assert {lg.score.label for lg in record.scored_logs()} == {"final_int8_zlib_roundtrip_exact"}
    assert "roundtrip_exact pass" in record.claim.how and record.claim.supported


def test_rounding_alone_is_no_finding(tmp_path):
    folder = make_record(tmp_path)
    _json(
        folder,
        val_bpb=1.2003,
        seed_results={"42": {"val_bpb": 1.2001}, "314": {"val_bpb": 1.2003}, "999": {"val_bpb": 1.2005}},
    )
    report = audit([str(folder)], AuditOptions())
    assert not [f for f in _findings(report, "R-JSON-CONSISTENCY") if f.severity != "info"]
    _json(folder, val_bpb=1.2006)  # beyond the last printed decimal: a small slip warns
    report = audit([str(folder)], AuditOptions())
    assert [f.severity for f in _findings(report, "R-JSON-CONSISTENCY")] == ["warn"]


def test_one_run_reported_alone_warns_and_the_mean_is_shown(tmp_path):
    folder = make_record(tmp_path)
    _json(folder, val_bpb=1.2001, seed_results=None, seeds=None)
    report = audit([str(folder)], AuditOptions())
    found = _findings(report, "R-JSON-CONSISTENCY")
    assert [f.severity for f in found] == ["warn"] and "train_seed42.log alone" in found[0].message
    assert report.records[0].summary["val_bpb_mean"] == pytest.approx(1.2003)


def test_a_claimed_seed_found_by_file_name_warns(tmp_path):
    folder = make_record(tmp_path)
    log = folder / "train_seed314.log"
    log.write_text(log.read_text().replace("seed:314", "seed:1337"))
    report = audit([str(folder)], AuditOptions())
    found = _findings(report, "R-JSON-CONSISTENCY")
    assert [f.severity for f in found] == ["warn"], [f.message for f in found]
    assert "seed 314's value is in train_seed314.log (found by its file name; it logs seed 1337)" in found[0].message


def test_claimed_seed_without_a_log_fails_with_its_line(tmp_path):
    folder = make_record(tmp_path)
    (folder / "train_seed999.log").unlink()
    report = audit([str(folder)], AuditOptions())
    fails = [f for f in _findings(report, "R-JSON-CONSISTENCY") if f.severity == "fail"]
    assert any(f.message == "seed 999 is claimed but has no log" and f.line for f in fails)


def _cut_mid_eval(text: str) -> str:
    """The log as a run leaves it when it is killed during its last evaluation pass."""
    head = text.split("final_int8_zlib_roundtrip ")[0]
    return head + "final_eval:start windows=121136\n  sliding_eval [ 26.4%] 32032/121136 windows running_bpb=1.6\n"


def test_seeds_whose_logs_end_mid_evaluation_fail_saying_where(tmp_path):
    folder = make_record(tmp_path)
    for seed in (314, 999):
        log = folder / f"train_seed{seed}.log"
        log.write_text(_cut_mid_eval(log.read_text()))
    (finding,) = _findings(report := audit([str(folder)], AuditOptions()), "R-SEEDS")
    assert finding.severity == "fail" and report.verdict == "fail"
    assert "cut short: train_seed314.log: an evaluation pass starts at line" in finding.message


def test_seeds_in_logs_the_parser_cannot_read_ask_for_review(tmp_path):
    folder = make_record(tmp_path)
    for seed in (314, 999):  # a layout pgolf does not know: the score may be there, in words it cannot read
        (folder / f"train_seed{seed}.log").write_text(f"run {seed}: done, bits per byte 1.2003 (all tokens)\n")
    (finding,) = _findings(audit([str(folder)], AuditOptions()), "R-SEEDS")
    assert finding.severity == "review"
    assert "2 log(s) with no score the parser could read (train_seed314.log, train_seed999.log)" in finding.message


def test_a_claim_no_readable_log_supports_is_review_when_the_logs_are_unread(tmp_path):
    folder = make_record(tmp_path)
    for seed in (42, 314, 999):
        (folder / f"train_seed{seed}.log").write_text(f"FINAL RESULTS seed={seed}\n  Quantized BPB: 1.2003\n")
    claims = [
        f for f in _findings(audit([str(folder)], AuditOptions()), "R-JSON-CONSISTENCY") if "support" in f.message
    ]
    assert [f.severity for f in claims] == ["review"] and "a person must read them" in claims[0].message


def test_reruns_of_a_claimed_seed_are_not_scored(tmp_path):
    folder = make_record(tmp_path)
    (folder / "train_seed42_rerun.log").write_text(log_text(42, 1.2011, 2.03))
    record = load_record(folder)
    rerun = next(lg for lg in record.logs if lg.rel == "train_seed42_rerun.log")
    assert rerun.excluded and "another run of seed 42" in rerun.excluded
    assert not [p for p in record.problems if p.kind == "seed_conflict"]


def test_two_runs_of_a_seed_without_a_claim_ask_for_review(tmp_path):
    folder = make_record(tmp_path)
    (folder / "train_seed42_rerun.log").write_text(log_text(42, 1.2011, 2.03))
    _json(folder, seed_results=None, seeds=None, val_bpb=None)
    report = audit([str(folder)], AuditOptions())
    assert any(f.severity == "review" and "also logged" in f.message for f in _findings(report, "R-RECORD-FILES"))


def test_a_stray_folder_makes_no_claim(tmp_path):
    folder = tmp_path / "2026-03-19_stray notes"
    folder.mkdir()
    (folder / "train.log").write_text(log_text(1337, 1.2, 2.0, total=16_186_500))
    report = audit([str(folder)], AuditOptions())
    record = report.records[0]
    assert report.verdict == "pass"
    assert [(f.rule, f.severity) for f in record.findings if f.severity != "info"] == [("R-RECORD-FILES", "warn")]
    assert "stray folder" in record.findings[0].message


@pytest.mark.shared
def test_shared_record_whose_seed42_log_ends_with_a_diverged_pass(records_root):
    folder = record_dir("2026-04-04_SP4096_DepthRecurrence_ParallelResid_MuonEqR")
    report = audit([str(folder)], AuditOptions())
    row = next(r for r in report.records[0].seeds if r.seed == 42)
    assert row.metric_label.startswith("final_int6_sliding_window") and row.val_bpb == pytest.approx(1.08938974)
    assert not [f for f in _findings(report, "R-JSON-CONSISTENCY") if f.severity in ("fail", "review")]
