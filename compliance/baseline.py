"""The record a submission claims to beat: a record folder, or per-seed values typed in."""
from __future__ import annotations

import math
from pathlib import Path

from .context import Baseline, seed_rows
from .errors import InputError
from .record import load_record


def parse_baseline(spec: str) -> Baseline:
    path = Path(spec)
    if _is_dir(path):
        return _from_folder(path)
    usage = "--against takes a record folder or comma-separated per-seed val_bpb values"
    try:
        values = tuple(float(v) for v in spec.replace(";", ",").split(",") if v.strip())
    except ValueError:
        raise InputError(spec[:80], usage) from None
    if not all(math.isfinite(v) for v in values):
        raise InputError(spec[:80], f"{usage}; these are not all finite numbers")
    if not values:
        raise InputError(spec, "--against got no values")
    return Baseline(label=f"values {', '.join(map(str, values))}", val_bpb=values)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name too long to be a path is not a folder
        return False


def _from_folder(path: Path) -> Baseline:
    """Per-seed scores from the logs; from submission.json's seed results when logs are missing."""
    record = load_record(path)
    rows = [r for r in seed_rows(record) if r.val_bpb is not None]
    if rows:
        losses = tuple(r.val_loss for r in rows)
        return Baseline(path.name, tuple(r.val_bpb for r in rows),
                        losses if all(v is not None for v in losses) else None)
    claims = [c for c in (record.submission.seed_claims.values() if record.submission else []) if c.val_bpb is not None]
    if not claims:
        raise InputError(path, "baseline folder has no per-seed val_bpb in its logs or submission.json")
    losses = tuple(c.val_loss for c in claims)
    return Baseline(f"{path.name} (submission.json)", tuple(c.val_bpb for c in claims),
                    losses if all(v is not None for v in losses) else None)
