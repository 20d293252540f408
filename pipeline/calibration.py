"""How fast this machine runs a fixed step right now, against the profile's reference machine.

A profile that trains a fixed number of steps (cpu-smoke) keeps its wall-clock caps only as a
safety limit, and a loaded or slower machine needs them wider. Before the seeds, pgolf times a
short fixed step (the matrix products of one MLP block's forward and backward pass, float32)
in a process of its own, with the profile's thread count and with one thread. Several threads
that share busy cores wait on each other: under a concurrent CPU-bound process two threads on
two cores run several times slower than one, so the stages get the faster count. The caps are
multiplied by how much slower the faster count runs than the profile's count on the reference
machine, never by less than 1 nor by more than the ruleset allows. The record states the
measurement, so its check applies the same caps.

Run as `python -m pgolf.pipeline.calibration` it is the probe itself: it prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

PROBE = "mlp-block-fwd-bwd: 1024x128 @ 128x512 and back, float32"
PROBE_SECONDS = 0.25  # timed steps after one warm-up step, at least MIN_STEPS of them
MIN_STEPS = 5
FEWER_THREADS_GAIN = 0.85  # one thread is chosen only when it runs the step this much faster
FILE = "calibration.json"


@dataclass(frozen=True)
class Calibration:
    probe: str
    threads: int  # what the stages run with (OMP_NUM_THREADS)
    reference_s: float  # one probe step on the profile's reference machine, idle, its thread count
    measured_s: float  # the median step here, now, with `threads`
    steps: int  # how many steps the median is of
    scale: float  # what the wall-clock caps are multiplied by
    max_scale: float
    by_threads: dict[str, float] = field(default_factory=dict)  # median step per thread count tried
    note: str = ""

    def describe(self) -> str:
        tried = ", ".join(f"{n} thread{'s' if n != '1' else ''} {t * 1000:.1f} ms" for n, t in self.by_threads.items())
        return (
            f"calibration: probe step {tried or 'not measured'}; reference {self.reference_s * 1000:.1f} ms: "
            f"runs with {self.threads} thread{'s' if self.threads != 1 else ''}, caps x{self.scale:.2f}"
            + (f" ({self.note})" if self.note else "")
        )


def calibrate(
    reference_s: float, max_scale: float, env: dict[str, str], fixed_threads: bool = False, timeout_s: float = 120.0
) -> Calibration:
    """Time the probe in child processes with the stages' environment; fixed_threads: only with the
    thread count env names (a caller's own OMP_NUM_THREADS is not second-guessed)."""
    threads = _threads(env.get("OMP_NUM_THREADS"))
    counts = [threads] if fixed_threads or threads == 1 else [threads, 1]
    try:
        runs = {n: _probe_child(env, n, timeout_s) for n in counts}
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError) as exc:
        # without a measurement the caps stay as the ruleset has them; the record says why
        return Calibration(
            PROBE,
            threads,
            reference_s,
            reference_s,
            0,
            1.0,
            max_scale,
            note=f"probe failed ({type(exc).__name__}); caps unscaled",
        )
    return from_probes(reference_s, max_scale, threads, runs)


def from_probes(reference_s: float, max_scale: float, threads: int, runs: dict[int, dict]) -> Calibration:
    """The thread count and cap scale that the probe runs ({threads: {median_s, steps}}) call for."""
    chosen = threads
    if 1 in runs and runs[1]["median_s"] < FEWER_THREADS_GAIN * runs[threads]["median_s"]:
        chosen = 1
    measured = runs[chosen]["median_s"]
    scale = min(max(1.0, measured / reference_s), max_scale)
    note = f"capped at x{max_scale:g}" if measured / reference_s > max_scale else ""
    return Calibration(
        PROBE,
        chosen,
        reference_s,
        measured,
        runs[chosen]["steps"],
        round(scale, 3),
        max_scale,
        {str(n): r["median_s"] for n, r in runs.items()},
        note,
    )


def _threads(value: str | None) -> int:
    """OMP_NUM_THREADS as OpenMP reads it: a positive integer, else every core."""
    try:
        count = int(value or 0)
    except ValueError:
        count = 0
    return count if count > 0 else (os.cpu_count() or 1)


def _probe_child(env: dict[str, str], threads: int, timeout_s: float) -> dict:
    counts = {name: str(threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run(
        [sys.executable, "-m", __name__],
        env={**env, **counts},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"median_s": float(result["median_s"]), "steps": int(result["steps"])}


def save(folder: Path, calibration: Calibration) -> None:
    from pgolf.compliance import fsutil

    fsutil.atomic_write_json(folder / FILE, asdict(calibration))


def probe() -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1024, 128), dtype=np.float32)
    w1 = rng.standard_normal((128, 512), dtype=np.float32) * 0.05
    w2 = rng.standard_normal((512, 128), dtype=np.float32) * 0.05

    def step() -> None:
        h = np.maximum(x @ w1, 0)
        dy = (h @ w2) * 1e-3
        _ = h.T @ dy, x.T @ ((dy @ w2.T) * (h > 0))

    step()
    times: list[float] = []
    until = time.perf_counter() + PROBE_SECONDS
    while len(times) < MIN_STEPS or time.perf_counter() < until:
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    times.sort()
    return {"median_s": times[len(times) // 2], "min_s": times[0], "steps": len(times)}


if __name__ == "__main__":
    print(json.dumps(probe()))
