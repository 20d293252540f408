"""Write records/<track>/<YYYY-MM-DD>_<name>/ from measured seed outcomes.

The folder is assembled beside its destination and renamed into place, so a
reader never sees half a record, and an existing record is only replaced
with --force.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pgolf.compliance import fsutil

from .measure import packed_code
from .profiles import Profile
from .seed_run import SeedOutcome


class RecordExists(Exception):
    pass


@dataclass(frozen=True)
class RecordMeta:
    name: str
    author: str
    github_id: str
    blurb: str
    profile: Profile
    commands: list[str]
    pack_code: bool = False
    day: str = ""

    @property
    def folder_name(self) -> str:
        return f"{self.day or date.today().isoformat()}_{self.name}"


def submission_json(meta: RecordMeta, outcomes: list[SeedOutcome], provenance: dict) -> dict:
    bpbs = [o.val_bpb for o in outcomes]
    losses = [o.val_loss for o in outcomes]
    return {
        "author": meta.author,
        "github_id": meta.github_id,
        "name": meta.name,
        "blurb": meta.blurb,
        "date": meta.day or date.today().isoformat(),
        "track": meta.profile.track,
        "val_bpb": round(statistics.fmean(bpbs), 8),
        "val_loss": round(statistics.fmean(losses), 8),
        "val_bpb_std": round(statistics.stdev(bpbs), 8) if len(bpbs) > 1 else None,
        "bytes_total": max(o.bytes_total for o in outcomes),
        "bytes_code": max(o.bytes_code for o in outcomes),
        "seeds": [o.seed for o in outcomes],
        "seed_results": {
            str(o.seed): {
                "val_bpb": round(o.val_bpb, 8),
                "val_loss": round(o.val_loss, 8),
                "bytes_total": o.bytes_total,
                "train_time_ms": round(o.train_wall_s * 1000) if o.train_wall_s is not None else None,
                "eval_time_ms": round(o.eval_wall_s * 1000) if o.eval_wall_s is not None else None,
                "steps": o.steps,
                "metric_label": o.metric_label,
            }
            for o in outcomes
        },
        "hardware": ", ".join(provenance.get("gpus") or []) or provenance.get("platform"),
        "pytorch_version": provenance.get("torch"),
        "pgolf": {
            "profile": meta.profile.name,
            "caps": meta.profile.caps,
            "measured_by": "pgolf",
            "code_packed": meta.pack_code,
            "fixed_steps": meta.profile.fixed_steps,
            "calibration": widest_calibration(outcomes),
        },
    }


def widest_calibration(outcomes: list[SeedOutcome]) -> dict | None:
    """The calibration behind the widest caps any seed ran under (seeds resumed or retried in a
    later invocation ran under that invocation's): what the record's check must allow."""
    measured = [o.calibration for o in outcomes if o.calibration]
    return max(measured, key=lambda c: c["scale"]) if measured else None


def readme(meta: RecordMeta, outcomes: list[SeedOutcome], sub: dict, check_verdict: str | None) -> str:
    rows = "\n".join(
        f"| {o.seed} | {o.val_bpb:.8f} | {o.val_loss:.8f} | {_steps(o)} | {o.train_wall_s:.1f} | "
        f"{o.eval_wall_s:.1f} | {o.bytes_total:,} |"
        for o in outcomes
    )
    caps = meta.profile.caps
    commands = "\n".join(meta.commands)
    notes = "\n".join(f"- seed {o.seed}: {d}" for o in outcomes for d in o.disagreements) or "- none"
    return f"""# {meta.name}

{meta.blurb}

Written by pgolf from its own measurements (profile `{meta.profile.name}`: train + quantize
<= {caps["train_s"]:.0f} s, eval <= {caps["eval_s"]:.0f} s, <= {caps["bytes"]:,} bytes, {caps["nproc"]} process(es)).
{_steps_and_calibration(meta, outcomes, sub)}
## Results

| seed | val_bpb | val_loss | steps | train+quantize s | eval s | bytes |
|---:|---:|---:|---:|---:|---:|---:|
{rows}

Mean val_bpb **{sub["val_bpb"]:.8f}** (std {sub["val_bpb_std"] if sub["val_bpb_std"] is not None else "-"}),
largest artifact {sub["bytes_total"]:,} bytes. pgolf-check verdict: {check_verdict or "not run"}.

## How to reproduce

```
{commands}
```

## Where the script's own numbers differ from pgolf's
{notes}

Provenance (versions, hardware, sha256 of code, tokenizer, shards and artifacts) is in
`provenance.json`.
"""


def _steps(o: SeedOutcome) -> str:
    return f"{o.steps}/{o.planned_steps}" if o.steps is not None and o.planned_steps else "-"


def _steps_and_calibration(meta: RecordMeta, outcomes: list[SeedOutcome], sub: dict) -> str:
    lines = []
    if meta.profile.fixed_steps:
        lines.append("Every seed trains the same fixed number of steps; the time caps are a safety limit.")
    measured = sub["pgolf"]["calibration"]
    if measured:
        threads = f"{measured['threads']} thread{'s' if measured['threads'] != 1 else ''}"
        lines.append(
            f"The stages ran with {threads} and caps multiplied by {measured['scale']:.2f}: before the "
            f"seeds, a probe step ({measured['probe']}) took {measured['measured_s'] * 1000:.1f} ms with "
            f"{threads} against {measured['reference_s'] * 1000:.1f} ms on the reference machine"
            f"{' (' + measured['note'] + ')' if measured.get('note') else ''}."
        )
    return "".join(f"{line}\n" for line in lines)


def write_record(
    records_dir: Path,
    meta: RecordMeta,
    script: Path,
    outcomes: list[SeedOutcome],
    provenance: dict,
    requirements: str,
    force: bool,
) -> Path:
    dest = records_dir / meta.profile.track / meta.folder_name
    if dest.exists() and not force:
        raise RecordExists(f"{dest} exists; pass --force to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{meta.folder_name}."))
    try:
        _fill(staging, meta, script, outcomes, provenance, requirements)
        _readable(staging)
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def _readable(folder: Path) -> None:
    """The modes an ordinary mkdir and open would give (mkdtemp makes 0700): records are read by others."""
    mask = os.umask(0)
    os.umask(mask)
    folder.chmod(0o777 & ~mask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def _fill(
    folder: Path, meta: RecordMeta, script: Path, outcomes: list[SeedOutcome], provenance: dict, requirements: str
) -> None:
    code = packed_code(script) if meta.pack_code else script.read_text(encoding="utf-8")
    (folder / "train_gpt.py").write_text(code, encoding="utf-8")
    for o in outcomes:
        shutil.copyfile(o.log, folder / f"train_seed{o.seed}.log")
    sub = submission_json(meta, outcomes, provenance)
    fsutil.atomic_write_json(folder / "submission.json", sub)
    fsutil.atomic_write_text(folder / "requirements.txt", requirements)
    fsutil.atomic_write_json(folder / "provenance.json", provenance)
    fsutil.atomic_write_text(folder / "README.md", readme(meta, outcomes, sub, None))


def set_verdict(folder: Path, meta: RecordMeta, outcomes: list[SeedOutcome], verdict: str) -> None:
    """The README names the checker's verdict, known only once the finished folder was audited."""
    sub = json.loads((folder / "submission.json").read_text(encoding="utf-8"))
    fsutil.atomic_write_text(folder / "README.md", readme(meta, outcomes, sub, verdict))
