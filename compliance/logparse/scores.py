"""Validation lines and the score: which pass a line is (final, diagnostic, pre-quantization,
post-EMA, in training), and which final pass is the run's score."""

from __future__ import annotations

import re

from .facts import MetricLine, impossible
from .grammar import EVAL_TIME, NAMED_BPB, VAL_BPB, VAL_LOSS, to_ms
from .state import ParserState


def _same_numbers(a: MetricLine, b: MetricLine) -> bool:
    known = a.val_bpb is not None and a.val_loss is not None
    return known and (a.val_loss, a.val_bpb) == (b.val_loss, b.val_bpb)


def _same_pass(rounded: MetricLine, exact: MetricLine) -> bool:
    """The rounded line's val_bpb is the exact one's to the digits it prints (4 in practice)."""
    if rounded.val_bpb is None or exact.val_bpb is None:
        return False
    return abs(rounded.val_bpb - exact.val_bpb) <= 5.1e-5


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


def _left_open(line: int) -> str:
    return f"an evaluation pass starts at line {line} and the log ends before its result"


class ScoreLines(ParserState):
    def _on_metric(self, n: int, line: str, in_training: bool, label: str = "") -> None:
        loss, bpb = VAL_LOSS.search(line), VAL_BPB.search(line)
        if loss is None and bpb is None:  # `ppm_native_submission_val_bpb: 0.99`: a figure of its own name
            self._on_named_bpb(n, line)
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

    def _on_named_bpb(self, n: int, line: str) -> None:
        """`ppm_mix bytes=10982035 mix_bpb=1.000307 mix_bpb_sidecar=0.99`: each bpb the line names, as a
        pass of its own ("ppm_mix mix_bpb"); a line that is one figure (`ppm_native_submission_val_bpb: 0.99`)
        is labelled by it alone. No val_loss, role "named". Never the log's score."""
        words = line.split()
        first = words[0].strip("[]:") if words else ""
        for match in NAMED_BPB.finditer(line):
            value = float(match.group(2))
            if impossible("val_bpb", value) is None:
                label = f"{first} {match.group(1)}" if match.start() > 0 else match.group(1)
                self.run.named_bpb.append(MetricLine(label, None, value, None, n, "named"))

    def _describe_pass(self, metric: MetricLine, line: str, found: list[re.Match[str]]) -> None:
        """Label, role and eval time of a line that is not an in-training validation."""
        start = min(m.start() for m in found)
        metric.label = _short_label(line[:start])
        metric.role = _role(metric.label, any(m.group(1) == "=" for m in found))
        timing = EVAL_TIME.search(line, start)
        if timing:
            metric.eval_time_ms = to_ms(timing.group(1), timing.group(2))
        self._inherit_eval_time(metric)

    def _inherit_eval_time(self, metric: MetricLine) -> None:
        """An `_exact` line repeats the pass printed just before it: its time, and its val_loss where
        the exact line prints val_bpb alone (the canary needs the loss)."""
        if "_exact" not in metric.label or not self.metrics:
            return
        prev = self.metrics[-1]
        if "_exact" in prev.label or prev.pass_name != metric.pass_name:
            return
        if metric.eval_time_ms is None and prev.eval_time_ms is not None:
            if impossible("eval_time_ms", prev.eval_time_ms) is None:
                metric.eval_time_ms = prev.eval_time_ms
        if metric.val_loss is None and prev.val_loss is not None and _same_pass(prev, metric):
            metric.val_loss = prev.val_loss

    def _on_evalstart(self, n: int, line: str) -> None:
        if self.run.pending_eval is None:
            self.run.pending_eval = n

    def _on_evaltime(self, n: int, line: str) -> None:
        m = EVAL_TIME.match(line)
        last = self.metrics[-1] if self.metrics else None
        if m and last is not None and last.line == n - 1 and last.eval_time_ms is None:
            last.eval_time_ms = to_ms(m.group(1), m.group(2))

    def _check_metric(self, metric: MetricLine) -> None:
        problems = [
            f"{name} {value:g} is {why}"
            for name in ("val_loss", "val_bpb", "eval_time_ms")
            if (value := getattr(metric, name)) is not None and (why := impossible(name, value))
        ]
        if not problems:
            return
        if metric.role == "final":  # a pass that is not the score may print nan without harm
            self.invalid.append((metric.line, f"{metric.label or 'final line'}: {'; '.join(problems)}"))
            metric.role = "invalid"
        metric.val_loss = metric.val_bpb = metric.eval_time_ms = None

    def _final_passes(self) -> list[MetricLine]:
        """Each final pass of the run once: a rounded line followed by its `_exact` twin counts as the twin."""
        finals = [m for m in self.metrics[self.run.first_metric :] if m.role == "final" and m.val_bpb is not None]
        kept: list[MetricLine] = []
        for metric in finals:
            prev = kept[-1] if kept else None
            if (
                prev is not None
                and "_exact" in metric.label
                and "_exact" not in prev.label
                and prev.pass_name == metric.pass_name
            ):
                kept[-1] = metric
            else:
                kept.append(metric)
        return kept

    def _pick_score(self) -> MetricLine | None:
        finals = [m for m in self.metrics[self.run.first_metric :] if m.role in ("final", "invalid")]
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
            if "_exact" in prev.label and prev.pass_name == best.pass_name:
                best = prev
        if best.role == "invalid":  # never fall back on an earlier pass: that is not the run's score
            self.notes.append((best.line, "the last final scoring pass has impossible numbers: no score"))
            return None
        pending = self.run.pending_eval
        if pending is not None and pending > best.line:
            self.cut_short = _left_open(pending)
            msg = (
                f"an evaluation pass starts here and the log ends before its result; "
                f"line {best.line} is an earlier pass, not the score"
            )
            self.notes.append((pending, msg))
            return None
        if best.val_bpb is None:
            self.notes.append((best.line, "the final metric line has no val_bpb"))
        return best

    def _no_final_reason(self) -> str:
        values = self.run.values
        last, planned = values.get("last_step"), values.get("planned_steps")
        if (
            not values.get("stopped_early")
            and isinstance(last, int)
            and isinstance(planned, int)
            and 0 < planned
            and last < planned
        ):
            self.cut_short = f"training stops at step {last} of {planned}"
            return f"no final metric line: training stops at step {last} of {planned} (truncated or run failed)"
        if self.run.pending_eval is not None:
            self.cut_short = _left_open(self.run.pending_eval)
        return "no final metric line: the log ends before the final evaluation (truncated or run failed)"
