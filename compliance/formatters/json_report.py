"""The machine form: pgolf-report/1 JSON (compliance/report-schema.md, report-schema.json)."""
from __future__ import annotations

import json
import math
from typing import Any

from ..report import Report
from .common import RenderOptions


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


def render(report: Report, options: RenderOptions = RenderOptions()) -> str:
    # ASCII only: every control, bidi or other non-ASCII character of an untrusted string is a
    # \u escape, so `cat report.json` cannot drive a terminal, and the values stay exact.
    return json.dumps(to_json_data(report), indent=2, ensure_ascii=True) + "\n"
