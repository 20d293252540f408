"""Pull-request metadata as `gh` prints it: the date a submission is judged by.

`gh pr view N --json number,createdAt,headRefOid,baseRefOid,mergedAt,state,title` gives
one object; `gh pr list --json ...` an array of them. Rules are judged as in force when
the PR was opened (RULES.md §5), and the chronological frontier orders records by the
same date. The file is untrusted input: anything malformed is a one-line InputError.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError

MAX_BYTES = 32 * 1024 * 1024
_SHA = re.compile(r"^[0-9a-fA-F]{4,64}$")
_PR_IN_SUBJECT = re.compile(r"(?:Merge pull request|Merge PR|pull request) #(\d+)|\(#(\d+)\)\s*$")


@dataclass(frozen=True)
class PullRequest:
    number: int
    created_at: str  # ISO 8601 in UTC, e.g. 2026-04-09T17:02:11+00:00
    head: str | None = None  # headRefOid
    base: str | None = None  # baseRefOid
    merged_at: str | None = None
    state: str | None = None
    title: str | None = None

    @property
    def created_on(self) -> str:
        """The UTC date the PR was opened: what `since`/`until` compare with."""
        return self.created_at[:10]


@dataclass(frozen=True)
class PrMeta:
    source: str
    prs: tuple[PullRequest, ...]

    def for_head(self, sha: str | None) -> PullRequest | None:
        """The PR whose head is `sha` (a prefix of either matches); a file of one PR is that PR."""
        if sha:
            sha = sha.lower()
            for pr in self.prs:
                if pr.head and (pr.head.lower().startswith(sha) or sha.startswith(pr.head.lower())):
                    return pr
        return self.prs[0] if len(self.prs) == 1 else None

    def by_number(self, number: int) -> PullRequest | None:
        return next((pr for pr in self.prs if pr.number == number), None)


def load(path: str | Path) -> PrMeta:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise InputError(path, f"larger than {MAX_BYTES:,} bytes; not gh pr JSON")
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InputError(path, "JSON nested too deeply") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise InputError(path, "holds no pull request")
    return PrMeta(str(path), tuple(_pull_request(item, path, i) for i, item in enumerate(items)))


def _pull_request(item: Any, path: Path, index: int) -> PullRequest:
    where = f"entry {index}" if index else "the pull request"
    if not isinstance(item, dict):
        raise InputError(path, f"{where} is a JSON {type(item).__name__}, expected an object from gh pr view/list")
    number = item.get("number")
    if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 10**9:
        raise InputError(path, f"{where}: `number` must be a positive integer (gh --json number,createdAt,...)")
    created = _timestamp(item.get("createdAt"), path, f"PR #{number} createdAt", required=True)
    return PullRequest(
        number=number,
        created_at=created or "",
        head=_sha(item.get("headRefOid"), path, number),
        base=_sha(item.get("baseRefOid"), path, number),
        merged_at=_timestamp(item.get("mergedAt"), path, f"PR #{number} mergedAt", required=False),
        state=_text(item.get("state")),
        title=_text(item.get("title")),
    )


def _timestamp(value: Any, path: Path, what: str, required: bool) -> str | None:
    if value in (None, "") and not required:
        return None
    if not isinstance(value, str):
        raise InputError(path, f"{what} is missing or not a string")
    try:
        stamp = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(path, f"{what} {value[:40]!r} is not an ISO 8601 time") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.astimezone(dt.timezone.utc).isoformat()


def _sha(value: Any, path: Path, number: int) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not _SHA.match(value):
        raise InputError(path, f"PR #{number}: a ref oid must be a hex commit id")
    return value


def _text(value: Any) -> str | None:
    return str(value)[:300] if value not in (None, "") else None


def pr_number_in(subject: str) -> int | None:
    """The PR number a merge or squash commit subject names ("Merge pull request #1412 ...", "... (#77)")."""
    match = _PR_IN_SUBJECT.search(subject)
    return int(match.group(1) or match.group(2)) if match else None
