"""The script behind action.yml: check a PR's range, write SARIF, annotate, keep one sticky comment.

    python -m pgolf.compliance.github_action

Reads its inputs from the environment the composite action sets (INPUT_*, and GitHub's
own GITHUB_*), runs `pgolf-check --git REPO --range BASE..HEAD` once for the JSON report,
and renders that one report as SARIF (uploaded by the next step), workflow annotations,
the job summary and the PR comment. The comment is found again by a marker and edited in
place, so a PR has one pgolf comment however often it is pushed. Outputs (verdict,
exit-code, sarif, report, comment) go to $GITHUB_OUTPUT; the action's last step exits
with exit-code, which follows --fail-on.

Nothing here trusts the PR: its files reach the comment only through the Markdown
formatter's escaping, and a token without write access (a fork's PR) only costs the
comment, with a warning, never the check.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .formatters import RenderOptions, render
from .report import Report, report_from_dict
from .textsafe import gh_data

MARKER = "<!-- pgolf-check: sticky comment -->"
COMMENT_BUDGET = 60_000  # GitHub refuses comments over 65,536 characters
CHECK = [sys.executable, "-c", "from pgolf.compliance.cli import run; run()"]


@dataclass(frozen=True)
class Inputs:
    repo: Path
    base: str
    head: str
    fail_on: str
    args: list[str]
    comment: bool
    out_dir: Path
    docs_url: str | None
    token: str | None
    api_url: str
    repository: str | None
    pr_number: int | None

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Inputs:
        return cls(
            repo=Path(env.get("PGOLF_REPO") or "."),
            base=_required(env, "INPUT_BASE"),
            head=_required(env, "INPUT_HEAD"),
            fail_on=env.get("INPUT_FAIL_ON") or "review",
            args=shlex.split(env.get("INPUT_ARGS") or ""),
            comment=(env.get("INPUT_COMMENT") or "true").lower() == "true",
            out_dir=Path(env.get("RUNNER_TEMP") or ".") / "pgolf-check",
            docs_url=env.get("PGOLF_DOCS_URL") or None,
            token=env.get("GITHUB_TOKEN") or None,
            api_url=env.get("GITHUB_API_URL") or "https://api.github.com",
            repository=env.get("GITHUB_REPOSITORY"),
            pr_number=_pr_number(env),
        )


def _required(env: dict[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SystemExit(
            f"pgolf-check action: {name} is empty (run it on pull_request events, or set the base and head inputs)"
        )
    return value


def _pr_number(env: dict[str, str]) -> int | None:
    if env.get("INPUT_PR"):
        return int(env["INPUT_PR"])
    try:
        event = json.loads(Path(env["GITHUB_EVENT_PATH"]).read_text(encoding="utf-8"))
    except (KeyError, OSError, ValueError):
        return None
    number = (event.get("pull_request") or {}).get("number")
    return int(number) if number else None


def run_check(inputs: Inputs) -> tuple[int, Report, str]:
    """pgolf-check in PR mode: its exit status (by --fail-on), its report, and what it said on stderr."""
    inputs.out_dir.mkdir(parents=True, exist_ok=True)
    report_path = inputs.out_dir / "report.json"
    argv = CHECK + [
        "--git",
        str(inputs.repo),
        "--range",
        f"{inputs.base}..{inputs.head}",
        "--format",
        "json",
        "-o",
        str(report_path),
        "--fail-on",
        inputs.fail_on,
        *inputs.args,
    ]
    if inputs.docs_url:
        argv += ["--docs-url", inputs.docs_url]
    proc = subprocess.run(argv, capture_output=True, text=True)
    try:
        report = report_from_dict(json.loads(report_path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):  # the check could not even start
        report = Report(
            target=f"{inputs.repo} {inputs.base}..{inputs.head}",
            verdict="error",
            error=(proc.stderr.strip().splitlines() or ["pgolf-check wrote no report"])[-1],
        )
    return proc.returncode, report, proc.stderr


def comment_body(report: Report, inputs: Inputs) -> str:
    """The sticky comment: a marker to find it again, the report, and the commits it judged."""
    options = RenderOptions(
        docs_url=inputs.docs_url, root=inputs.repo, fail_on=inputs.fail_on, max_chars=COMMENT_BUDGET
    )
    footer = (
        f"\n<sub>Checked base `{_sha(report, 'base', inputs.base)}` → head "
        f"`{_sha(report, 'head', inputs.head)}` with `--fail-on {inputs.fail_on}`; this comment is "
        f"updated on every push.</sub>\n"
    )
    return f"{MARKER}\n{render(report, 'markdown', options)}{footer}"


def _sha(report: Report, side: str, given: str) -> str:
    value = (report.git or {}).get(side) or given
    return value if all(c in "0123456789abcdef" for c in value.lower()) else "unresolved"


def write_files(report: Report, inputs: Inputs, body: str) -> dict[str, str]:
    options = RenderOptions(docs_url=inputs.docs_url, root=inputs.repo, fail_on=inputs.fail_on)
    sarif = inputs.out_dir / "pgolf.sarif"
    sarif.write_text(render(report, "sarif", options), encoding="utf-8")
    comment = inputs.out_dir / "comment.md"
    comment.write_text(body, encoding="utf-8")
    return {"sarif": str(sarif), "report": str(inputs.out_dir / "report.json"), "comment": str(comment)}


class GitHubAPI:
    """The few REST calls the sticky comment needs, with the workflow's token."""

    def __init__(self, api_url: str, token: str, repository: str):
        self.base = f"{api_url.rstrip('/')}/repos/{repository}"
        self.token = token

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "Content-Type": "application/json",
                "User-Agent": "pgolf-check-action",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def comments(self, number: int) -> list[dict[str, Any]]:
        found, page = [], 1
        while True:
            batch = self._call("GET", f"/issues/{number}/comments?per_page=100&page={page}")
            found += batch
            if len(batch) < 100:
                return found
            page += 1

    def upsert(self, number: int, body: str) -> str:
        """Edit pgolf's earlier comment on the PR, or post the first one; 'updated' or 'created'."""
        ours = [
            c
            for c in self.comments(number)
            if MARKER in (c.get("body") or "") and (c.get("user") or {}).get("type") == "Bot"
        ]
        if ours:
            try:
                self._call("PATCH", f"/issues/comments/{ours[-1]['id']}", {"body": body})
                return "updated"
            except urllib.error.HTTPError as exc:
                if exc.code not in (403, 404):  # not ours to edit after all: post a new one
                    raise
        self._call("POST", f"/issues/{number}/comments", {"body": body})
        return "created"


def post_comment(inputs: Inputs, body: str) -> str:
    if not inputs.comment:
        return "skipped (comment: false)"
    if inputs.pr_number is None or not inputs.token or not inputs.repository:
        return "skipped (no pull request or token)"
    try:
        return GitHubAPI(inputs.api_url, inputs.token, inputs.repository).upsert(inputs.pr_number, body)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(
            f"::warning title=pgolf-check::could not post the PR comment ({gh_data(exc)}); "
            f"the report is in the job summary"
        )
        return "failed"


def set_outputs(values: dict[str, str], env: dict[str, str]) -> None:
    path = env.get("GITHUB_OUTPUT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        for key, value in values.items():
            out.write(f"{key}={value}\n")


def main(env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    inputs = Inputs.from_env(env)
    code, report, stderr = run_check(inputs)
    body = comment_body(report, inputs)
    files = write_files(report, inputs, body)
    options = RenderOptions(root=inputs.repo, fail_on=inputs.fail_on)
    sys.stdout.write(render(report, "github", options))
    for line in stderr.strip().splitlines()[-5:]:
        print(f"::error title=pgolf-check::{gh_data(line)}" if code == 2 else gh_data(line))
    if env.get("GITHUB_STEP_SUMMARY"):
        with open(env["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as summary:
            summary.write(body.replace(MARKER + "\n", "", 1))
    posted = post_comment(inputs, body)
    set_outputs({"verdict": report.verdict, "exit-code": str(code), "comment-status": posted, **files}, env)
    print(f"pgolf-check: {report.verdict.upper()}, exit status {code} (--fail-on {inputs.fail_on}); comment {posted}")
    # the action uploads the SARIF in a later step, so it takes the status from the output instead
    return 0 if env.get("PGOLF_DEFER_STATUS") == "true" else code


if __name__ == "__main__":
    sys.exit(main())
