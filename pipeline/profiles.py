"""Run profiles (profiles.yaml): caps, process count, and knobs for the reference submission."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROFILES_FILE = Path(__file__).with_name("profiles.yaml")


class ProfileError(ValueError):
    pass


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    track: str
    ruleset: str
    nproc: int
    train_cap_s: float
    eval_cap_s: float
    max_bytes: int
    grace_s: float
    quantize_reserve_s: float
    device: str = "cpu"                # cpu | cuda: what a stage gets (a container's GPUs, a sandbox's device nodes)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def caps(self) -> dict:
        return {"train_s": self.train_cap_s, "eval_s": self.eval_cap_s, "bytes": self.max_bytes,
                "nproc": self.nproc, "grace_s": self.grace_s}


DEVICES = ("cpu", "cuda")


def load_profiles() -> dict[str, Profile]:
    data = yaml.safe_load(PROFILES_FILE.read_text(encoding="utf-8"))
    profiles = {name: Profile(name=name, **{**entry, "env": {k: str(v) for k, v in entry.get("env", {}).items()}})
                for name, entry in data.items()}
    for profile in profiles.values():
        if profile.device not in DEVICES:
            raise ProfileError(f"profile {profile.name}: device {profile.device!r} is not one of {', '.join(DEVICES)}")
    return profiles


def get_profile(name: str) -> Profile:
    profiles = load_profiles()
    if name not in profiles:
        raise ProfileError(f"unknown profile {name!r} (known: {', '.join(profiles)})")
    return profiles[name]
