"""Shared fixtures: the real record data in ../shared, skipped with a reason where absent."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
RECORDS = SHARED / "records-data" / "records"


def shared_record_dirs() -> list[Path]:
    if not RECORDS.is_dir():
        return []
    return sorted(p for p in RECORDS.glob("*/*") if p.is_dir())


@pytest.fixture
def records_root() -> Path:
    if not RECORDS.is_dir():
        pytest.skip(f"real record data not found at {RECORDS} (CI provides ../shared)")
    return RECORDS


def record_dir(name: str) -> Path:
    matches = [p for p in shared_record_dirs() if p.name == name]
    if not matches:
        pytest.skip(f"record folder {name} not in {RECORDS}")
    return matches[0]
