"""What a dynamic check sees: the traced run, and judgements computed once and shared."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast

import numpy as np

from ..logparse.facts import MetricLine
from .evidence import CanaryEvidence, canary_evidence, printed_decimals, true_bytes
from .harness import DynamicRun
from .ledger import Order, Tolerance, judge_order

LIMITS = (
    "CPU run of a tiny preset: it judges the order of events and the leak evidence, "
    "not the score (SDPA for FlashAttention, eager for compiled code, reference kernels)"
)


@dataclass
class DynamicContext:
    run: DynamicRun | None
    error: str | None = None  # why no run happened (bad data, no script)
    file: str | None = None  # the script's name, for findings
    _orders: dict[Tolerance, Order] = field(default_factory=dict)

    @property
    def reported(self) -> MetricLine | None:
        """The final metric line of the traced run, as the log parser reads it."""
        score = self.run.facts.score if self.run else None
        return score if score is not None and score.val_loss is not None and math.isfinite(score.val_loss) else None

    def order(self, params: Mapping[str, Any]) -> Order | None:
        # a reported score implies a run: `self.run is None` only narrows the type
        if self.reported is None or self.run is None or not self.run.ledger.traced:
            return None
        tolerance = Tolerance(
            params.get("abs_tolerance", 1e-3), params.get("rel_tolerance", 5e-4), params.get("lowp_abs_tolerance", 0.1)
        )
        if tolerance not in self._orders:
            # reported: its val_loss is finite
            self._orders[tolerance] = judge_order(self.run.ledger, cast(float, self.reported.val_loss), tolerance)
        return self._orders[tolerance]

    def scored_positions(self, order: Order | None) -> np.ndarray:
        """Targets the reported score covers: the traced pass, else what the log's count implies."""
        if order is not None and order.judged is not None:
            return order.judged.positions
        assert self.run is not None  # the checks ask only of a run
        n = len(self.run.canary.tokens) - 1
        count = self.run.facts.val_tokens
        return np.arange(1, 1 + min(n, count if count else n))

    def scored(self, order: Order | None) -> tuple[np.ndarray, float, int | None]:
        """Targets as the reported score may count them, the nats they were scored with, and the printed
        decimals those rest on. Where a traced pass reproduces the report: its counted scores, each
        target once (a sliding window that counts the stream's last targets again must not count their
        luck again). Else every score the script could have counted (the judged window's scores, repeats
        included, so the threshold grows with R), at N_eff x val_loss; untraced, the log's count, with
        as many repeats as that count allows."""
        assert self.run is not None  # the checks ask only of a run
        if order is not None and order.matched is not None:
            entries = order.matched.entries
            return self.run.ledger.pos[entries], float(self.run.ledger.loss[entries].sum()), None
        positions = self._countable(order)
        assert self.reported is not None  # canary() asks only of a reported score, its val_loss finite
        return (
            positions,
            len(positions) * cast(float, self.reported.val_loss),
            printed_decimals(order.report_line if order else None),
        )

    def _countable(self, order: Order | None) -> np.ndarray:
        assert self.run is not None  # the checks ask only of a run
        ledger = self.run.ledger
        if order is not None and order.judged is not None:
            judged = order.judged
            inside = (ledger.t > judged.start_t) & (ledger.t < judged.end_t)
            if judged.mode == "scores":
                inside &= ~np.isfinite(ledger.update_t)
            return ledger.pos[inside] if inside.any() else ledger.pos[judged.weighted]
        n = self.run.scored_tokens
        count = self.run.facts.val_tokens or n
        once = np.arange(1, 1 + min(n, count))
        return once if count <= n else np.concatenate([once, np.full(count - n, n)])  # worst case: one target

    def counted_positions(self, order: Order | None) -> np.ndarray:
        """Targets as the script's own sums count them (repeats included): the pass that reproduces
        the report, else the pass judged, else what the log's count implies."""
        chosen = order.matched or order.judged if order is not None else None
        if chosen is not None:
            assert self.run is not None  # the checks ask only of a run
            return self.run.ledger.pos[chosen.weighted]
        return self.scored_positions(order)

    def eval_window(self, order: Order | None) -> tuple[float, float] | None:
        """The scored evaluation: from the last artifact write before the reporting pass (else the
        last training step, else its first counted score) to the line that reports it. Reads before
        the artifact is written (a GPTQ calibration on training data) belong to training."""
        if order is None or order.judged is None:
            return None
        assert self.run is not None  # the checks ask only of a run
        ledger = self.run.ledger
        first = float(ledger.t[order.judged.entries].min())
        writes = [e["t"] for e in ledger.of_kind("write") if e["t"] < first]
        steps = [e["t"] for e in ledger.of_kind("step") if e["t"] < first and not e.get("canary")]
        start = writes[-1] if writes else steps[-1] if steps else first
        return float(start), order.judged.end_t

    # ---------------------------------------------------------------- judgements shared with audit

    def canary(self, params: Mapping[str, Any]) -> CanaryEvidence | None:
        """The canary evidence of the reported score (R-DYN-CANARY's judgement), None without one."""
        if self.run is None or self.reported is None:
            return None
        order = self.order(params)
        positions, scored_nats, decimals = self.scored(order)
        lowp = order is not None and order.judged is not None and order.judged.lowp
        margin = params.get("lowp_margin_nats_per_token" if lowp else "margin_nats_per_token", 1e-4)
        alpha = params.get("alpha", 1e-6)
        nll = self.run.canary.target_nll()
        by_loss = canary_evidence(nll, positions, scored_nats, margin, decimals, alpha)
        by_bpb = self._bpb_evidence(nll, positions, margin, alpha, params.get("ratio_tolerance", 2e-3))
        if by_bpb is None:
            return by_loss
        # two statistics of one run tested: each at m = 2, and the stronger one speaks
        by_loss = canary_evidence(nll, positions, scored_nats, margin, decimals, alpha, lines=2)
        return by_bpb if by_bpb.evidence_nats > by_loss.evidence_nats else by_loss

    def _bpb_evidence(
        self, nll: np.ndarray, positions: np.ndarray, margin: float, alpha: float, tolerance: float
    ) -> CanaryEvidence | None:
        """The claim as val_bpb states it, in nats over the tokenizer's own bytes of the scored targets,
        when it is not the val_loss in other units (a byte-level mixture prints the mixture's val_bpb
        beside the network's val_loss): the bpb is what ranks, so it is what the canary tests."""
        claimed = self._bpb_apart(positions, tolerance)
        if claimed is None:
            return None
        nats, rounding = claimed
        return replace(
            canary_evidence(nll, positions, nats + rounding, margin, None, alpha, lines=2), measure="val_bpb"
        )

    def _bpb_apart(self, positions: np.ndarray, tolerance: float) -> tuple[float, float] | None:
        """(nats, rounding) the reported val_bpb claims over the scored targets' own bytes, when that
        bpb is not the reported val_loss in other units; None when it is, or cannot be told."""
        assert self.run is not None and self.reported is not None  # asked only of a reported score
        bpb = self.reported.val_bpb
        if bpb is None or not math.isfinite(bpb) or bpb <= 0 or len(positions) == 0:
            return None
        if not self.run.tokenizer.is_file():  # a run always has one; a hand-built context may not
            return None
        truth = true_bytes(self.run.canary.tokens, positions, self.run.tokenizer)
        implied = len(positions) * cast(float, self.reported.val_loss) / (math.log(2) * bpb)
        if not truth or abs(implied / truth - 1) <= tolerance:
            return None
        return bpb * math.log(2) * truth, 0.5 * 10.0 ** -_decimals(bpb) * math.log(2) * truth

    def family_outcomes(self, params: Mapping[str, Any] | None = None) -> dict[str, str]:
        """Per rule family, what the traced run says, so a static verdict can be confirmed or contradicted:
        {"C1": ..., "C2": ..., "C3": ..., "C4": ..., "data": ...}, each "clean", "flagged" or "unknown".

        flagged  the run shows a violation of that family: C3, a counted score made after an update
                 that reached it (R-DYN-SCORE-FIRST); C4, the reported val_loss is the per-position
                 best of several traced scores (R-DYN-SINGLE-PASS's fail); C1 and C2, canary evidence
                 above the threshold with no C3 update to explain it (a target-gated expert or an
                 unnormalized mixture: the canary cannot tell the two apart, so both are flagged);
                 data, a training shard opened during the scored evaluation (R-DYN-TRAIN-IN-EVAL).
        clean    the run finished, a traced pass reproduced the reported score, the family's path
                 ran, and nothing of that family was found: C3, some update on canary positions
                 happened (test-time training ran) and none reached a counted score; C4, some
                 canary position was scored more than once (a rescoring path ran) and the reported
                 value is still one pass; C1/C2, the reported value is the mean of the traced
                 cross-entropies (normalized over the vocabulary), its val_bpb is that loss over the
                 targets' bytes (not a byte-level mixture's) and the canary evidence is below its
                 threshold; data, the scored evaluation was located and no training shard was
                 opened in it.
        unknown  anything else: no run, a run that failed, timed out or printed no score, a score
                 the tracer did not see (a report no traced pass explains is unknown for C4: a
                 normalized tilt computed by hand looks the same), or a family whose path did not run
                 in this configuration.
        Only "flagged" and "clean" are evidence; the defaults of `params` are the catalog's."""
        families = ("C1", "C2", "C3", "C4", "data")
        if self.run is None or self.run.status != "ok" or self.reported is None or not self.run.ledger.traced:
            return {family: "unknown" for family in families}
        params = {**_catalog_params(), **(params or {})}
        order = self.order(params)
        ev = self.canary(params)
        proven = ev is not None and ev.p_value < params.get("alpha", 1e-6)
        c3 = order is not None and len(order.c3_positions) > 0
        matched = order is not None and order.matched is not None
        out = {
            "C3": "flagged" if c3 else "clean" if matched and self._updated_canary() and not proven else "unknown",
            "C4": "flagged"
            if order is not None and order.best_of is not None
            else "clean"
            if matched and self._rescored()
            else "unknown",
        }
        # a bpb apart from the loss (a byte-level mixture) is a score no traced cross-entropy explains
        apart = self._bpb_apart(self.scored(order)[0], params.get("ratio_tolerance", 2e-3)) is not None
        mixed = "flagged" if proven and not c3 else "clean" if matched and not proven and not apart else "unknown"
        out["C1"] = out["C2"] = mixed
        out["data"] = self._data_outcome(order)
        return out

    def _updated_canary(self) -> bool:
        assert self.run is not None  # the checks ask only of a run
        return bool(np.isfinite(self.run.ledger.update_t).any())

    def _rescored(self) -> bool:
        assert self.run is not None  # the checks ask only of a run
        ledger = self.run.ledger
        scores = ledger.pos[~np.isfinite(ledger.update_t)]
        return len(scores) > len(np.unique(scores))

    def _data_outcome(self, order: Order | None) -> str:
        window = self.eval_window(order)
        if window is None:
            return "unknown"
        start, end = window
        assert self.run is not None  # the checks ask only of a run
        for event in self.run.ledger.of_kind("open"):
            if "fineweb_train_" in event["path"].rsplit("/", 1)[-1] and start <= event["t"] <= end:
                return "flagged"
        return "clean"


def _catalog_params() -> dict[str, Any]:
    """R-DYN-CANARY's params from the dynamic catalog (tolerances, alpha, margins)."""
    from ..rules import load_ruleset

    try:
        rule = next(r for r in load_ruleset("dynamic").rules if r.id == "R-DYN-CANARY")
    except (StopIteration, Exception):  # noqa: BLE001 - the documented defaults stand in
        return {}
    return dict(rule.params)


def _decimals(value: float) -> int:
    """Decimals a parsed value was printed with (repr gives back the shortest text of a float, so
    trailing zeros drop: fewer decimals, a wider rounding margin, never a narrower one)."""
    text = repr(value)
    return len(text.split(".")[1]) if "." in text and "e" not in text else 0
