"""pgolf-check over the real official record data in ../shared."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pgolf.compliance.audit import audit
from pgolf.compliance.context import AuditOptions

from .conftest import record_dir, shared_record_dirs

CHECK = [sys.executable, "-c", "from pgolf.compliance.cli import run; run()"]

# Folders whose submission.json val_bpb is not the mean of their logs' scores, and why.
DISAGREE = {
    "2026-03-18_LongContextSeq2048": "the JSON reports the seed-1337 run (train.log) alone, not the 3-seed mean",
    "2026-03-24_74M_Ternary_UNet_FP8_10L_8192BPE_YaRN_NeoMuon": "the JSON reports seed 42 alone; its blurb's 3-seed mean 1.1570 agrees",
    "2026-04-04_SP4096_DepthRecurrence_ParallelResid_MuonEqR": "seed 42's log ends with an extra TTT pass that diverged (1.336); the JSON reports sliding-window scores",
    "2026-03-19_SwiGLU_WarmdownFix_QuarterBatch_1x5090": "no train log in the folder",
    "2026-03-21_DepthRecurrence_MixedPrecisionQuant": "no train log in the folder",
    "2026-03-23_DGAttention_DavidGao": "the log ends after serialization, before any final evaluation",
    "2026-04-30_Random_Linear_Adapter": "the JSON reports the non-sliding roundtrip; the logs' last final pass is sliding",
}


def test_every_shared_folder_is_audited_without_a_broken_check(records_root):
    report = audit([str(records_root)], AuditOptions())
    assert len(report.records) == len(shared_record_dirs()) == 34
    for record in report.records:
        assert record.error is None, record.path
        broken = [f.message for f in record.findings if "could not run" in f.message]
        assert not broken, (record.path, broken)


def test_parsed_means_agree_with_submission_json(records_root):
    report = audit([str(records_root)], AuditOptions())
    agree, disagree = [], {}
    for record in report.records:
        claimed, mean = record.summary["claimed_val_bpb"], record.summary["val_bpb_mean"]
        if claimed is None:
            continue
        name = record.path.rsplit("/", 1)[-1]
        if mean is not None and abs(mean - claimed) <= 5e-4:
            agree.append(name)
        else:
            disagree[name] = (mean, claimed)
    assert set(disagree) == set(DISAGREE), disagree
    with_scores = len(agree) + sum(mean is not None for mean, _ in disagree.values())
    assert len(agree) >= 0.85 * with_scores


def _check_json(*args: str) -> dict:
    proc = subprocess.run(CHECK + list(args) + ["--format", "json"], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def test_significance_reproduces_pr1514_vs_pr1493(records_root):
    # PR #1493's folder is not in ../shared; its per-seed val_bpb (seeds 42, 314, 999) from its submission.json
    report = _check_json(str(record_dir("2026-04-09_A2_Muon097_3Seed")), "--against", "1.08079,1.08103,1.08118")
    sig = report["records"][0]["significance"]
    assert round(sig["enforced"]["p"], 3) == 0.020 and sig["enforced_pass"] and sig["decided_by"] == "enforced"


def test_significance_reproduces_pr1769_vs_pr1736(records_root):
    base = record_dir("2026-04-19_SP8192_CaseOps_GatedAttn_QuantGate_Loop45_PhasedTTT")
    new = record_dir("2026-04-22_SP8192_CaseOps_GatedAttn_QuantGate_Loop45_PhasedTTT_MLPClip12")
    report = _check_json(str(new), "--against", str(base))
    sig = report["records"][0]["significance"]
    assert round(sig["enforced"]["p"], 3) == 0.063 and sig["enforced_pass"]
    assert sig["written_pass"] is False
    written = _check_json(str(new), "--against", str(base), "--policy", "written")
    assert written["records"][0]["significance"]["decided_by"] == "written"
    assert any(f["rule"] == "R-SIGNIFICANCE" and f["severity"] == "fail" for f in written["records"][0]["findings"])


@pytest.mark.parametrize("fmt", ["human", "markdown", "sarif"])
def test_other_formats_render_real_records(records_root, fmt):
    folder = record_dir("2026-03-25_ValCalib_GPTQ_XSA_BigramHash3072")
    proc = subprocess.run(CHECK + [str(folder), "--format", fmt], capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1, 3) and "Traceback" not in proc.stderr
    if fmt == "sarif":
        doc = json.loads(proc.stdout)
        assert doc["version"] == "2.1.0" and doc["runs"][0]["results"]
    elif fmt == "markdown":
        assert proc.stdout.startswith("### pgolf-check:") and "| seed | val_bpb |" in proc.stdout
    else:
        assert "train_seed42.log" in proc.stdout and "verdict:" in proc.stdout


def test_significance_is_shown_in_the_pr_comment(records_root):
    base = record_dir("2026-04-19_SP8192_CaseOps_GatedAttn_QuantGate_Loop45_PhasedTTT")
    new = record_dir("2026-04-22_SP8192_CaseOps_GatedAttn_QuantGate_Loop45_PhasedTTT_MLPClip12")
    proc = subprocess.run(CHECK + [str(new), "--against", str(base), "--format", "markdown"],
                          capture_output=True, text=True, timeout=120)
    assert "enforced Welch p = 0.063 (pass at p < 0.25)" in proc.stdout and "written" in proc.stdout
