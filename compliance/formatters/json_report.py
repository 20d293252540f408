"""The machine form: pgolf-report/1 JSON (docs/report-schema.md)."""
from __future__ import annotations

import json
import math
from typing import Any

from ..report import Report


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: unknown numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def to_json_data(report: Report) -> dict[str, Any]:
    return _clean(report.to_dict())


def render(report: Report) -> str:
    return json.dumps(to_json_data(report), indent=2, ensure_ascii=False) + "\n"
