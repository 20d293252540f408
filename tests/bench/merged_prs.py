"""Record rules over the record PRs merged into openai/parameter-golf, in PR mode.

    .venv/bin/python tests/bench/merged_prs.py PATH/TO/parameter-golf [--against-auto] [--pr-meta prs.json]

PATH is a clone (a bare one will do) with the main branch and, for squash-merged PRs, the
`refs/pull/N/head` refs. Every first-parent commit of main that touches records/ and names a
PR ("Merge pull request #N", "Merge PR #N", "... (#N)") is one PR: a merge commit is audited as
its two parents, a squash merge as the PR's head against main before it landed. PRs that only
delete are skipped. Prints each PR's verdict on the record rules (legality rules are left to
their own benchmark) and every record-rule fail and review with its evidence, then the count.
It writes nothing but a temporary export per PR.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

from pgolf.compliance import prmeta
from pgolf.compliance.audit import audit_git
from pgolf.compliance.context import AuditOptions

RECORD_RULES = {
    "R-RECORD-FILES",
    "R-LOG-PARSE",
    "R-SIZE",
    "R-TRAIN-TIME",
    "R-EVAL-TIME",
    "R-SEEDS",
    "R-FULL-VAL",
    "R-JSON-CONSISTENCY",
    "R-CODE-IDENTITY",
    "R-SIGNIFICANCE",
    "R-TRACK-HW",
}
PR = re.compile(r"(?:Merge pull request|Merge PR) #(\d+)|\(#(\d+)\)\s*$")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def merged_record_prs(repo: Path) -> list[tuple[int, str, str]]:
    """(number, base, head) of every PR that brought record files onto main."""
    found = []
    for line in git(
        repo, "log", "--first-parent", "--reverse", "--format=%H %P|%s", "main", "--", "records/"
    ).splitlines():
        shas, subject = line.split("|", 1)
        commit, *parents = shas.split()
        match = PR.search(subject)
        if not match:
            continue
        number = int(match.group(1) or match.group(2))
        if len(parents) == 2:
            base, head = parents
        else:
            try:
                head = git(repo, "rev-parse", "--verify", f"refs/pull/{number}/head")
            except subprocess.CalledProcessError:
                head = commit
            base = parents[0]
        added = git(repo, "diff", "--name-only", "--diff-filter=AM", f"{base}...{head}", "--", "records/")
        if added:
            found.append((number, base, head))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--against-auto", action="store_true", help="also test significance against the frontier")
    parser.add_argument("--pr-meta", type=Path, help="gh pr list --json number,createdAt,headRefOid,... output")
    args = parser.parse_args()
    meta = prmeta.load(args.pr_meta) if args.pr_meta else None
    options = AuditOptions(against_auto=args.against_auto, pr_meta=meta)
    prs = merged_record_prs(args.repo)
    failing = 0
    for number, base, head in prs:
        started = time.monotonic()
        report = audit_git(args.repo, f"{base}..{head}", options)
        bad = [
            (record.path.rsplit("/", 1)[-1], f)
            for record in report.records
            for f in record.findings
            if f.rule in RECORD_RULES and f.active and f.severity in ("fail", "review")
        ]
        fails = [item for item in bad if item[1].severity == "fail"]
        failing += bool(fails) or bool(report.error)
        state = "error" if report.error else "fail" if fails else "review" if bad else "pass"
        print(
            f"PR #{number}: {state} ({len(report.records)} folder(s), {time.monotonic() - started:.0f} s)"
            + (f" {report.error}" if report.error else "")
        )
        for folder, finding in bad:
            where = f"{finding.file}:{finding.line}" if finding.file and finding.line else finding.file or "-"
            print(f"    {finding.severity:<6} {finding.rule:<18} {folder[:48]} {where}: {finding.message[:180]}")
    print(f"{failing} of {len(prs)} merged record PRs draw a record-rule fail or error")
    return 0


if __name__ == "__main__":
    sys.exit(main())
