"""What a train log says: the facts of its last run, and the numbers no run can print."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def pass_name(label: str) -> str:
    """The evaluation pass a metric line reports: a rounded line and its `_exact` twin share it."""
    return label.replace("_exact", "")


@dataclass
class MetricLine:
    label: str  # e.g. "final_int8_zlib_roundtrip_exact", "legal_ttt_exact"
    val_loss: float | None
    val_bpb: float | None
    eval_time_ms: float | None  # from the same line, or the eval_time line that belongs to it
    line: int  # 1-based
    role: str  # "final" | "diagnostic" | "pre_quant" | "post_ema" | "in_training" | "invalid"

    @property
    def pass_name(self) -> str:
        return pass_name(self.label)


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
    # this run's other bits-per-byte figures (`ppm_mix ... mix_bpb=1.0003`), labelled "<first word> <key>":
    # a record may claim one of them rather than its val_bpb
    named_bpb: list[MetricLine] = field(default_factory=list)
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
    # How the log itself shows its run ended before the score (a pass it starts and never ends,
    # training short of its planned steps); None where it cannot tell that from a layout it misread.
    cut_short: str | None = None


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
