"""The parser's state and its bookkeeping: runs, facts with their lines, conflicting values."""

from __future__ import annotations

from dataclasses import dataclass, field

from .facts import MetricLine
from .grammar import CONFLICT_CHECKED
from .lines import clean_line


@dataclass
class _Run:
    """Facts of one run; a file holding several runs keeps only the last one."""

    first_metric: int  # index in the metrics list where this run's lines begin
    values: dict[str, object] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, tuple[int, float, int]] = field(default_factory=dict)  # (priority, n, line)
    gpus: dict[int, str] = field(default_factory=dict)
    gpu_line: int | None = None
    hyperparams: dict[str, str] = field(default_factory=dict)
    last_step_line: tuple[int, str] | None = None  # read once at the end: steps are most lines
    last_time_line: tuple[int, str] | None = None
    training_started: bool = False
    has_final: bool = False
    output_seen: bool = False
    pending_eval: int | None = None  # line of an eval pass that started after the last final
    named_bpb: list[MetricLine] = field(default_factory=list)


class ParserState:
    """What the parser knows while it reads: the lines, the run so far, the layouts seen."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.raw = text.split("\n")
        self.metrics: list[MetricLine] = []
        self.notes: list[tuple[int | None, str]] = []
        self.layout: set[str] = set()
        self.run = _Run(first_metric=0)
        self.n_runs = 1
        self.mode: str | None = None  # "hparams" | "kv" | "source" | "source_next"
        self.source_start = 0  # index of the first source line
        self.source_explicit = False  # opened by a "Source code:" header
        self.no_source_before = 0  # lines below this index were rejected as source
        self.continuing_stage = False
        self.invalid: list[tuple[int | None, str]] = []
        self.cut_short: str | None = None  # set when the log shows its run ended before the score

    def _clean(self, line: str) -> str | None:
        return clean_line(line, self.layout)

    def _dispatch(self, i: int, line: str) -> None:
        raise NotImplementedError  # the parser's: one line of run output

    def _maybe_new_run(self, i: int) -> None:
        if self.continuing_stage:
            return
        if not (self.run.training_started or len(self.metrics) > self.run.first_metric):
            return
        self.n_runs += 1
        self.run = _Run(first_metric=len(self.metrics))
        self.notes.append((i + 1, f"run {self.n_runs} starts here; facts describe the last run"))

    def _set(self, name: str, value: object, line_no: int) -> None:
        old = self.run.values.get(name)
        if name in CONFLICT_CHECKED and old is not None and old != value:
            msg = f"{name} read as {old} at line {self.run.lines[name]} and {value} here; keeping {value}"
            self.notes.append((line_no, msg))
        self.run.values[name] = value
        self.run.lines[name] = line_no
        self.run.output_seen = True

    def _size(self, name: str, priority: int, n: float, line_no: int) -> None:
        old = self.run.sizes.get(name)
        if old is None or priority >= old[0]:
            self.run.sizes[name] = (priority, n, line_no)
        self.run.output_seen = True

    def _hparam(self, key: str, value: str, line_no: int) -> None:
        old = self.run.hyperparams.get(key)
        if old is not None and self.continuing_stage:
            return  # a later stage's dump repeats the run's configuration with its own paths
        if old is not None and old != value:
            where = self.run.lines[f"hyperparams.{key}"]
            msg = f"hyperparameter {key}={old} at line {where} is {value} here; keeping {value}"
            self.notes.append((line_no, msg))
        self.run.hyperparams[key] = value
        self.run.lines[f"hyperparams.{key}"] = line_no
