"""make submit / pgolf submit: every seed through the stages, then the record, then the check."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from pgolf.compliance import fsutil
from pgolf.compliance.audit import audit
from pgolf.compliance.baseline import parse_baseline
from pgolf.compliance.context import AuditOptions
from pgolf.compliance.formatters import RenderOptions, render
from pgolf.compliance.progress import Progress
from pgolf.compliance.terminal import wants_color

from ..compliance.dynamic.harness import DynamicOptions
from ..compliance.sandbox import Runtime, SandboxUnavailable, dynamic_runtime
from . import calibration, provenance
from .profiles import Profile
from .record_writer import RecordMeta, set_verdict, write_record
from .seed_run import SeedJob, SeedOutcome, load_outcome, run_seed
from .stages import DataPaths, base_env

LOCK_FILE = ".pgolf-submit.lock"


class SubmitError(Exception):
    pass


@dataclass
class SubmitRequest:
    script: Path
    seeds: list[int]
    profile: Profile
    data: DataPaths
    runtime: Runtime
    work_dir: Path
    records_dir: Path
    meta: RecordMeta
    overrides: dict[str, str] = field(default_factory=dict)
    force: bool = False
    retry_failed: bool = False
    against: str | None = None
    policy: str = "enforced"
    dynamic: bool = True  # one traced run on a canary, merged into the record's check
    dynamic_cap_s: float | None = None  # its cap; None: from the seeds' measured times (the profile's rule)
    trusted: bool = False  # the bundled reference: may run unsandboxed


def fingerprint(req: SubmitRequest) -> str:
    """Seeds may only be resumed into a run of the same code, profile, knobs and data."""
    parts = [
        req.script.read_bytes(),
        req.profile.name.encode(),
        json.dumps(sorted(req.overrides.items())).encode(),
        str(req.data).encode(),
        str(req.meta.pack_code).encode(),
    ]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def prepare_work_dir(req: SubmitRequest) -> None:
    marker = req.work_dir / "run.json"
    mark = fingerprint(req)
    if marker.is_file() and json.loads(marker.read_text())["fingerprint"] != mark:
        if not req.force:
            raise SubmitError(
                f"{req.work_dir} holds seeds of another code or configuration; pass --force to start over"
            )
        for seed_dir in req.work_dir.glob("seed_*"):
            shutil.rmtree(seed_dir)
    fsutil.atomic_write_json(marker, {"fingerprint": mark, "script": str(req.script), "profile": req.profile.name})


def pending_seeds(req: SubmitRequest) -> list[int]:
    """The seeds this invocation runs: those without an outcome, and failed ones with --retry-failed."""
    prior = {seed: load_outcome(req.work_dir / f"seed_{seed}") for seed in req.seeds}
    return [seed for seed, o in prior.items() if o is None or (not o.ok and req.retry_failed)]


def calibrate(req: SubmitRequest, progress: Progress) -> tuple[Profile, calibration.Calibration | None]:
    """The profile with a fresh calibration's thread count and caps, where the profile is calibrated."""
    reference = req.profile.calibration_reference_s
    if reference is None:
        return req.profile, None
    measured = calibration.calibrate(
        reference,
        req.profile.max_cap_scale,
        base_env(req.profile, 0, req.overrides),
        fixed_threads="OMP_NUM_THREADS" in req.overrides,
    )
    progress.say(measured.describe())
    return req.profile.scaled(measured.scale).with_threads(measured.threads), measured


def run_seeds(req: SubmitRequest, progress: Progress) -> list[SeedOutcome]:
    profile, measured = calibrate(req, progress) if pending_seeds(req) else (req.profile, None)
    if measured is not None:
        calibration.save(req.work_dir, measured)
    outcomes = []
    for index, seed in enumerate(req.seeds, 1):
        root = req.work_dir / f"seed_{seed}"
        prior = load_outcome(root)
        if prior is not None and (prior.ok or not req.retry_failed):
            hint = "" if prior.ok else " (--retry-failed runs it again)"
            progress.say(f"seed {index}/{len(req.seeds)} (seed={seed}) already finished ({prior.status}); kept{hint}")
            outcomes.append(prior)
            continue
        job = SeedJob(
            req.script,
            seed,
            index,
            profile,
            req.data,
            root,
            req.runtime,
            req.overrides,
            req.meta.pack_code,
            count=len(req.seeds),
            calibration=asdict(measured) if measured else None,
        )
        outcomes.append(run_seed(job, progress))
    return outcomes


def summary_lines(outcomes: list[SeedOutcome]) -> list[str]:
    lines = []
    for o in outcomes:
        if o.ok:
            lines.append(
                f"seed {o.seed}: val_bpb {o.val_bpb:.8f}  train+quantize {o.train_wall_s:.1f} s  "
                f"eval {o.eval_wall_s:.1f} s  {o.bytes_total:,} bytes"
            )
        else:
            lines.append(f"seed {o.seed}: FAILED: {o.reason}")
        lines.extend(f"seed {o.seed}: note: {d}" for d in o.disagreements)
    return lines


def requirements_for(script: Path) -> str:
    beside = script.parent / "requirements.txt"
    if beside.is_file():
        return beside.read_text(encoding="utf-8")
    pins = []
    for dist in ("torch", "numpy", "sentencepiece", "zstandard", "brotli"):
        try:
            pins.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return "\n".join(pins) + "\n"


def preflight(req: SubmitRequest) -> None:
    """Everything a submit writes to must be writable before the first seed runs, not after the last."""
    writable_dir(req.work_dir, create=True)
    writable_dir(req.records_dir / req.profile.track)


def writable_dir(path: Path, create: bool = False) -> None:
    """`path` can be written (created, if asked), or the folder it would be made in can: one line if not."""
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not existing.is_dir():
            raise NotADirectoryError(20, "a file is in the way", str(existing))
        with tempfile.TemporaryDirectory(dir=existing, prefix=".pgolf-preflight-"):
            pass
    except OSError as exc:
        raise SubmitError(f"{path}: not writable ({exc.strerror or type(exc).__name__}); nothing was run") from None


def run_lock(work_dir: Path):
    """An exclusive lock on the run folder: a second submit of the same run is refused at once."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(work_dir / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise SubmitError(
            f"{work_dir}: another pgolf submit is running in this folder; wait for it to "
            f"finish or pass another --work-dir"
        ) from None
    return lock


def submit(req: SubmitRequest, progress: Progress) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    preflight(req)
    lock = run_lock(req.work_dir)
    try:
        return _submit_locked(req, progress)
    finally:
        lock.release()


def _submit_locked(req: SubmitRequest, progress: Progress) -> int:
    prepare_work_dir(req)
    outcomes = run_seeds(req, progress)
    for line in summary_lines(outcomes):
        progress.say(line)
    if any(not o.ok for o in outcomes):
        failed = [o for o in outcomes if not o.ok]
        progress.say(f"{len(failed)} seed(s) failed: no record written (logs in {req.work_dir})")
        progress.say(
            f"next: read {failed[0].log or req.work_dir}, fix the script, then run the same command "
            f"again: finished seeds are kept and failed ones rerun with --retry-failed (exit status 1)"
        )
        return 1
    shards = sorted(req.data.train.glob("fineweb_*.bin")) + sorted(req.data.val.glob("fineweb_val_*.bin"))
    artifacts = {f"seed_{o.seed}": req.work_dir / f"seed_{o.seed}" / "artifact" / "model.bin" for o in outcomes}
    prov = provenance.collect(req.script, req.data.tokenizer, sorted(set(shards)), artifacts, req.runtime.describe())
    environment = req.runtime.env_report()  # a container's own preflight, as it saw itself
    if environment is not None:
        prov["environment"] = environment
        prov["image_digest"] = (prov["runtime"].get("repo_digests") or [prov["runtime"].get("image_id")])[0]
    folder = write_record(
        req.records_dir, req.meta, req.script, outcomes, prov, requirements_for(req.script), req.force
    )
    progress.say(f"record written: {folder}")
    options = AuditOptions(
        policy=req.policy,
        against=parse_baseline(req.against) if req.against else None,
        dynamic=dynamic_options(req, progress, outcomes) if req.dynamic else None,
    )
    started = time.monotonic()
    report = audit([str(folder)], options)
    report.elapsed_s = time.monotonic() - started
    set_verdict(folder, req.meta, outcomes, report.verdict)
    sys.stdout.write(render(report, "human", RenderOptions(color=wants_color(sys.stdout))))
    sys.stdout.flush()
    progress.say(closing_words(report.verdict, folder, report.exit_code))
    return report.exit_code


NEXT_STEP = {
    "pass": "the record is ready: open a pull request that adds only the folder {folder}",
    "review": "the record is written, but the REVIEW findings above need a human: read each with "
    "`pgolf-check --explain RULE`, then fix and rerun with --force, or explain them in the "
    "record's README for the reviewers",
    "fail": "the record breaks a rule (the FAIL findings above) and cannot be submitted as it is: "
    "`pgolf-check --explain RULE` says what the rule wants; fix the script and rerun with --force",
    "error": "pgolf could not check the record (the error above); fix what it names and run "
    "`pgolf-check {folder}` again",
}


def closing_words(verdict: str, folder: Path, exit_code: int) -> str:
    """The last thing `make submit` prints: the verdict, and what to do next, in words."""
    return f"verdict {verdict.upper()}: {NEXT_STEP[verdict].format(folder=folder)} (exit status {exit_code})"


def dynamic_options(req: SubmitRequest, progress: Progress, outcomes: list[SeedOutcome]) -> DynamicOptions:
    """The dynamic check on the CPU, with the run's own data: the profile's knobs (and its short
    schedule for the traced run) when it is a CPU profile, the tiny preset otherwise; the stages'
    own isolation on the CPU (a CPU container when the seeds ran in one), else the default
    sandbox. Its log, ledger and canary are kept in runs/<name>/dynamic/, whatever the outcome."""
    try:
        runtime = dynamic_runtime(req.runtime, trusted=req.trusted)
    except SandboxUnavailable:
        runtime = None  # the check then reports why it could not run (review), rather than running unsandboxed
    cpu_profile = bool(req.profile.env)
    profile, _ = calibrate(req, progress)  # the thread count that runs fastest now
    keep = req.work_dir / "dynamic"
    if keep.exists():
        shutil.rmtree(keep)  # the run lays out a fresh folder: links, canary and ledger of its own
    progress.say(f"dynamic: the traced run's log and ledger go to {keep}")
    return DynamicOptions(
        data=req.data.train,
        tokenizer=req.data.tokenizer,
        runtime=runtime,
        env={**profile.env, **profile.dynamic_env, **req.overrides} if cpu_profile else dict(req.overrides),
        preset=not cpu_profile,
        cap_s=dynamic_cap_s(req, outcomes),
        workdir=keep,
        threads=int(profile.env.get("OMP_NUM_THREADS", 2)),
        progress=progress,
    )


def dynamic_cap_s(req: SubmitRequest, outcomes: list[SeedOutcome]) -> float:
    """--dynamic-cap, else a multiple of the slowest seed's measured train + quantize + eval time
    (the traced run repeats them in one process), never under the profile's floor."""
    if req.dynamic_cap_s is not None:
        return req.dynamic_cap_s
    slowest = max(((o.train_wall_s or 0.0) + (o.eval_wall_s or 0.0) for o in outcomes), default=0.0)
    return req.profile.dynamic_cap_s(slowest)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")
