"""What a dynamic check sees: the traced run, and judgements computed once and shared."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .evidence import printed_decimals
from .harness import DynamicRun
from .ledger import Order, Tolerance, judge_order

LIMITS = ("CPU run of a tiny preset: it judges the order of events and the leak evidence, "
          "not the score (SDPA for FlashAttention, eager for compiled code, reference kernels)")


@dataclass
class DynamicContext:
    run: DynamicRun | None
    error: str | None = None          # why no run happened (bad data, no script)
    file: str | None = None           # the script's name, for findings
    _orders: dict = field(default_factory=dict)

    @property
    def reported(self):
        """The final metric line of the traced run, as the log parser reads it."""
        score = self.run.facts.score if self.run else None
        return score if score is not None and score.val_loss is not None and math.isfinite(score.val_loss) else None

    def order(self, params: dict) -> Order | None:
        if self.reported is None or not self.run.ledger.traced:
            return None
        tolerance = Tolerance(params.get("abs_tolerance", 1e-3), params.get("rel_tolerance", 5e-4),
                              params.get("lowp_abs_tolerance", 0.1))
        if tolerance not in self._orders:
            self._orders[tolerance] = judge_order(self.run.ledger, self.reported.val_loss, tolerance)
        return self._orders[tolerance]

    def scored_positions(self, order: Order | None) -> np.ndarray:
        """Targets the reported score covers: the traced pass, else what the log's count implies."""
        if order is not None and order.judged is not None:
            return order.judged.positions
        n = len(self.run.canary.tokens) - 1
        count = self.run.facts.val_tokens
        return np.arange(1, 1 + min(n, count if count else n))

    def scored_once(self, order: Order | None) -> tuple[np.ndarray, float, int | None]:
        """Targets each once, the nats they were scored with, and the printed decimals those rest on.
        Where a traced pass reproduces the report, its own losses (a sliding window that counts the
        stream's last targets 31 more times must not count their luck 31 more times); else N x val_loss."""
        if order is not None and order.matched is not None:
            entries = order.matched.entries
            return self.run.ledger.pos[entries], float(self.run.ledger.loss[entries].sum()), None
        positions = self.scored_positions(order)
        return positions, len(positions) * self.reported.val_loss, printed_decimals(
            order.report_line if order else None)

    def counted_positions(self, order: Order | None) -> np.ndarray:
        """Targets as the script's own sums count them (repeats included), for the byte recount."""
        if order is not None and order.matched is not None:
            return self.run.ledger.pos[order.matched.weighted]
        return self.scored_positions(order)

    def eval_window(self, order: Order | None) -> tuple[float, float] | None:
        """The scored evaluation: from the last artifact write before the reporting pass (else the
        last training step, else its first counted score) to the line that reports it. Reads before
        the artifact is written (a GPTQ calibration on training data) belong to training."""
        if order is None or order.judged is None:
            return None
        ledger = self.run.ledger
        first = float(ledger.t[order.judged.entries].min())
        writes = [e["t"] for e in ledger.of_kind("write") if e["t"] < first]
        steps = [e["t"] for e in ledger.of_kind("step") if e["t"] < first and not e.get("canary")]
        start = writes[-1] if writes else steps[-1] if steps else first
        return float(start), order.judged.end_t
