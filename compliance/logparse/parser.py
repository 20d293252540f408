"""One pass over a log: each line goes to its layout's reader; the facts of the last run come out."""

from __future__ import annotations

import re

from .. import stage_contract as contract
from .facts import PHYSICAL_LIMITS, LogFacts, impossible
from .grammar import (
    ARTIFACT_CODE,
    BINARY_SAMPLE,
    BUDGET,
    COMPACT_SEED,
    COMPACT_WS,
    CONFIG_LINE,
    DISPATCH,
    GPTQ_HESSIAN,
    GPTQ_RESERVE,
    INT_AFTER_COLON,
    SHARDS,
    SIZE_CODE,
    SIZE_MODEL,
    SIZE_TOTAL,
    SMI_LIST,
    SMI_ROW,
    STEP,
    STOP,
    TORCH,
    TOTAL_EVAL,
    TRAIN_TIME,
    VAL_TOKENS,
    is_separator,
    to_ms,
)
from .hparams import HyperparamDumps
from .lines import count_lines, looks_binary
from .scores import ScoreLines
from .source import SourceBlocks


class _Parser(SourceBlocks, HyperparamDumps, ScoreLines):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.handlers = {name: getattr(self, "_on_" + name) for name in DISPATCH.groupindex}

    def run_all(self) -> LogFacts:
        i: int | None = 0
        while i is not None:
            while i < len(self.raw):
                line = self._clean(self.raw[i])
                rewind = self._feed(i, line) if line is not None else None
                i = rewind if rewind is not None else i + 1
            i = self._source_at_eof() if self.mode == "source" else None
        return self._facts()

    def _feed(self, i: int, line: str) -> int | None:
        """Read one line; returns an index to go back to when a source guess was wrong."""
        if self.mode == "source":
            return self._source_line(i, line)
        if self.mode == "source_next":
            if not is_separator(line):
                self._begin_source(i, explicit=True)
                return self._source_line(i, line)
            return None
        if self.mode == "hparams" and self._hparam_line(i, line):
            return None
        if self.mode == "kv" and self._kv_line(i, line):
            return None
        self.mode = None
        if self._source_starts(i, line):
            self._begin_source(i)
            return self._source_line(i, line)
        self._dispatch(i, line)
        return None

    def _dispatch(self, i: int, line: str) -> None:
        m = DISPATCH.match(line)
        if m and m.lastgroup:
            self.handlers[m.lastgroup](i + 1, line)
            return
        if "val_loss" in line or "val_bpb" in line:
            self._on_metric(i + 1, line, in_training=False)
        elif "bpb" in line:
            self._on_named_bpb(i + 1, line)
        elif " ws:" in line and "params:" in line:
            self._on_compact(i + 1, line)
            return  # a model summary, not configuration
        if not self.run.training_started and line[:1].isalpha() and CONFIG_LINE.match(line):
            self._on_config(i + 1, line)

    def _on_step(self, n: int, line: str) -> None:
        run = self.run
        run.training_started = run.output_seen = True
        run.last_step_line = (n, line)
        if "time" in line or " t:" in line:
            run.last_time_line = (n, line)
        step = STEP.match(line)
        if step and ("val_loss" in line or "val_bpb" in line):
            self._on_metric(n, line, in_training=True, label=step.group(0))

    def _on_stop(self, n: int, line: str) -> None:
        m = STOP.match(line)
        self._set("stopped_early", True, n)
        if not m:
            self.notes.append((n, "stopping_early line without a readable train_time"))
            return
        self._set("train_time_ms", to_ms(m.group(1), m.group(2)), n)
        if m.group(3):
            self._set("last_step", int(m.group(3)), n)
            self._set("planned_steps", int(m.group(4)), n)

    def _on_size(self, n: int, line: str) -> None:
        if m := SIZE_MODEL.match(line):
            self._size("bytes_model", 2 if m.group("fmt") else 1, float(m.group("n")), n)
        elif m := SIZE_CODE.match(line):
            kind = (m.group("kind") or "").lower()
            priority = 1 if not kind else (0 if "uncompressed" in kind else 2)
            self._size("bytes_code", priority, float(m.group("n")), n)
            if priority == 2 and "compress" in kind:
                self.run.values["code_compressed"] = True
        elif m := SIZE_TOTAL.match(line):
            self._size("bytes_total", 2 if m.group("fmt") else 1, float(m.group("n")), n)
        elif m := BUDGET.match(line):
            self._size("bytes_total", 2, float(m.group(1)), n)
        elif m := ARTIFACT_CODE.match(line):
            self._size("bytes_code", 1, float(m.group(1)), n)

    def _on_gptq(self, n: int, line: str) -> None:
        if m := GPTQ_RESERVE.match(line):
            self._set("gptq_reserve_ms", to_ms(m.group(1), m.group(2)), n)
        elif m := GPTQ_HESSIAN.match(line):
            self._set("gptq_hessian_s", float(m.group(1)), n)

    def _on_torch(self, n: int, line: str) -> None:
        m = TORCH.match(line)
        if m:
            self._on_runstart(n, line)
            self._set("torch_version", m.group(1) or m.group(2), n)

    def _on_runstart(self, n: int, line: str) -> None:
        self._maybe_new_run(n - 1)
        self.run.output_seen = True

    def _on_smi(self, n: int, line: str) -> None:
        if line.startswith("| NVIDIA-SMI"):
            self.run.gpus, self.run.gpu_line = {}, None
            return
        m = SMI_ROW.match(line) or SMI_LIST.match(line)
        if m:
            self.run.gpus[int(m.group(1))] = m.group(2).strip()
            self.run.gpu_line = self.run.gpu_line or n
            self.run.output_seen = True

    def _int_fact(self, name: str, pattern: re.Pattern[str], n: int, line: str) -> None:
        m = pattern.search(line)
        if m:
            self._set(name, int(m.group(1)), n)

    def _on_world(self, n: int, line: str) -> None:
        self._int_fact("world_size", INT_AFTER_COLON, n, line)
        self._maybe_config(n, line)

    def _on_seed(self, n: int, line: str) -> None:
        self._int_fact("seed", INT_AFTER_COLON, n, line)
        self._maybe_config(n, line)

    def _on_shards(self, n: int, line: str) -> None:
        self._int_fact("train_shards", SHARDS, n, line)
        self._maybe_config(n, line)

    def _on_valtok(self, n: int, line: str) -> None:
        self._int_fact("val_tokens", VAL_TOKENS, n, line)

    def _on_compact(self, n: int, line: str) -> None:
        """Ternary/XNOR scripts: `params:N L:10 ... ws:8 ga:1 s:1337`."""
        if m := COMPACT_WS.search(line):
            self._set("world_size", int(m.group(1)), n)
        if m := COMPACT_SEED.search(line):
            self._set("seed", int(m.group(1)), n)

    def _on_pgolf(self, n: int, line: str) -> None:
        # pgolf runs a contract script once per stage into one log: a later stage continues the run
        stage = contract.stage_of(line)
        if stage is not None:
            self.layout.add("pgolf_stages")
            self.continuing_stage = stage in contract.CONTINUING_STAGES

    def _on_banner(self, n: int, line: str) -> None:
        self.layout.add("torchrun")

    def _on_srchdr(self, n: int, line: str) -> None:
        self.mode = "source_next"

    def _on_totaleval(self, n: int, line: str) -> None:
        m = TOTAL_EVAL.match(line)
        if m:
            self._set("total_eval_time_ms", to_ms(m.group(1), m.group(2)), n)

    def _facts(self) -> LogFacts:
        run = self.run
        self._finish_steps()
        self._fill_from_hyperparams()
        self._finish_sizes()
        self._drop_impossible()
        facts = LogFacts(layout=self._layout_name(), n_lines=count_lines(self.text))
        for name, value in run.values.items():
            setattr(facts, name, value)
        facts.gpu_names = [run.gpus[k] for k in sorted(run.gpus)]
        if run.gpu_line is not None:
            run.lines["gpu_names"] = run.gpu_line
        facts.metrics = self.metrics
        facts.finals = self._final_passes()
        facts.named_bpb = run.named_bpb
        facts.score = self._pick_score()
        if facts.score is not None:
            run.lines["score"] = facts.score.line
        facts.hyperparams = run.hyperparams
        facts.lines = run.lines
        facts.notes = self.notes
        facts.invalid = sorted(self.invalid, key=lambda item: (item[0] or 0, item[1]))
        facts.cut_short = self.cut_short
        return facts

    def _drop_impossible(self) -> None:
        """Impossible run facts become unknown; impossible scoring lines can never be the score."""
        for name in list(self.run.values):
            value = self.run.values[name]
            if name not in PHYSICAL_LIMITS or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            why = impossible(name, float(value))
            if why:
                self.invalid.append((self.run.lines.get(name), f"{name} {value:g} is {why}"))
                del self.run.values[name]
        for metric in self.metrics[self.run.first_metric :]:
            if metric.role in ("final", "diagnostic", "pre_quant", "post_ema"):
                self._check_metric(metric)

    def _layout_name(self) -> str:
        order = ("timestamped", "torchrun", "source", "hparams", "kv_hparams")
        parts = [p for p in order if p in self.layout]
        recognised = self.run.output_seen or self.metrics or self.n_runs > 1
        if recognised and not {"hparams", "kv_hparams"} & self.layout:
            parts.append("stdout")
        if not recognised and "source" not in self.layout and not self.run.hyperparams:
            self.notes.append((None, "no recognisable train-log lines"))
            return "unknown"
        return "+".join(parts) or "unknown"

    def _finish_steps(self) -> None:
        """Step and time of the last step lines, where no stopping_early line gave them."""
        run = self.run
        if run.last_step_line is not None and run.values.get("last_step") is None:
            n, line = run.last_step_line
            m = STEP.match(line)
            if m:
                run.values["last_step"], run.values["planned_steps"] = int(m.group(1)), int(m.group(2))
                run.lines["last_step"] = run.lines["planned_steps"] = n
        if run.last_time_line is not None and run.values.get("train_time_ms") is None:
            n, line = run.last_time_line
            t = TRAIN_TIME.search(line)
            if t:
                run.values["train_time_ms"] = to_ms(t.group(1), t.group(2))
                run.lines["train_time_ms"] = n

    def _finish_sizes(self) -> None:
        found: dict[str, tuple[float, int]] = {}
        for name, (_, n, line) in self.run.sizes.items():
            why = impossible(name, n) or (None if n == int(n) else "not a whole number of bytes")
            if why:
                self.invalid.append((line, f"{name} {n:g} is {why}"))
            else:
                found[name] = (int(n), line)
        code, model, total = (found.get(k) for k in ("bytes_code", "bytes_model", "bytes_total"))
        if code and model and total and code[0] + model[0] != total[0]:
            self.notes.append((total[1], f"code {code[0]} + model {model[0]} bytes != total {total[0]} bytes"))
        elif code and model and not total:
            found["bytes_total"] = (code[0] + model[0], model[1])
            self.notes.append((model[1], "bytes_total derived as code + model"))
        elif total and code and not model and total[0] >= code[0]:
            found["bytes_model"] = (total[0] - code[0], total[1])
            self.notes.append((total[1], "bytes_model derived as total - code"))
        for name, (n, line) in found.items():
            self.run.values[name] = n
            self.run.lines[name] = line


def _unknown_input(value: object, wanted: str) -> LogFacts:
    return LogFacts(layout="unknown", n_lines=0, notes=[(None, f"input is {type(value).__name__}, not {wanted}")])


def _binary_facts(n_lines: int) -> LogFacts:
    note = (None, "input looks binary (NUL or undecodable bytes), not a text train log")
    return LogFacts(layout="binary", n_lines=n_lines, notes=[note])


def parse_log(text: str) -> LogFacts:
    """Facts of one train log; never raises: unreadable input gives unknown values and notes."""
    if not isinstance(text, str):
        return _unknown_input(text, "text")
    if looks_binary(text[:BINARY_SAMPLE]):
        return _binary_facts(count_lines(text))
    try:
        return _Parser(text.lstrip("\ufeff")).run_all()
    except Exception as exc:  # last guard: a parser bug must not stop a whole folder check
        note = (None, f"parser error ({type(exc).__name__}: {exc}); facts left unknown")
        return LogFacts(layout="unknown", n_lines=count_lines(text), notes=[note])


def parse_log_bytes(data: bytes) -> LogFacts:
    """Decode UTF-8 with replacement; binary or NUL-heavy input gives layout "binary"."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return _unknown_input(data, "bytes")
    data = bytes(data)
    text = data.decode("utf-8", errors="replace")
    if looks_binary(text[:BINARY_SAMPLE]):
        return _binary_facts(count_lines(text))
    return parse_log(text)
