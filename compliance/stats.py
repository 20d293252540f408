"""Is a new record significantly better than the previous frontier? (RULES.md §5)

Two policies exist and they disagree:

* enforced (maintainers, PRs #1899, #1902, #2146): a one-sided Welch two-sample
  t-test of per-seed val_bpb, new vs previous frontier, passes at p < 0.25 with
  no margin. The published p-values (#1514 vs #1493: 0.020; #1769 vs #1736:
  0.063) reproduce exactly this way.
* written (README): beat the best record by at least 0.005 nats at p < 0.01.
  Whether the 0.005 nats are per token (val_loss) or per byte (val_bpb * ln 2)
  was never settled, so both readings are tested, each as a one-sided Welch
  test of "improvement > 0.005". The written verdict is True when both readings
  pass, False when both fail, and None (ambiguous) when exactly one passes. It
  is also None when the per-token reading cannot be computed (no per-seed
  val_loss on one side): one reading alone cannot settle an unsettled rule.

A single seed, a non-finite value or zero variance on both sides gives p = nan,
which never passes. The alphas and the margin are the catalog's (R-SIGNIFICANCE params);
the constants below are only the defaults of a direct call.

scipy is imported inside the one function that needs it: loading the checks (every
pgolf-check start) must not pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import fmean, variance
from typing import Any

ENFORCED_ALPHA = 0.25
WRITTEN_ALPHA = 0.01
MARGIN_NATS = 0.005
POLICIES = ("enforced", "written")
_NAN = float("nan")


@dataclass
class WelchResult:
    """One-sided Welch test of H1: mean(base) - mean(new) > margin.

    `t` is oriented so that a positive value favours the new run.
    """

    t: float
    df: float
    p: float
    mean_new: float
    mean_base: float
    n_new: int
    n_base: int
    margin: float = 0.0
    note: str = ""  # why p is nan, when it is

    @property
    def improvement(self) -> float:
        return self.mean_base - self.mean_new

    def passes(self, alpha: float) -> bool:
        return not math.isnan(self.p) and self.p < alpha


@dataclass
class Significance:
    enforced: WelchResult
    enforced_pass: bool
    enforced_alpha: float
    written_per_token: WelchResult | None  # val_loss, nats per token
    written_per_byte: WelchResult  # val_bpb * ln 2, nats per byte
    written_pass: bool | None  # None: ambiguous or undecidable
    written_alpha: float
    margin_nats: float
    decided_by: str  # "enforced" | "written"
    passed: bool
    notes: list[str] = field(default_factory=list)


def welch_one_sided(new: Sequence[float], base: Sequence[float], margin: float = 0.0) -> WelchResult:
    """Welch's t-test of H1: mean(base) - mean(new) > margin (lower is better)."""
    return _welch(new, base, margin, scale=1.0)


def significance(
    new_bpb: Sequence[float],
    base_bpb: Sequence[float],
    new_loss: Sequence[float] | None = None,
    base_loss: Sequence[float] | None = None,
    policy: str = "enforced",
    *,
    enforced_alpha: float = ENFORCED_ALPHA,
    written_alpha: float = WRITTEN_ALPHA,
    margin_nats: float = MARGIN_NATS,
) -> Significance:
    """Both policies' verdicts; `policy` picks the one that sets `passed`.

    Raises ValueError for a policy name other than "enforced" or "written", or an alpha
    outside (0, 1) or a negative or non-finite margin.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
    for name, alpha in (("enforced_alpha", enforced_alpha), ("written_alpha", written_alpha)):
        if not (_finite(alpha) and 0.0 < float(alpha) < 1.0):
            raise ValueError(f"{name} must lie in (0, 1), not {alpha!r}")
    if not (_finite(margin_nats) and float(margin_nats) >= 0.0):
        raise ValueError(f"margin_nats must be a finite number >= 0, not {margin_nats!r}")
    enforced = welch_one_sided(new_bpb, base_bpb)
    per_byte = _welch(new_bpb, base_bpb, margin_nats, scale=math.log(2))
    per_token = None
    if new_loss is not None and base_loss is not None:
        per_token = welch_one_sided(new_loss, base_loss, margin_nats)
    written_pass, notes = _written_verdict(per_token, per_byte, written_alpha)
    notes = _result_notes(enforced, "enforced") + notes
    enforced_pass = enforced.passes(enforced_alpha)
    return Significance(
        enforced=enforced,
        enforced_pass=enforced_pass,
        enforced_alpha=enforced_alpha,
        written_per_token=per_token,
        written_per_byte=per_byte,
        written_pass=written_pass,
        written_alpha=written_alpha,
        margin_nats=margin_nats,
        decided_by=policy,
        passed=enforced_pass if policy == "enforced" else written_pass is True,
        notes=notes,
    )


def _written_verdict(
    per_token: WelchResult | None, per_byte: WelchResult, alpha: float
) -> tuple[bool | None, list[str]]:
    notes = _result_notes(per_byte, "written per byte")
    byte_ok = per_byte.passes(alpha)
    if per_token is None:
        notes.append(
            "written: per-token reading needs per-seed val_loss on both sides; "
            f"verdict undecided (per-byte reading {_word(byte_ok)})"
        )
        return None, notes
    notes += _result_notes(per_token, "written per token")
    token_ok = per_token.passes(alpha)
    if token_ok != byte_ok:
        notes.append(f"written: ambiguous, per-token reading {_word(token_ok)} but per-byte reading {_word(byte_ok)}")
        return None, notes
    return token_ok, notes


def _word(ok: bool) -> str:
    return "passes" if ok else "fails"


def _result_notes(result: WelchResult, label: str) -> list[str]:
    return [f"{label}: {result.note}"] if result.note else []


def _welch(new: Any, base: Any, margin: float, scale: float) -> WelchResult:
    """Welch test on values multiplied by `scale` (unit change), margin in new units."""
    xs, bad_new = _clean(new, scale)
    ys, bad_base = _clean(base, scale)
    mean_new = fmean(xs) if xs else _NAN
    mean_base = fmean(ys) if ys else _NAN
    partial = WelchResult(_NAN, _NAN, _NAN, mean_new, mean_base, len(xs), len(ys), margin)
    if bad_new or bad_base or not _finite(margin):
        partial.note = "non-numeric or non-finite value among the inputs"
        return partial
    if len(xs) < 2 or len(ys) < 2:
        partial.note = f"need at least 2 values per side (new {len(xs)}, base {len(ys)}); a single seed cannot pass"
        return partial
    return _welch_moments(mean_new, variance(xs), len(xs), mean_base, variance(ys), len(ys), margin)


def welch_from_summary(
    new: tuple[float, float, int], base: tuple[float, float, int], margin: float = 0.0
) -> WelchResult:
    """The same test from (mean, sample std, n) of each side, as published rulings quote them
    (PR #1902: PR #1855's six runs, mean 1.060755, std 0.000933, against PR #1868's rerun)."""
    (m_new, sd_new, n_new), (m_base, sd_base, n_base) = new, base
    numbers = (m_new, sd_new, m_base, sd_base, margin)
    if not all(_finite(v) for v in numbers) or min(sd_new, sd_base) < 0 or min(n_new, n_base) < 2:
        result = WelchResult(_NAN, _NAN, _NAN, m_new, m_base, n_new, n_base, margin)
        result.note = "need finite means, non-negative stds and at least 2 values per side"
        return result
    return _welch_moments(m_new, sd_new**2, n_new, m_base, sd_base**2, n_base, margin)


def _welch_moments(
    mean_new: float, var_new: float, n_new: int, mean_base: float, var_base: float, n_base: int, margin: float
) -> WelchResult:
    se_new, se_base = var_new / n_new, var_base / n_base
    se2 = se_new + se_base
    if se2 <= 0.0:
        result = WelchResult(_NAN, _NAN, _NAN, mean_new, mean_base, n_new, n_base, margin)
        result.note = "zero variance on both sides: the t statistic is undefined"
        return result
    t = (mean_base - mean_new - margin) / math.sqrt(se2)
    df = se2**2 / (se_new**2 / (n_new - 1) + se_base**2 / (n_base - 1))
    from scipy import stats as sps  # lazily: see the module docstring

    p = float(sps.t.sf(t, df))
    return WelchResult(t, df, p, mean_new, mean_base, n_new, n_base, margin)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _clean(values: Any, scale: float) -> tuple[list[float], bool]:
    """Floats scaled by `scale`, and whether any input was unusable."""
    if values is None or isinstance(values, (str, bytes)):
        return [], True
    try:
        raw = list(values)
    except TypeError:
        return [], True
    out: list[float] = []
    for v in raw:
        if not _finite(v):
            return [], True
        out.append(float(v) * scale)
    return out, False
