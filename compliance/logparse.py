"""Read one Parameter Golf train log into LogFacts: the score, times, sizes and run facts.

Layouts seen in the official record folders, and the short names `LogFacts.layout` joins
with "+" (e.g. "source+hparams", "timestamped+torchrun+hparams"):
- "source": the script logs its own text first (a module docstring or imports), then a line
  of 40+ "=" or "-". Newer scripts print the hyperparameter dump before the text, some with a
  "Source code:" header. Shared copies replace the text by a placeholder comment
  `# [embedded source removed: N lines, sha256/16=...]`.
- "hparams": `Hyperparameters:` then `  key: value` lines; "kv_hparams":
  `--- Hyperparameters ---` then `key=value key=value ...` lines.
- "stdout": neither dump; `key:value` config lines before training, `step:N/M ...` lines.
- "timestamped": every line starts with a Unix time (`1776142360.538 `).
- "torchrun": torchrun banner or `[rankN]:` prefixes (only rank 0 lines are read).
A file that holds several runs one after another is read as its last run.

The score is the last final scoring pass of that run, its `_exact` twin preferred; never a
DIAGNOSTIC, pre-quantization, post-EMA or in-training validation line (RULES.md §2, §5).
(Which final line a record's claim rests on is decided per record, in compliance.scoring.)

Numbers no physical run can produce (NaN, infinities, negative times, sizes or scores, and
magnitudes beyond `PHYSICAL_LIMITS`) are never passed on as facts: the fact is left unknown
and `LogFacts.invalid` names the line, so the audit fails it with file:line.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field

from . import stage_contract as contract

__all__ = ["MetricLine", "LogFacts", "parse_log", "parse_log_bytes"]


@dataclass
class MetricLine:
    label: str  # e.g. "final_int8_zlib_roundtrip_exact", "legal_ttt_exact"
    val_loss: float | None
    val_bpb: float | None
    eval_time_ms: float | None  # from the same line, or the eval_time line that belongs to it
    line: int  # 1-based
    role: str  # "final" | "diagnostic" | "pre_quant" | "post_ema" | "in_training" | "invalid"


@dataclass
class LogFacts:
    layout: str  # short name of the detected layout, "unknown" if none
    n_lines: int
    seed: int | None = None
    world_size: int | None = None
    torch_version: str | None = None
    gpu_names: list[str] = field(default_factory=list)
    train_shards: int | None = None
    val_tokens: int | None = None
    train_time_ms: float | None = None  # stopping_early line, else the last step's train_time
    stopped_early: bool = False
    last_step: int | None = None
    planned_steps: int | None = None
    gptq_reserve_ms: float | None = None  # "gptq:reserving 8.0s, effective=592000ms"
    gptq_hessian_s: float | None = None  # "GPTQ:collected 67 Hessians in 3.5s"
    total_eval_time_ms: float | None = None  # "total_eval_time:508.8s"
    metrics: list[MetricLine] = field(default_factory=list)
    finals: list[MetricLine] = field(default_factory=list)  # this run's final passes, `_exact` twins preferred
    score: MetricLine | None = None
    bytes_code: int | None = None
    code_compressed: bool = False  # the log counts its code compressed ("Code size (compressed): N bytes")
    bytes_model: int | None = None
    bytes_total: int | None = None
    embedded_source: str | None = None  # the script text exactly as `print(code)` logged it
    embedded_source_sha256: str | None = None
    hyperparams: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # "hyperparams.<key>" for each key too
    notes: list[tuple[int | None, str]] = field(default_factory=list)
    invalid: list[tuple[int | None, str]] = field(default_factory=list)  # impossible numbers, by line


# What no physical run can print, whatever the rules: (lowest, highest, lowest excluded).
# Generous on purpose (a month of training, a terabyte, 64 bits per byte); the caps the
# rules set are judged by the checks, not here.
_MONTH_MS = 30 * 24 * 3600 * 1000.0
PHYSICAL_LIMITS: dict[str, tuple[float, float, bool]] = {
    "val_bpb": (0.0, 64.0, True),
    "val_loss": (0.0, 512.0, True),
    "eval_time_ms": (0.0, _MONTH_MS, False),
    "train_time_ms": (0.0, _MONTH_MS, False),
    "total_eval_time_ms": (0.0, _MONTH_MS, False),
    "gptq_reserve_ms": (0.0, _MONTH_MS, False),
    "gptq_hessian_s": (0.0, _MONTH_MS / 1000, False),
    "bytes_total": (0.0, 1e12, True),
    "bytes_model": (0.0, 1e12, False),
    "bytes_code": (0.0, 1e12, False),
    "last_step": (0.0, 1e10, False),
    "planned_steps": (0.0, 1e10, False),
    "world_size": (0.0, 1e6, True),
    "train_shards": (0.0, 1e7, False),
    "val_tokens": (0.0, 1e12, True),
}


def impossible(name: str, value: float) -> str | None:
    """Why `value` cannot be a real run's `name`, or None when it can."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "infinite"
    low, high, low_excluded = PHYSICAL_LIMITS.get(name, (-math.inf, math.inf, False))
    if value < low or (low_excluded and value == low):
        return "negative" if value < 0 else "zero"
    if value > high:
        return f"beyond any physical run (> {high:g})"
    return None


_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:[nN]a[nN]|[iI]nf(?:inity)?)"
_UNIT_MS = {"ms": 1.0, "s": 1000.0, "m": 60000.0}

_TIMESTAMP = re.compile(r"\d{9,11}\.\d{1,6} ")
_RANK = re.compile(r"\[(?:rank|default)(\d+)\]:\s?")
_TORCHRUN_BANNER = re.compile(r"W\d{4} \d\d:\d\d:\d\d\.\d+ \d+ \S*torch/distributed/run\.py")

# One anchored alternation picks the handler of a line, so most lines cost one C-level match.
_DISPATCH = re.compile(
    r"(?P<step>step:\s*\d+/\d+|\d+/\d+\s)"
    r"|(?P<stop>stopping_early:)"
    r"|(?P<size>Serialized model|Code size|Total submission size|budget:\d|artifact:)"
    r"|(?P<gptq>gptq:|GPTQ:)"
    r"|(?P<torch>(?:Running )?PyTorch \d|torch(?:_version|\.__version__)\s*[:=])"
    r"|(?P<runstart>Running Python|Python \d+\.\d+\.\d+ \||val_bpb:enabled|logs/\S+\.txt\s*$)"
    r"|(?P<smi>\||GPU \d+: )"
    r"|(?P<world>world_size\s*[:=])"
    r"|(?P<seed>seed\s*[:=]\s*\d+\s*$)"
    r"|(?P<shards>train_shards:|train_loader:)"
    r"|(?P<valtok>val_tokens:|val_loader:)"
    r"|(?P<hparams>Hyperparameters:\s*$|-+\s*Hyperparameters\s*-+\s*$)"
    r"|(?P<srchdr>Source code:\s*$)"
    r"|(?P<evalstart>\s*(?:ttt_sliding:start|ttt:start|ttt_phased:|beginning TTT eval"
    r"|final_eval_mode:|ngram_tilt:precompute|sliding_eval \[))"
    r"|(?P<evaltime>eval_time\s*[:=])"
    r"|(?P<totaleval>total_eval_time\s*[:=])"
    r"|(?P<banner>Setting OMP_NUM_THREADS|\*{20,}\s*$)"
    r"|(?P<pgolf>" + re.escape(contract.STAGE_PREFIX) + r")"
)

_STEP = re.compile(r"(?:step:\s*)?(\d+)/(\d+)")
_TRAIN_TIME = re.compile(r"(?<![\w])(?:train_time|t)\s*[:=]\s*(" + _NUM + r")\s*(ms|s|m)\b")
_STOP = re.compile(
    r"stopping_early:.*?train_time:\s*(" + _NUM + r")\s*(ms|s|m)\b(?:.*?step:\s*(\d+)/(\d+))?"
)
_VAL_LOSS = re.compile(r"(?<![\w])val_loss\s*([:=])\s*(" + _NUM + r")(?![\w.])")
_VAL_BPB = re.compile(r"(?<![\w])val_bpb\s*([:=])\s*(" + _NUM + r")(?![\w.])")
_EVAL_TIME = re.compile(r"(?<![\w.])(?:eval_)?time\s*[:=]\s*(" + _NUM + r")\s*(ms|s|m)\b")

_SIZE_MODEL = re.compile(r"Serialized model(?: (?P<fmt>[^:]+?))?:\s*(?P<n>" + _NUM + r") bytes")
_SIZE_CODE = re.compile(r"Code size(?: \((?P<kind>[^)]*)\))?:\s*(?P<n>" + _NUM + r") bytes")
_SIZE_TOTAL = re.compile(r"Total submission size(?: (?P<fmt>[^:]+?))?:\s*(?P<n>" + _NUM + r") bytes")
_BUDGET = re.compile(r"budget:(" + _NUM + r")/\d+")
_ARTIFACT_CODE = re.compile(r"artifact:.*?(?<![\w])code:(" + _NUM + r")")
_TOTAL_EVAL = re.compile(r"total_eval_time\s*[:=]\s*(" + _NUM + r")\s*(ms|s|m)\b")

_GPTQ_RESERVE = re.compile(r"gptq:reserving\s+(" + _NUM + r")\s*(ms|s|m)\b", re.I)
_GPTQ_HESSIAN = re.compile(
    r"gptq:(?:collected\b.*?\bhessians|calibrated)\b.*?\bin\s+(" + _NUM + r")\s*s\b", re.I
)
_TORCH = re.compile(r"(?:Running )?PyTorch (\S+)|torch(?:_version|\.__version__)\s*[:=]\s*(\S+)")
_SMI_ROW = re.compile(r"\|\s+(\d+)\s+(\S.*?)\s{2,}(?:On|Off)\s+\|")
_SMI_LIST = re.compile(r"GPU (\d+): (.+?)(?: \(UUID:.*)?$")
_INT_AFTER_COLON = re.compile(r"[:=]\s*(\d+)")
_SHARDS = re.compile(r"(?<![\w])train_shards:\s*(\d+)")
_VAL_TOKENS = re.compile(r"(?:^val_tokens|(?<![\w])tokens):\s*(\d+)")
_COMPACT_WS = re.compile(r"(?<![\w])ws:(\d+)\b")
_COMPACT_SEED = re.compile(r"(?<![\w])s:(\d+)\b")

_HPARAM = re.compile(r"\s{2,}([A-Za-z_][\w.\-]*):(?:\s(.*))?$")
_KV_LINE = re.compile(r"[A-Za-z_][\w.]*=\S*(?:\s+[A-Za-z_][\w.]*=\S*)*\s*$")
_CONFIG_LINE = re.compile(r"[A-Za-z_][\w.]*:\S+(?:\s+[A-Za-z_][\w.]*:\S+)*\s*$")
_PLACEHOLDER = re.compile(r"# \[embedded source removed: (\d+) lines, sha256/16=([0-9a-f]+)\]")
# Any Python start may open the first run's source; after a finished run only an unmistakable
# one does, so a stray comment after the score cannot discard a complete run.
_PY_START = re.compile(r"(?:\"\"\"|'''|[\"'#]|import\s|from\s+[\w.]+\s+import\b|def\s|class\s|@\w)")
_PY_START_STRONG = re.compile(r"(?:\"\"\"|'''|import\s|from\s+[\w.]+\s+import\b|# \[embedded)")
# A column-0 line that only run output starts with: the source block cannot go on past it.
_SOURCE_BREAK = re.compile(
    r"(?:Running (?:Python|PyTorch) \d|step:\d+/\d+ |\d+/\d+ |stopping_early: |Hyperparameters:\s*$"
    r"|val_bpb:enabled |final_\w+ val_loss:\s?\d|(?:Serialized model|Code size|Total submission size)[^:]*: \d"
    r"|(?:train_shards|val_tokens|world_size|model_params):\s?\d)"
)
_COUNTER = re.compile(r":\s*\d+/\d+\b")  # `warmup_step:3/20` is progress, not configuration
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\ufffd]")

_SEPARATOR_MIN = 40
_BINARY_SAMPLE = 65536
_BINARY_BAD_RATIO = 0.10
_CONFLICT_CHECKED = ("seed", "world_size", "torch_version", "train_shards", "val_tokens")


def _to_ms(value: str, unit: str | None) -> float:
    return float(value) * _UNIT_MS.get(unit or "ms", 1.0)


def _is_separator(line: str) -> bool:
    s = line.strip()
    return len(s) >= _SEPARATOR_MIN and s[0] in "=-" and s == s[0] * len(s)


def _base_label(label: str) -> str:
    return label.replace("_exact", "")


def _same_numbers(a: MetricLine, b: MetricLine) -> bool:
    known = a.val_bpb is not None and a.val_loss is not None
    return known and (a.val_loss, a.val_bpb) == (b.val_loss, b.val_bpb)


def _short_label(prefix: str) -> str:
    """First token, then the words after it that are not `key:value` settings."""
    tokens = prefix.split()
    if not tokens:
        return ""
    kept = [tokens[0]] + [t for t in tokens[1:] if ":" not in t and "=" not in t]
    return " ".join(kept)


def _role(label: str, equals_style: bool) -> str:
    low = label.lower()
    if not low:
        return "in_training"
    if "pre-quant" in low or "pre_quant" in low or "prequant" in low:
        return "pre_quant"
    if "post_ema" in low or "post-ema" in low:
        return "post_ema"
    # `name:done val_loss=...` lines are progress prints inside a pass, not its reported score.
    if "diagnostic" in low or equals_style:
        return "diagnostic"
    return "final"


def _count_lines(text: str) -> int:
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def _looks_binary(sample: str) -> bool:
    if not sample:
        return False
    return len(_BAD_CHARS.findall(sample)) / len(sample) > _BINARY_BAD_RATIO


def _unknown_input(value: object, wanted: str) -> LogFacts:
    return LogFacts(layout="unknown", n_lines=0, notes=[(None, f"input is {type(value).__name__}, not {wanted}")])


def _binary_facts(n_lines: int) -> LogFacts:
    note = (None, "input looks binary (NUL or undecodable bytes), not a text train log")
    return LogFacts(layout="binary", n_lines=n_lines, notes=[note])


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


class _Parser:
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
        self.handlers = {name: getattr(self, "_on_" + name) for name in _DISPATCH.groupindex}
        self.continuing_stage = False
        self.invalid: list[tuple[int | None, str]] = []

    # ---- driver -------------------------------------------------------------------------
    def run_all(self) -> LogFacts:
        i: int | None = 0
        while i is not None:
            while i < len(self.raw):
                line = self._clean(self.raw[i])
                rewind = self._feed(i, line) if line is not None else None
                i = rewind if rewind is not None else i + 1
            i = self._source_at_eof() if self.mode == "source" else None
        return self._facts()

    def _clean(self, line: str) -> str | None:
        """The line without CR, progress-bar overwrites, time stamp and rank prefix."""
        if "\r" in line:
            parts = [p for p in line.split("\r") if p]
            line = parts[-1] if parts else ""
        if line[:1].isdigit():
            m = _TIMESTAMP.match(line)
            if m:
                self.layout.add("timestamped")
                line = line[m.end():]
        if line[:1] == "[":
            m = _RANK.match(line)
            if m:
                self.layout.add("torchrun")
                if m.group(1) != "0":
                    return None
                line = line[m.end():]
        elif line[:1] == "W" and _TORCHRUN_BANNER.match(line):
            self.layout.add("torchrun")
            return None
        return line

    def _feed(self, i: int, line: str) -> int | None:
        """Read one line; returns an index to go back to when a source guess was wrong."""
        if self.mode == "source":
            return self._source_line(i, line)
        if self.mode == "source_next":
            if not _is_separator(line):
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

    # ---- embedded source ----------------------------------------------------------------
    def _source_starts(self, i: int, line: str) -> bool:
        if i < self.no_source_before or not line or line[0] in " \t":
            return False
        if not self.run.output_seen:
            return bool(_PY_START.match(line))
        return self.run.has_final and bool(_PY_START_STRONG.match(line))

    def _begin_source(self, i: int, explicit: bool = False) -> None:
        self.mode = "source"
        self.source_start = i
        self.source_explicit = explicit

    def _source_line(self, i: int, line: str) -> int | None:
        if _is_separator(line):
            self._end_source(i, closed=True)
        elif _SOURCE_BREAK.match(line):
            if not self._source_is_certain(i):
                return self._reject_source(i)
            self._end_source(i, closed=False)
            self._dispatch(i, line)
        return None

    def _source_at_eof(self) -> int | None:
        end = len(self.raw)
        if not self._source_is_certain(end):
            return self._reject_source(end)
        self._end_source(end, closed=False)
        return None

    def _source_is_certain(self, end: int) -> bool:
        """An unclosed block still counts as source when it is declared or unmistakable."""
        first = self._clean(self.raw[self.source_start]) or ""
        strong = bool(_PY_START_STRONG.match(first))
        return self.source_explicit or strong or self._block_has_placeholder(end)

    def _reject_source(self, end: int) -> int:
        """Not a source block after all: read its lines again as run output."""
        self.mode = None
        self.no_source_before = end
        return self.source_start

    def _block_has_placeholder(self, end: int) -> bool:
        block = range(self.source_start, min(end, len(self.raw)))
        return any(_PLACEHOLDER.search(self.raw[k]) for k in block)

    def _end_source(self, end: int, closed: bool) -> None:
        self.mode = None
        self._maybe_new_run(self.source_start)
        start_line = self.source_start + 1
        self.layout.add("source")
        self.run.lines["embedded_source"] = start_line
        body = [self._clean(self.raw[k]) or "" for k in range(self.source_start, end)]
        removed = next((m for m in map(_PLACEHOLDER.search, body) if m), None)
        if not closed:
            self.notes.append((start_line, "embedded source is not closed by a separator line"))
        if removed:
            lines, digest = removed.groups()
            msg = f"embedded source removed from this copy ({lines} lines, sha256/16={digest})"
            self.notes.append((start_line, msg))
            return
        # `print(code)` adds one newline, so the joined block is the script file byte for byte.
        source = "\n".join(body)
        self.run.values["embedded_source"] = source
        digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
        self.run.values["embedded_source_sha256"] = digest

    # ---- hyperparameter dumps -----------------------------------------------------------
    def _hparam_line(self, i: int, line: str) -> bool:
        m = _HPARAM.match(line)
        if not m:
            return False
        self._hparam(m.group(1), (m.group(2) or "").strip(), i + 1)
        return True

    def _kv_line(self, i: int, line: str) -> bool:
        if not _KV_LINE.match(line):
            return False
        for token in line.split():
            key, _, value = token.partition("=")
            self._hparam(key, value, i + 1)
        return True

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

    # ---- run bookkeeping ----------------------------------------------------------------
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
        if name in _CONFLICT_CHECKED and old is not None and old != value:
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

    # ---- line handlers ------------------------------------------------------------------
    def _dispatch(self, i: int, line: str) -> None:
        m = _DISPATCH.match(line)
        if m:
            self.handlers[m.lastgroup](i + 1, line)
            return
        if "val_loss" in line or "val_bpb" in line:
            self._on_metric(i + 1, line, in_training=False)
        elif " ws:" in line and "params:" in line:
            self._on_compact(i + 1, line)
            return  # a model summary, not configuration
        if not self.run.training_started and line[:1].isalpha() and _CONFIG_LINE.match(line):
            self._on_config(i + 1, line)

    def _on_step(self, n: int, line: str) -> None:
        run = self.run
        run.training_started = run.output_seen = True
        run.last_step_line = (n, line)
        if "time" in line or " t:" in line:
            run.last_time_line = (n, line)
        if "val_loss" in line or "val_bpb" in line:
            self._on_metric(n, line, in_training=True, label=_STEP.match(line).group(0))

    def _on_stop(self, n: int, line: str) -> None:
        m = _STOP.match(line)
        self._set("stopped_early", True, n)
        if not m:
            self.notes.append((n, "stopping_early line without a readable train_time"))
            return
        self._set("train_time_ms", _to_ms(m.group(1), m.group(2)), n)
        if m.group(3):
            self._set("last_step", int(m.group(3)), n)
            self._set("planned_steps", int(m.group(4)), n)

    def _on_size(self, n: int, line: str) -> None:
        if m := _SIZE_MODEL.match(line):
            self._size("bytes_model", 2 if m.group("fmt") else 1, float(m.group("n")), n)
        elif m := _SIZE_CODE.match(line):
            kind = (m.group("kind") or "").lower()
            priority = 1 if not kind else (0 if "uncompressed" in kind else 2)
            self._size("bytes_code", priority, float(m.group("n")), n)
            if priority == 2 and "compress" in kind:
                self.run.values["code_compressed"] = True
        elif m := _SIZE_TOTAL.match(line):
            self._size("bytes_total", 2 if m.group("fmt") else 1, float(m.group("n")), n)
        elif m := _BUDGET.match(line):
            self._size("bytes_total", 2, float(m.group(1)), n)
        elif m := _ARTIFACT_CODE.match(line):
            self._size("bytes_code", 1, float(m.group(1)), n)

    def _on_gptq(self, n: int, line: str) -> None:
        if m := _GPTQ_RESERVE.match(line):
            self._set("gptq_reserve_ms", _to_ms(m.group(1), m.group(2)), n)
        elif m := _GPTQ_HESSIAN.match(line):
            self._set("gptq_hessian_s", float(m.group(1)), n)

    def _on_torch(self, n: int, line: str) -> None:
        m = _TORCH.match(line)
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
        m = _SMI_ROW.match(line) or _SMI_LIST.match(line)
        if m:
            self.run.gpus[int(m.group(1))] = m.group(2).strip()
            self.run.gpu_line = self.run.gpu_line or n
            self.run.output_seen = True

    def _on_world(self, n: int, line: str) -> None:
        m = _INT_AFTER_COLON.search(line)
        if m:
            self._set("world_size", int(m.group(1)), n)
        self._maybe_config(n, line)

    def _on_seed(self, n: int, line: str) -> None:
        self._set("seed", int(_INT_AFTER_COLON.search(line).group(1)), n)
        self._maybe_config(n, line)

    def _on_shards(self, n: int, line: str) -> None:
        m = _SHARDS.search(line)
        if m:
            self._set("train_shards", int(m.group(1)), n)
        self._maybe_config(n, line)

    def _on_valtok(self, n: int, line: str) -> None:
        m = _VAL_TOKENS.search(line)
        if m:
            self._set("val_tokens", int(m.group(1)), n)

    def _on_compact(self, n: int, line: str) -> None:
        """Ternary/XNOR scripts: `params:N L:10 ... ws:8 ga:1 s:1337`."""
        if m := _COMPACT_WS.search(line):
            self._set("world_size", int(m.group(1)), n)
        if m := _COMPACT_SEED.search(line):
            self._set("seed", int(m.group(1)), n)

    def _on_pgolf(self, n: int, line: str) -> None:
        # pgolf runs a contract script once per stage into one log: a later stage continues the run
        stage = contract.stage_of(line)
        if stage is not None:
            self.layout.add("pgolf_stages")
            self.continuing_stage = stage in contract.CONTINUING_STAGES

    def _on_banner(self, n: int, line: str) -> None:
        self.layout.add("torchrun")

    def _on_hparams(self, n: int, line: str) -> None:
        self._maybe_new_run(n - 1)
        kv = line.startswith("-")
        self.mode = "kv" if kv else "hparams"
        self.layout.add("kv_hparams" if kv else "hparams")
        self.run.lines["hyperparams"] = n

    def _on_srchdr(self, n: int, line: str) -> None:
        self.mode = "source_next"

    def _on_evalstart(self, n: int, line: str) -> None:
        if self.run.pending_eval is None:
            self.run.pending_eval = n

    def _on_totaleval(self, n: int, line: str) -> None:
        m = _TOTAL_EVAL.match(line)
        if m:
            self._set("total_eval_time_ms", _to_ms(m.group(1), m.group(2)), n)

    def _on_evaltime(self, n: int, line: str) -> None:
        m = _EVAL_TIME.match(line)
        last = self.metrics[-1] if self.metrics else None
        if m and last is not None and last.line == n - 1 and last.eval_time_ms is None:
            last.eval_time_ms = _to_ms(m.group(1), m.group(2))

    def _maybe_config(self, n: int, line: str) -> None:
        if not self.run.training_started and _CONFIG_LINE.match(line):
            self._on_config(n, line)

    def _on_config(self, n: int, line: str) -> None:
        if _COUNTER.search(line):
            return
        for token in line.split():
            key, _, value = token.partition(":")
            self._hparam(key, value, n)
        self.run.output_seen = True

    def _on_metric(self, n: int, line: str, in_training: bool, label: str = "") -> None:
        loss, bpb = _VAL_LOSS.search(line), _VAL_BPB.search(line)
        if loss is None and bpb is None:
            return
        metric = MetricLine(
            label=label,
            val_loss=float(loss.group(2)) if loss else None,
            val_bpb=float(bpb.group(2)) if bpb else None,
            eval_time_ms=None,
            line=n,
            role="in_training",
        )
        if not in_training:
            self._describe_pass(metric, line, [m for m in (loss, bpb) if m])
        self.metrics.append(metric)
        self.run.output_seen = True
        if metric.role == "final":
            self.run.has_final = True
            self.run.pending_eval = None

    def _describe_pass(self, metric: MetricLine, line: str, found: list[re.Match[str]]) -> None:
        """Label, role and eval time of a line that is not an in-training validation."""
        start = min(m.start() for m in found)
        metric.label = _short_label(line[:start])
        metric.role = _role(metric.label, any(m.group(1) == "=" for m in found))
        timing = _EVAL_TIME.search(line, start)
        if timing:
            metric.eval_time_ms = _to_ms(timing.group(1), timing.group(2))
        self._inherit_eval_time(metric)

    def _inherit_eval_time(self, metric: MetricLine) -> None:
        """An `_exact` line repeats the pass printed just before it, with its time."""
        if metric.eval_time_ms is not None or "_exact" not in metric.label or not self.metrics:
            return
        prev = self.metrics[-1]
        valid = prev.eval_time_ms is not None and impossible("eval_time_ms", prev.eval_time_ms) is None
        if valid and "_exact" not in prev.label and _base_label(prev.label) == _base_label(metric.label):
            metric.eval_time_ms = prev.eval_time_ms

    # ---- result -------------------------------------------------------------------------
    def _facts(self) -> LogFacts:
        run = self.run
        self._finish_steps()
        self._fill_from_hyperparams()
        self._finish_sizes()
        self._drop_impossible()
        facts = LogFacts(layout=self._layout_name(), n_lines=_count_lines(self.text))
        for name, value in run.values.items():
            setattr(facts, name, value)
        facts.gpu_names = [run.gpus[k] for k in sorted(run.gpus)]
        if run.gpu_line is not None:
            run.lines["gpu_names"] = run.gpu_line
        facts.metrics = self.metrics
        facts.finals = self._final_passes()
        facts.score = self._pick_score()
        if facts.score is not None:
            run.lines["score"] = facts.score.line
        facts.hyperparams = run.hyperparams
        facts.lines = run.lines
        facts.notes = self.notes
        facts.invalid = sorted(self.invalid, key=lambda item: (item[0] or 0, item[1]))
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
        for metric in self.metrics[self.run.first_metric:]:
            if metric.role in ("final", "diagnostic", "pre_quant", "post_ema"):
                self._check_metric(metric)

    def _check_metric(self, metric: MetricLine) -> None:
        problems = [f"{name} {value:g} is {why}" for name in ("val_loss", "val_bpb", "eval_time_ms")
                    if (value := getattr(metric, name)) is not None and (why := impossible(name, value))]
        if not problems:
            return
        if metric.role == "final":  # a pass that is not the score may print nan without harm
            self.invalid.append((metric.line, f"{metric.label or 'final line'}: {'; '.join(problems)}"))
            metric.role = "invalid"
        metric.val_loss = metric.val_bpb = metric.eval_time_ms = None

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

    def _fill_from_hyperparams(self) -> None:
        for name, key in (("seed", "seed"), ("world_size", "world_size"), ("planned_steps", "iterations")):
            raw = self.run.hyperparams.get(key, "")
            if not raw.isdigit():
                continue
            old, where = self.run.values.get(name), self.run.lines[f"hyperparams.{key}"]
            if old is None:
                self.run.values[name], self.run.lines[name] = int(raw), where
            elif old != int(raw):
                msg = f"hyperparameter {key}={raw} but {name} reads {old} at line {self.run.lines[name]}"
                self.notes.append((where, msg))

    def _finish_steps(self) -> None:
        """Step and time of the last step lines, where no stopping_early line gave them."""
        run = self.run
        if run.last_step_line is not None and run.values.get("last_step") is None:
            n, line = run.last_step_line
            m = _STEP.match(line)
            run.values["last_step"], run.values["planned_steps"] = int(m.group(1)), int(m.group(2))
            run.lines["last_step"] = run.lines["planned_steps"] = n
        if run.last_time_line is not None and run.values.get("train_time_ms") is None:
            n, line = run.last_time_line
            t = _TRAIN_TIME.search(line)
            if t:
                run.values["train_time_ms"] = _to_ms(t.group(1), t.group(2))
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

    def _final_passes(self) -> list[MetricLine]:
        """Each final pass of the run once: a rounded line followed by its `_exact` twin counts as the twin."""
        finals = [m for m in self.metrics[self.run.first_metric:] if m.role == "final" and m.val_bpb is not None]
        kept: list[MetricLine] = []
        for metric in finals:
            prev = kept[-1] if kept else None
            if (prev is not None and "_exact" in metric.label and "_exact" not in prev.label
                    and _base_label(prev.label) == _base_label(metric.label)):
                kept[-1] = metric
            else:
                kept.append(metric)
        return kept

    def _pick_score(self) -> MetricLine | None:
        finals = [m for m in self.metrics[self.run.first_metric:] if m.role in ("final", "invalid")]
        if not finals:
            self.notes.append((None, self._no_final_reason()))
            return None
        idx = len(finals) - 1
        # A line restating the previous pass's numbers under another label is no new pass.
        while idx > 0 and _same_numbers(finals[idx], finals[idx - 1]):
            idx -= 1
        best = finals[idx]
        if "_exact" not in best.label and idx > 0:
            prev = finals[idx - 1]
            if "_exact" in prev.label and _base_label(prev.label) == _base_label(best.label):
                best = prev
        if best.role == "invalid":  # never fall back on an earlier pass: that is not the run's score
            self.notes.append((best.line, "the last final scoring pass has impossible numbers: no score"))
            return None
        pending = self.run.pending_eval
        if pending is not None and pending > best.line:
            msg = (f"an evaluation pass starts here and the log ends before its result; "
                   f"line {best.line} is an earlier pass, not the score")
            self.notes.append((pending, msg))
            return None
        if best.val_bpb is None:
            self.notes.append((best.line, "the final metric line has no val_bpb"))
        return best

    def _no_final_reason(self) -> str:
        values = self.run.values
        last, planned = values.get("last_step"), values.get("planned_steps")
        if not values.get("stopped_early") and last is not None and planned and last < planned:
            return f"no final metric line: training stops at step {last} of {planned} (truncated or run failed)"
        return "no final metric line: the log ends before the final evaluation (truncated or run failed)"


def parse_log(text: str) -> LogFacts:
    """Facts of one train log; never raises: unreadable input gives unknown values and notes."""
    if not isinstance(text, str):
        return _unknown_input(text, "text")
    if _looks_binary(text[:_BINARY_SAMPLE]):
        return _binary_facts(_count_lines(text))
    try:
        return _Parser(text.lstrip("\ufeff")).run_all()
    except Exception as exc:  # last guard: a parser bug must not stop a whole folder check
        note = (None, f"parser error ({type(exc).__name__}: {exc}); facts left unknown")
        return LogFacts(layout="unknown", n_lines=_count_lines(text), notes=[note])


def parse_log_bytes(data: bytes) -> LogFacts:
    """Decode UTF-8 with replacement; binary or NUL-heavy input gives layout "binary"."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return _unknown_input(data, "bytes")
    data = bytes(data)
    text = data.decode("utf-8", errors="replace")
    if _looks_binary(text[:_BINARY_SAMPLE]):
        return _binary_facts(_count_lines(text))
    return parse_log(text)
