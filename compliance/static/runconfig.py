"""The environment a record's run used: README run commands, then log hyperparameter dumps."""

from __future__ import annotations

import re

_ASSIGN = re.compile(r"(?<![\w$])([A-Z][A-Z0-9_]{1,63})=(\"[^\"\n]*\"|'[^'\n]*'|[^\s;&|]+)")
_ENV_LINE = re.compile(r"^[A-Z][A-Z0-9_]{1,63}=(\"[^\"]*\"|'[^']*'|\S+)(\s+[A-Z][A-Z0-9_]{1,63}=\S+)*$")
_RUNNER = re.compile(r"\b(torchrun|python3?|accelerate|deepspeed|bash|sh)\b")


def config_from_readme(text: str | None) -> dict[str, str]:
    """`KEY=VALUE` pairs on run-command lines (those that invoke torchrun/python)."""
    config: dict[str, str] = {}
    if not text:
        return config
    for line in _command_lines(text):
        for key, value in _ASSIGN.findall(line):
            config[key] = value.strip("\"'")
    return config


def _command_lines(text: str) -> list[str]:
    """Run commands, continuation lines (`\\`) joined, and bare `KEY=VALUE` lines of a code block
    (a README's "environment" listing)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines, fenced = [], False
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            fenced = not fenced
            continue
        if _RUNNER.search(line) or stripped.startswith("export ") or (fenced and _ENV_LINE.match(stripped)):
            lines.append(line)
    return lines


def config_from_record(record: object) -> dict[str, str]:
    """README first, then the logs' dumps (what actually ran) on top."""
    config = config_from_readme(getattr(record, "readme", None))
    for log in getattr(record, "logs", None) or []:
        facts = getattr(log, "facts", None)
        for key, value in (getattr(facts, "hyperparams", None) or {}).items():
            config[str(key)] = str(value)
    return config
