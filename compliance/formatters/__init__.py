"""Report formatters, kept apart from the checks: each is `render(report, options) -> str`."""

from __future__ import annotations

from collections.abc import Callable

from ..report import Report
from . import github, human, json_report, junit, markdown, sarif
from .common import RenderOptions

Formatter = Callable[[Report, RenderOptions], str]

FORMATTERS: dict[str, Formatter] = {
    "human": human.render,
    "json": json_report.render,
    "markdown": markdown.render,
    "sarif": sarif.render,
    "github": github.render,
    "junit": junit.render,
}


def render(report: Report, fmt: str, options: RenderOptions | None = None) -> str:
    return FORMATTERS[fmt](report, options or RenderOptions())


__all__ = ["FORMATTERS", "Formatter", "RenderOptions", "render"]
