"""make accuracy: the legality verdict of pgolf-check against the labeled corpus.

Every case in ../shared/corpus-dev (real submissions labeled legal / illegal /
disputed in LABELS.yaml) is audited three times: as submitted, with every
identifier of its script renamed, and packed as an lzma+b85 self-extracting
wrapper. Only legality rules (those with a `family` in the catalog: C1-C4, data,
analysis) make the legality verdict; record rules are not part of it.

What counts as right:
  legal     no active legality fail (review is allowed, and listed)
  illegal   fail by a rule of the family the label's technique breaks; review is
            allowed but counted; pass is wrong
  disputed  review (no ruling exists, so neither an accusation nor a pass)

Prints a confusion table per label and per family, one line per wrong case (id,
expected, got, rule, file:line) for each form, and the time; writes accuracy.json.
A benchmark, not a test: it reads the real corpus and takes tens of seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from pgolf.compliance.audit import run_check  # noqa: E402
from pgolf.compliance.context import AuditOptions, RecordContext, judging_date, seed_rows  # noqa: E402
from pgolf.compliance.record import load_record  # noqa: E402
from pgolf.compliance.report import Finding  # noqa: E402
from pgolf.compliance.rules import load_ruleset  # noqa: E402
from pgolf.compliance.static import build_script_context  # noqa: E402
from tests.transform import pack, rename_identifiers  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus-dev"
FORMS = ("plain", "renamed", "packed")

# The condition of RULES.md §4 (or the data rule) each labeled technique breaks.
TECHNIQUE_FAMILIES = {
    "pre-quant-ttt": {"C3"},
    "pre-eval-ttt": {"C3"},
    "multi-epoch-ttt-last-epoch": {"C3", "C4"},
    "slot": {"C1", "C3"},
    "two-pass-ngram": {"C4"},
    "ngram-target-key": {"C1", "C2"},
    "ngram-target-gate": {"C1"},
    "byte-ppm-mixture": {"C2"},
    "val-gptq-calibration": {"data"},
    "val-in-training": {"data"},
    "train-val-overlap": {"data"},
    "train-data-after-budget": {"data"},
}


@dataclass
class Outcome:
    case: str
    label: str
    form: str
    verdict: str  # pass | review | fail
    right: bool
    soft: bool  # right, but a review a person has to read
    expected: str
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def decisive(self) -> list[Finding]:
        wanted = "fail" if self.verdict == "fail" else "review"
        return [f for f in self.findings if f.active and f.severity == wanted]


def legality_findings(folder: Path) -> tuple[list[Finding], float]:
    record = load_record(folder)
    ruleset = load_ruleset(record.track or "track_10min_16mb")
    judged = judging_date(record, None)
    rules = [r for kind in ("script", "record") for r in ruleset.in_force(kind, judged.date) if r.family]
    start = time.perf_counter()
    found: list[Finding] = []
    script_rules = [r for r in rules if r.kind == "script"]
    if script_rules:
        context = build_script_context(record)
        if context is None:
            found.append(Finding(rule="R-ANALYSIS-LIMIT", severity="review", message="no entry script found"))
        else:
            for rule in script_rules:
                found += run_check(rule, context)
    record_rules = [r for r in rules if r.kind == "record"]
    if record_rules:
        rc = RecordContext(record, seed_rows(record), AuditOptions(), judged=judged)
        for rule in record_rules:
            found += run_check(rule, rc)
    return found, time.perf_counter() - start


def verdict(findings: list[Finding]) -> str:
    active = {f.severity for f in findings if f.active}
    return "fail" if "fail" in active else "review" if "review" in active else "pass"


def judge(entry: dict, form: str, findings: list[Finding], seconds: float, families: dict[str, tuple]) -> Outcome:
    label, got = entry["label"], verdict(findings)
    expected_families = TECHNIQUE_FAMILIES.get(entry.get("technique", ""), set())
    if label == "legal":
        right, soft, expected = got != "fail", got == "review", "no fail"
    elif label == "disputed":
        right, soft, expected = got == "review", False, "review"
    else:
        fails = {fam for f in findings if f.active and f.severity == "fail" for fam in families.get(f.rule, ())}
        right = got == "review" or (got == "fail" and bool(fails & expected_families))
        soft = got == "review"
        expected = "fail " + "/".join(sorted(expected_families))
    return Outcome(entry["id"], label, form, got, right, soft, expected, findings, seconds)


def transformed_copy(folder: Path, form: str, tmp: Path, case: str) -> Path:
    """A copy of the record with its analysed script renamed or packed."""
    record = load_record(folder)
    target = tmp / form / case / folder.name
    shutil.copytree(folder, target, symlinks=True)
    context = build_script_context(record)
    if context is None:
        return target
    rel = record.script.source_rel
    source = context.source
    new = rename_identifiers(source) if form == "renamed" else pack(source)
    (target / rel).write_text(new, encoding="utf-8")
    return target


def run(cases: list[dict], forms: tuple[str, ...], families: dict[str, tuple], progress=print) -> list[Outcome]:
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="pgolf-accuracy-") as tmp:
        for i, entry in enumerate(cases, 1):
            folder = CORPUS / entry["folder"]
            for form in forms:
                try:
                    path = folder if form == "plain" else transformed_copy(folder, form, Path(tmp), entry["id"])
                    findings, seconds = legality_findings(path)
                    outcomes.append(judge(entry, form, findings, seconds, families))
                except Exception as exc:  # noqa: BLE001 - a crash is a wrong case, reported, not a stop
                    outcomes.append(
                        Outcome(
                            entry["id"],
                            entry["label"],
                            form,
                            "crash",
                            False,
                            False,
                            "no crash",
                            error=f"{type(exc).__name__}: {exc}",
                        )
                    )
            progress(f"\r  {i}/{len(cases)} cases", end="", flush=True)
    progress("")
    return outcomes


def table(outcomes: list[Outcome], form: str) -> list[str]:
    rows = [
        "label      cases  pass review fail-right fail-wrong crash   right",
        "---------- -----  ---- ------ ---------- ---------- -----   -----",
    ]
    for label in ("legal", "illegal", "disputed"):
        mine = [o for o in outcomes if o.form == form and o.label == label]
        if not mine:
            continue
        c = Counter(o.verdict for o in mine)
        fail_right = sum(1 for o in mine if o.verdict == "fail" and o.right)
        fail_wrong = c["fail"] - fail_right
        right = sum(o.right for o in mine)
        rows.append(
            f"{label:10} {len(mine):5}  {c['pass']:4} {c['review']:6} {fail_right:10} {fail_wrong:10} "
            f"{c['crash']:5}   {right}/{len(mine)}"
        )
    return rows


def family_table(outcomes: list[Outcome], cases: dict[str, dict], form: str) -> list[str]:
    rows = ["family (illegal cases)   cases  fail-right review pass/wrong"]
    by = defaultdict(list)
    for o in outcomes:
        if o.form == form and o.label == "illegal":
            for fam in sorted(TECHNIQUE_FAMILIES.get(cases[o.case].get("technique", ""), {"?"})):
                by[fam].append(o)
    for fam in sorted(by):
        mine = by[fam]
        rows.append(
            f"{fam:24} {len(mine):5}  {sum(o.verdict == 'fail' and o.right for o in mine):10} "
            f"{sum(o.verdict == 'review' for o in mine):6} {sum(not o.right for o in mine):10}"
        )
    return rows


def wrong_lines(outcomes: list[Outcome], form: str) -> list[str]:
    lines = []
    for o in outcomes:
        if o.form != form or (o.right and not o.soft):
            continue
        mark = "WRONG" if not o.right else "review"
        where = o.decisive()[:3]
        got = ", ".join(f"{f.rule} {f.file or '?'}:{f.line or '?'}" for f in where) or o.error or "-"
        lines.append(f"  {mark:6} {o.case}: expected {o.expected}, got {o.verdict} ({got})")
    return lines


def summary(outcomes: list[Outcome], form: str) -> dict:
    mine = [o for o in outcomes if o.form == form]
    illegal = [o for o in mine if o.label == "illegal"]
    legal = [o for o in mine if o.label == "legal"]
    return {
        "cases": len(mine),
        "right": sum(o.right for o in mine),
        "legal_fails": sum(o.verdict == "fail" for o in legal),
        "legal_reviews": sum(o.verdict == "review" for o in legal),
        "illegal_fail_right_family": sum(o.verdict == "fail" and o.right for o in illegal),
        "illegal_review": sum(o.verdict == "review" for o in illegal),
        "illegal_pass_or_wrong": sum(not o.right for o in illegal),
        "illegal_cases": len(illegal),
        "disputed_review": sum(o.right for o in mine if o.label == "disputed"),
        "crashes": sum(o.verdict == "crash" for o in mine),
        "static_seconds": round(sum(o.seconds for o in mine), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--forms", default=",".join(FORMS))
    parser.add_argument("--only", nargs="*", default=[], help="case ids (or parts of them)")
    parser.add_argument("-o", "--output", type=Path, default=REPO / "accuracy.json")
    args = parser.parse_args(argv)
    labels = args.corpus / "LABELS.yaml"
    if not labels.is_file():
        print(f"accuracy: skipped, {labels} not found")
        return 0
    cases = yaml.safe_load(labels.read_text(encoding="utf-8"))["entries"]
    if args.only:
        cases = [c for c in cases if any(part in c["id"] for part in args.only)]
    forms = tuple(f for f in args.forms.split(",") if f)
    families = {
        r.id: r.family for name in ("track_10min_16mb", "track_non_record_16mb") for r in load_ruleset(name).rules
    }
    start = time.perf_counter()
    outcomes = run(cases, forms, families)
    wall = time.perf_counter() - start
    report = {"corpus": str(args.corpus), "forms": {}, "wall_seconds": round(wall, 1), "cases": []}
    by_id = {c["id"]: c for c in cases}
    for form in forms:
        print(f"\n== {form} ==")
        print("\n".join(table(outcomes, form)))
        print("\n".join(family_table(outcomes, by_id, form)))
        wrong = wrong_lines(outcomes, form)
        print("\n".join(wrong) if wrong else "  no wrong case")
        report["forms"][form] = summary(outcomes, form)
    plain = {o.case: o.verdict for o in outcomes if o.form == "plain"}
    differ = sorted({o.case for o in outcomes if o.form != "plain" and plain.get(o.case) != o.verdict})
    print(f"\nverdicts that change when renamed or packed: {', '.join(differ) if differ else 'none'}")
    static = sum(o.seconds for o in outcomes if o.form == "plain")
    print(f"static analysis of the corpus (plain form): {static:.1f} s (target < 60 s); wall {wall:.1f} s")
    report["form_differences"] = differ
    report["cases"] = [
        {
            "id": o.case,
            "label": o.label,
            "form": o.form,
            "verdict": o.verdict,
            "right": o.right,
            "expected": o.expected,
            "seconds": round(o.seconds, 3),
            "error": o.error,
            "findings": [
                {
                    "rule": f.rule,
                    "severity": f.severity,
                    "active": f.active,
                    "file": f.file,
                    "line": f.line,
                    "message": f.message,
                }
                for f in o.decisive()
            ],
        }
        for o in outcomes
    ]
    args.output.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
