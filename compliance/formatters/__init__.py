"""Report formatters, kept apart from the checks: each turns a Report into text."""
from __future__ import annotations

from typing import Callable

from ..report import Report
from . import human, json_report, markdown, sarif

FORMATTERS: dict[str, Callable[[Report], str]] = {
    "human": human.render,
    "json": json_report.render,
    "markdown": markdown.render,
    "sarif": sarif.render,
}


def render(report: Report, fmt: str) -> str:
    return FORMATTERS[fmt](report)
