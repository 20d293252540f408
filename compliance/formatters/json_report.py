"""The machine form: pgolf-report/1 JSON (compliance/report-schema.md, report-schema.json)."""

from __future__ import annotations

import json
import math
from typing import Any

from ..report import Report
from ..textsafe import printable
from .common import RenderOptions

# Prose fields are one line by contract: any control character that reached them from an
# untrusted file (a name, a log line) is shown as an escape, so even `jq -r` prints it
# harmlessly. Paths (`file`, `path`, `log`) stay exact, JSON-escaped only.
ONE_LINE = frozenset({"message", "error", "title", "source", "metric_label"})


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: unknown numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: printable(v) if k in ONE_LINE and isinstance(v, str) else _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def to_json_data(report: Report) -> dict[str, Any]:
    data: dict[str, Any] = _clean(report.to_dict())
    return data


def render(report: Report, options: RenderOptions = RenderOptions()) -> str:
    # ASCII only: every control, bidi or other non-ASCII character of an untrusted string is a
    # \u escape, so `cat report.json` cannot drive a terminal, and the values stay exact.
    return json.dumps(to_json_data(report), indent=2, ensure_ascii=True) + "\n"
