"""Significance tests against the p-values maintainers published (RULES.md §5)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from pgolf.compliance.stats import (
    ENFORCED_ALPHA,
    MARGIN_NATS,
    WRITTEN_ALPHA,
    significance,
    welch_one_sided,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TRACK = SHARED / "records-data" / "records" / "track_10min_16mb"
PR1514 = "2026-04-09_A2_Muon097_3Seed"
PR1736 = "2026-04-19_SP8192_CaseOps_GatedAttn_QuantGate_Loop45_PhasedTTT"
PR1769 = "2026-04-22_SP8192_CaseOps_GatedAttn_QuantGate_Loop45_PhasedTTT_MLPClip12"
# PR #1493's folder (2026-04-09_SP8192_3LayerRecur_ParResid_QK525_LegalTTT) is not in
# ../shared. Its submission.json `seed_results` in openai/parameter-golf (commit
# a5e32b7813d7fbec392e54089ed191773979e52e) gives these per-seed val_bpb; its README
# table agrees to 4 decimals. It carries no per-seed val_loss.
PR1493_GLOB = "2026-04-09_SP8192_3LayerRecur*"
PR1493_BPB = {"42": 1.08079, "314": 1.08103, "999": 1.08118}


def _folder(name: str) -> Path:
    if not TRACK.is_dir():
        pytest.skip(f"record data not found at {TRACK} (../shared absent)")
    path = TRACK / name
    if not path.is_dir():
        pytest.skip(f"record folder {name} missing from {TRACK}")
    return path


def _submission(name: str) -> dict:
    return json.loads((_folder(name) / "submission.json").read_text())


def _per_seed(sub: dict, key: str) -> dict[str, float]:
    """Per-seed values: `seed_results` is seed -> dict; PR #1514 puts them in `seeds`."""
    for block_name in ("seed_results", "seeds"):
        block = sub.get(block_name)
        if isinstance(block, dict):
            return {seed: float(v[key]) for seed, v in block.items() if key in v}
    raise AssertionError(f"no per-seed block in submission {sub.get('name')!r}")


def _pr1493_bpb() -> list[float]:
    found = sorted(TRACK.glob(PR1493_GLOB)) if TRACK.is_dir() else []
    if found:
        return list(_per_seed(_submission(found[0].name), "val_bpb").values())
    return list(PR1493_BPB.values())


@pytest.mark.shared
def test_pr1769_names_pr1736_as_its_base():
    sub = _submission(PR1769)
    assert "PR #1736" in sub["base_submission"]
    assert sub["base_submission"].startswith(PR1736)
    assert "PR #1493" in _submission(PR1514)["blurb"]


@pytest.mark.shared
def test_pr1514_vs_pr1493_published_p():
    new = _per_seed(_submission(PR1514), "val_bpb")
    assert sorted(new) == ["0", "1234", "42"]
    result = significance(list(new.values()), _pr1493_bpb())
    assert round(result.enforced.p, 3) == 0.020
    assert result.enforced_pass and result.passed
    assert result.decided_by == "enforced"
    assert result.enforced.n_new == 3 and result.enforced.n_base == 3
    assert result.enforced.t > 0
    # No per-seed val_loss for #1493: the per-token reading cannot be made.
    assert result.written_per_token is None and result.written_pass is None
    assert any("per-token" in note for note in result.notes)


@pytest.mark.shared
def test_pr1769_vs_pr1736_published_p_and_written_policy():
    new_sub, base_sub = _submission(PR1769), _submission(PR1736)
    new_bpb, base_bpb = _per_seed(new_sub, "val_bpb"), _per_seed(base_sub, "val_bpb")
    assert len(new_bpb) == 5 and len(base_bpb) == 3
    new_loss, base_loss = _per_seed(new_sub, "val_loss"), _per_seed(base_sub, "val_loss")
    enforced = significance(
        list(new_bpb.values()), list(base_bpb.values()), list(new_loss.values()), list(base_loss.values())
    )
    assert round(enforced.enforced.p, 3) == 0.063
    assert enforced.passed
    written = significance(
        list(new_bpb.values()),
        list(base_bpb.values()),
        list(new_loss.values()),
        list(base_loss.values()),
        policy="written",
    )
    # -0.00096 bpb / -0.0021 nats per token is far from 0.005 nats under either unit.
    assert written.written_per_token is not None
    assert written.written_per_token.p > 0.5 and written.written_per_byte.p > 0.5
    assert written.written_pass is False and not written.passed
    assert written.decided_by == "written"


@pytest.mark.shared
def test_matches_scipy_welch_on_real_values():
    new = list(_per_seed(_submission(PR1769), "val_bpb").values())
    base = list(_per_seed(_submission(PR1736), "val_bpb").values())
    for margin in (0.0, 0.0005, 0.002):
        ours = welch_one_sided(new, base, margin)
        ref = sps.ttest_ind(new, [b - margin for b in base], equal_var=False, alternative="less")
        assert ours.p == pytest.approx(ref.pvalue, rel=1e-9)
        assert ours.t == pytest.approx(-ref.statistic, rel=1e-9)
        assert ours.df == pytest.approx(ref.df, rel=1e-9)


@pytest.mark.shared
def test_per_byte_reading_uses_ln2_and_margin():
    new = list(_per_seed(_submission(PR1514), "val_bpb").values())
    base = _pr1493_bpb()
    result = significance(new, base).written_per_byte
    same = welch_one_sided(new, base, MARGIN_NATS / math.log(2))
    assert result.p == pytest.approx(same.p, rel=1e-9)
    assert result.mean_new == pytest.approx(sum(new) / 3 * math.log(2))
    assert result.margin == MARGIN_NATS


@pytest.mark.shared
def test_written_ambiguous_when_units_disagree():
    # Real #1736 seeds as the base; a new run 0.004 bpb better (0.0028 nats/byte)
    # but 0.012 nats/token better: passes per token, fails per byte.
    base = _submission(PR1736)
    base_bpb = list(_per_seed(base, "val_bpb").values())
    base_loss = list(_per_seed(base, "val_loss").values())
    new_bpb = [v - 0.004 for v in base_bpb]
    new_loss = [v - 0.012 for v in base_loss]
    result = significance(new_bpb, base_bpb, new_loss, base_loss, policy="written")
    assert result.written_per_token.passes(WRITTEN_ALPHA)
    assert not result.written_per_byte.passes(WRITTEN_ALPHA)
    assert result.written_pass is None and not result.passed
    assert any("ambiguous" in note for note in result.notes)
    both = significance([v - 0.02 for v in base_bpb], base_bpb, new_loss, base_loss, policy="written")
    assert both.written_pass is True and both.passed


def test_degenerate_inputs_never_pass():
    single = significance([1.0700], [1.0810, 1.0812, 1.0808])
    assert math.isnan(single.enforced.p) and not single.passed
    assert any("single seed" in note for note in single.notes)
    flat = welch_one_sided([1.07, 1.07], [1.08, 1.08])
    assert math.isnan(flat.p) and "zero variance" in flat.note
    assert not flat.passes(ENFORCED_ALPHA)
    one_flat = welch_one_sided([1.07, 1.07, 1.07], [1.08, 1.081, 1.079])
    assert one_flat.df == pytest.approx(2.0) and one_flat.p < 0.01
    for bad in ([1.07, float("nan")], [1.07, "x"], None, "1.07"):
        result = welch_one_sided(bad, [1.08, 1.081])
        assert math.isnan(result.p) and "non-finite" in result.note
    with pytest.raises(ValueError, match="policy"):
        significance([1.0, 1.1], [1.2, 1.3], policy="readme")


@pytest.mark.shared
def test_worse_run_fails_enforced():
    base = _per_seed(_submission(PR1769), "val_bpb")
    new = _per_seed(_submission(PR1736), "val_bpb")
    result = significance(list(new.values()), list(base.values()))
    assert result.enforced.t < 0 and result.enforced.p > 0.9
    assert not result.passed


@pytest.mark.shared
def test_catalog_alphas_and_margin_decide_r_significance(tmp_path, monkeypatch):
    """R-SIGNIFICANCE reads enforced_alpha, written_alpha and margin_nats from its catalog."""
    import shutil

    from pgolf.compliance.audit import audit
    from pgolf.compliance.baseline import parse_baseline
    from pgolf.compliance.context import AuditOptions
    from pgolf.compliance.rules import registry

    new, base = _folder(PR1769), _folder(PR1736)
    for path in registry.CATALOG_DIR.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "strict.yaml").write_text(
        "ruleset: strict\nextends: track_10min_16mb\noverrides:\n"
        "  R-SIGNIFICANCE:\n    params: {enforced_alpha: 0.05, written_alpha: 0.2, margin_nats: 0.0}\n"
    )
    monkeypatch.setattr(registry, "CATALOG_DIR", tmp_path)
    registry.load_ruleset.cache_clear()
    try:

        def sig(ruleset: str | None) -> tuple[dict, list]:
            record = audit([str(new)], AuditOptions(against=parse_baseline(str(base)), ruleset=ruleset)).records[0]
            return record.significance, [f for f in record.findings if f.rule == "R-SIGNIFICANCE"]

        default, default_findings = sig(None)
        strict, strict_findings = sig("strict")
    finally:
        registry.load_ruleset.cache_clear()
    assert round(default["enforced"]["p"], 3) == round(strict["enforced"]["p"], 3) == 0.063
    assert default["enforced_alpha"] == 0.25 and default["enforced_pass"] and default_findings[0].severity == "info"
    assert strict["enforced_alpha"] == 0.05 and not strict["enforced_pass"]
    assert strict_findings[0].severity == "fail" and "p < 0.05" in strict_findings[0].message
    # no margin: the per-byte written test is a plain one-sided test of improvement, far likelier to pass
    assert strict["margin_nats"] == 0.0 and strict["written_per_byte"]["p"] < default["written_per_byte"]["p"]


def test_alphas_and_margin_are_checked():
    for kwargs in (
        {"enforced_alpha": 0.0},
        {"written_alpha": 1.5},
        {"margin_nats": -0.1},
        {"margin_nats": float("nan")},
    ):
        with pytest.raises(ValueError):
            significance([1.0, 1.1], [1.2, 1.3], **kwargs)


@pytest.mark.shared
def test_pr1855_vs_pr1868_published_p():
    """PR #1902: PR #1855's six runs (its three seeds and a third-party reproduction of three more,
    quoted as mean 1.060755, std 0.000933) against PR #1868's compliance rerun: p = 0.188."""
    from pgolf.compliance.logparse import parse_log_bytes
    from pgolf.compliance.stats import welch_from_summary

    folder = _folder("2026-04-29_SmearGateBOSFix_3Seed_1.06141")
    rerun = [parse_log_bytes(p.read_bytes()).score.val_bpb for p in sorted(folder.glob("*_rerun_gptq8s.log"))]
    assert len(rerun) == 3
    base = (sum(rerun) / 3, float(np.std(rerun, ddof=1)), 3)
    result = welch_from_summary((1.060755, 0.000933, 6), base)
    assert round(result.p, 3) == 0.188 and result.passes(ENFORCED_ALPHA)
    same = welch_one_sided([1.0, 1.1, 1.2], [1.3, 1.35, 1.5])
    again = welch_from_summary((1.1, 0.1, 3), (sum([1.3, 1.35, 1.5]) / 3, float(np.std([1.3, 1.35, 1.5], ddof=1)), 3))
    assert again.p == pytest.approx(same.p, rel=1e-12)
    assert math.isnan(welch_from_summary((1.0, -1.0, 3), base).p)
