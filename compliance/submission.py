"""submission.json, loaded tolerantly and normalized.

The challenge never fixed a schema (RULES.md §5): seeds come as a list, a
dict of results, a single `seed`, or `seed_scores` aligned with `seeds`;
sizes as `bytes_total` or `artifact_size_bytes`; tracks spelled three ways.
This module maps all of them onto one shape and remembers what it had to guess.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from . import safeio
from .errors import InputError

TRACK_ALIASES = {
    "10min_16mb": "track_10min_16mb",
    "track_10min_16mb": "track_10min_16mb",
    "non_record_16mb": "track_non_record_16mb",
    "non-record-16mb": "track_non_record_16mb",
    "non-record_16mb": "track_non_record_16mb",
    "track_non_record_16mb": "track_non_record_16mb",
    "cpu_smoke": "track_cpu_smoke",
    "track_cpu_smoke": "track_cpu_smoke",
}


@dataclass
class SeedClaim:
    seed: int
    val_bpb: float | None = None
    val_loss: float | None = None
    bytes_total: int | None = None
    train_time_ms: float | None = None
    eval_time_ms: float | None = None


@dataclass
class Submission:
    raw: dict[str, Any]
    name: str | None = None
    author: str | None = None
    github_id: str | None = None
    date: str | None = None
    track: str | None = None
    val_bpb: float | None = None
    val_loss: float | None = None
    val_bpb_std: float | None = None
    bytes_total: int | None = None
    bytes_code: int | None = None
    bytes_model: int | None = None
    seeds: list[int] = field(default_factory=list)
    seed_claims: dict[int, SeedClaim] = field(default_factory=dict)
    hardware: str | None = None
    pytorch_version: str | None = None
    notes: list[str] = field(default_factory=list)


def load_submission(data: bytes, name: str) -> Submission:
    raw = safeio.load_json(data, name)
    if not isinstance(raw, dict):
        raise InputError(name, f"top level is a JSON {type(raw).__name__}, expected an object")
    return normalize(raw)


def normalize(raw: dict[str, Any]) -> Submission:
    sub = Submission(raw=raw)
    for key in ("name", "author", "github_id", "date", "hardware"):
        setattr(sub, key, _text(raw.get(key)))
    sub.pytorch_version = _text(raw.get("pytorch_version") or raw.get("torch_version"))
    sub.track = _track(raw.get("track"), sub)
    sub.val_bpb = _number(raw, "val_bpb", sub)
    sub.val_loss = _number(raw, "val_loss", sub)
    sub.val_bpb_std = _number(raw, "val_bpb_std", sub)
    sub.bytes_total = _integer(raw, ("bytes_total", "artifact_size_bytes", "total_bytes"), sub)
    sub.bytes_code = _integer(raw, ("bytes_code", "code_bytes"), sub)
    model_keys = tuple(k for k in raw if k.startswith("bytes_model"))
    sub.bytes_model = _integer(raw, model_keys, sub) if model_keys else None
    sub.seed_claims = _seed_claims(raw, sub)
    sub.seeds = _seed_list(raw, sub)
    return sub


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _track(value: Any, sub: Submission) -> str | None:
    if value is None:
        return None
    track = TRACK_ALIASES.get(str(value).strip().lower())
    if track is None:
        sub.notes.append(f"unknown track {value!r}")
    return track


def _to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _number(raw: dict, key: str, sub: Submission) -> float | None:
    value = raw.get(key)
    number = _to_float(value)
    if value is not None and number is None:
        sub.notes.append(f"{key} is not a number: {str(value)[:40]!r}")
    elif isinstance(value, str):
        sub.notes.append(f"{key} is a string, read as {number}")
    return number


def _integer(raw: dict, keys: tuple[str, ...], sub: Submission) -> int | None:
    for key in keys:
        if raw.get(key) is not None:
            number = _number(raw, key, sub)
            return int(number) if number is not None else None
    return None


def _as_seed(value: Any) -> int | None:
    number = _to_float(value)
    if number is None or number != int(number):
        return None
    return int(number)


def _seed_claims(raw: dict, sub: Submission) -> dict[int, SeedClaim]:
    table = raw.get("seed_results")
    if table is None and isinstance(raw.get("seeds"), dict):
        table = raw["seeds"]  # some records put the per-seed results under "seeds"
    claims: dict[int, SeedClaim] = {}
    if isinstance(table, dict):
        for key, entry in table.items():
            claim = _claim(key, entry)
            if claim is None:
                sub.notes.append(f"seed_results entry {str(key)[:20]!r} could not be read")
            else:
                claims[claim.seed] = claim
    elif isinstance(table, list):
        for entry in table:
            claim = _claim(entry.get("seed") if isinstance(entry, dict) else None, entry)
            if claim is not None:
                claims[claim.seed] = claim
    scores = raw.get("seed_scores")
    if isinstance(scores, list) and isinstance(raw.get("seeds"), list) and len(scores) == len(raw["seeds"]):
        for seed, score in zip(raw["seeds"], scores):
            if _as_seed(seed) is not None:
                claims.setdefault(_as_seed(seed), SeedClaim(_as_seed(seed))).val_bpb = _to_float(score)
    return claims


def _claim(key: Any, entry: Any) -> SeedClaim | None:
    seed = _as_seed(key)
    if seed is None or not isinstance(entry, (dict, int, float)):
        return None
    if not isinstance(entry, dict):
        return SeedClaim(seed, val_bpb=_to_float(entry))
    claim = SeedClaim(seed, val_bpb=_to_float(entry.get("val_bpb")), val_loss=_to_float(entry.get("val_loss")))
    size = entry.get("bytes_total", entry.get("artifact_bytes"))
    claim.bytes_total = int(_to_float(size)) if _to_float(size) is not None else None
    claim.train_time_ms = _ms(entry, "train_time")
    claim.eval_time_ms = _ms(entry, "eval_time")
    return claim


def _ms(entry: dict, stem: str) -> float | None:
    if _to_float(entry.get(f"{stem}_ms")) is not None:
        return _to_float(entry[f"{stem}_ms"])
    seconds = _to_float(entry.get(f"{stem}_s"))
    return seconds * 1000 if seconds is not None else None


def _seed_list(raw: dict, sub: Submission) -> list[int]:
    seeds = raw.get("seeds")
    if isinstance(seeds, list):
        parsed = [_as_seed(s) for s in seeds]
        if None in parsed:
            sub.notes.append("seeds list holds values that are not integers")
        return [s for s in parsed if s is not None]
    if sub.seed_claims:
        return list(sub.seed_claims)
    single = _as_seed(raw.get("seed"))
    return [single] if single is not None else []
