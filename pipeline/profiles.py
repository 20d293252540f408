"""Run profiles (profiles.yaml): process count, how caps are applied, knobs for the reference.

The caps come from the profile's compliance ruleset, never from here: R-TRAIN-TIME and
R-EVAL-TIME give the wall-clock caps (their params even where a track switches the rule off),
R-SIZE the byte cap, and `max_calibration_scale` how far a calibration may widen the time caps.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

PROFILES_FILE = Path(__file__).with_name("profiles.yaml")
_KEYS = {
    "description",
    "device",
    "track",
    "ruleset",
    "nproc",
    "grace_s",
    "quantize_reserve_s",
    "env",
    "fixed_steps",
    "calibration",
    "dynamic_cap",
    "dynamic_env",
}
_FROM_RULESET = {"train_cap_s", "eval_cap_s", "max_bytes"}
DEVICES = ("cpu", "cuda")


class ProfileError(ValueError):
    pass


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    track: str
    ruleset: str
    nproc: int
    train_cap_s: float  # train and quantize together (R-TRAIN-TIME)
    eval_cap_s: float  # R-EVAL-TIME
    max_bytes: int  # R-SIZE
    grace_s: float
    quantize_reserve_s: float
    device: str = "cpu"  # cpu | cuda: what a stage gets (a container's GPUs, a sandbox's device nodes)
    env: dict[str, str] = field(default_factory=dict)
    fixed_steps: bool = False
    calibration_reference_s: float | None = None
    max_cap_scale: float = 1.0
    dynamic_cap_multiple: float = 0.0
    dynamic_cap_floor_s: float = 900.0
    dynamic_env: dict[str, str] = field(default_factory=dict)

    @property
    def caps(self) -> dict:
        return {
            "train_s": self.train_cap_s,
            "eval_s": self.eval_cap_s,
            "bytes": self.max_bytes,
            "nproc": self.nproc,
            "grace_s": self.grace_s,
        }

    def scaled(self, scale: float) -> Profile:
        """The same profile with its wall-clock caps widened (a calibration's scale)."""
        return replace(self, train_cap_s=self.train_cap_s * scale, eval_cap_s=self.eval_cap_s * scale)

    def with_threads(self, threads: int) -> Profile:
        return replace(self, env={**self.env, "OMP_NUM_THREADS": str(threads)})

    def dynamic_cap_s(self, slowest_seed_s: float) -> float:
        return max(self.dynamic_cap_floor_s, self.dynamic_cap_multiple * slowest_seed_s)


def load_profiles(path: Path = PROFILES_FILE) -> dict[str, Profile]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"{path}: not readable as YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping of profile names")
    return {name: _profile(path, str(name), entry) for name, entry in data.items()}


def get_profile(name: str) -> Profile:
    profiles = load_profiles()
    if name not in profiles:
        raise ProfileError(f"unknown profile {name!r} (known: {', '.join(profiles)})")
    return profiles[name]


def _profile(path: Path, name: str, entry: object) -> Profile:
    if not isinstance(entry, dict):
        raise ProfileError(f"{path}: profile {name} is not a mapping")
    if set(entry) & _FROM_RULESET:
        raise ProfileError(
            f"{path}: profile {name} sets {', '.join(sorted(set(entry) & _FROM_RULESET))}; "
            f"caps come from its ruleset ({entry.get('ruleset')})"
        )
    unknown = set(entry) - _KEYS
    if unknown:
        raise ProfileError(f"{path}: profile {name} has unknown keys {', '.join(sorted(unknown))}")
    if entry.get("device", "cpu") not in DEVICES:
        raise ProfileError(f"{path}: profile {name}: device {entry.get('device')!r} is not one of {', '.join(DEVICES)}")
    caps = _ruleset_caps(path, name, str(entry.get("ruleset")))
    try:
        calibration, dynamic = entry.get("calibration") or {}, entry.get("dynamic_cap") or {}
        reference = calibration.get("reference_s")
        profile = Profile(
            name=name,
            description=str(entry["description"]),
            track=str(entry["track"]),
            ruleset=str(entry["ruleset"]),
            nproc=int(entry["nproc"]),
            grace_s=float(entry["grace_s"]),
            quantize_reserve_s=float(entry["quantize_reserve_s"]),
            device=str(entry.get("device", "cpu")),
            env={str(k): str(v) for k, v in (entry.get("env") or {}).items()},
            fixed_steps=bool(entry.get("fixed_steps", False)),
            calibration_reference_s=float(reference) if reference is not None else None,
            dynamic_cap_multiple=float(dynamic.get("multiple", 0.0)),
            dynamic_cap_floor_s=float(dynamic.get("floor_s", 900.0)),
            dynamic_env={str(k): str(v) for k, v in (entry.get("dynamic_env") or {}).items()},
            **caps,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProfileError(f"{path}: profile {name}: missing or invalid {exc}") from None
    if profile.calibration_reference_s is not None and profile.max_cap_scale <= 1.0:
        raise ProfileError(
            f"{path}: profile {name} is calibrated but ruleset {profile.ruleset} allows no "
            f"scaling (R-TRAIN-TIME/R-EVAL-TIME max_calibration_scale)"
        )
    return profile


def _ruleset_caps(path: Path, name: str, ruleset: str) -> dict:
    from pgolf.compliance.errors import InputError
    from pgolf.compliance.rules import load_ruleset

    try:
        rules = load_ruleset(ruleset)
    except InputError as exc:
        raise ProfileError(f"{path}: profile {name}: {exc}") from None
    train, evaluation = rules.get("R-TRAIN-TIME").params, rules.get("R-EVAL-TIME").params
    scales = {float(p.get("max_calibration_scale", 1.0)) for p in (train, evaluation)}
    if len(scales) != 1:
        raise ProfileError(
            f"{path}: profile {name}: ruleset {ruleset}'s R-TRAIN-TIME and R-EVAL-TIME allow "
            f"different calibration scales"
        )
    return {
        "train_cap_s": float(train["max_ms"]) / 1000,
        "eval_cap_s": float(evaluation["max_ms"]) / 1000,
        "max_bytes": int(rules.get("R-SIZE").params["max_bytes"]),
        "max_cap_scale": scales.pop(),
    }
