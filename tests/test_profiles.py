"""Profiles and the rule catalogs must name the same caps, or records would fail their own check."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pgolf.compliance.rules import load_ruleset
from pgolf.pipeline.profiles import ProfileError, get_profile, load_profiles


@pytest.mark.parametrize("name", sorted(load_profiles()))
def test_profile_caps_match_its_ruleset(name):
    profile = get_profile(name)
    rules = load_ruleset(profile.ruleset)
    assert rules.get("R-SIZE").params["max_bytes"] == profile.max_bytes
    train, evaluation = rules.get("R-TRAIN-TIME"), rules.get("R-EVAL-TIME")
    if train.enabled:
        assert train.params["max_ms"] == profile.train_cap_s * 1000
    if evaluation.enabled and evaluation.severity == "fail":
        assert evaluation.params["max_ms"] == profile.eval_cap_s * 1000


def test_record_track_profile_is_the_challenge():
    profile = get_profile("8xh100")
    assert (profile.nproc, profile.train_cap_s, profile.eval_cap_s, profile.max_bytes) == (8, 600, 600, 16_000_000)


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
