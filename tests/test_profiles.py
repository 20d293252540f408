"""Profiles take their caps from the rule catalogs, so a record is held to what its check enforces."""
from __future__ import annotations

import subprocess
import sys

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


ENTRY = ("p:\n  description: d\n  track: track_cpu_smoke\n  ruleset: track_cpu_smoke\n  nproc: 1\n"
         "  grace_s: 1\n  quantize_reserve_s: 1\n")


@pytest.mark.parametrize("extra, message", [
    ("  train_cap_s: 99\n", "caps come from its ruleset"),
    ("  colour: blue\n", "unknown keys colour"),
    ("", None),
])
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


def test_init_copies_the_reference(tmp_path):
    argv = [sys.executable, "-c", "from pgolf.pipeline.cli import main; main()", "init", "idea",
            "--dir", str(tmp_path)]
    first = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    script = (tmp_path / "idea" / "train_gpt.py").read_text()
    assert "PGOLF_STAGE" in script
    again = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "exists" in again.stderr and "Traceback" not in again.stderr
