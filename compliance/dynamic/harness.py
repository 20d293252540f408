"""One traced run of a submission: canary validation data, real training data, the shim.

The script runs unmodified as a child process of a sandbox runtime (bubblewrap by default,
the pinned image, or local with --unsafe-local), from a copy of its folder so the audited
folder is never written.
Its data folder holds links to real training shards and one validation shard: the canary.
The shim folder goes first on PYTHONPATH, so every process the script starts (torchrun
workers included) runs on the CPU and is traced.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..logparse import LogFacts, parse_log_bytes
from ..progress import Progress
from ..sandbox import StageSpec, caller_environment, choose_runtime, compose_env
from ..sandbox.launch import CONTRACT_MARKER, launcher
from ..shards import read_header, shard_paths
from . import canary as canary_mod
from .ledger import Ledger, read_ledger
from .preset import env_reads, ignored, tiny_preset, vocab_size

SHIM_DIR = Path(__file__).with_name("shim")
LAUNCHER = SHIM_DIR / "pgolf_shim_launch.py"
SCRUBBED = ("PGOLF_", "DATA_PATH", "DATA_DIR", "TOKENIZER_PATH", "PYTHONPATH", "VOCAB_SIZE")


@dataclass
class DynamicOptions:
    data: Path | None = None           # train shards of the script's vocabulary, or a `pgolf data synth` folder
    tokenizer: Path | None = None      # the SentencePiece model those shards were cut with
    runtime: object | None = None      # a compliance.sandbox runtime; the default sandbox when None
    nproc: int = 1
    threads: int = 2
    cap_s: float = 900.0
    scored_tokens: int = canary_mod.DEFAULT_SCORED_TOKENS
    seed: int = 1337
    preset: bool = True                # the tiny preset; off for scripts already sized for a CPU
    device_shim: bool | None = None    # CUDA -> CPU shim; None: on unless the script speaks pgolf's
                                       # stage contract (such scripts run on a CPU by contract)
    env: dict[str, str] = field(default_factory=dict)   # extra knobs, e.g. a technique switched on
    workdir: Path | None = None        # keep the run here; a temporary folder otherwise
    python: str = sys.executable
    progress: Progress | None = None   # compliance.progress: where the run shows how far it is


@dataclass
class DynamicRun:
    script: str
    status: str                        # ok | failed | timeout
    returncode: int | None
    wall_s: float
    log_path: Path
    canary: canary_mod.Canary
    tokenizer: Path
    facts: LogFacts
    ledger: Ledger
    env: dict[str, str]                # the knobs pgolf set
    knobs_ignored: list[str]
    notes: list[str] = field(default_factory=list)
    workdir: Path | None = None
    connections: list = field(default_factory=list)   # every attempt the sandbox saw (sandbox.Connection)


def run_dynamic(script: Path, source: str, options: DynamicOptions) -> DynamicRun:
    """Run `script` (whose decoded text is `source`) once on a fresh canary and read its trace."""
    reads = env_reads(source)
    vocab = vocab_size(reads)
    train_dir, tokenizer = resolve_data(options, vocab)
    ids = canary_mod.content_ids(tokenizer, vocab)
    canary = canary_mod.generate(ids, options.scored_tokens)
    keep = options.workdir is not None
    work = Path(options.workdir or tempfile.mkdtemp(prefix="pgolf-dynamic-"))
    try:
        return _run(script, work, train_dir, tokenizer, vocab, canary, reads, options,
                    _wants_device_shim(options, source))
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _run(script, work, train_dir, tokenizer, vocab, canary, reads, options, device_shim: bool) -> DynamicRun:
    run_dir, data_root, ledger_dir = _layout(work, script, train_dir, tokenizer, vocab, canary)
    dataset = data_root / "datasets" / f"fineweb10B_sp{vocab}"
    knobs = {**(tiny_preset() if options.preset else {}), **options.env}
    env, inherited = _environment(options, knobs, {
        "DATA_PATH": str(dataset), "DATA_DIR": str(data_root) + os.sep, "VOCAB_SIZE": str(vocab),
        "TOKENIZER_PATH": str(data_root / "tokenizers" / tokenizer_name(vocab)),
        "PGOLF_LEDGER_DIR": str(ledger_dir), "PGOLF_CANARY": str(work / "canary" / canary_mod.CANARY_FILE),
        "PGOLF_SCRIPT_DIR": str(run_dir), **_contract_paths(dataset, run_dir)})
    if device_shim:
        env["PGOLF_SHIM_DEVICE"] = "cpu"
    spec = StageSpec(name="dynamic", argv=_argv(options, run_dir / script.name), env=env, cwd=run_dir,
                     cap_s=options.cap_s, log_path=work / "run.log", grace_s=10.0,
                     read_only=(dataset, data_root / "tokenizers", work / "canary", SHIM_DIR),
                     writable=(run_dir, ledger_dir), network=False, caller_env=inherited)
    runtime = options.runtime or choose_runtime(None)  # the default sandbox; refused when it cannot start
    progress = options.progress or Progress.silent()
    progress.say(f"dynamic: {script.name} on {runtime.name}, canary {canary.sha256[:12]} "
                 f"({len(canary.tokens) - 1} targets, K={canary.k})")
    with progress.task(f"dynamic: {script.name}", kind="dynamic", cap_s=options.cap_s, log_path=spec.log_path) as task:
        result = runtime.run(spec, task.tick)
        task.finish(result.status)
    log_bytes = spec.log_path.read_bytes() if spec.log_path.exists() else b""
    return DynamicRun(script=script.name, status=result.status, returncode=result.returncode,
                      wall_s=result.wall_s, log_path=spec.log_path, canary=canary, tokenizer=tokenizer,
                      facts=parse_log_bytes(log_bytes), ledger=read_ledger(ledger_dir), env=knobs,
                      knobs_ignored=ignored(knobs, reads), notes=list(result.notes),
                      workdir=work if options.workdir else None, connections=list(result.connections))


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
    return {"PGOLF_TRAIN_DATA": str(dataset), "PGOLF_VAL_DATA": str(dataset),
            "PGOLF_TOKENIZER": str(next(tokenizer.glob("*.model"), tokenizer)),
            "PGOLF_CHECKPOINT": str(run_dir / "out" / "checkpoint.pt"),
            "PGOLF_ARTIFACT": str(run_dir / "out" / "model.bin"),
            "PGOLF_RESULT": str(run_dir / "out" / "result.json")}


def tokenizer_name(vocab: int) -> str:
    return f"fineweb_{vocab}_bpe.model"


def _layout(work: Path, script: Path, train_dir: Path, tokenizer: Path, vocab: int, canary):
    """work/run: a copy of the script's folder; work/data: the official layout (DATA_DIR and DATA_PATH
    styles both find it) with links to the training shards and the canary as the only val shard."""
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
    shutil.copyfile(tokenizer, data_root / "tokenizers" / tokenizer_name(vocab))
    return run_dir, data_root, ledger_dir


def _copy_sources(script: Path, run_dir: Path) -> None:
    """The entry script and the Python modules beside it (some records import their own helpers)."""
    for path in sorted(script.parent.glob("*.py")):
        if path.is_file() and not path.is_symlink():
            shutil.copyfile(path, run_dir / path.name)
    shutil.copyfile(script, run_dir / script.name)


def _environment(options: DynamicOptions, knobs: dict[str, str],
                 ours: dict[str, str]) -> tuple[dict[str, str], frozenset[str]]:
    """The run's environment, and which names in it are the caller's (a sandbox keeps few of those)."""
    threads = str(max(1, options.threads // max(1, options.nproc)))
    return compose_env(caller_environment(lambda k: k.startswith(SCRUBBED)), knobs, ours, {
        "PYTHONPATH": str(SHIM_DIR), "OMP_NUM_THREADS": threads, "SEED": str(options.seed),
        "PYTHONUNBUFFERED": "1", "PGOLF_PY312": python312() or ""})


def _argv(options: DynamicOptions, script: Path) -> list[str]:
    entry = [str(LAUNCHER), str(script)] if LAUNCHER.exists() else [str(script)]
    return launcher(entry, options.nproc, options.python)


def python312() -> str | None:
    """A 3.12+ interpreter for sources that need its grammar (pyenv keeps one on these machines)."""
    for name in ("python3.13", "python3.12"):
        found = shutil.which(name)
        if found:
            return found
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = sorted(glob.glob(str(root / "versions" / "3.1[23]*" / "bin" / "python3.1[23]")))
    return found[-1] if found else None


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
        raise InputError(shards, f"no fineweb_train_*.bin shards for the dynamic run "
                                 f"(make one: pgolf data synth --vocab-size {vocab}, or pass --data)")
    if tokenizer is None or not Path(tokenizer).is_file():
        raise InputError(tokenizer or data, "no tokenizer for the training shards (pass --tokenizer)")
    pieces = canary_mod.piece_count(Path(tokenizer))
    if pieces != vocab:
        raise InputError(tokenizer, f"has {pieces} pieces but the script expects vocab {vocab} "
                                    f"(give data cut with a {vocab}-piece tokenizer)")
    first = shard_paths(shards, "train")[0]
    try:
        read_header(first)  # a broken shard is bad input, not a failed run
    except ValueError as exc:
        raise InputError(None, str(exc)) from None
    return shards, Path(tokenizer)
