"""What the canary proves, and whether the script's bytes add up.

Canary evidence: for any causal scorer that gives a proper distribution, the likelihood ratio
of its scores against the canary's generator is a nonnegative martingale with mean 1, so by
Ville's inequality it exceeds 1/alpha with probability at most alpha. In nats: the sum over
scored targets of (generator NLL - reported loss) exceeds ln(1/alpha) with probability at
most alpha. The margin covers what arithmetic, not prediction, can move: fp32 sums of bf16
logits (measured, per token) and the rounding of the printed val_loss.

Targets scored more than once: when the reported loss averages N_eff scores in which a target
appears up to R times (sliding windows that count the stream's last targets again, passes), the
sum can reach R times what one prediction sequence could, and with m reported lines tested the
union bound adds ln m: the test that keeps its level is E > R (ln(1/alpha) + ln m), and the
p-value is min(1, m exp(-E/R)). A traced pass whose counted scores reproduce the report gives
each target once (R = 1).

A scorer whose "probabilities" over the vocabulary sum to S > 1 (an unnormalized byte-level mix,
an expert gated by the realized target) can, by Jensen, reach an expected loss of ln K - ln S on
a uniform canary without adapting anything: about N ln S nats of evidence, which is how the
canary sees C2 breaks the ledger's order cannot.

Byte recount: val_bpb = sum of losses / (ln 2 x bytes), so val_loss / (ln 2 x val_bpb) is the
script's bytes per scored token; RULES.md §6 gives the true ones from the tokenizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CanaryEvidence:
    tokens: int  # N_eff: scores the bound is summed over (repeats included)
    bound_nats: float  # the generator's NLL of those targets
    reported_nats: float  # their scores: N_eff x reported val_loss, or the traced losses
    margin_nats: float
    evidence_nats: float  # bound - reported - margin: what prediction alone cannot explain
    p_value: float
    repeats: int = 1  # R: the most times one target is counted
    lines: int = 1  # m: reported lines tested
    threshold_nats: float = 0.0  # R (ln(1/alpha) + ln m): the evidence that proves a leak at alpha
    measure: str = "val_loss"  # what was tested: the loss, or a claimed val_bpb over the targets' own bytes

    @property
    def log10_p(self) -> float:
        return min(0.0, (math.log(self.lines) - self.evidence_nats / self.repeats) / math.log(10))

    def p_text(self) -> str:
        """exp(-E) underflows past ~745 nats; say the exponent instead."""
        return f"{self.p_value:.2g}" if self.p_value > 1e-300 else f"1e{self.log10_p:.0f}"

    def as_dict(self) -> dict[str, Any]:
        data = {k: round(v, 6) if isinstance(v, float) else v for k, v in self.__dict__.items()}
        data["p_value"], data["log10_p"] = self.p_value, round(self.log10_p, 3)
        return data


def threshold(alpha: float, repeats: int = 1, lines: int = 1) -> float:
    """The evidence (nats) above which a leak is proven at level alpha: R (ln(1/alpha) + ln m)."""
    return max(1, repeats) * (math.log(1 / alpha) + math.log(max(1, lines)))


def printed_decimals(text: str | None) -> int:
    """Decimals of the val_loss as printed (8 in most records, 4 in some)."""
    if not text:
        return 8
    import re

    m = re.search(r"val_loss[:=\s]\s*-?[0-9]+\.([0-9]+)", text)
    return len(m.group(1)) if m else 8


def canary_evidence(
    target_nll: np.ndarray,
    positions: np.ndarray,
    scored_nats: float,
    margin_per_token: float,
    decimals: int | None = 8,
    alpha: float = 1e-6,
    lines: int = 1,
) -> CanaryEvidence:
    """`positions` as the scores count them (a target may repeat), `scored_nats` the sum of their losses
    (N_eff x the reported val_loss, or the traced losses of the pass that reproduces it); `decimals`
    of a printed value, if used; `lines` the number of reported lines tested."""
    n = len(positions)
    repeats = int(np.bincount(positions).max()) if n else 1
    bound = float(target_nll[positions].sum())
    margin = n * (margin_per_token + (0.5 * 10.0**-decimals if decimals is not None else 0.0))
    evidence = bound - scored_nats - margin
    lines = max(1, lines)
    p = 1.0 if evidence <= 0 else min(1.0, lines * math.exp(-evidence / repeats))
    return CanaryEvidence(n, bound, scored_nats, margin, evidence, p, repeats, lines, threshold(alpha, repeats, lines))


def byte_table(tokenizer: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per id: UTF-8 bytes of the piece without its leading '▁', whether it has one, whether it is
    a boundary (control, unknown or unused: 0 bytes, and no space byte for the token after it)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
    size = sp.get_piece_size()
    base = np.zeros(size, dtype=np.int64)
    space = np.zeros(size, dtype=bool)
    boundary = np.zeros(size, dtype=bool)
    for i in range(size):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            boundary[i] = True
        elif sp.is_byte(i):
            base[i] = 1
        else:
            piece = sp.id_to_piece(i)
            space[i] = piece.startswith("\u2581")
            base[i] = len(piece.lstrip("\u2581").encode("utf-8")) if space[i] else len(piece.encode("utf-8"))
    return base, space, boundary


def true_bytes(tokens: np.ndarray, positions: np.ndarray, tokenizer: Path) -> int:
    """RULES.md §6: bytes of each scored target given the token before it."""
    base, space, boundary = byte_table(tokenizer)
    tokens = tokens.astype(np.int64)
    y, x = tokens[positions], tokens[positions - 1]
    return int((base[y] + (space[y] & ~boundary[x])).sum())


@dataclass(frozen=True)
class ByteRecount:
    tokens: int
    true_bytes: int
    implied_bytes: float  # N x val_loss / (ln 2 x val_bpb)
    ratio: float  # implied / true

    def as_dict(self) -> dict[str, float]:
        return {
            "tokens": self.tokens,
            "true_bytes": self.true_bytes,
            "implied_bytes": round(self.implied_bytes, 1),
            "ratio": round(self.ratio, 6),
        }


def byte_recount(
    tokens: np.ndarray, positions: np.ndarray, tokenizer: Path, val_loss: float, val_bpb: float
) -> ByteRecount | None:
    if val_bpb <= 0 or len(positions) == 0:
        return None
    truth = true_bytes(tokens, positions, tokenizer)
    implied = len(positions) * val_loss / (math.log(2) * val_bpb)
    return ByteRecount(len(positions), truth, implied, implied / truth if truth else math.inf)
