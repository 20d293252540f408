"""make accuracy-dynamic: the dynamic check over the corpus cases whose technique a CPU run can show.

A benchmark, not a test: every case is one real traced run (minutes each on two cores). Cases come
from ../shared/corpus-dev/LABELS.yaml by technique: pre-quant and pre-eval TTT, last-epoch scoring,
SLOT, two-pass and target-keyed (or target-gated) n-grams, byte-PPM mixtures, and the accepted
records that run test-time training or an evaluation-time n-gram. Each record folder is audited
with the dynamic ruleset only (pgolf-check --dynamic --ruleset dynamic), on training data cut
with the script's own vocabulary.

One line per case: ran / did not run (why), the dynamic verdict and the rules that decided it, the
canary evidence in nats, wall time, and the knobs the eval preset capped. A case is right when an
illegal record gets a dynamic fail (ledger C3/C4, or canary evidence) and a legal one gets none.
Writes build/accuracy-dynamic.json (and each run's log under build/accuracy-dynamic/<id>/).

    python tests/bench/accuracy_dynamic.py [--only ID[,ID...]] [--cap 600] [--nproc 0] [--out FILE]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus-dev"
TOKENIZERS = REPO.parent / "shared" / "tokenizers"
ILLEGAL_TECHNIQUES = (
    "pre-quant-ttt",
    "pre-eval-ttt",
    "multi-epoch-ttt-last-epoch",
    "slot",
    "two-pass-ngram",
    "ngram-target-key",
    "ngram-target-gate",
    "byte-ppm-mixture",
)
DYNAMIC_FAILS = {"R-DYN-SCORE-FIRST", "R-DYN-SINGLE-PASS", "R-DYN-CANARY"}


def select(entries: list[dict]) -> list[dict]:
    """The illegal techniques a CPU run shows, and every accepted record that runs test-time training
    or an n-gram at evaluation (their legal twins: what must not be flagged)."""
    chosen = []
    for entry in entries:
        technique = entry["technique"]
        if entry["label"] == "illegal" and technique in ILLEGAL_TECHNIQUES:
            chosen.append(entry)
        elif entry["label"] == "legal" and ("ttt" in technique or "ngram" in technique):
            chosen.append(entry)
    return chosen


@functools.cache
def data_for(vocab: int, root: Path) -> Path:
    """A `pgolf data synth` folder of this vocabulary: the official tokenizer where ../shared has one,
    else a SentencePiece BPE trained by synth itself (up to date: nothing is redone)."""
    out = root / f"sp{vocab}"
    official = TOKENIZERS / f"fineweb_{vocab}_bpe.model"
    argv = [
        sys.executable,
        "-c",
        "from pgolf.pipeline.cli import main; main()",
        "data",
        "synth",
        "--out",
        str(out),
        "--max-chars",
        "4000000",
    ]
    argv += ["--tokenizer", str(official)] if official.is_file() else ["--vocab-size", str(vocab)]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return out


def run_case(entry: dict, data_root: Path, cap: float, logs: Path, nproc: int) -> dict:
    from pgolf.compliance.audit import audit
    from pgolf.compliance.context import AuditOptions
    from pgolf.compliance.dynamic.harness import DynamicOptions
    from pgolf.compliance.dynamic.plan import plan_run
    from pgolf.compliance.record import load_record

    folder = CORPUS / entry["folder"]
    row = {"id": entry["id"], "label": entry["label"], "technique": entry["technique"]}
    record = load_record(folder)
    if record.script is None:
        return {**row, "ran": False, "why": "no entry script found"}
    vocab = plan_run(folder / record.script.rel, record.script.text, {}, True).vocab
    work = Path(tempfile.mkdtemp(prefix=f"pgolf-acc-{entry['id'][:24]}-"))
    start = time.monotonic()
    try:
        options = DynamicOptions(data=data_for(vocab, data_root), cap_s=cap, threads=2, nproc=nproc, workdir=work)
        report = audit([str(folder)], AuditOptions(ruleset="dynamic", dynamic=options))
        wall = time.monotonic() - start
        row = {**row, **_outcome(report, wall), "vocab": vocab}
        _keep_logs(work, logs / entry["id"], evidence=not right(row))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return row


def _keep_logs(work: Path, to: Path, evidence: bool) -> None:
    """Every attempt's log; for a case that came out wrong, its ledger and canary too (to judge again)."""
    shutil.rmtree(to, ignore_errors=True)
    to.mkdir(parents=True, exist_ok=True)
    for log in [work / "run.log", *sorted(work.glob("attempt-*/run.log"))]:
        if log.is_file():
            shutil.copyfile(log, to / ("run.log" if log.parent == work else f"{log.parent.name}.log"))
    if evidence:
        for name in ("ledger", "canary"):
            if (work / name).is_dir():
                shutil.copytree(work / name, to / name)


def _outcome(report, wall: float) -> dict:
    if report.error:
        return {"ran": False, "why": report.error, "wall_s": round(wall, 1)}
    findings = report.records[0].findings
    fails = sorted({f.rule for f in findings if f.active and f.severity == "fail"})
    run = next((f for f in findings if f.rule == "R-DYN-RUN" and f.message.startswith("traced run")), None)
    trouble = [_trouble(f) for f in findings if f.rule == "R-DYN-RUN" and f.severity != "info"]
    canary = next((f.evidence for f in findings if f.rule == "R-DYN-CANARY" and f.evidence), None)
    capped = next(
        (
            f.evidence
            for f in findings
            if f.rule == "R-DYN-RUN"
            and f.evidence
            and "capped" in f.evidence
            and f.message.startswith("evaluation work capped")
        ),
        {},
    )
    evidence = run.evidence if run else {}
    ran = bool(run) and evidence.get("status") == "ok"
    return {
        "ran": ran,
        "why": None if ran else (trouble[0] if trouble else "no traced run"),
        "verdict": "fail" if fails else report.records[0].verdict,
        "dynamic_fails": fails,
        "evidence_nats": None if canary is None else round(canary["evidence_nats"], 1),
        "threshold_nats": None if canary is None else round(canary["threshold_nats"], 1),
        "canary_targets": evidence.get("targets"),
        "wall_s": round(wall, 1),
        "attempts": evidence.get("attempts", []),
        "capped": [f"{c['knob']} {c['before']}->{c['after']}" for c in capped.get("capped", [])],
        "findings": [
            f"{f.rule} {f.severity}: {f.message[:600]}"
            for f in findings
            if f.active and f.severity in ("fail", "review")
        ],
        "unsettable": capped.get("unsettable", []),
    }


def _trouble(finding) -> str:
    """What went wrong, in a line: how the run ended and its last log line (the exception, mostly), or
    for a run killed at its cap, the script's last output before it."""
    head = finding.message.splitlines()[0].split(";")[0]
    said = re.search(r"the script's last output, [^`]*`[^`]*`", finding.message)
    if said and "killed at" in head:
        return f"{head}; {said.group(0)[:200]}"
    tail = (finding.evidence or {}).get("log_tail") or []
    errors = [
        line for line in tail if re.search(r"\w(Error|Exception|Interrupt)\b", line) and "ChildFailedError" not in line
    ]  # torchrun's summary: the rank's own error says why
    last = (errors or tail or [""])[-1].replace("[rank0]: ", "")
    return f"{head}: {last[:160]}" if last else head[:200]


def right(row: dict) -> bool:
    flagged = bool(set(row.get("dynamic_fails", [])) & DYNAMIC_FAILS)
    return flagged if row["label"] == "illegal" else row.get("ran", False) and not row.get("dynamic_fails")


def line(row: dict) -> str:
    mark = "ok   " if right(row) else "WRONG"
    if not row.get("ran") and not row.get("dynamic_fails"):
        what = f"did not run ({row.get('why')})"
    else:
        shrunk = [a for a in row.get("attempts", []) if a.get("status") == "shrunk"]
        what = (
            f"ran{' (canary ' + str(row['canary_targets']) + ')' if shrunk else ''}, "
            f"{row['verdict']} {','.join(r.replace('R-DYN-', '') for r in row['dynamic_fails']) or '-'}, "
            f"evidence {row['evidence_nats'] if row['evidence_nats'] is not None else '-'} nats"
        )
    return f"{mark} {row['id']:<48} {row['label']:<7} {what}; {row.get('wall_s', 0):.0f}s"


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")  # the runtime takes the traced run's process group down


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated case ids (prefixes) to run")
    parser.add_argument("--cap", type=float, default=600.0)
    # two processes of one thread beat one of two on two cores (../shared/notes/cpu-harness.md)
    parser.add_argument(
        "--nproc",
        type=int,
        default=0,
        help="traced processes (torchrun on gloo when > 1); 0: two for distributed scripts",
    )
    parser.add_argument("--out", type=Path, default=REPO / "build" / "accuracy-dynamic.json")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "pgolf-accuracy-dynamic-data")
    args = parser.parse_args()
    if not (CORPUS / "LABELS.yaml").is_file():
        print(f"accuracy-dynamic: skipped, {CORPUS} not found")
        return 0
    cases = select(yaml.safe_load((CORPUS / "LABELS.yaml").read_text(encoding="utf-8"))["entries"])
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        cases = [c for c in cases if any(c["id"].startswith(w) for w in wanted)]
    logs = args.out.parent / "accuracy-dynamic"
    rows, start = [], time.monotonic()
    load = os.getloadavg()
    for entry in cases:
        row = run_case(entry, args.data, args.cap, logs, args.nproc)
        row["load_after"] = round(os.getloadavg()[0], 2)
        rows.append(row)
        print(line(row), flush=True)
        _write(args.out, rows, load, time.monotonic() - start, args.cap)
    total = _write(args.out, rows, load, time.monotonic() - start, args.cap)
    print(total["summary_line"])
    return 0 if total["right"] == len(rows) else 1


def _write(out: Path, rows: list[dict], load: tuple, seconds: float, cap: float) -> dict:
    illegal = [r for r in rows if r["label"] == "illegal"]
    legal = [r for r in rows if r["label"] == "legal"]
    summary = {
        "cases": len(rows),
        "right": sum(right(r) for r in rows),
        "cap_s": cap,
        "ran_to_the_end": sum(bool(r.get("ran")) for r in rows),
        "illegal_flagged": sum(right(r) for r in illegal),
        "illegal": len(illegal),
        "legal_clean": sum(right(r) for r in legal),
        "legal": len(legal),
        "within_cap": sum(r.get("wall_s", 0) <= cap + 15 for r in rows),
        "seconds": round(seconds, 1),
        "load_at_start": [round(x, 2) for x in load],
        "cpus": os.cpu_count(),
    }
    summary["summary_line"] = (
        f"accuracy-dynamic: {summary['right']}/{len(rows)} right; illegal flagged {summary['illegal_flagged']}/"
        f"{len(illegal)}, legal clean {summary['legal_clean']}/{len(legal)}; ran to the end "
        f"{summary['ran_to_the_end']}/{len(rows)} within a {cap:.0f}s cap; {seconds / 60:.1f} min on "
        f"{os.cpu_count()} cores (load at start {load[0]:.2f})"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "cases": rows}, indent=2) + "\n", encoding="utf-8")
    return summary


if __name__ == "__main__":
    sys.exit(main())
