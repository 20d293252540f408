"""The record a submission claims to beat: a record folder, or per-seed values typed in."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from .context import Baseline, seed_rows
from .errors import InputError
from .record import Record, load_record

AUTO = "auto"


def parse_baseline(spec: str) -> Baseline:
    path = Path(spec)
    if _is_dir(path):
        return _from_folder(path)
    usage = "--against takes a record folder or comma-separated per-seed val_bpb values"
    try:
        values = tuple(float(v) for v in spec.replace(";", ",").split(",") if v.strip())
    except ValueError:
        raise InputError(spec[:80], f"{usage}, or `auto`") from None
    if not values:
        raise InputError(spec[:80], "--against got no values")
    if not all(0.0 < v < 64.0 for v in values):  # NaN fails both comparisons
        raise InputError(spec[:80], "--against values must be val_bpb numbers between 0 and 64")
    return Baseline(label=f"values {', '.join(map(str, values))}", val_bpb=values)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name too long to be a path is not a folder
        return False


def _from_folder(path: Path) -> Baseline:
    baseline = from_record(load_record(path), path.name)
    if baseline is None:
        raise InputError(path, "baseline folder has no per-seed val_bpb in its logs or submission.json")
    return baseline


def from_record(record: Record, label: str) -> Baseline | None:
    """Per-seed scores from the logs' claimed runs; from submission.json's seed results when logs are missing."""
    rows = [r for r in seed_rows(record) if r.val_bpb is not None]
    if rows:
        losses = tuple(r.val_loss for r in rows)
        # casts: the filters above (val_bpb) and all() (val_loss) leave no None, which mypy cannot follow
        return Baseline(
            label,
            cast("tuple[float, ...]", tuple(r.val_bpb for r in rows)),
            cast("tuple[float, ...]", losses) if all(v is not None for v in losses) else None,
        )
    claims = [c for c in (record.submission.seed_claims.values() if record.submission else []) if c.val_bpb is not None]
    if not claims:
        return None
    claim_losses = tuple(c.val_loss for c in claims)
    return Baseline(
        f"{label} (submission.json)",
        cast("tuple[float, ...]", tuple(c.val_bpb for c in claims)),
        cast("tuple[float, ...]", claim_losses) if all(v is not None for v in claim_losses) else None,
    )
