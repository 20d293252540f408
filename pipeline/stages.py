"""Turn (submission, seed, profile, data) into the stage specs the runtime runs.

Contract scripts get one process per stage with PGOLF_* paths; the eval
stage's environment names only the artifact, tokenizer and validation data
and runs in a directory holding nothing else. Scripts that predate the
contract (every official record) run once, as the stage `run`, under a hard
outer limit of both caps together.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from pgolf.compliance import unpack

from .profiles import Profile
from ..compliance.sandbox import StageSpec, caller_environment, compose_env
from ..compliance.sandbox.launch import CONTRACT_MARKER, launcher

# variables a stage must not inherit from the caller: they could point it at data it may not see
SCRUBBED_PREFIXES = ("PGOLF_",)
SCRUBBED_NAMES = {"DATA_PATH", "DATA_DIR", "TOKENIZER_PATH"}


@dataclass(frozen=True)
class DataPaths:
    train: Path      # directory of fineweb_train_*.bin
    val: Path        # directory of fineweb_val_*.bin
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

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"


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
    return compose_env(caller_environment(_scrubbed), profile.env, overrides,
                       {"SEED": str(seed), "PYTHONUNBUFFERED": "1"})


def base_env(profile: Profile, seed: int, overrides: dict[str, str]) -> dict[str, str]:
    return stage_env(profile, seed, overrides)[0]


def contract_specs(script: Path, seed: int, profile: Profile, data: DataPaths, paths: SeedPaths,
                   overrides: dict[str, str]) -> list[StageSpec]:
    """train and quantize; eval is built after them because its cap and inputs depend on them."""
    env, inherited = stage_env(profile, seed, overrides)
    train_env = {**env, "PGOLF_STAGE": "train", "PGOLF_TRAIN_DATA": str(data.train),
                 "PGOLF_VAL_DATA": str(data.val), "PGOLF_TOKENIZER": str(data.tokenizer),
                 "PGOLF_CHECKPOINT": str(paths.checkpoint),
                 "PGOLF_TRAIN_BUDGET_S": str(max(1.0, profile.train_cap_s - profile.quantize_reserve_s))}
    quant_env = {**train_env, "PGOLF_STAGE": "quantize", "PGOLF_ARTIFACT": str(paths.artifact)}
    argv = launcher([str(script)], profile.nproc)
    common = dict(cwd=paths.root, log_path=paths.log, grace_s=profile.grace_s, caller_env=inherited)
    return [
        StageSpec("train", argv, train_env, cap_s=profile.train_cap_s, writable=(paths.checkpoint.parent,),
                  read_only=(script, data.train, data.val, data.tokenizer), **common),
        StageSpec("quantize", argv, quant_env, cap_s=profile.train_cap_s, writable=(paths.artifact.parent,),
                  read_only=(script, data.train, data.tokenizer, paths.checkpoint), **common),
    ]


def eval_spec(script: Path, seed: int, profile: Profile, data: DataPaths, paths: SeedPaths,
              overrides: dict[str, str]) -> StageSpec:
    """The eval stage sees a copy of the code, the artifact, the tokenizer and the validation shards.

    They are gathered in a directory of their own (validation shards linked one by one), so a
    script that looks around its inputs finds no training data there.
    """
    sandbox = paths.eval_dir
    val_dir = sandbox / "val"
    val_dir.mkdir(parents=True, exist_ok=True)
    for shard in sorted(data.val.glob("fineweb_val_*.bin")):
        link = val_dir / shard.name
        if not link.exists():
            link.symlink_to(shard.resolve())
    code, tokenizer = sandbox / script.name, sandbox / data.tokenizer.name
    shutil.copy2(script, code)
    shutil.copy2(data.tokenizer, tokenizer)
    env, inherited = stage_env(profile, seed, overrides)
    env = {**env, "PGOLF_STAGE": "eval", "PGOLF_ARTIFACT": str(paths.artifact),
           "PGOLF_TOKENIZER": str(tokenizer), "PGOLF_VAL_DATA": str(val_dir),
           "PGOLF_RESULT": str(paths.result)}
    return StageSpec("eval", launcher([str(code)], profile.nproc), env, cwd=sandbox, cap_s=profile.eval_cap_s,
                     log_path=paths.log, grace_s=profile.grace_s, network=False,
                     read_only=(code, paths.artifact, tokenizer, val_dir), writable=(sandbox,), caller_env=inherited)


def legacy_spec(script: Path, seed: int, profile: Profile, data: DataPaths, paths: SeedPaths,
                overrides: dict[str, str]) -> StageSpec:
    """A script without the stage contract: its own layout of data paths, checked from its log."""
    env, inherited = stage_env(profile, seed, overrides)
    env.update({"DATA_PATH": str(data.train), "TOKENIZER_PATH": str(data.tokenizer)})
    work = paths.root / "run"
    work.mkdir(parents=True, exist_ok=True)
    return StageSpec("run", launcher([str(script)], profile.nproc), env, cwd=work,
                     cap_s=profile.train_cap_s + profile.eval_cap_s, log_path=paths.log, grace_s=profile.grace_s,
                     read_only=(script, data.train, data.val, data.tokenizer), writable=(work,), caller_env=inherited)
