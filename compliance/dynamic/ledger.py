"""Read the tracer's output and judge, position by position, the order of scores and updates.

Vocabulary: an *entry* is one target of one traced loss call (position, context offset, loss,
time). An entry whose loss node later fed a backward pass is also an *update* of its position
at that backward's time. The *reporting pass* is the set of entries, between a printed score
line and the line that reports the final val_loss, whose counted scores reproduce it; a
position's *counted* score there is the entry with the longest context, the earliest on ties
(a sliding window counts a target where it has the most context; a rescoring adds nothing).

C3: a counted score made after an update on that position that reached it. Where the tracer
followed the data (pgolf_shim_taint: which canary optimizer steps the logits depend on), an
update reaches a score only through that data; elsewhere (fused kernels, updates applied by
hand) any earlier update does.
C4: no traced pass reproduces the reported val_loss. Proven when the per-position best of the
traced scores does (keeping the better of two scores); otherwise the ledger cannot say what the
reported number is (a rescoring, or a probability mixed in outside the softmax: unnormalized, which
the canary decides, or normalized, like a token-only tilt computed by hand).
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

VAL_LOSS = re.compile(r"val_loss[:=\s]\s*(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)")


@dataclass
class Ledger:
    t: np.ndarray  # per entry: time of the loss call (ns)
    pos: np.ndarray  # canary position of the target
    off: np.ndarray  # offset in its run of consecutive positions (context length)
    loss: np.ndarray  # -log p from the call's own logits (fp32)
    update_t: np.ndarray  # backward time of the entry's loss node, inf if none
    site: list[str]  # call sites; site_of[i] indexes it for entry i
    site_of: np.ndarray
    lowp: np.ndarray  # the call's logits were bf16/fp16: its own arithmetic is coarse
    # 1: an update on this position reached these logits (taint); 0: none did; -1: not known (no taint,
    # or updates the taint cannot follow). None only until __post_init__ fills it, hence the ignore.
    reach: np.ndarray = None  # type: ignore[assignment]
    lines: list[tuple[int, str]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # every non-loss event, all processes
    processes: int = 0
    torch_seen: bool = False
    trace_errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.reach is None:
            self.reach = np.full(len(self.pos), -1, dtype=np.int8)

    @property
    def traced(self) -> bool:
        return len(self.pos) > 0

    def of_kind(self, *kinds: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] in kinds]

    def last_output(self) -> tuple[str, float] | None:
        """The last line any traced process printed (as its heartbeats reported it) and how many seconds
        before the ledger's last event: what a run killed at its cap was doing all that while."""
        said = [e for e in self.events if e["kind"] == "beat" and isinstance(e.get("said"), str)]
        if not said:
            return None
        last = max(said, key=lambda e: int(e.get("said_t") or 0))
        end = max(int(e["t"]) for e in self.events)
        return last["said"], max(0.0, (end - int(last.get("said_t") or end)) / 1e9)


def read_ledger(folder: Path) -> Ledger:
    parts = (
        [_read_process(sub) for sub in sorted(p for p in Path(folder).iterdir() if p.is_dir())]
        if Path(folder).is_dir()
        else []
    )

    def cat(key: str, dtype: npt.DTypeLike) -> np.ndarray:
        return np.concatenate([p[key] for p in parts]).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    sites = sorted({s for p in parts for s in p["sites"]})
    index = {s: i for i, s in enumerate(sites)}
    site_of = (
        np.concatenate([np.array([index[s] for s in p["entry_sites"]], dtype=np.int64) for p in parts])
        if parts
        else np.zeros(0, dtype=np.int64)
    )
    events = sorted((e for p in parts for e in p["events"]), key=lambda e: e["t"])
    return Ledger(
        t=cat("t", np.int64),
        pos=cat("pos", np.int64),
        off=cat("off", np.int64),
        loss=cat("loss", np.float64),
        update_t=cat("update_t", np.float64),
        site=sites,
        site_of=site_of,
        lowp=cat("lowp", bool),
        reach=_reach(parts),
        lines=[(e["t"], e["text"]) for e in events if e["kind"] == "line"],
        events=[e for e in events if e["kind"] not in ("line", "loss", "backward")],
        processes=len(parts),
        torch_seen=any(e["kind"] == "torch" for e in events),
        trace_errors=[e["error"] for e in events if e["kind"] == "trace_error"],
    )


def _reach(parts: list[dict[str, Any]]) -> np.ndarray:
    """Per entry, from the taint of its logits: did a step that trained this very position reach it?
    A step's bit stands for the positions backpropagated (in any process: gradients are all-reduced)
    since the previous canary step of its process."""
    backwards = sorted((t, pos) for p in parts for t, pos in p["backwards"])
    times = [t for t, _ in backwards]
    out = []
    for part in parts:
        reach = np.full(len(part["pos"]), -1, dtype=np.int8)
        if part["reliable"]:
            trained = _bit_positions(part["steps"], backwards, times)
            cache: dict[int, np.ndarray] = {}
            for _event, (lo, hi, mask) in part["taints"].items():
                if mask not in cache:
                    bits = [k for k in range(mask.bit_length()) if mask >> k & 1]
                    cache[mask] = (
                        np.unique(np.concatenate([trained.get(k, np.zeros(0, np.int64)) for k in bits]))
                        if bits
                        else np.zeros(0, np.int64)
                    )
                reach[lo:hi] = np.isin(part["pos"][lo:hi], cache[mask])
        out.append(reach)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int8)


def _bit_positions(
    steps: list[tuple[int, int]], backwards: list[tuple[int, np.ndarray]], times: list[int]
) -> dict[int, np.ndarray]:
    trained: dict[int, np.ndarray] = {}
    previous: float = -math.inf
    for t, bit in steps:
        lo, hi = bisect.bisect_right(times, previous), bisect.bisect_right(times, t)
        chunk = [pos for _, pos in backwards[lo:hi]]
        trained[bit] = np.concatenate(chunk) if chunk else np.zeros(0, np.int64)
        previous = t
    return trained


def _backwards(events: list[dict[str, Any]]) -> dict[int, int]:
    """Loss event -> time of the first backward pass that reached it: from then on an update on
    its positions is possible (whether it reaches a later score is the taint's to say)."""
    out: dict[int, int] = {}
    for e in events:
        if e["kind"] == "backward":
            out.setdefault(e["of"], e["t"])
    return out


def _read_process(folder: Path) -> dict[str, Any]:
    events = []
    with open(folder / "events.jsonl", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                events.append(json.loads(line))
            except ValueError:
                break  # the last line of a killed process may be cut
    arrays = {
        name: np.fromfile(folder / f"{name}.bin", dtype=dtype)
        for name, dtype in (("positions", "<i4"), ("offsets", "<i4"), ("losses", "<f4"))
    }
    backward = _backwards(events)
    t, update_t, entry_sites, lowp = [], [], [], []
    loss_events = [e for e in events if e["kind"] == "loss" and e["start"] + e["n"] <= len(arrays["losses"])]
    taints, at = {}, 0
    for e in loss_events:
        if "taint" in e:
            taints[e["i"]] = (at, at + e["n"], int(e["taint"], 16))
        at += e["n"]
    by_id = {e["i"]: e for e in loss_events}
    backwards = [
        (bt, arrays["positions"][by_id[i]["start"] : by_id[i]["start"] + by_id[i]["n"]].astype(np.int64))
        for i, bt in backward.items()
        if i in by_id
    ]
    steps = [(s["t"], s["bit"]) for s in events if s["kind"] == "step" and "bit" in s]
    last_step = max((s for s, _ in steps), default=-math.inf)
    # taint follows optimizer steps only: a backward with no canary step after it was applied by hand
    reliable = all(bt <= last_step for bt, _ in backwards)
    for e in loss_events:
        t.append(np.full(e["n"], e["t"], dtype=np.int64))
        update_t.append(np.full(e["n"], backward.get(e["i"], math.inf)))
        entry_sites += [e.get("site", "?")] * e["n"]
        lowp.append(np.full(e["n"], e.get("dtype") in ("bfloat16", "float16")))
    pick = (
        np.concatenate([np.arange(e["start"], e["start"] + e["n"]) for e in loss_events])
        if loss_events
        else np.zeros(0, dtype=np.int64)
    )
    return {
        "t": np.concatenate(t) if t else np.zeros(0),
        "pos": arrays["positions"][pick],
        "off": arrays["offsets"][pick],
        "loss": arrays["losses"][pick],
        "update_t": np.concatenate(update_t) if update_t else np.zeros(0),
        "lowp": np.concatenate(lowp) if lowp else np.zeros(0, dtype=bool),
        "sites": set(entry_sites),
        "entry_sites": entry_sites,
        "events": events,
        "taints": taints,
        "backwards": backwards,
        "steps": steps,
        "reliable": reliable,
    }


# ------------------------------------------------------------------ the order judgement


@dataclass
class Pass:
    start_t: float  # exclusive: the score line before it (or -inf)
    end_t: float  # exclusive: the reporting line (or +inf)
    mode: str  # "scores" (no-grad entries only) | "forwards" (every entry)
    positions: np.ndarray  # counted positions, sorted, each once
    entries: np.ndarray  # per position, its counted entry (longest context, earliest)
    mean: float  # over `weighted`: what the script's own sums give
    lowp: bool = False  # some counted score came from bf16/fp16 logits
    weighted: np.ndarray | None = None  # entries as the script counts them, repeats included
    rule: str = "once"  # "once" | "windows" (sliding windows: each counts its last stride)
    # | "first" / "last" (each position's earliest / latest forward)

    def __post_init__(self) -> None:
        if self.weighted is None:
            self.weighted = self.entries

    @property
    def n(self) -> int:
        return len(self.positions)


@dataclass
class Order:
    reported: float
    report_line: str | None
    matched: Pass | None  # the pass that reproduces the reported val_loss
    judged: Pass | None  # matched, else the latest candidate (what C3 was judged on)
    c3_positions: np.ndarray  # counted after their first update
    legal_mean: float | None  # counted scores made before each position's first update
    legal_missing: int  # judged positions with no score before their first update
    tolerance: float
    best_of: Pass | None = None  # when nothing matched: the per-position best of several traced scores
    # that reproduces the report (keeping the better of two: C4 proven)


@dataclass(frozen=True)
class Tolerance:
    """How close the reported val_loss must be to a pass's mean; wider when the script's own
    loss arithmetic ran in bf16/fp16 (compliance.dynamic.margin measures both)."""

    abs: float = 1e-3
    rel: float = 5e-4
    lowp_abs: float = 0.1

    def of(self, candidate: Pass, reported: float) -> float:
        return self.lowp_abs if candidate.lowp else max(self.abs, self.rel * abs(reported))


def judge_order(ledger: Ledger, reported: float, tolerance: Tolerance = Tolerance()) -> Order:
    end_t, report_line = _report_time(ledger, reported)
    first_update = _first_updates(ledger)
    candidates = list(_candidates(ledger, end_t, first_update))
    # the passes within tolerance: a bf16 tolerance of 0.1 nats lets many passes of a near-uniform
    # model fit, and only one is what was summed
    fits = [
        (abs(c.mean - reported), i)
        for i, c in enumerate(candidates)
        if abs(c.mean - reported) <= tolerance.of(c, reported)
    ]
    # The latest window that explains the report is the reported pass: a near-uniform model prints
    # near-equal passes, and a window reaching back over an earlier one (a diagnostic pass before a
    # GPTQ calibration) fitted 3e-6 closer by chance, moving the evaluation's start before the
    # calibration's training reads. Within it, the closest; means that agree to within summation
    # noise are the same numbers, and the first candidate of them is taken.
    matched = None
    if fits:
        latest = candidates[min(i for _, i in fits)].start_t  # candidates come latest window first
        in_window = [(d, i) for d, i in fits if candidates[i].start_t == latest]
        noise = 1e-6 * max(1.0, abs(reported))
        best = min(in_window)[0]
        matched = candidates[min(i for d, i in in_window if d <= best + noise)]
    judged = matched or (candidates[0] if candidates else None)
    tol = tolerance.of(judged, reported) if judged else tolerance.abs
    if judged is None:
        return Order(reported, report_line, None, None, np.zeros(0, dtype=np.int64), None, 0, tol)
    best_of = None if matched else _best_of(ledger, candidates, reported, tolerance)
    counted = judged.weighted
    upd = first_update[ledger.pos[counted]]
    reach = ledger.reach[counted]
    after = np.where(reach >= 0, reach == 1, ledger.t[counted] > upd)  # taint where known, else time
    late = np.unique(ledger.pos[counted][after])
    legal_mean, missing = _legal_mean(ledger, judged, first_update)
    return Order(reported, report_line, matched, judged, late, legal_mean, missing, tol, best_of)


def _best_of(ledger: Ledger, candidates: list[Pass], reported: float, tolerance: Tolerance) -> Pass | None:
    """Per position, the lowest of its no-grad scores in a candidate's window, where some position was
    scored more than once: the mean that a report keeping the better score gives."""
    for candidate in candidates:
        if candidate.mode != "scores" or candidate.rule != "once":
            continue
        inside = (ledger.t > candidate.start_t) & (ledger.t < candidate.end_t) & ~np.isfinite(ledger.update_t)
        idx = np.flatnonzero(inside)
        if len(idx) == len(np.unique(ledger.pos[idx])):
            continue
        idx = idx[np.lexsort((ledger.loss[idx], ledger.pos[idx]))]
        first = np.ones(len(idx), dtype=bool)
        first[1:] = ledger.pos[idx][1:] != ledger.pos[idx][:-1]
        best = idx[first]
        found = Pass(
            candidate.start_t,
            candidate.end_t,
            "best",
            ledger.pos[best],
            best,
            float(ledger.loss[best].mean()),
            bool(ledger.lowp[best].any()),
        )
        if abs(found.mean - reported) <= tolerance.of(found, reported):
            return found
    return None


def _report_time(ledger: Ledger, reported: float) -> tuple[float, str | None]:
    """The last printed line whose val_loss is the reported one; +inf when none was seen."""
    for t, text in reversed(ledger.lines):
        m = VAL_LOSS.search(text)
        if m and math.isclose(float(m.group(1)), reported, rel_tol=1e-9, abs_tol=1e-9):
            return float(t), text
    return math.inf, None


def _first_updates(ledger: Ledger) -> np.ndarray:
    """Per canary position, the time of its first update (inf where there is none)."""
    first = np.full(int(ledger.pos.max(initial=0)) + 1, math.inf)
    has = np.isfinite(ledger.update_t)
    np.minimum.at(first, ledger.pos[has], ledger.update_t[has])
    return first


def _candidates(ledger: Ledger, end_t: float, first_update: np.ndarray) -> Iterator[Pass]:
    """Windows back from the reporting line, latest start first; each with no-grad entries, then all;
    each counted once per position, then (for overlapping windows) as sliding windows count. Among all
    forwards, a position's longest context is looked for before its first update where it has entries
    there, and each position's first and last forward are candidates too: a script that scores and
    trains from one forward counts the one before its update, while later forwards of the same tokens
    (a global TTT step over scored documents joined together) may see longer contexts."""
    bounds = sorted({float(t) for t, text in ledger.lines if t < end_t and VAL_LOSS.search(text)}, reverse=True)
    for start_t in [*bounds, -math.inf]:
        inside = (ledger.t > start_t) & (ledger.t < end_t)
        for mode in ("scores", "forwards"):
            sel = inside & ~np.isfinite(ledger.update_t) if mode == "scores" else inside
            if sel.any():
                idx = np.flatnonzero(sel)
                looked = _before_updates(ledger, idx, first_update) if mode == "forwards" else idx
                once = _counted(ledger, looked, start_t, end_t, mode)
                yield once
                windows = _sliding(ledger, idx, once)
                if windows is not None:
                    yield windows
                if mode == "forwards":
                    for which in ("first", "last"):
                        pick = _counted(ledger, idx, start_t, end_t, mode, which)
                        if not np.array_equal(pick.entries, once.entries):
                            yield pick


def _sliding(ledger: Ledger, idx: np.ndarray, once: Pass) -> Pass | None:
    """Sliding-window counting: every window counts its last `stride` targets (the first window all
    of them), so the windows that reach the end of the stream count its last targets again: the
    records' eval does so, which matters on a 16k-token canary (about 12% of the counts)."""
    pos = ledger.pos[idx]
    if len(pos) == once.n:
        return None  # no target seen twice: nothing to weigh
    starts = np.ones(len(idx), dtype=bool)
    starts[1:] = (ledger.off[idx][1:] == 0) | (pos[1:] != pos[:-1] + 1)
    run = np.cumsum(starts) - 1
    run_len = np.bincount(run)
    local = np.arange(len(idx)) - np.flatnonzero(starts)[run]
    firsts = pos[starts]
    gaps, counts = np.unique(np.diff(np.unique(firsts)), return_counts=True)
    if len(gaps) == 0:
        return None
    stride = int(gaps[counts.argmax()])
    counted = (local >= run_len[run] - stride) | (firsts[run] == firsts.min())
    weighted = idx[counted]
    return Pass(
        once.start_t,
        once.end_t,
        once.mode,
        once.positions,
        once.entries,
        float(ledger.loss[weighted].mean()),
        bool(ledger.lowp[weighted].any()),
        weighted,
        "windows",
    )


def _before_updates(ledger: Ledger, idx: np.ndarray, first_update: np.ndarray) -> np.ndarray:
    """Of the entries `idx`, those made before their position's first update, and every entry of a
    position that has none there."""
    early = ledger.t[idx] < first_update[ledger.pos[idx]]
    covered = np.zeros(len(first_update), dtype=bool)
    covered[ledger.pos[idx][early]] = True
    kept: np.ndarray = idx[early | ~covered[ledger.pos[idx]]]
    return kept


def _counted(ledger: Ledger, idx: np.ndarray, start_t: float, end_t: float, mode: str, rule: str = "once") -> Pass:
    """Per position, the entry with the longest context, the earliest on ties; or ("first", "last") its
    earliest or latest entry, whatever the context."""
    keys = {"first": (ledger.t[idx], ledger.pos[idx]), "last": (-ledger.t[idx], ledger.pos[idx])}.get(
        rule, (ledger.t[idx], -ledger.off[idx], ledger.pos[idx])
    )
    order = np.lexsort(keys)
    idx = idx[order]
    first = np.ones(len(idx), dtype=bool)
    first[1:] = ledger.pos[idx][1:] != ledger.pos[idx][:-1]
    chosen = idx[first]
    return Pass(
        start_t,
        end_t,
        mode,
        ledger.pos[chosen],
        chosen,
        float(ledger.loss[chosen].mean()),
        bool(ledger.lowp[chosen].any()),
        rule=rule if rule in ("first", "last") else "once",
    )


def _legal_mean(ledger: Ledger, judged: Pass, first_update: np.ndarray) -> tuple[float | None, int]:
    """What the pass would report from scores made before each position's first update."""
    inside = np.flatnonzero((ledger.t > judged.start_t) & (ledger.t < judged.end_t))
    upd = first_update[ledger.pos[inside]]
    before = inside[ledger.t[inside] < upd]
    if len(before) == 0:
        return None, judged.n
    legal = _counted(ledger, before, judged.start_t, judged.end_t, "legal")
    missing = int(np.setdiff1d(judged.positions, legal.positions).size)
    return legal.mean, missing


def position_ranges(positions: np.ndarray, limit: int = 6) -> str:
    """`12-40, 97, 130-200 (and 3 more ranges)`: affected positions, short enough for one line."""
    if len(positions) == 0:
        return ""
    p = np.unique(positions)
    breaks = np.flatnonzero(np.diff(p) != 1)
    starts, ends = np.r_[p[0], p[breaks + 1]], np.r_[p[breaks], p[-1]]
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in zip(starts[:limit], ends[:limit], strict=False)]
    more = len(starts) - limit
    return ", ".join(parts) + (f" (and {more} more ranges)" if more > 0 else "")
