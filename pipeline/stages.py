"""Turn (submission, seed, profile, data) into the stage specs the runtime runs.

Contract scripts get one process per stage of the contract's table
(compliance/stage_contract.py) with the PGOLF_* paths its entry names; the
isolated eval stage's environment names only the artifact, tokenizer and
validation data and it runs in a directory holding nothing else. Scripts that
predate the contract (every official record) run once, as the stage `run`,
under a hard outer limit of both caps together.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from pgolf.compliance import unpack

from ..compliance.sandbox import StageSpec, caller_environment, compose_env
from ..compliance.sandbox.launch import launcher
from ..compliance.stage_contract import BUDGET_VAR, CONTRACT_MARKER, LEGACY_STAGE, Stage
from .profiles import Profile

# variables a stage must not inherit from the caller: they could point it at data it may not see
SCRUBBED_PREFIXES = ("PGOLF_",)
SCRUBBED_NAMES = {"DATA_PATH", "DATA_DIR", "TOKENIZER_PATH"}


@dataclass(frozen=True)
class DataPaths:
    train: Path  # directory of fineweb_train_*.bin
    val: Path  # directory of fineweb_val_*.bin
    tokenizer: Path  # SentencePiece .model


@dataclass(frozen=True)
class SeedPaths:
    root: Path

    @property
    def log(self) -> Path:
        return self.root / "stages.log"

    @property
    def checkpoint(self) -> Path:
        return self.root / "train" / "checkpoint.pt"

    @property
    def artifact(self) -> Path:
        return self.root / "artifact" / "model.bin"

    @property
    def result(self) -> Path:
        return self.root / "eval" / "result.json"


def speaks_contract(script: Path) -> bool:
    source = script.read_text(encoding="utf-8", errors="replace")
    try:
        source = unpack.decode_script(source).text
    except unpack.UnpackError:
        pass
    return CONTRACT_MARKER in source


def _scrubbed(name: str) -> bool:
    return name.startswith(SCRUBBED_PREFIXES) or name in SCRUBBED_NAMES


def stage_env(profile: Profile, seed: int, overrides: dict[str, str]) -> tuple[dict[str, str], frozenset[str]]:
    """The caller's environment under the profile's knobs, the --set overrides and the seed, and
    which names still come from the caller (a sandbox keeps only its allowlist of those)."""
    return compose_env(
        caller_environment(_scrubbed), profile.env, overrides, {"SEED": str(seed), "PYTHONUNBUFFERED": "1"}
    )


def base_env(profile: Profile, seed: int, overrides: dict[str, str]) -> dict[str, str]:
    return stage_env(profile, seed, overrides)[0]


def contract_spec(
    stage: Stage,
    script: Path,
    seed: int,
    profile: Profile,
    data: DataPaths,
    paths: SeedPaths,
    overrides: dict[str, str],
) -> StageSpec:
    """The process for one stage of the contract: the variables its table entry names, and nothing else."""
    where = {
        "PGOLF_TRAIN_DATA": data.train,
        "PGOLF_VAL_DATA": data.val,
        "PGOLF_TOKENIZER": data.tokenizer,
        "PGOLF_CHECKPOINT": paths.checkpoint,
        "PGOLF_ARTIFACT": paths.artifact,
        "PGOLF_RESULT": paths.result,
    }
    code, cwd = script, paths.root
    if stage.isolated:
        cwd = paths.root / stage.name
        code, isolated = _isolate(cwd, script, data)
        where.update(isolated)
    env, inherited = stage_env(profile, seed, overrides)
    env = {**env, CONTRACT_MARKER: stage.name, **{name: str(where[name]) for name in (*stage.reads, stage.writes)}}
    if stage.cap == "train":
        env[BUDGET_VAR] = str(max(1.0, profile.train_cap_s - profile.quantize_reserve_s))
    output = where[stage.writes]
    return StageSpec(
        stage.name,
        launcher([str(code)], profile.nproc),
        env,
        cwd=cwd,
        cap_s=profile.train_cap_s if stage.cap == "train" else profile.eval_cap_s,
        log_path=paths.log,
        grace_s=profile.grace_s,
        network=not stage.isolated,
        read_only=(code, *(where[name] for name in stage.reads)),
        writable=(cwd,) if stage.isolated else (output.parent,),
        caller_env=inherited,
    )


def _isolate(folder: Path, script: Path, data: DataPaths) -> tuple[Path, dict[str, Path]]:
    """A folder holding a copy of the code and tokenizer and links to the validation shards, one by
    one, so a script that looks around its inputs finds no training data there."""
    val_dir = folder / "val"
    val_dir.mkdir(parents=True, exist_ok=True)
    for shard in sorted(data.val.glob("fineweb_val_*.bin")):
        link = val_dir / shard.name
        if not link.exists():
            link.symlink_to(shard.resolve())
    code, tokenizer = folder / script.name, folder / data.tokenizer.name
    shutil.copy2(script, code)
    shutil.copy2(data.tokenizer, tokenizer)
    return code, {"PGOLF_TOKENIZER": tokenizer, "PGOLF_VAL_DATA": val_dir}


def legacy_spec(
    script: Path, seed: int, profile: Profile, data: DataPaths, paths: SeedPaths, overrides: dict[str, str]
) -> StageSpec:
    """A script without the stage contract: its own layout of data paths, checked from its log."""
    env, inherited = stage_env(profile, seed, overrides)
    env.update({"DATA_PATH": str(data.train), "TOKENIZER_PATH": str(data.tokenizer)})
    work = paths.root / "run"
    work.mkdir(parents=True, exist_ok=True)
    return StageSpec(
        LEGACY_STAGE,
        launcher([str(script)], profile.nproc),
        env,
        cwd=work,
        cap_s=profile.train_cap_s + profile.eval_cap_s,
        log_path=paths.log,
        grace_s=profile.grace_s,
        read_only=(script, data.train, data.val, data.tokenizer),
        writable=(work,),
        caller_env=inherited,
    )
