"""submission.json, loaded tolerantly and normalized.

The challenge never fixed a schema (RULES.md §5): the score comes as `val_bpb`,
`mean_val_bpb`, `val_bpb_mean` or `mean_bpb`; seeds as a list, a dict of results
(`seed_results`, `seeds`, `results`, `val_bpb_per_seed`, `val_bpb_seeds`, top-level
`seed_42` blocks), a single `seed`, or per-seed lists (`seed_scores`, `val_bpb_exact`)
aligned with `seeds`; sizes as `bytes_total` or `artifact_size_bytes`; tracks spelled
three ways. This module maps all of them onto one shape and remembers what it had to
guess. A number no run can produce (NaN, infinite, negative, beyond any physical run) is
never used: it is listed in `Submission.invalid` for the audit to fail.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from . import safeio
from .errors import InputError
from .logparse import impossible

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
    key: str = ""  # where in the JSON the claim is, e.g. "seed_results.42"
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
    val_bpb_key: str | None = None  # the key the headline score was read from
    notes: list[str] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (key path, why it is impossible)


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
    sub.val_bpb_key, sub.val_bpb = _headline(raw, sub)
    sub.val_loss = _number(raw, "val_loss", sub) if "val_loss" in raw else _number(raw, "mean_val_loss", sub)
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
    number = _as_number(value)
    return number if number is not None and math.isfinite(number) else None


# The headline score's keys, most explicit first; the first present one is the claim.
HEADLINE_KEYS = ("val_bpb", "mean_val_bpb", "val_bpb_mean", "mean_bpb")
# What each kind of key measures, for the physical limits (compliance.logparse.PHYSICAL_LIMITS).
_FACT_OF_KEY = (
    (re.compile(r"(?:^|_)bpb(?:_|$)"), "val_bpb"),
    (re.compile(r"(?:^|_)loss(?:_|$)"), "val_loss"),
    (re.compile(r"bytes|size"), "bytes_model"),
    (re.compile(r"time_ms$|_ms$"), "train_time_ms"),
)


def _headline(raw: dict[str, Any], sub: Submission) -> tuple[str | None, float | None]:
    for key in HEADLINE_KEYS:
        if raw.get(key) is not None:
            value = _number(raw, key, sub)
            if key != "val_bpb":
                sub.notes.append(f"no val_bpb; the score is read from {key!r}")
            return key, value
    return None, None


def _fact_of(key: str) -> str | None:
    leaf = key.rsplit(".", 1)[-1].lower()
    if "std" in leaf or "delta" in leaf or "gain" in leaf or "gap" in leaf:
        return None  # differences and spreads may be negative or zero
    return next((fact for pattern, fact in _FACT_OF_KEY if pattern.search(leaf)), None)


def _number(raw: dict[str, Any], key: str, sub: Submission, path: str | None = None) -> float | None:
    """A finite, physically possible number, or None with a note (not a number) or an invalid entry."""
    value = raw.get(key)
    path = path or key
    if value is None:
        return None
    number = _as_number(value)
    if number is None:
        sub.notes.append(f"{path} is not a number: {str(value)[:40]!r}")
        return None
    why = impossible(_fact_of(key) or "", number)  # NaN and infinities for every key
    if why:
        shown = f"{number:g}" if math.isfinite(number) else str(value)[:20]
        sub.invalid.append((path, f"{path} {shown} is {why}"))
        return None
    if isinstance(value, str):
        sub.notes.append(f"{path} is a string, read as {number}")
    return number


def _as_number(value: Any) -> float | None:
    """The number a JSON value spells, NaN and infinities included (json reads NaN/Infinity)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:  # an integer beyond any float is beyond any run
            return math.inf if value > 0 else -math.inf
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _integer(raw: dict[str, Any], keys: tuple[str, ...], sub: Submission) -> int | None:
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


# Per-seed tables keyed by seed, in the order they are trusted; "seeds" holds one in some records.
SEED_TABLES = ("seed_results", "seeds", "results", "per_seed", "val_bpb_per_seed", "val_bpb_seeds")
# Per-seed lists aligned with a `seeds` list.
SEED_LISTS = ("seed_scores", "val_bpb_per_seed", "val_bpb_exact", "val_bpbs")
_SEED_KEY = re.compile(r"^(?:seed[_\-]?)?(\d+)$", re.IGNORECASE)
_SCORE_KEYS = ("val_bpb_exact", "val_bpb")
_OTHER_SCORE_KEY = re.compile(r"^val_\w*bpb$")


def _seed_claims(raw: dict[str, Any], sub: Submission) -> dict[int, SeedClaim]:
    claims: dict[int, SeedClaim] = {}
    tables = [(name, raw[name]) for name in SEED_TABLES if isinstance(raw.get(name), (dict, list))]
    tables.append(("", {k: v for k, v in raw.items() if k.lower().startswith("seed_") and isinstance(v, dict)}))
    for name, table in tables:
        if isinstance(table, dict):
            items = list(table.items())
        elif all(isinstance(entry, dict) for entry in table):
            items = [(entry.get("seed"), entry) for entry in table]
        else:
            continue  # a plain list of seeds, read by _seed_list
        for key, entry in items:
            path = f"{name}.{key}" if name else str(key)
            claim = _claim(key, entry, path, sub)
            if claim is None:
                if name in ("seed_results", "results"):
                    sub.notes.append(f"{name} entry {str(key)[:20]!r} could not be read")
            else:
                claims.setdefault(claim.seed, claim)
    _aligned_lists(raw, sub, claims)
    return claims


def _aligned_lists(raw: dict[str, Any], sub: Submission, claims: dict[int, SeedClaim]) -> None:
    seeds = raw.get("seeds")
    if not isinstance(seeds, list):
        return
    for name in SEED_LISTS:
        values = raw.get(name)
        if not isinstance(values, list) or len(values) != len(seeds):
            continue
        for index, (seed_value, score) in enumerate(zip(seeds, values, strict=False)):
            seed = _as_seed(seed_value)
            if seed is None:
                continue
            claim = claims.setdefault(seed, SeedClaim(seed, key=f"{name}[{index}]"))
            if claim.val_bpb is None:
                claim.val_bpb = _number({name: score}, name, sub, f"{name}[{index}]")
                claim.key = f"{name}[{index}]"


def _claim(key: Any, entry: Any, path: str, sub: Submission) -> SeedClaim | None:
    match = _SEED_KEY.match(str(key).strip()) if key is not None and not isinstance(key, bool) else None
    seed = int(match.group(1)) if match else None
    if seed is None or not isinstance(entry, (dict, int, float, str)) or isinstance(entry, bool):
        return None
    if not isinstance(entry, dict):
        value = _number({"val_bpb": entry}, "val_bpb", sub, path)
        return SeedClaim(seed, val_bpb=value, key=path) if value is not None or not isinstance(entry, str) else None
    claim = SeedClaim(seed, key=path)
    score_key = next((k for k in _SCORE_KEYS if entry.get(k) is not None), None)
    if score_key is None:
        others = [k for k in entry if _OTHER_SCORE_KEY.match(str(k)) and entry[k] is not None]
        score_key = others[0] if len(others) == 1 else None
    if score_key is not None:
        claim.val_bpb = _number(entry, score_key, sub, f"{path}.{score_key}")
    claim.val_loss = _number(entry, "val_loss", sub, f"{path}.val_loss") if "val_loss" in entry else None
    size_key = next((k for k in ("bytes_total", "artifact_bytes", "artifact_size_bytes") if k in entry), None)
    size = _number(entry, size_key, sub, f"{path}.{size_key}") if size_key else None
    claim.bytes_total = int(size) if size is not None else None
    claim.train_time_ms = _ms(entry, "train_time", path, sub)
    claim.eval_time_ms = _ms(entry, "eval_time", path, sub)
    return claim


def _ms(entry: dict[str, Any], stem: str, path: str, sub: Submission) -> float | None:
    if entry.get(f"{stem}_ms") is not None:
        return _number(entry, f"{stem}_ms", sub, f"{path}.{stem}_ms")
    if entry.get(f"{stem}_s") is not None:
        seconds = _number({f"{stem}_ms": entry[f"{stem}_s"]}, f"{stem}_ms", sub, f"{path}.{stem}_s")
        return seconds * 1000 if seconds is not None else None
    return None


def _seed_list(raw: dict[str, Any], sub: Submission) -> list[int]:
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
