"""Profiles take their caps from the rule catalogs, so a record is held to what its check enforces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pgolf.compliance.rules import load_ruleset
from pgolf.pipeline.profiles import PROFILES_FILE, ProfileError, get_profile, load_profiles


@pytest.mark.parametrize("name", sorted(load_profiles()))
def test_profile_caps_are_its_rulesets(name):
    profile = get_profile(name)
    rules = load_ruleset(profile.ruleset)
    assert profile.max_bytes == rules.get("R-SIZE").params["max_bytes"]
    assert profile.train_cap_s * 1000 == rules.get("R-TRAIN-TIME").params["max_ms"]
    assert profile.eval_cap_s * 1000 == rules.get("R-EVAL-TIME").params["max_ms"]


def test_record_track_profile_is_the_challenge():
    profile = get_profile("8xh100")
    assert (profile.nproc, profile.train_cap_s, profile.eval_cap_s, profile.max_bytes) == (8, 600, 600, 16_000_000)
    assert profile.calibration_reference_s is None and not profile.fixed_steps


def test_cpu_smoke_trains_fixed_steps_under_calibrated_caps():
    profile = get_profile("cpu-smoke")
    assert profile.fixed_steps and profile.env["ITERATIONS"]
    assert profile.calibration_reference_s > 0 and profile.max_cap_scale > 1
    wider = profile.scaled(2.5)
    assert (wider.train_cap_s, wider.eval_cap_s) == (profile.train_cap_s * 2.5, profile.eval_cap_s * 2.5)
    assert wider.max_bytes == profile.max_bytes
    assert profile.dynamic_cap_s(10.0) == profile.dynamic_cap_floor_s
    assert profile.dynamic_cap_s(1000.0) == profile.dynamic_cap_multiple * 1000.0


def _write(tmp_path, text):
    path = tmp_path / "profiles.yaml"
    path.write_text(text)
    return path


ENTRY = (
    "p:\n  description: d\n  track: track_cpu_smoke\n  ruleset: track_cpu_smoke\n  nproc: 1\n"
    "  grace_s: 1\n  quantize_reserve_s: 1\n"
)


@pytest.mark.parametrize(
    "extra, message",
    [
        ("  train_cap_s: 99\n", "caps come from its ruleset"),
        ("  colour: blue\n", "unknown keys colour"),
        ("", None),
    ],
)
def test_a_profile_may_not_set_its_own_caps(tmp_path, extra, message):
    path = _write(tmp_path, ENTRY + extra)
    if message is None:
        assert load_profiles(path)["p"].train_cap_s == 150
        return
    with pytest.raises(ProfileError, match=message) as info:
        load_profiles(path)
    assert str(path) in str(info.value)


def test_unknown_ruleset_and_broken_yaml_are_one_line_errors(tmp_path):
    path = _write(tmp_path, ENTRY.replace("ruleset: track_cpu_smoke", "ruleset: nope"))
    with pytest.raises(ProfileError, match=f"^{path}: profile p: unknown ruleset 'nope'"):
        load_profiles(path)
    with pytest.raises(ProfileError, match="not readable as YAML"):
        load_profiles(_write(tmp_path, "p: [\n"))


def test_calibrated_profile_needs_a_ruleset_that_allows_scaling(tmp_path):
    text = ENTRY.replace("track_cpu_smoke", "track_10min_16mb") + "  calibration: {reference_s: 0.04}\n"
    with pytest.raises(ProfileError, match="allows no scaling"):
        load_profiles(_write(tmp_path, text))


def test_the_shipped_file_loads():
    assert set(load_profiles(PROFILES_FILE)) >= {"8xh100", "1xgpu", "cpu-smoke"}


def test_unknown_profile():
    with pytest.raises(ProfileError, match="unknown profile 'nope'"):
        get_profile("nope")


@pytest.mark.slow
def test_init_copies_the_reference(tmp_path):
    argv = [sys.executable, "-c", "from pgolf.pipeline.cli import main; main()", "init", "idea", "--dir", str(tmp_path)]
    first = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    script = (tmp_path / "idea" / "train_gpt.py").read_text()
    assert "PGOLF_STAGE" in script
    again = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "exists" in again.stderr and "Traceback" not in again.stderr


def _smoke_record(tmp_path, train_ms: int, scale) -> Path:
    from tests.factory import log_text, make_record

    folder = make_record(tmp_path)
    for log in folder.glob("train_seed*.log"):
        seed = int(log.stem.removeprefix("train_seed"))
        log.write_text(log_text(seed, 1.2, 2.0, train_ms=train_ms, total=400_000))
    sub = json.loads((folder / "submission.json").read_text())
    sub.update(track="track_cpu_smoke", bytes_total=400_000)
    if scale is not None:
        sub["pgolf"] = {"calibration": {"scale": scale}}
    (folder / "submission.json").write_text(json.dumps(sub))
    return folder


@pytest.mark.parametrize(
    "train_ms, scale, over",
    [
        (250_000, None, True),  # 250 s against cpu-smoke's 150 s
        (250_000, 2.0, False),  # the record states a calibration: 300 s
        (250_000, True, True),  # not a number: no scale
        (1_300_000, 100.0, True),  # at most the ruleset's bound (8 x 150 s = 1200 s)
    ],
)
def test_a_cpu_smoke_record_is_held_to_its_stated_calibration(tmp_path, train_ms, scale, over):
    from pgolf.compliance.audit import audit
    from pgolf.compliance.context import AuditOptions

    report = audit([str(_smoke_record(tmp_path, train_ms, scale))], AuditOptions())
    failed = [f for f in report.records[0].findings if f.rule == "R-TRAIN-TIME" and f.severity == "fail"]
    assert bool(failed) == over
    if scale == 100.0:
        assert "1200 s cap (150 s x the stated calibration 8.00)" in failed[0].message


def test_the_record_track_ignores_a_stated_calibration(tmp_path):
    from pgolf.compliance.audit import audit
    from pgolf.compliance.context import AuditOptions

    folder = _smoke_record(tmp_path, 700_000, 4.0)
    sub = json.loads((folder / "submission.json").read_text())
    (folder / "submission.json").write_text(json.dumps({**sub, "track": "track_10min_16mb"}))
    report = audit([str(folder)], AuditOptions())
    assert any(
        f.rule == "R-TRAIN-TIME" and f.severity == "fail" and "600 s cap" in f.message
        for f in report.records[0].findings
    )
