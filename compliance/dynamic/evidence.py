"""What the canary proves, and whether the script's bytes add up.

Canary evidence: for any causal scorer that gives a proper distribution, the likelihood ratio
of its scores against the canary's generator is a nonnegative martingale with mean 1, so by
Ville's inequality it exceeds 1/alpha with probability at most alpha. In nats: the sum over
scored targets of (generator NLL - reported loss) exceeds ln(1/alpha) with probability at
most alpha. The margin covers what arithmetic, not prediction, can move: fp32 sums of bf16
logits (measured, per token) and the rounding of the printed val_loss.

Byte recount: val_bpb = sum of losses / (ln 2 x bytes), so val_loss / (ln 2 x val_bpb) is the
script's bytes per scored token; RULES.md §6 gives the true ones from the tokenizer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CanaryEvidence:
    tokens: int               # N: scored targets the bound is summed over
    bound_nats: float         # the generator's NLL of those targets
    reported_nats: float      # N x reported val_loss
    margin_nats: float
    evidence_nats: float      # bound - reported - margin: what prediction alone cannot explain
    p_value: float

    @property
    def log10_p(self) -> float:
        return min(0.0, -self.evidence_nats / math.log(10))

    def p_text(self) -> str:
        """exp(-E) underflows past ~745 nats; say the exponent instead."""
        return f"{self.p_value:.2g}" if self.p_value > 1e-300 else f"1e{self.log10_p:.0f}"

    def as_dict(self) -> dict:
        data = {k: round(v, 6) if isinstance(v, float) else v for k, v in self.__dict__.items()}
        data["p_value"], data["log10_p"] = self.p_value, round(self.log10_p, 3)
        return data


def printed_decimals(text: str | None) -> int:
    """Decimals of the val_loss as printed (8 in most records, 4 in some)."""
    if not text:
        return 8
    import re
    m = re.search(r"val_loss[:=\s]\s*-?[0-9]+\.([0-9]+)", text)
    return len(m.group(1)) if m else 8


def canary_evidence(target_nll: np.ndarray, positions: np.ndarray, scored_nats: float,
                    margin_per_token: float, decimals: int | None = 8) -> CanaryEvidence:
    """`positions` each scored once, `scored_nats` the sum of their losses (N x the reported val_loss,
    or the traced losses of the pass that reproduces it); `decimals` of a printed value, if used."""
    n = len(positions)
    bound = float(target_nll[positions].sum())
    margin = n * (margin_per_token + (0.5 * 10.0 ** -decimals if decimals is not None else 0.0))
    evidence = bound - scored_nats - margin
    p = 1.0 if evidence <= 0 else math.exp(-evidence)
    return CanaryEvidence(n, bound, scored_nats, margin, evidence, p)


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
    implied_bytes: float       # N x val_loss / (ln 2 x val_bpb)
    ratio: float               # implied / true

    def as_dict(self) -> dict:
        return {"tokens": self.tokens, "true_bytes": self.true_bytes,
                "implied_bytes": round(self.implied_bytes, 1), "ratio": round(self.ratio, 6)}


def byte_recount(tokens: np.ndarray, positions: np.ndarray, tokenizer: Path,
                 val_loss: float, val_bpb: float) -> ByteRecount | None:
    if val_bpb <= 0 or len(positions) == 0:
        return None
    truth = true_bytes(tokens, positions, tokenizer)
    implied = len(positions) * val_loss / (math.log(2) * val_bpb)
    return ByteRecount(len(positions), truth, implied, implied / truth if truth else math.inf)
