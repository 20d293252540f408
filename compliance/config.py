"""[tool.pgolf] in the audited repository's pyproject.toml, merged with the command line.

    [tool.pgolf]
    select = ["ALL"]                # rule ids, prefixes, kinds, conditions (compliance/selection.py)
    ignore = ["R-TRACK-HW"]
    fail-on = "review"              # fail | review: which verdicts make the exit status non-zero
    policy = "enforced"             # enforced | written: which significance policy decides
    ruleset = "track_10min_16mb"    # instead of the record's track
    docs-url = "https://.../compliance/rules/docs"   # where rule ids link to

The command line wins: `--select`, `--fail-on`, `--policy`, `--ruleset` and
`--docs-url` replace the file's values, `--ignore` adds to its list. In PR mode the
file is read from the range's BASE commit, so a pull request cannot loosen the
rules it is judged by; otherwise from the closest pyproject.toml with a
[tool.pgolf] table above the first target, up to the repository root.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .errors import InputError
from .safeio import resolved

FAIL_ON = ("fail", "review")
POLICIES = ("enforced", "written")
_LISTS = ("select", "ignore")
_STRINGS = {"fail-on": FAIL_ON, "policy": POLICIES, "ruleset": None, "docs-url": None}


@dataclass(frozen=True)
class Settings:
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    fail_on: str = "review"
    policy: str = "enforced"
    ruleset: str | None = None
    docs_url: str | None = None
    source: str | None = None  # the file the [tool.pgolf] values came from
    from_file: frozenset[str] = field(default_factory=frozenset)  # keys the file set

    def to_dict(self) -> dict[str, Any]:
        return {
            "select": list(self.select),
            "ignore": list(self.ignore),
            "fail_on": self.fail_on,
            "policy": self.policy,
            "ruleset": self.ruleset,
            "config": self.source,
        }


def parse(text: str, origin: str) -> Settings:
    """Settings from the text of a pyproject.toml; a bad table is bad input naming the file."""
    try:
        table = tomllib.loads(text).get("tool", {}).get("pgolf")
    except tomllib.TOMLDecodeError as exc:
        raise InputError(origin, f"not valid TOML: {exc}") from None
    if table is None:
        return Settings()
    if not isinstance(table, dict):
        raise InputError(origin, "[tool.pgolf] must be a table")
    values: dict[str, Any] = {}
    for key, value in table.items():
        values[key.replace("-", "_")] = _value(key, value, origin)
    return replace(Settings(), **values, source=origin, from_file=frozenset(values))


def _value(key: str, value: Any, origin: str) -> Any:
    if key in _LISTS:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(origin, f"[tool.pgolf] {key} must be a list of strings")
        return tuple(value)
    if key not in _STRINGS:
        known = ", ".join(list(_LISTS) + list(_STRINGS))
        raise InputError(origin, f"[tool.pgolf] has no key {key!r} (known: {known})")
    allowed = _STRINGS[key]
    if not isinstance(value, str) or (allowed and value not in allowed):
        expected = " or ".join(allowed) if allowed else "a string"
        raise InputError(origin, f"[tool.pgolf] {key} must be {expected}, not {value!r}")
    return value


def find_pyproject(start: Path) -> Path | None:
    """The closest pyproject.toml with a [tool.pgolf] table at or above `start`, within its repository."""
    here = resolved(start)  # a symlink loop is the audit's to report, not a crash here
    here = here if here.is_dir() else here.parent
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and "[tool.pgolf" in _read(candidate):
            return candidate
        if (folder / ".git").exists():
            return None
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read: {exc}") from None


def from_folder(start: Path) -> Settings:
    path = find_pyproject(start)
    return parse(_read(path), str(path)) if path else Settings()


def from_git(repo: Path, rev: str) -> Settings:
    """[tool.pgolf] of pyproject.toml as committed at `rev` (the base of a PR)."""
    try:
        out = subprocess.run(["git", "-C", str(repo), "show", f"{rev}:pyproject.toml"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(repo, f"git could not run: {exc}") from None
    if out.returncode != 0:  # no pyproject.toml at that commit (or a bad rev, which PR mode reports)
        return Settings()
    return parse(out.stdout.decode("utf-8", "replace"), f"{rev}:pyproject.toml")


def merge(
    base: Settings,
    *,
    select: tuple[str, ...] = (),
    ignore: tuple[str, ...] = (),
    fail_on: str | None = None,
    policy: str | None = None,
    ruleset: str | None = None,
    docs_url: str | None = None,
) -> Settings:
    """The command line over the file: given values replace, except --ignore, which adds."""
    return replace(
        base,
        select=select or base.select,
        ignore=base.ignore + tuple(ignore),
        fail_on=fail_on or base.fail_on,
        policy=policy or base.policy,
        ruleset=ruleset or base.ruleset,
        docs_url=docs_url or base.docs_url,
    )
