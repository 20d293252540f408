"""One seed: run the stages under their caps, measure, and leave an outcome file.

The outcome file is written last and atomically: its presence is what makes
a seed finished, so a run killed half-way leaves the seed to be redone.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from pgolf.compliance import fsutil, logparse
from pgolf.compliance.progress import Progress

from ..compliance import stage_contract as contract
from ..compliance.sandbox import Runtime, StageResult, StageSpec
from .measure import code_bytes
from .profiles import Profile
from .stages import DataPaths, SeedPaths, contract_spec, legacy_spec, speaks_contract

OUTCOME = "outcome.json"


@dataclass
class SeedOutcome:
    seed: int
    status: str  # ok | failed
    reason: str | None = None
    stages: list[dict] = field(default_factory=list)
    train_wall_s: float | None = None
    eval_wall_s: float | None = None
    bytes_code: int | None = None
    bytes_artifact: int | None = None
    bytes_total: int | None = None
    val_loss: float | None = None
    val_bpb: float | None = None
    metric_label: str | None = None
    steps: int | None = None  # training steps the log shows, and how many were planned
    planned_steps: int | None = None
    calibration: dict | None = None  # the measurement that widened its caps (calibration.Calibration)
    disagreements: list[str] = field(default_factory=list)
    log: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class SeedJob:
    script: Path
    seed: int
    index: int
    profile: Profile
    data: DataPaths
    root: Path
    runtime: Runtime
    overrides: dict
    pack_code: bool = False
    count: int = 1  # seeds in the run, for "seed 2/3"
    calibration: dict | None = None  # what scaled the profile's caps, stated in the outcome


def load_outcome(root: Path) -> SeedOutcome | None:
    path = root / OUTCOME
    if not path.is_file():
        return None
    return SeedOutcome(**json.loads(path.read_text(encoding="utf-8")))


def run_seed(job: SeedJob, progress: Progress) -> SeedOutcome:
    if job.root.exists():
        shutil.rmtree(job.root)  # an interrupted attempt: start the seed clean
    paths = SeedPaths(job.root)
    job.root.mkdir(parents=True)
    if speaks_contract(job.script):
        outcome = _run_contract(job, paths, progress)
    else:
        outcome = _run_legacy(job, paths, progress)
    outcome.calibration = job.calibration
    outcome.log = str(paths.log)
    fsutil.atomic_write_json(job.root / OUTCOME, asdict(outcome))
    return outcome


def _stage(job: SeedJob, spec: StageSpec, progress: Progress) -> StageResult:
    with open(spec.log_path, "a", encoding="utf-8") as log:
        log.write(contract.stage_line(spec.name, job.seed, spec.cap_s, job.runtime.name))
    label = f"seed {job.index}/{job.count} (seed={job.seed}) {spec.name}"
    with progress.task(label, kind=spec.name, cap_s=spec.cap_s, log_path=spec.log_path) as task:
        result = job.runtime.run(spec, task.tick)
        task.finish(result.status)
    with open(spec.log_path, "a", encoding="utf-8") as log:
        log.write(contract.end_line(spec.name, result.status, result.wall_s))
    return result


def _failed(outcome: SeedOutcome, result: StageResult, log: Path) -> SeedOutcome:
    outcome.status = "failed"
    if result.status == "timeout":
        outcome.reason = f"{result.name} killed at {result.wall_s:.1f} s: over its cap"
    else:
        outcome.reason = (
            f"{result.name} exited with code {result.returncode} after {result.wall_s:.1f} s{_last_words(log)}"
        )
    return outcome


def _last_words(log: Path) -> str:
    """The script's last line of output usually says why it stopped."""
    try:
        tail = log.read_bytes()[-4096:].decode("utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    said = [line.strip() for line in tail if line.strip() and not line.startswith("pgolf: ")]
    return f": {said[-1][:200]}" if said else ""


def _run_contract(job: SeedJob, paths: SeedPaths, progress: Progress) -> SeedOutcome:
    outcome = SeedOutcome(job.seed, "ok")
    clocks: dict[str, float] = {}  # stages under one cap share its clock, from the first one's start
    walls: dict[str, float] = {}
    for stage in contract.STAGES:
        spec = contract_spec(stage, job.script, job.seed, job.profile, job.data, paths, job.overrides)
        started = clocks.setdefault(stage.cap, time.monotonic())
        result = _stage(job, replace(spec, cap_s=max(spec.cap_s - (time.monotonic() - started), 0.5)), progress)
        outcome.stages.append(asdict(result))
        walls[stage.cap] = walls.get(stage.cap, 0.0) + result.wall_s
        outcome.train_wall_s, outcome.eval_wall_s = walls.get("train"), walls.get("eval")
        if not result.ok:
            return _failed(outcome, result, paths.log)
        if stage.writes == contract.ARTIFACT_VAR and not _measure_bytes(job, paths, outcome):
            return outcome
    _read_result(paths, outcome)
    facts = logparse.parse_log(paths.log.read_text(encoding="utf-8", errors="replace"))
    _compare_with_log(facts, outcome)
    _check_steps(job, facts, outcome)
    return outcome


def _measure_bytes(job: SeedJob, paths: SeedPaths, outcome: SeedOutcome) -> bool:
    if not paths.artifact.is_file():
        outcome.status, outcome.reason = "failed", f"quantize wrote no artifact at {paths.artifact}"
        return False
    outcome.bytes_code = code_bytes(job.script, job.pack_code)
    outcome.bytes_artifact = paths.artifact.stat().st_size
    outcome.bytes_total = outcome.bytes_code + outcome.bytes_artifact
    if outcome.bytes_total > job.profile.max_bytes:
        outcome.status = "failed"
        outcome.reason = (
            f"artifact {outcome.bytes_total:,} bytes (code {outcome.bytes_code:,} + model "
            f"{outcome.bytes_artifact:,}) is over the {job.profile.max_bytes:,}-byte cap"
        )
        return False
    return True


def _read_result(paths: SeedPaths, outcome: SeedOutcome) -> None:
    try:
        data = json.loads(paths.result.read_text(encoding="utf-8"))
        outcome.val_loss, outcome.val_bpb = float(data["val_loss"]), float(data["val_bpb"])
        outcome.metric_label = data.get("metric_label")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        outcome.status, outcome.reason = "failed", f"eval wrote no readable result ({type(exc).__name__})"


def _compare_with_log(facts: logparse.LogFacts, outcome: SeedOutcome) -> None:
    """The script's own numbers are evidence to compare, never the measure."""
    if facts.bytes_total is not None and facts.bytes_total != outcome.bytes_total:
        outcome.disagreements.append(
            f"script logs {facts.bytes_total:,} total bytes, pgolf measured {outcome.bytes_total:,}"
        )
    score = facts.score
    if (
        score
        and score.val_bpb is not None
        and outcome.val_bpb is not None
        and abs(score.val_bpb - outcome.val_bpb) > 1e-6
    ):
        outcome.disagreements.append(
            f"log's {score.label} val_bpb {score.val_bpb} differs from the eval result {outcome.val_bpb}"
        )
    if (
        facts.train_time_ms is not None
        and outcome.train_wall_s is not None
        and facts.train_time_ms / 1000 > outcome.train_wall_s
    ):
        outcome.disagreements.append(
            f"script claims {facts.train_time_ms / 1000:.1f} s of training, more than "
            f"the {outcome.train_wall_s:.1f} s pgolf measured"
        )


def _check_steps(job: SeedJob, facts: logparse.LogFacts, outcome: SeedOutcome) -> None:
    """On a fixed-step profile the seeds compare only if each ran every planned step."""
    outcome.steps, outcome.planned_steps = facts.last_step, facts.planned_steps
    if not job.profile.fixed_steps or outcome.status != "ok":
        return
    if facts.last_step is None or facts.planned_steps is None:
        outcome.status, outcome.reason = (
            "failed",
            (
                f"the log shows no step:N/M line; profile {job.profile.name} "
                f"trains a fixed number of steps and cannot tell how many ran"
            ),
        )
    elif facts.stopped_early or facts.last_step < facts.planned_steps:
        outcome.status, outcome.reason = (
            "failed",
            (
                f"training stopped at step {facts.last_step} of {facts.planned_steps}; profile {job.profile.name} "
                f"trains a fixed number of steps, so this seed would not compare with the others "
                f"(--retry-failed runs it again)"
            ),
        )


def _run_legacy(job: SeedJob, paths: SeedPaths, progress: Progress) -> SeedOutcome:
    outcome = SeedOutcome(job.seed, "ok")
    result = _stage(job, legacy_spec(job.script, job.seed, job.profile, job.data, paths, job.overrides), progress)
    outcome.stages.append(asdict(result))
    if not result.ok:
        return _failed(outcome, result, paths.log)
    facts = logparse.parse_log(paths.log.read_text(encoding="utf-8", errors="replace"))
    outcome.steps, outcome.planned_steps = facts.last_step, facts.planned_steps
    outcome.train_wall_s = facts.train_time_ms / 1000 if facts.train_time_ms is not None else None
    outcome.eval_wall_s = facts.score.eval_time_ms / 1000 if facts.score and facts.score.eval_time_ms else None
    outcome.bytes_code = code_bytes(job.script, job.pack_code)
    outcome.bytes_artifact = facts.bytes_model
    outcome.bytes_total = facts.bytes_model + outcome.bytes_code if facts.bytes_model is not None else facts.bytes_total
    if facts.bytes_total is not None and facts.bytes_total != outcome.bytes_total:
        outcome.disagreements.append(
            f"script logs {facts.bytes_total:,} total bytes; its model bytes plus the "
            f"code pgolf measured make {outcome.bytes_total:,}"
        )
    if facts.score is None:
        outcome.status, outcome.reason = "failed", "the script's log has no final score line"
        return outcome
    outcome.val_loss, outcome.val_bpb, outcome.metric_label = (
        facts.score.val_loss,
        facts.score.val_bpb,
        facts.score.label,
    )
    outcome.disagreements.append("script does not speak the stage contract: times and bytes are its own log's")
    if outcome.bytes_total is not None and outcome.bytes_total > job.profile.max_bytes:
        outcome.status, outcome.reason = "failed", f"size {outcome.bytes_total:,} bytes is over the cap"
    return outcome
