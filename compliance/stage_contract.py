"""pgolf's stage contract: the one definition the pipeline and the checker share.

A script that reads CONTRACT_MARKER (PGOLF_STAGE) is run once per stage of STAGES, in order,
each stage a process of its own given only the variables its entry names. pgolf writes
a stage line into the seed's log before each stage and an end line after it; the log parser
reads the stage lines to know that a later stage's output continues the same run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONTRACT_MARKER = "PGOLF_STAGE"
BUDGET_VAR = "PGOLF_TRAIN_BUDGET_S"  # seconds a stage under the train cap may plan its work around
ARTIFACT_VAR = "PGOLF_ARTIFACT"  # the compressed model: what is counted against the byte cap
LEGACY_STAGE = "run"  # a script without the contract: one process for everything


@dataclass(frozen=True)
class Stage:
    name: str
    cap: str  # "train" or "eval": the profile cap it runs under; stages sharing one share its clock
    reads: tuple[str, ...]  # variables naming the inputs it may read (and a container mounts read-only)
    writes: str  # the variable naming what it must write
    isolated: bool = False  # runs in a folder of its own holding only its inputs, without network

    @property
    def env_names(self) -> tuple[str, ...]:
        budget = (BUDGET_VAR,) if self.cap == "train" else ()
        return (CONTRACT_MARKER, *self.reads, self.writes, *budget)


STAGES: tuple[Stage, ...] = (
    Stage("train", "train", reads=("PGOLF_TRAIN_DATA", "PGOLF_VAL_DATA", "PGOLF_TOKENIZER"), writes="PGOLF_CHECKPOINT"),
    Stage("quantize", "train", reads=("PGOLF_TRAIN_DATA", "PGOLF_TOKENIZER", "PGOLF_CHECKPOINT"), writes=ARTIFACT_VAR),
    Stage(
        "eval", "eval", reads=(ARTIFACT_VAR, "PGOLF_TOKENIZER", "PGOLF_VAL_DATA"), writes="PGOLF_RESULT", isolated=True
    ),
)
STAGE_NAMES = tuple(s.name for s in STAGES)
# a later stage's output continues the run the first stage started (its configuration dump repeats)
CONTINUING_STAGES = frozenset(STAGE_NAMES[1:])

STAGE_PREFIX = "pgolf: stage "
STAGE_LINE = re.compile(r"pgolf: stage (?P<stage>\w+) seed (?P<seed>\d+) ")


def stage_line(stage: str, seed: int, cap_s: float, runtime: str) -> str:
    return f"{STAGE_PREFIX}{stage} seed {seed} cap {cap_s:.1f}s runtime {runtime}\n"


def end_line(stage: str, status: str, wall_s: float) -> str:
    return f"{STAGE_PREFIX}{stage} {status} wall {wall_s:.2f}s\n"


def stage_of(line: str) -> str | None:
    """The stage a stage line starts; None for any other line (end lines included)."""
    m = STAGE_LINE.match(line)
    return m.group("stage") if m else None
