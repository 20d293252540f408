"""One traced run of a submission: canary validation data, real training data, the shim.

The script runs unmodified as a child process of a sandbox runtime (bubblewrap by default,
the pinned image, or local with --unsafe-local), from a copy of its folder so the audited
folder is never written.
Its data folder holds links to real training shards and one validation shard: the canary.
The shim folder goes first on PYTHONPATH, so every process the script starts (torchrun
workers included) runs on the CPU and is traced.
For scripts that read one, the canary has its byte sidecar too.

Its knobs (plan.py) are the run's own configuration, the tiny preset and the caps on evaluation
work. The budget (budget.py) watches the run: when it cannot finish within the cap, it is run
again on a smaller canary. The log's last lines are read before anything is removed; with a
work folder (--keep) every attempt's log and ledger stay there.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..logparse import LogFacts, parse_log_bytes
from ..progress import Progress
from ..sandbox import StageSpec, caller_environment, choose_runtime, compose_env, scratch
from ..sandbox.base import Connection, Runtime, StageResult
from ..sandbox.launch import CONTRACT_MARKER, launcher
from ..shards import read_header, shard_paths, write_shard
from . import canary as canary_mod
from .budget import MIN_TOKENS, Budget, BudgetStop
from .claimed import judged_pass
from .eval_preset import EvalPreset
from .evidence import byte_table
from .ledger import Ledger, read_ledger
from .plan import RunPlan, plan_run
from .stall import STALL_S, RunStalled, StallWatch, beat_s

SHIM_DIR = Path(__file__).with_name("shim")
LAUNCHER = SHIM_DIR / "pgolf_shim_launch.py"
SCRUBBED = ("PGOLF_", "DATA_PATH", "DATA_DIR", "DATASETS_DIR", "TOKENIZER_PATH", "PYTHONPATH", "VOCAB_SIZE")


@dataclass
class DynamicOptions:
    data: Path | None = None  # train shards of the script's vocabulary, or a `pgolf data synth` folder
    tokenizer: Path | None = None  # the SentencePiece model those shards were cut with
    runtime: Runtime | None = None  # a compliance.sandbox runtime; the default sandbox when None
    nproc: int = 1  # 0: two ranks for a script that starts a process group, on two or
    # more cores (two processes of one thread beat one of two), else one
    threads: int = 2
    cap_s: float = 900.0
    scored_tokens: int = canary_mod.DEFAULT_SCORED_TOKENS
    seed: int = 1337
    preset: bool = True  # the tiny preset; off for scripts already sized for a CPU
    device_shim: bool | None = None  # CUDA -> CPU shim; None: on unless the script speaks pgolf's
    # stage contract (such scripts run on a CPU by contract)
    env: dict[str, str] = field(default_factory=dict)  # extra knobs, e.g. a technique switched on
    workdir: Path | None = None  # keep the run here; a temporary folder otherwise
    python: str = sys.executable
    progress: Progress | None = None  # compliance.progress: where the run shows how far it is
    budget: bool = True  # shrink the canary when the run cannot finish within the cap
    stall_s: float = STALL_S  # stop a run whose working processes all wait this long (compliance.dynamic.stall)


@dataclass
class DynamicRun:
    script: str
    status: str  # ok | failed | timeout
    returncode: int | None
    wall_s: float
    log_path: Path
    canary: canary_mod.Canary
    tokenizer: Path
    facts: LogFacts
    ledger: Ledger
    env: dict[str, str]  # the knobs pgolf set
    knobs_ignored: list[str]
    notes: list[str] = field(default_factory=list)
    workdir: Path | None = None
    connections: list[Connection] = field(default_factory=list)  # every attempt the sandbox saw (sandbox.Connection)
    log_tail: list[str] = field(default_factory=list)  # the log's last lines, read before cleanup
    eval_preset: EvalPreset = field(default_factory=EvalPreset)
    run_config: dict[str, str] = field(default_factory=dict)  # knobs from the README and the logs
    attempts: list[dict[str, Any]] = field(default_factory=list)  # every attempt: tokens, status, wall, why
    budget: dict[str, Any] = field(default_factory=dict)  # what the budget measured and predicted

    @property
    def scored_tokens(self) -> int:
        return len(self.canary.tokens) - 1


def run_dynamic(script: Path, source: str, options: DynamicOptions) -> DynamicRun:
    """Run `script` (whose decoded text is `source`) on a fresh canary, within the cap, and read its trace."""
    plan = plan_run(script, source, options.env, options.preset)
    options = replace(options, nproc=ranks(options.nproc, plan.distributed))
    train_dir, tokenizer = resolve_data(options, plan.vocab)
    ids = canary_mod.content_ids(tokenizer, plan.vocab)
    keep = options.workdir is not None
    work = Path(options.workdir) if options.workdir else scratch.make("pgolf-dynamic-")
    try:
        return _run_within_budget(
            script, work, train_dir, tokenizer, ids, plan, options, _wants_device_shim(options, source)
        )
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _run_within_budget(
    script: Path,
    work: Path,
    train_dir: Path,
    tokenizer: Path,
    ids: np.ndarray,
    plan: RunPlan,
    options: DynamicOptions,
    device_shim: bool,
) -> DynamicRun:
    """Attempts on ever smaller canaries, each sized by what the one before measured, until one runs
    to its end (or fails, or reaches the cap with no smaller canary left to try)."""
    tokens, spent, attempts = options.scored_tokens, 0.0, []
    while True:
        canary = canary_mod.generate(ids, tokens, canary_mod.mean_doc_len_for(tokens))
        budget = Budget(
            work / "ledger",
            options.cap_s,
            tokens,
            spent,
            may_shrink=options.budget and tokens > MIN_TOKENS,
            say=_say(options),
            passes_hint=max((loop.count for loop in plan.knobs.literal_update_loops), default=0),
            stall=StallWatch(options.stall_s, beat_s(options.stall_s)),
        )
        run, stop = _run(
            script, work, train_dir, tokenizer, plan, canary, options, device_shim, budget, options.cap_s - spent
        )
        attempts.append(
            {
                "tokens": tokens,
                "status": "shrunk" if stop else run.status,
                "wall_s": round(run.wall_s, 1),
                "why": stop.reason if stop else None,
            }
        )
        spent += run.wall_s
        if stop is None:
            run.attempts, run.wall_s = attempts, spent
            return run
        _say(options)(f"dynamic: {stop.reason}; again on a {stop.tokens}-token canary")
        _set_aside(work, len(attempts))
        tokens = stop.tokens


def _run(
    script: Path,
    work: Path,
    train_dir: Path,
    tokenizer: Path,
    plan: RunPlan,
    canary: canary_mod.Canary,
    options: DynamicOptions,
    device_shim: bool,
    budget: Budget,
    cap_s: float,
) -> tuple[DynamicRun, BudgetStop | None]:
    vocab = plan.vocab
    run_dir, data_root, ledger_dir = _layout(work, script, train_dir, tokenizer, vocab, canary, plan.sidecar)
    dataset = data_root / "datasets" / f"fineweb10B_sp{vocab}"
    knobs, caps = plan.environment(len(canary.tokens) - 1)
    env, inherited = _environment(
        options,
        knobs,
        {
            "DATA_PATH": str(dataset),
            "DATA_DIR": str(data_root) + os.sep,
            "DATASETS_DIR": str(dataset),
            "VOCAB_SIZE": str(vocab),
            "TOKENIZER_PATH": str(data_root / "tokenizers" / tokenizer_name(vocab)),
            "PGOLF_LEDGER_DIR": str(ledger_dir),
            "PGOLF_CANARY": str(work / "canary" / canary_mod.CANARY_FILE),
            "PGOLF_SCRIPT_DIR": str(run_dir),
            "PGOLF_BEAT_S": f"{beat_s(options.stall_s):g}",
            **_contract_paths(dataset, run_dir),
        },
    )
    if device_shim:
        env["PGOLF_SHIM_DEVICE"] = "cpu"
    spec = StageSpec(
        name="dynamic",
        argv=_argv(options, run_dir / script.name),
        env=env,
        cwd=run_dir,
        cap_s=cap_s,
        log_path=work / "run.log",
        grace_s=10.0,
        read_only=(dataset, data_root / "tokenizers", work / "canary", SHIM_DIR),
        writable=(run_dir, ledger_dir),
        network=False,
        caller_env=inherited,
    )
    runtime = options.runtime or choose_runtime(None)  # the default sandbox; refused when it cannot start
    progress = options.progress or Progress.silent()
    progress.say(
        f"dynamic: {script.name} on {runtime.name}, canary {canary.sha256[:12]} "
        f"({len(canary.tokens) - 1} targets, K={canary.k}), cap {cap_s:.0f}s"
    )
    for capped in caps.capped:
        progress.say(f"dynamic: eval preset {capped.text()}")
    with progress.task(f"dynamic: {script.name}", kind="dynamic", cap_s=cap_s, log_path=spec.log_path) as task:
        result, stop = _run_watched(runtime, spec, budget, task.tick)
        task.finish("stopped by the budget" if stop else result.status)
    log_bytes = spec.log_path.read_bytes() if spec.log_path.exists() else b""
    run = DynamicRun(
        script=script.name,
        status=result.status,
        returncode=result.returncode,
        wall_s=result.wall_s,
        log_path=spec.log_path,
        canary=canary,
        tokenizer=tokenizer,
        facts=judged_pass(parse_log_bytes(log_bytes), plan.claimed),
        env=knobs,
        ledger=read_ledger(ledger_dir) if stop is None else read_ledger(work / "none"),
        knobs_ignored=plan.ignored(),
        notes=list(result.notes),
        workdir=work if options.workdir else None,
        log_tail=log_tail(log_bytes),
        eval_preset=caps,
        run_config=plan.run_config,
        budget=budget.summary(),
        connections=list(result.connections),
    )
    return run, stop


def _run_watched(
    runtime: Runtime, spec: StageSpec, budget: Budget, ticker: Callable[[float], None]
) -> tuple[StageResult, BudgetStop | None]:
    """The runtime's run, with the budget reading the ledger at every tick. A BudgetStop raised from
    the tick takes the stage down (every runtime stops its stage when pgolf is interrupted)."""
    start = time.monotonic()
    budget.spawn_ns = time.monotonic_ns()

    def tick(elapsed: float) -> None:
        ticker(elapsed)
        budget.tick(elapsed)

    try:
        return runtime.run(spec, tick), None
    except BudgetStop as stop:
        wall = time.monotonic() - start
        return StageResult(spec.name, "timeout", None, wall, killed=True, notes=[stop.reason]), stop
    except RunStalled as stalled:
        wall = time.monotonic() - start
        return StageResult(spec.name, "timeout", None, wall, killed=True, notes=[stalled.reason]), None


def log_tail(data: bytes, lines: int = 20) -> list[str]:
    """The last lines of a log, as text (undecodable bytes replaced); escaping is the reader's job."""
    text = data[-65536:].decode("utf-8", errors="replace").replace("\r", "\n")
    return [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]


def _say(options: DynamicOptions) -> Callable[[str], None]:
    return (options.progress or Progress.silent()).say


def _set_aside(work: Path, attempt: int) -> None:
    """Before another attempt: this one's log and ledger move to attempt-N/ (kept with --keep);
    its copy of the script folder, its data links and its canary go."""
    aside = work / f"attempt-{attempt}"
    aside.mkdir(parents=True, exist_ok=True)
    for name in ("run.log", "ledger", "canary"):
        if (work / name).exists():
            shutil.move(str(work / name), str(aside / name))
    for name in ("run", "data"):
        shutil.rmtree(work / name, ignore_errors=True)


def ranks(nproc: int, distributed: bool) -> int:
    """The processes to run: as asked, or (0) two for a distributed script where two cores exist."""
    if nproc > 0:
        return nproc
    return 2 if distributed and (os.cpu_count() or 1) >= 2 else 1


def _wants_device_shim(options: DynamicOptions, source: str) -> bool:
    """A CPU-capable script left alone runs its own CPU path (fp32, no autocast), several times
    faster than its CUDA path emulated on the CPU."""
    if options.device_shim is not None:
        return options.device_shim
    return CONTRACT_MARKER not in source


def _contract_paths(dataset: Path, run_dir: Path) -> dict[str, str]:
    """pgolf's stage contract (README, pipeline/stages.py) names its paths itself; unset, a contract
    script runs its three stages in one process, which is what a traced run wants."""
    tokenizer = dataset.parent.parent / "tokenizers"
    return {
        "PGOLF_TRAIN_DATA": str(dataset),
        "PGOLF_VAL_DATA": str(dataset),
        "PGOLF_TOKENIZER": str(next(tokenizer.glob("*.model"), tokenizer)),
        "PGOLF_CHECKPOINT": str(run_dir / "out" / "checkpoint.pt"),
        "PGOLF_ARTIFACT": str(run_dir / "out" / "model.bin"),
        "PGOLF_RESULT": str(run_dir / "out" / "result.json"),
    }


def tokenizer_name(vocab: int) -> str:
    return f"fineweb_{vocab}_bpe.model"


def _layout(
    work: Path,
    script: Path,
    train_dir: Path,
    tokenizer: Path,
    vocab: int,
    canary: canary_mod.Canary,
    sidecar: bool = False,
) -> tuple[Path, Path, Path]:
    """work/run: a copy of the script's folder; work/data: the official layout (DATA_DIR and DATA_PATH
    styles both find it) with links to the training shards and the canary as the only val shard, plus
    its byte sidecar when the script reads one (a glob of fineweb_val_*.bin would take it for a shard)."""
    run_dir, data_root, ledger_dir = work / "run", work / "data", work / "ledger"
    for path in (run_dir, ledger_dir, work / "canary", data_root / "tokenizers"):
        path.mkdir(parents=True, exist_ok=True)
    _copy_sources(script, run_dir)
    dataset = data_root / "datasets" / f"fineweb10B_sp{vocab}"
    dataset.mkdir(parents=True, exist_ok=True)
    for shard in shard_paths(train_dir, "train"):
        (dataset / shard.name).symlink_to(shard.resolve())
    canary_mod.write(canary, work / "canary")
    (dataset / "fineweb_val_000000.bin").symlink_to((work / "canary" / "fineweb_val_000000.bin").resolve())
    if sidecar:
        sidecar_path = write_byte_sidecar(canary, tokenizer, work / "canary")
        (dataset / sidecar_path.name).symlink_to(sidecar_path.resolve())
    shutil.copyfile(tokenizer, data_root / "tokenizers" / tokenizer_name(vocab))
    return run_dir, data_root, ledger_dir


def write_byte_sidecar(canary: canary_mod.Canary, tokenizer: Path, folder: Path) -> Path:
    """fineweb_val_bytes_000000.bin: per position, the UTF-8 bytes its token stands for after the token
    before it (RULES.md §6), in the shard format, as CaseOps datasets ship beside their val shard."""
    base, space, boundary = byte_table(tokenizer)
    tokens = canary.tokens.astype(np.int64)
    counts = np.zeros(len(tokens), dtype=np.int64)
    counts[1:] = base[tokens[1:]] + (space[tokens[1:]] & ~boundary[tokens[:-1]])
    path = folder / "fineweb_val_bytes_000000.bin"
    write_shard(path, counts.astype(np.uint16))
    return path


COPY_LIMIT = 256 << 20  # a record folder's files beyond this (checkpoints, datasets) stay out


def _copy_sources(script: Path, run_dir: Path) -> None:
    """The record folder as the script sees it: its own helpers, sources it compiles (an n-gram
    kernel in C++ beside it, or under ngram/), tokenizer specs. Links are not followed, files over
    64 MiB are left out, and so is anything past COPY_LIMIT in all."""
    budget, root = COPY_LIMIT, script.parent.resolve()
    for path in sorted(script.parent.rglob("*")):
        rel = path.relative_to(script.parent)
        if (
            path.is_symlink()
            or not path.is_file()
            or any(p.startswith(".") for p in rel.parts)
            or not path.resolve().is_relative_to(root)
        ):
            continue
        size = path.stat().st_size
        if size > 64 << 20 or size > budget:
            continue
        budget -= size
        (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, run_dir / rel)
    shutil.copyfile(script, run_dir / script.name)


def _environment(
    options: DynamicOptions, knobs: dict[str, str], ours: dict[str, str]
) -> tuple[dict[str, str], frozenset[str]]:
    """The run's environment, and which names in it are the caller's (a sandbox keeps few of those)."""
    threads = str(max(1, options.threads // max(1, options.nproc)))
    # the interpreter's own tools first (records call pyminify from their environment)
    path = os.pathsep.join([str(Path(options.python).parent), os.environ.get("PATH", "")])
    return compose_env(
        caller_environment(lambda k: k.startswith(SCRUBBED)),
        knobs,
        ours,
        {
            "PYTHONPATH": str(SHIM_DIR),
            "OMP_NUM_THREADS": threads,
            "SEED": str(options.seed),
            "PYTHONUNBUFFERED": "1",
            "PGOLF_PY312": python312() or "",
            "PATH": path,
        },
    )


def _argv(options: DynamicOptions, script: Path) -> list[str]:
    entry = [str(LAUNCHER), str(script)] if LAUNCHER.exists() else [str(script)]
    return launcher(entry, options.nproc, options.python)


@functools.lru_cache(maxsize=1)
def python312() -> str | None:
    """A 3.12+ interpreter for sources that need its grammar (pyenv keeps one on these machines),
    one that really runs: a pyenv shim on PATH may name a version that is not selected."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = sorted(glob.glob(str(root / "versions" / "3.1[2-9]*" / "bin" / "python3.1[2-9]")), reverse=True)
    candidates += [found for name in ("python3.13", "python3.12") if (found := shutil.which(name))]
    for candidate in candidates:
        try:
            probe = subprocess.run(
                [candidate, "-I", "-c", "import sys; sys.exit(sys.version_info < (3, 12))"],
                capture_output=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return candidate
    return None


def resolve_data(options: DynamicOptions, vocab: int) -> tuple[Path, Path]:
    """Training shards and their tokenizer: a `pgolf data synth` folder (its manifest names both)
    or a shard folder plus --tokenizer. Their vocabulary must be the script's."""
    data = options.data or Path(os.environ.get("PGOLF_DYNAMIC_DATA", "data/synth"))
    manifest = data / "manifest.json"
    tokenizer, shards = options.tokenizer, data
    if manifest.is_file():
        try:
            info = json.loads(manifest.read_text(encoding="utf-8"))
            shards = data / info["dataset"]
            tokenizer = tokenizer or data / info["tokenizer"]["model"]
        except (ValueError, KeyError, TypeError):
            raise InputError(manifest, "not a pgolf data manifest") from None
    if not shard_paths(shards, "train"):
        raise InputError(
            shards,
            f"no fineweb_train_*.bin shards for the dynamic run "
            f"(make one: pgolf data synth --vocab-size {vocab}, or pass --data)",
        )
    if tokenizer is None or not Path(tokenizer).is_file():
        raise InputError(tokenizer or data, "no tokenizer for the training shards (pass --tokenizer)")
    pieces = canary_mod.piece_count(Path(tokenizer))
    if pieces != vocab:
        raise InputError(
            tokenizer,
            f"has {pieces} pieces but the script expects vocab {vocab} (give data cut with a {vocab}-piece tokenizer)",
        )
    first = shard_paths(shards, "train")[0]
    try:
        read_header(first)  # a broken shard is bad input, not a failed run
    except ValueError as exc:
        raise InputError(None, str(exc)) from None
    return shards, Path(tokenizer)
